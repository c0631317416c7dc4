"""Restoration networks, one module per paper (names follow the paper).

Every network class says what the one restoration call (``paperlib.restorer``) needs to
know: ``channels`` (1 gray, 3 RGB), ``uses_tables`` (takes the quantisation tables) and
``stochastic`` (takes noise). ``load(path)`` rebuilds any committed or exported network
from its weights file, whose meta names the family.

Modules are imported lazily, so ``python -m paperlib.models.cascnn`` (also under
torchrun) runs the module once.
"""
__all__ = ["load", "CASCNN", "load_cascnn", "train_cascnn", "BUDGETS"]

# family named in a weights file's meta ("arch") -> (module, loader)
_LOADERS = {"CASCNN": ("cascnn", "load_cascnn"), "L4": ("svoboda", "load_svoboda"),
            "L8": ("svoboda", "load_svoboda"), "QGCN": ("qgcn", "load_qgcn"),
            "OneToMany": ("onetomany", "load_onetomany"), "Posterior": ("posterior", "load_posterior")}


def load(path, device="cpu", arch: str | None = None):
    """The network in an ``export_fp16`` weights file (float32, eval mode), whatever its family.

    ``arch``: the family the caller expects (e.g. from a zoo manifest); a file of another family
    is refused, as are weights that do not fit their own family's network (ValueError, one line).
    """
    from importlib import import_module

    from ..checkpoint import fp16_meta
    found = fp16_meta(path).get("arch")
    if found not in _LOADERS:
        raise ValueError(f"{path}: unknown network family {found!r}; known: {', '.join(sorted(_LOADERS))}")
    if arch is not None and found != arch:
        raise ValueError(f"{path}: holds a {found} network, not the {arch} its manifest names")
    module, loader = _LOADERS[found]
    try:
        return getattr(import_module(f"{__name__}.{module}"), loader)(path, device=device)
    except RuntimeError as err:   # load_state_dict: missing / unexpected keys or wrong shapes
        raise ValueError(f"{path}: its weights do not fit a {found} network "
                         f"({str(err).strip().splitlines()[0]})") from None


def __getattr__(name):
    if name in ("CASCNN", "load_cascnn", "train_cascnn", "BUDGETS"):
        from . import cascnn
        return getattr(cascnn, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
