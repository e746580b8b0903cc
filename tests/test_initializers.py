"""Initializers: variance and range from Keras' formulas, fan rules, seeds, names and serialization."""

import math

import numpy as np
import pytest

import convscope.utils
from convscope import initializers as init

# A conv kernel (kh, kw, in, out): fan_in = 3*3*40 = 360, fan_out = 3*3*60 = 540.
SHAPE = (3, 3, 40, 60)
FAN_IN, FAN_OUT = 360, 540
FAN_AVG = (FAN_IN + FAN_OUT) / 2


def test_compute_fans_follows_keras_rules():
    assert init.compute_fans(SHAPE) == (FAN_IN, FAN_OUT)
    assert init.compute_fans((20, 30)) == (20, 30)
    assert init.compute_fans((7,)) == (7, 7)
    assert init.compute_fans(()) == (1, 1)
    assert init.compute_fans((5, 5, 16, 64)) == (400, 1600)


@pytest.mark.parametrize("name,variance,bound", [
    ("glorot_uniform", 1 / FAN_AVG, math.sqrt(3 / FAN_AVG)),
    ("he_uniform", 2 / FAN_IN, math.sqrt(6 / FAN_IN)),
    ("lecun_uniform", 1 / FAN_IN, math.sqrt(3 / FAN_IN)),
    ("glorot_normal", 1 / FAN_AVG, 2 * math.sqrt(1 / FAN_AVG) / .87962566103423978),
    ("he_normal", 2 / FAN_IN, 2 * math.sqrt(2 / FAN_IN) / .87962566103423978),
    ("lecun_normal", 1 / FAN_IN, 2 * math.sqrt(1 / FAN_IN) / .87962566103423978),
])
def test_variance_scaling_family_statistics(name, variance, bound):
    values = init.get(name)(SHAPE, dtype="float64")
    assert values.shape == SHAPE and values.dtype == np.float64
    assert abs(values.mean()) < 0.05 * math.sqrt(variance)  # ~9 standard errors
    np.testing.assert_allclose(values.var(), variance, rtol=0.03)
    assert np.abs(values).max() <= bound * (1 + 1e-12)
    assert np.abs(values).max() > 0.9 * bound  # the whole range is used


def test_variance_scaling_untruncated_and_modes():
    values = init.VarianceScaling(scale=3.0, mode="fan_out", distribution="untruncated_normal")(SHAPE)
    np.testing.assert_allclose(values.var(), 3.0 / FAN_OUT, rtol=0.03)
    assert np.abs(values).max() > 2 * math.sqrt(3.0 / FAN_OUT)  # tails not cut


def test_random_and_constant_initializers():
    normal = init.RandomNormal(mean=1.0, stddev=0.5)((400, 500))
    np.testing.assert_allclose([normal.mean(), normal.std()], [1.0, 0.5], rtol=0.01)
    uniform = init.RandomUniform(-0.2, 0.6)((400, 500))
    assert uniform.min() >= -0.2 and uniform.max() < 0.6
    np.testing.assert_allclose(uniform.mean(), 0.2, atol=0.005)
    truncated = init.TruncatedNormal(stddev=0.1)((400, 500))
    assert np.abs(truncated).max() <= 0.2
    np.testing.assert_allclose(truncated.std(), 0.1 * .87962566103423978, rtol=0.02)
    assert (init.get("zeros")((3,)) == 0).all() and (init.get("ones")((3,)) == 1).all()
    assert (init.Constant(2.5)((2, 2)) == 2.5).all()
    assert init.get("glorot_uniform")((2, 2)).dtype == np.float32  # Keras' floatx by default


def test_orthogonal_and_identity():
    q = init.Orthogonal(gain=2.0)((6, 4), dtype="float64")
    np.testing.assert_allclose(q.T @ q, 4.0 * np.eye(4), atol=1e-12)
    wide = init.Orthogonal()((3, 5), dtype="float64")
    np.testing.assert_allclose(wide @ wide.T, np.eye(3), atol=1e-12)
    np.testing.assert_array_equal(init.get("identity")((3, 4)), np.eye(3, 4))


def test_seeds_repeat_and_library_seed_controls_unseeded_draws():
    seeded = init.GlorotUniform(seed=4)
    np.testing.assert_array_equal(seeded((5, 5)), seeded((5, 5)))
    unseeded = init.HeNormal()
    convscope.utils.set_random_seed(9)
    first = unseeded((5, 5))
    assert not np.array_equal(first, unseeded((5, 5)))
    convscope.utils.set_random_seed(9)
    np.testing.assert_array_equal(unseeded((5, 5)), first)


@pytest.mark.parametrize("initializer,draw", [
    (init.GlorotUniform(seed=3), lambda g, n: g.uniform(-math.sqrt(6 / 4100), math.sqrt(6 / 4100), n)),
    (init.RandomNormal(0.5, 2.0, seed=3), lambda g, n: g.normal(0.5, 2.0, n)),
    (init.RandomUniform(-1.0, 3.0, seed=3), lambda g, n: g.uniform(-1.0, 3.0, n)),
    (init.VarianceScaling(2.0, "fan_out", "untruncated_normal", seed=3), lambda g, n: g.normal(0, math.sqrt(2 / 2000), n)),
])
def test_large_draws_are_one_float64_draw_cast(initializer, draw, monkeypatch):
    """Drawn a chunk at a time (no float64 copy of a large kernel), the values are those of one draw."""
    monkeypatch.setattr(init, "_DRAW_CHUNK", 1000)                     # 2100 x 2000: 4200 chunks
    values = initializer((2100, 2000), dtype="float32")
    expected = draw(np.random.default_rng(3), 2100 * 2000).astype(np.float32).reshape(2100, 2000)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("identifier", ["he_normal", "HeNormal", {"class_name": "HeNormal", "config": {"seed": 1}},
                                        {"module": "keras.initializers", "class_name": "HeNormal",
                                         "config": {"seed": 1}, "registered_name": None}])
def test_get_accepts_names_class_names_and_keras_dicts(identifier):
    assert isinstance(init.get(identifier), init.HeNormal)


def test_serialize_round_trip():
    original = init.VarianceScaling(scale=2.0, mode="fan_avg", distribution="uniform", seed=7)
    config = init.serialize(original)
    assert config == {"class_name": "VarianceScaling",
                      "config": {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform", "seed": 7}}
    assert init.deserialize(config) == original
    assert init.serialize(init.GlorotUniform()) == {"class_name": "GlorotUniform", "config": {"seed": None}}


def test_bad_identifiers_and_arguments():
    with pytest.raises(ValueError, match=r"initializers.get: argument `identifier` is an unknown initializer 'glorot'"):
        init.get("glorot")
    with pytest.raises(ValueError, match=r"unknown initializer 'Nope'"):
        init.get({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match=r"VarianceScaling: argument `mode` must be one of .* got 'fan'"):
        init.VarianceScaling(mode="fan")
    with pytest.raises(ValueError, match=r"RandomNormal: argument `stddev` must be finite, got nan"):
        init.RandomNormal(stddev=float("nan"))
    with pytest.raises(ValueError, match=r"Constant: argument `value` must be finite, got inf"):
        init.Constant(float("inf"))
    with pytest.raises(ValueError, match=r"GlorotUniform: argument `shape` must be a tuple of non-negative ints"):
        init.GlorotUniform()((3, -1))
    with pytest.raises(ValueError, match=r"Identity: needs a 2-D shape, got \(2, 2, 2\)"):
        init.Identity()((2, 2, 2))


def test_keras_3_other_names_for_orthogonal_and_identity(keras):
    from convscope import initializers as I
    for name in ("OrthogonalInitializer", "IdentityInitializer"):
        assert getattr(I, name).__name__ == getattr(keras.initializers, name).__name__
        rebuilt = I.get({"module": "keras.initializers", "class_name": name, "config": {"gain": 2.0},
                         "registered_name": None})
        assert type(rebuilt).__name__ == getattr(keras.initializers, name).__name__ and rebuilt.gain == 2.0
