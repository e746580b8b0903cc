"""Keras 3's RandAugment and AugMix: augmentations picked at random from eleven (AugMix: seven, or the eleven with
`all_ops`), each a layer of convscope's built with Keras' arguments; in training only.

RandAugment applies `num_ops` picks (one pick per op for the whole batch, with repetition) in turn.

As in Keras, every one of the eleven draws its parameters once per call from the input batch, and the
picked ones are applied in turn with those parameters (an op picked twice applies the same draw twice).
The backward pass runs the picked ones' backward passes in reverse.  Keras 3.15.1's own call differs where it
writes in place: its RandomBrightness adds its delta into the batch at every op, picked or not, and a rotation
picked twice turns by another angle the second time (torch's affine_transform swaps the drawn matrix's entries
in place); convscope applies what is picked, as drawn.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..ops import augment
from .augmentation import (BaseAugmentation, RandomBrightness, RandomContrast, _is_number, _plain, check_value_range,
                           keras_factor)
from .augmentation_affine import RandomRotation, RandomShear, RandomTranslation, _check_choice
from .augmentation_color import (AutoContrast, Equalization, RandomColorDegeneration, RandomPosterization,
                                 RandomSharpness, Solarization)
from .base import Shape, check_positive_int


def _keras_ops(factor, value_range, interpolation, seed, data_format, all_ops=True) -> dict:
    """Keras' RandAugment/AugMix layers by their attribute names, built with Keras' arguments."""
    f, vr = list(factor), value_range
    common = dict(seed=seed, data_format=data_format)
    ops = {"random_shear": RandomShear(x_factor=f, y_factor=f, interpolation=interpolation, **common),
           "random_translation": RandomTranslation(height_factor=f, width_factor=f, interpolation=interpolation,
                                                   **common),
           "random_rotation": RandomRotation(factor=f, interpolation=interpolation, **common),
           "random_posterization": RandomPosterization(factor=max(1, int(8 * factor[1])), value_range=vr, **common),
           "solarization": Solarization(addition_factor=f, threshold_factor=f, value_range=vr, **common),
           "auto_contrast": AutoContrast(value_range=vr, data_format=data_format),
           "equalization": Equalization(value_range=vr, data_format=data_format)}
    if all_ops:
        ops.update({"random_brightness": RandomBrightness(factor=f, value_range=vr, **common),
                    "random_color_degeneration": RandomColorDegeneration(factor=f, value_range=vr, **common),
                    "random_contrast": RandomContrast(factor=f, value_range=vr, **common),
                    "random_sharpness": RandomSharpness(factor=f, value_range=vr, **common)})
    return ops


def _check_ops(layer, input_shape: Shape) -> Shape:
    """The composite's own rank check, then each of its layers' (an error names the composite)."""
    input_shape = BaseAugmentation.compute_output_shape(layer, input_shape)
    for op in layer._ops:
        try:
            op.compute_output_shape(input_shape)
        except ValueError as error:
            raise ValueError(f"{layer._describe()}: its {type(op).__name__} cannot take the input: {error}") from None
    return input_shape


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

    _NAMES = ("random_shear", "random_translation", "random_rotation", "random_brightness",
              "random_color_degeneration", "random_contrast", "random_sharpness", "random_posterization",
              "solarization", "auto_contrast", "equalization")     # Keras' order: the picks index it

    def _build_ops(self, seed):
        """The eleven layers, as Keras' RandAugment builds them, in its order."""
        ops = _keras_ops(self.factor, self.value_range, self.interpolation, seed, self.data_format)
        return [ops[name] for name in self._NAMES]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return _check_ops(self, input_shape)

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


class AugMix(BaseAugmentation):
    """Mixes each batch with `num_chains` augmented copies of it: each chain runs up to `chain_depth` layers
    picked at random (one pick per step for the whole batch; a step may pick none) from Keras' seven (eleven with
    `all_ops`), the chains weighted by Dirichlet(alpha) weights, then blended with the batch by a Beta(alpha,
    alpha) weight and clipped to `value_range`."""

    _NAMES = ("random_shear", "random_translation", "random_rotation", "random_posterization", "solarization",
              "auto_contrast", "equalization", "random_brightness", "random_color_degeneration", "random_contrast",
              "random_sharpness")          # Keras' AUGMENT_LAYERS_ALL; the first seven without `all_ops`

    def __init__(self, value_range=(0, 255), num_chains=3, chain_depth=3, factor=0.3, alpha=1.0, all_ops=True,
                 interpolation="bilinear", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        where = self._describe()
        self.value_range = check_value_range(value_range, where)
        self.num_chains = check_positive_int(num_chains, "num_chains", where)
        self.chain_depth = check_positive_int(chain_depth, "chain_depth", where)
        self.factor = keras_factor(factor, (0, 1), where)
        if not _is_number(alpha) or not alpha > 0:
            raise (ValueError if _is_number(alpha) else TypeError)(
                f"{where}: argument `alpha` must be a positive number, got {alpha!r}")
        self.alpha = _plain(alpha)
        if not isinstance(all_ops, (bool, np.bool_)):
            raise TypeError(f"{where}: argument `all_ops` must be a bool, got {all_ops!r}")
        self.all_ops = bool(all_ops)
        self.interpolation = _check_choice(interpolation, augment.INTERPOLATIONS, "interpolation", where)
        ops = _keras_ops(self.factor, self.value_range, self.interpolation, seed, self.data_format, self.all_ops)
        self._ops = [ops[name] for name in self._NAMES if name in ops]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return _check_ops(self, input_shape)

    def _draw(self, x, rng):
        gamma = rng.gamma(self.alpha, size=self.num_chains)
        chain_weights = (gamma / np.sum(gamma)).astype(np.float32)
        blend = np.float32(rng.beta(self.alpha, self.alpha))
        chains = []
        for _ in range(self.num_chains):
            picks = [int(rng.integers(0, len(self._ops) + 1)) for _ in range(self.chain_depth)]
            chains.append([(pick, self._ops[pick]._draw(x, rng)) for pick in picks if pick < len(self._ops)])
        return chain_weights, blend, chains

    def _apply(self, x, params):
        chain_weights, blend, chains = params
        mixed = np.zeros_like(x)
        contexts = []
        for weight, chain in zip(chain_weights, chains):
            y, steps = x, []
            for pick, draw in chain:
                y, ctx = self._ops[pick]._apply(y, draw)
                steps.append((pick, ctx))
            mixed += y * weight
            contexts.append(steps)
        blended = blend * x + (np.float32(1) - blend) * mixed
        low, high = (np.float32(v) for v in self.value_range)
        inside = (blended >= low) & (blended <= high)
        return np.clip(blended, low, high), (chain_weights, blend, contexts, inside)

    def _backward(self, ctx, grad_output):
        chain_weights, blend, contexts, inside = ctx
        grad = np.where(inside, grad_output, 0).astype(grad_output.dtype)
        total = blend * grad
        for weight, steps in zip(chain_weights, contexts):
            chain_grad = grad * ((np.float32(1) - blend) * weight)
            for pick, step in reversed(steps):
                chain_grad = self._ops[pick]._backward(step, chain_grad)
            total = total + chain_grad
        return total

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({"value_range": list(self.value_range), "num_chains": self.num_chains,
                       "chain_depth": self.chain_depth, "factor": list(self.factor), "alpha": self.alpha,
                       "all_ops": self.all_ops, "interpolation": self.interpolation, "seed": self.seed})
        return config
