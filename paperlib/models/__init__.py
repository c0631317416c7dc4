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
            "OneToMany": ("onetomany", "load_onetomany")}


def load(path, device="cpu"):
    """The network in an ``export_fp16`` weights file (float32, eval mode), whatever its family."""
    from importlib import import_module

    from ..checkpoint import load_fp16
    arch = load_fp16(path)[1].get("arch")
    if arch not in _LOADERS:
        raise ValueError(f"{path}: unknown network family {arch!r}; known: {', '.join(sorted(_LOADERS))}")
    module, loader = _LOADERS[arch]
    return getattr(import_module(f"{__name__}.{module}"), loader)(path, device=device)


def __getattr__(name):
    if name in ("CASCNN", "load_cascnn", "train_cascnn", "BUDGETS"):
        from . import cascnn
        return getattr(cascnn, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
