"""`convscope.random`, Keras 3's `keras.random`: shapes, dtypes and seeding rules against Keras 3.15.1 (torch
backend); the distributions from large samples against their known moments (NumPy's numbers are not Keras'
backends', so the values themselves are not compared); dropout's gradient on a tape."""

import numpy as np
import pytest

import convscope as cs
from convscope import ops

R = cs.random
CALLS = [  # (function, arguments)
    ("normal", dict(shape=(2, 3), mean=1.0, stddev=2.0)), ("uniform", dict(shape=(4,), minval=-1.0, maxval=2.0)),
    ("truncated_normal", dict(shape=(3, 2))), ("randint", dict(shape=(5,), minval=2, maxval=9)),
    ("gamma", dict(shape=(2, 2), alpha=2.0)), ("binomial", dict(shape=(3,), counts=5, probabilities=0.3)),
    ("beta", dict(shape=(2,), alpha=2.0, beta=3.0)), ("normal", dict(shape=(2,), dtype="float64")),
]


@pytest.mark.parametrize("name,kwargs", CALLS, ids=[c[0] for c in CALLS])
def test_shapes_dtypes_and_int_seeds_as_keras(keras, name, kwargs):
    ours = getattr(R, name)(**kwargs, seed=7)
    theirs = keras.ops.convert_to_numpy(getattr(keras.random, name)(**kwargs, seed=7))
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_array_equal(getattr(R, name)(**kwargs, seed=7), ours)        # an int seed: the same draw
    assert not np.array_equal(getattr(R, name)(**kwargs, seed=8), ours) or ours.size < 3     # another: another
    assert getattr(R, name)(**kwargs, seed=-7).shape == ours.shape                  # negative seeds, as Keras


def test_seed_generators_advance_and_repeat(keras):
    first, again = R.SeedGenerator(11), R.SeedGenerator(11)
    a, b = R.normal((4,), seed=first), R.normal((4,), seed=first)
    assert not np.array_equal(a, b)                                              # the stream moves on
    np.testing.assert_array_equal(np.concatenate([a, b]),
                                  np.concatenate([R.normal((4,), seed=again), R.normal((4,), seed=again)]))
    assert set(R.SeedGenerator(3).get_config()) == set(keras.random.SeedGenerator(3).get_config())
    assert R.SeedGenerator.from_config(first.get_config()).seed == 11
    cs.utils.set_random_seed(5)
    x = R.uniform((3,))
    cs.utils.set_random_seed(5)
    np.testing.assert_array_equal(R.uniform((3,)), x)                            # seed=None: set_random_seed


def test_distributions_have_their_moments():
    n = 200_000
    g = R.SeedGenerator(1)
    normal = R.normal((n,), 1.5, 2.0, seed=g)
    assert abs(normal.mean() - 1.5) < 4 * 2.0 / np.sqrt(n) and abs(normal.std() - 2.0) < 0.02
    uniform = R.uniform((n,), -1.0, 3.0, seed=g)
    assert uniform.min() >= -1.0 and uniform.max() < 3.0 and abs(uniform.mean() - 1.0) < 0.02
    truncated = R.truncated_normal((n,), 0.5, 2.0, seed=g)
    assert np.abs(truncated - 0.5).max() <= 4.0 and abs(truncated.std() - 2.0 * 0.87962566) < 0.02
    ints = R.randint((n,), 3, 7, seed=g)
    np.testing.assert_allclose(np.bincount(ints, minlength=7)[3:] / n, 0.25, atol=0.01)
    assert ints.min() == 3 and ints.max() == 6
    ids = R.categorical(np.log([[0.2, 0.3, 0.5]]), n, seed=g)
    np.testing.assert_allclose(np.bincount(ids[0], minlength=3) / n, [0.2, 0.3, 0.5], atol=0.01)
    draws = R.gamma((n,), 3.0, seed=g)
    assert abs(draws.mean() - 3.0) < 0.03 and abs(draws.var() - 3.0) < 0.1
    assert abs(R.binomial((n,), 10, 0.3, seed=g).mean() - 3.0) < 0.03
    assert abs(R.beta((n,), 2.0, 6.0, seed=g).mean() - 0.25) < 0.01


def test_dropout_and_its_gradient_on_a_tape():
    x = np.arange(1.0, 4001.0, dtype=np.float32).reshape(40, 100)
    y = R.dropout(x, 0.25, seed=3)
    kept = y != 0
    assert abs(1 - kept.mean() - 0.25) < 0.02
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    rows = R.dropout(x, 0.5, noise_shape=(None, 1), seed=4)                       # whole rows kept or dropped
    assert all(np.all(r == 0) or np.all(r != 0) for r in rows)
    with ops.Tape() as tape:
        watched = tape.watch(x)
        total = ops.sum(R.dropout(watched, 0.25, seed=3) * 2.0)
    np.testing.assert_allclose(tape.gradient(total, [watched])[0], np.where(kept, 2.0 / 0.75, 0.0), rtol=1e-6)
    data = np.arange(24).reshape(6, 4)
    shuffled = R.shuffle(data, axis=0, seed=2)
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, data)) and not np.array_equal(shuffled, data)
    np.testing.assert_array_equal(R.shuffle(data, axis=0, seed=2), shuffled)


def test_keras_parameter_forms(keras):
    """Arrays of parameters broadcast, rate 1 drops everything, SeedGenerator's next() and state, as Keras."""
    alphas = np.array([1.0, 2.0, 3.0])
    assert R.beta((3,), alphas, 2.0, seed=1).shape == R.gamma((3,), alphas, seed=1).shape == (3,)
    ones = keras.ops.ones((4,))
    np.testing.assert_array_equal(R.dropout(np.ones(4, "float32"), 1.0),
                                  keras.ops.convert_to_numpy(keras.random.dropout(ones, 1.0)))
    generator = R.SeedGenerator(5)
    first, second = generator.next(), generator.next()
    assert first.shape == (2,) and not np.array_equal(first, second) and list(generator.state) == [5, 2]


def test_arguments_are_checked_by_name():
    with pytest.raises(ValueError, match="random.uniform: argument `minval` must be below `maxval`, got 2.0 and 1.0"):
        R.uniform((2,), 2.0, 1.0)
    with pytest.raises(ValueError, match="random.normal: argument `seed` must be None, an int or a SeedGenerator, "
                                         "got 'x'"):
        R.normal((2,), seed="x")
    with pytest.raises(ValueError, match="random.dropout: argument `rate` must be in \\[0, 1\\], got 1.5"):
        R.dropout(np.ones(3), 1.5)
    with pytest.raises(ValueError, match="random.dropout: argument `noise_shape` \\(2, 3, 4\\) must have the "
                                         "input's rank 2"):
        R.dropout(np.ones((2, 3)), 0.5, noise_shape=(2, 3, 4))
    with pytest.raises(ValueError, match="random.randint: \\[minval, maxval\\) = \\[0, 300\\) does not fit"):
        R.randint((3,), 0, 300, dtype="uint8")
    with pytest.raises(ValueError, match="random.binomial: arguments `counts` must be whole numbers"):
        R.binomial((3,), 5.5, 0.5)
    with pytest.raises(ValueError, match="random.normal: argument `stddev` must be a finite non-negative number"):
        R.normal((2,), stddev=-1.0)
    with pytest.raises(ValueError, match="random.normal: argument `dtype` must be a float type, got int32"):
        R.normal((2,), dtype="int32")
    with pytest.raises(TypeError, match="random.normal: argument `shape` must be a tuple of ints, got 'ab'"):
        R.normal("ab")
