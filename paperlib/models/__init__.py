"""Restoration networks, one module per paper (names follow the paper).

Imported lazily, so ``python -m paperlib.models.cascnn`` (also under torchrun)
runs the module once.
"""
__all__ = ["CASCNN", "load_cascnn", "enhance", "train_cascnn", "BUDGETS"]


def __getattr__(name):
    if name in __all__:
        from . import cascnn
        return getattr(cascnn, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
