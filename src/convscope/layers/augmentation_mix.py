"""Keras 3's MixUp and CutMix: each image mixed with another image of its batch (a random permutation), in
training only.

MixUp blends: w x + (1 - w) x[perm], w drawn from Beta(alpha, alpha) per image.  CutMix pastes a box of the
other image (sides sqrt(1 - w) of the image's, w from Beta(a, a), a drawn in `factor`).  In a model they see
images only, as in Keras.  Called on their own with Keras' dict, `{"images": x, "labels": y}`, they mix the
labels too, by the weight of each image's own pixels (MixUp's w; CutMix's uncovered share), as Keras does in
a `tf.data` pipeline.  The images' backward pass is the tape's (`augmentation_color._ColorAugmentation`).
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..ops import numpy_api as K
from .augmentation import _is_number, _plain, check_data_dict, keras_factor
from .augmentation_color import _ColorAugmentation, box_masks

class _MixAugmentation(_ColorAugmentation):
    """A layer that mixes images within a batch; `_draw` returns (permutation, ..., label weights)."""

    def _call_dict(self, data: dict, training: bool) -> dict:
        """Keras' dict form: the images mixed and the labels by the same weights (other keys refused by name).
        Labels of one number per sample ((N,), sparse) are mixed as they are, where Keras 3.15.1 broadcasts them
        to (N, N)."""
        check_data_dict(self, data)
        images = np.asarray(data["images"], dtype=np.float32)
        single = images.ndim == 3
        batch = images[None] if single else images
        self.compute_output_shape(batch.shape)
        out = dict(data)
        if not training or (single and not self._MIXES_ONE):
            out["images"] = images
            return out
        params = self._draw(batch, self._random())
        mixed = np.asarray(self._map(batch, params), dtype=np.float32)
        out["images"] = mixed[0] if single else mixed
        if "labels" in data:
            labels = np.asarray(data["labels"], dtype=np.float32)
            out["labels"] = _mix_labels(labels[None] if single else labels, params[0], params[-1])
            out["labels"] = out["labels"][0] if single else out["labels"]
        return out


def _mix_labels(labels, permutation, weights):
    """w · labels + (1 - w) · labels[permutation], one w per sample (Keras' float32 operations)."""
    w = np.asarray(weights, np.float32).reshape((-1,) + (1,) * (labels.ndim - 1))
    return w * labels + (np.float32(1.0) - w) * labels[permutation]


class MixUp(_MixAugmentation):
    """Blends each image with another of its batch: w x + (1 - w) x[perm], w ~ Beta(alpha, alpha) per image."""

    _MIXES_ONE = True

    def __init__(self, alpha=0.2, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if not _is_number(alpha) or not alpha > 0:
            raise (ValueError if _is_number(alpha) else TypeError)(
                f"{self._describe()}: argument `alpha` must be a positive number, got {alpha!r}")
        self.alpha = _plain(alpha)

    def _draw(self, x, rng):
        permutation = rng.permutation(x.shape[0])
        return permutation, rng.beta(self.alpha, self.alpha, size=x.shape[0]).astype(np.float32)

    def _map(self, x, params):
        permutation, weights = params
        w = weights.reshape(-1, 1, 1, 1)
        return K.add(K.multiply(w, x), K.multiply(np.float32(1.0) - w, K.take(x, permutation, axis=0)))

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"alpha": self.alpha, "seed": self.seed})
        return config


class CutMix(_MixAugmentation):
    """Pastes into each image a box of another image of its batch: sides sqrt(1 - w) of the image's at a
    uniform place, w ~ Beta(a, a) per image, a drawn once per batch in `factor` (plus 1e-6).  A single image
    (rank 3) is left as it is, as Keras."""

    _MIXES_ONE = False

    def __init__(self, factor=1.0, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(factor, (0, 1), self._describe())

    def _draw(self, x, rng):
        alpha = np.float32(rng.uniform(self.factor[0], self.factor[1])) + np.float32(1e-6)
        weights = rng.beta(alpha, alpha, size=x.shape[0]).astype(np.float32)
        ratio = np.sqrt(np.float32(1.0) - weights)
        masks, shares = box_masks(self, x, rng, ratio, ratio)
        return rng.permutation(x.shape[0]), masks, np.float32(1.0) - shares

    def _map(self, x, params):
        permutation, masks, _ = params
        return K.where(masks, K.take(x, permutation, axis=0), x)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"factor": list(self.factor), "seed": self.seed})
        return config
