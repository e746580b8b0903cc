"""LambdaCallback: a callback made of plain functions, one per hook (Keras' arguments)."""

from __future__ import annotations

from .core import _HOOKS, Callback

__all__ = ["LambdaCallback"]


class LambdaCallback(Callback):
    """Calls the given functions at their hooks, with the hooks' positional arguments:
    `on_epoch_end(epoch, logs)`, `on_train_begin(logs)`, `on_train_batch_end(batch, logs)`, ...

    Any other hook (`on_test_end=...`, `on_predict_batch_end=...`) may be given by name as well.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, function in hooks.items():
            if name not in _HOOKS:
                raise TypeError(f"LambdaCallback: unexpected argument `{name}`; expected hook names "
                                f"({', '.join(_HOOKS)})")
            if function is not None and not callable(function):
                raise TypeError(f"LambdaCallback: argument `{name}` must be a function or None, "
                                f"got {function!r}")
            if function is not None:
                setattr(self, name, function)
