"""`ActivityRegularization`: its input unchanged, with an L1/L2 penalty on it added to the training loss."""

from __future__ import annotations

from typing import Any, Dict

from .. import regularizers
from .base import check_float
from .permute import Identity


class ActivityRegularization(Identity):
    """y = x; in training the loss gains (l1·Σ|x| + l2·Σx²) / batch size, Keras 3's activity regularizer
    (`regularizers.L1L2(l1, l2)`), whose gradient flows back into x.  No weights."""

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        if "activity_regularizer" in kwargs:
            raise TypeError(f"{type(self).__name__}: argument `activity_regularizer` is set by `l1` and `l2`, got "
                            f"{kwargs['activity_regularizer']!r}")
        super().__init__(**kwargs)
        where = self._describe()
        self.l1, self.l2 = (check_float(v, arg, where, 0.0) for v, arg in ((l1, "l1"), (l2, "l2")))
        self.activity_regularizer = regularizers.L1L2(l1=self.l1, l2=self.l2)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"l1": self.l1, "l2": self.l2})
        return config
