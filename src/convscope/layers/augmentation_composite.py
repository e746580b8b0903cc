"""Keras 3's RandAugment: `num_ops` augmentations picked at random (one pick per op for the whole batch, with
repetition) from eleven, each a layer of convscope's built with Keras' arguments; in training only.

As in Keras, every one of the eleven draws its parameters once per call from the input batch, and the
picked ones are applied in turn with those parameters (an op picked twice applies the same draw twice).
The backward pass runs the picked ones' backward passes in reverse.  Keras 3.15.1's own call differs where it
writes in place: its RandomBrightness adds its delta into the batch at every op, picked or not, and a rotation
picked twice turns by another angle the second time (torch's affine_transform swaps the drawn matrix's entries
in place); convscope applies what is picked, as drawn.
"""

from __future__ import annotations

from typing import Any, Dict

from ..ops import augment
from .augmentation import BaseAugmentation, RandomBrightness, RandomContrast, check_value_range, keras_factor
from .augmentation_affine import RandomRotation, RandomShear, RandomTranslation, _check_choice
from .augmentation_color import (AutoContrast, Equalization, RandomColorDegeneration, RandomPosterization,
                                 RandomSharpness, Solarization)
from .base import Shape, check_positive_int


class RandAugment(BaseAugmentation):
    """Picks `num_ops` of RandomShear, RandomTranslation, RandomRotation, RandomBrightness,
    RandomColorDegeneration, RandomContrast, RandomSharpness, RandomPosterization, Solarization, AutoContrast and
    Equalization (Keras' order) per batch, each with `factor` (a number f: [0, f]) as its range."""

    def __init__(self, value_range=(0, 255), num_ops=2, factor=0.5, interpolation="bilinear", seed=None,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        where = self._describe()
        self.value_range = check_value_range(value_range, where)
        self.num_ops = check_positive_int(num_ops, "num_ops", where)
        self.factor = keras_factor(factor, (0, 1), where)
        self.interpolation = _check_choice(interpolation, augment.INTERPOLATIONS, "interpolation", where)
        self._ops = self._build_ops(seed)

    def _build_ops(self, seed):
        """The eleven layers, as Keras' RandAugment builds them."""
        f, vr, fmt = list(self.factor), self.value_range, self.data_format
        common = dict(seed=seed, data_format=fmt)
        return [RandomShear(x_factor=f, y_factor=f, interpolation=self.interpolation, **common),
                RandomTranslation(height_factor=f, width_factor=f, interpolation=self.interpolation, **common),
                RandomRotation(factor=f, interpolation=self.interpolation, **common),
                RandomBrightness(factor=f, value_range=vr, **common),
                RandomColorDegeneration(factor=f, value_range=vr, **common),
                RandomContrast(factor=f, value_range=vr, **common),
                RandomSharpness(factor=f, value_range=vr, **common),
                RandomPosterization(factor=max(1, int(8 * self.factor[1])), value_range=vr, **common),
                Solarization(addition_factor=f, threshold_factor=f, value_range=vr, **common),
                AutoContrast(value_range=vr, data_format=fmt), Equalization(value_range=vr, data_format=fmt)]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        for op in self._ops:
            op.compute_output_shape(input_shape)
        return super().compute_output_shape(input_shape)

    def _draw(self, x, rng):
        picks = rng.integers(0, len(self._ops), size=self.num_ops)
        return picks, [op._draw(x, rng) for op in self._ops]

    def _apply(self, x, params):
        picks, draws = params
        contexts = []
        for pick in picks:
            x, ctx = self._ops[pick]._apply(x, draws[pick])
            contexts.append((pick, ctx))
        return x, contexts

    def _backward(self, contexts, grad_output):
        for pick, ctx in reversed(contexts):
            grad_output = self._ops[pick]._backward(ctx, grad_output)
        return grad_output

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"value_range": list(self.value_range), "num_ops": self.num_ops, "factor": list(self.factor),
                       "interpolation": self.interpolation, "seed": self.seed})
        return config
