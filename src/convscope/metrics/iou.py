"""Intersection over union per class from a running confusion matrix (Keras 3's IoU metrics): `IoU` averages it
over `target_class_ids`, `MeanIoU` over every class that occurs, `BinaryIoU` thresholds probabilities first,
`OneHotIoU`/`OneHotMeanIoU` take one-hot targets."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .base import Metric, as_array, check_bool, check_dtype, check_int
from .confusion import EPSILON

_DTYPES = ("int32", "int64", "float32", "float64")


class IoU(Metric):
    """Mean over `target_class_ids` (those that occur) of tp / (tp + fp + fn); labels and predictions are class
    ids (or, with `sparse_y_true`/`sparse_y_pred` False, scores whose argmax over `axis` is the class)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        owner = type(self).__name__
        self.num_classes = check_int(owner, "num_classes", num_classes, 1)
        ids = list(target_class_ids) if isinstance(target_class_ids, (list, tuple, np.ndarray)) else None
        if not ids or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < num_classes
                          for i in ids):
            raise ValueError(f"{owner}: argument `target_class_ids` must be a non-empty list of class ids in "
                             f"[0, {self.num_classes}), got {target_class_ids!r}")
        self.target_class_ids = [int(i) for i in ids]
        self.ignore_class = None if ignore_class is None else check_int(owner, "ignore_class", ignore_class,
                                                                        -2 ** 31)
        self.sparse_y_true = check_bool(owner, "sparse_y_true", sparse_y_true)
        self.sparse_y_pred = check_bool(owner, "sparse_y_pred", sparse_y_pred)
        self.axis = check_int(owner, "axis", axis, -2 ** 31)
        super().__init__(name=name)
        self._dtype = check_dtype(owner, dtype, _DTYPES, default="int32")
        self.reset_state()

    def _ids(self, owner: str, arg: str, values, sparse: bool) -> np.ndarray:
        values = as_array(owner, arg, values)
        if not sparse:
            values = np.argmax(values, axis=self.axis)
        return values.astype(self._dtype).reshape(-1)     # float ids truncate, as Keras' cast

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        owner = f"{type(self).__name__}.update_state"
        y_true = self._ids(owner, "y_true", y_true, self.sparse_y_true)
        y_pred = self._ids(owner, "y_pred", y_pred, self.sparse_y_pred)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"{owner}: y_true and y_pred must hold the same number of class ids, got "
                             f"{y_true.size} and {y_pred.size}")
        weight = 1 if sample_weight is None else as_array(owner, "sample_weight", sample_weight)
        weight = np.asarray(weight).astype(self._dtype)
        try:
            weight = np.broadcast_to(weight.reshape(-1) if weight.ndim > 1 else weight, y_true.shape)
        except ValueError:
            raise ValueError(f"{owner}: argument `sample_weight` of shape {np.shape(sample_weight)} does not "
                             f"match the {y_true.size} class ids") from None
        valid = (y_true >= 0) & (y_true < self.num_classes) & (y_pred >= 0) & (y_pred < self.num_classes)
        if self.ignore_class is not None:
            valid &= y_true != self.ignore_class
        cells = y_true[valid].astype(np.int64) * self.num_classes + y_pred[valid].astype(np.int64)
        counts = np.bincount(cells, weights=weight[valid].astype(np.float64), minlength=self.num_classes ** 2)
        self._matrix += counts.reshape(self.num_classes, self.num_classes).astype(self._dtype)

    def reset_state(self) -> None:
        self._matrix = np.zeros((self.num_classes, self.num_classes), dtype=self._dtype)

    def result(self) -> float:
        matrix = self._matrix
        tp = np.diag(matrix)
        denominator = (matrix.sum(axis=0) + matrix.sum(axis=1) - tp).astype(np.float32)
        tp = tp.astype(np.float32)
        tp, denominator = tp[self.target_class_ids], denominator[self.target_class_ids]
        valid = denominator > 1e-9
        iou = np.where(valid, tp / (denominator + np.float32(EPSILON)), np.float32(0.0))
        return float(np.sum(iou, dtype=np.float32) / (np.float32(valid.sum()) + np.float32(EPSILON)))

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "dtype": self._dtype, "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class MeanIoU(IoU):
    """IoU averaged over every class that occurs."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        check_int(type(self).__name__, "num_classes", num_classes, 1)
        super().__init__(num_classes, list(range(num_classes)), name, dtype, ignore_class, sparse_y_true,
                         sparse_y_pred, axis)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        del config["target_class_ids"]
        return config


class BinaryIoU(IoU):
    """IoU of 0/1 targets and probabilities, a probability at least `threshold` counting as class 1."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(2, target_class_ids, name=name, dtype=dtype)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
            raise TypeError(f"{type(self).__name__}: argument `threshold` must be a number, got {threshold!r}")
        self.threshold = float(threshold)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_pred = as_array(f"{type(self).__name__}.update_state", "y_pred", y_pred).astype(np.float32)
        super().update_state(y_true, (y_pred >= np.float32(self.threshold)).astype(self._dtype), sample_weight)

    def get_config(self) -> Dict[str, Any]:
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold, "name": self.name,
                "dtype": self._dtype}


class OneHotIoU(IoU):
    """IoU of one-hot targets and scores (each sample's class the argmax over `axis`)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None, sparse_y_pred=False,
                 axis=-1):
        super().__init__(num_classes, target_class_ids, name, dtype, ignore_class, False, sparse_y_pred, axis)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        del config["sparse_y_true"]
        return config


class OneHotMeanIoU(MeanIoU):
    """MeanIoU of one-hot targets and scores (each sample's class the argmax over `axis`)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name, dtype, ignore_class, False, sparse_y_pred, axis)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        del config["sparse_y_true"]
        return config
