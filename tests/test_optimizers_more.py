"""Adadelta, Adamax, Nadam, Lion, Ftrl, Lamb, Adafactor and the schedules PolynomialDecay, InverseTimeDecay,
CosineDecay, CosineDecayRestarts against Keras 3.15.1 (torch backend), step by step.

Learning rates and weight decays are powers of two: Keras keeps the learning rate in a float32
variable and applies the decay as `w *= 1 - wd * lr` in float32, so these values make both exact
and float64 runs comparable to a few ulps.
"""

import re

import numpy as np
import pytest

from convscope import optimizers
from convscope.callbacks import Callback
from convscope.layers import Dense
from convscope.layers.base import Variable
from convscope.models import Sequential, load_model
from convscope.ops import compiled, updates
from convscope.optimizers import schedules

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")      # Keras' numpy-2 notices

STEPS = 12
SHAPES = ((3, 4), (4,), (2, 3, 5))
NAMES = ["Adadelta", "Adamax", "Nadam", "Lion", "Ftrl", "Lamb", "Adafactor"]
# non-default arguments, so that each one is used
ARGS = {"Adadelta": dict(learning_rate=0.5, rho=0.9, epsilon=1e-6),
        "Adamax": dict(learning_rate=0.0625, beta_1=0.8, beta_2=0.99, epsilon=1e-6),
        "Nadam": dict(learning_rate=0.0625, beta_1=0.8, beta_2=0.99, epsilon=1e-6),
        "Lion": dict(learning_rate=0.0625, beta_1=0.8, beta_2=0.95),
        # Keras turns Ftrl's l1 (a clip bound) and shrinkage (a factor) and Adafactor's beta_2_decay (an exponent)
        # into float32 tensors even for float64 weights: values float32 holds exactly here
        "Ftrl": dict(learning_rate=0.25, learning_rate_power=-0.75, initial_accumulator_value=0.25,
                     l1_regularization_strength=2 ** -7, l2_regularization_strength=0.02,
                     l2_shrinkage_regularization_strength=2 ** -5, beta=0.5),
        "Lamb": dict(learning_rate=0.0625, beta_1=0.8, beta_2=0.99, epsilon=1e-6),
        "Adafactor": dict(learning_rate=0.5, beta_2_decay=-0.75, epsilon_1=1e-20, epsilon_2=2e-3, clip_threshold=0.5)}
EXTRAS = {"plain": {}, "weight_decay": dict(weight_decay=0.25), "clipnorm": dict(clipnorm=1.0),
          "clipvalue": dict(clipvalue=0.5), "global_clipnorm": dict(global_clipnorm=1.5)}
SLOT_KEYS = {"Adadelta": ("accumulated_grad", "accumulated_delta_var"), "Adamax": ("momentum", "norm"),
             "Nadam": ("momentum", "velocity"), "Lion": ("momentum",), "Ftrl": ("accumulator", "linear"),
             "Lamb": ("momentum", "velocity"), "Adafactor": ("r", "c", "v")}
# Keras' names of the slots of a kernel (2, 3) and a bias (3,) where they are not `<weight>_<slot>`: Adafactor's
# factored moments r (2,) and c (3,) take the weight's name (the bias': unused scalars)
KERAS_SLOT_VARIABLES = {"Adafactor": ["kernel", "kernel", "kernel_velocity", "bias", "bias", "bias_velocity"]}


def _data(dtype, seed=0, shapes=SHAPES, steps=STEPS):
    rng = np.random.default_rng(seed)
    initial = [rng.normal(size=s).astype(dtype) for s in shapes]
    grads = [[rng.normal(size=s).astype(dtype) for s in shapes] for _ in range(steps)]
    return initial, grads


def _run_ours(optimizer, initial, grads):
    """The weights after each step (copies)."""
    variables = [Variable(w.copy(), f"v{i}") for i, w in enumerate(initial)]
    trajectory = []
    for step_grads in grads:
        for variable, grad in zip(variables, step_grads):
            variable.grad = grad.copy()
        optimizer.apply(variables)
        trajectory.append([v.value.copy() for v in variables])
    return trajectory


def _run_keras(keras, optimizer, initial, grads):
    """Keras' weights after each step."""
    import torch
    variables = [keras.Variable(w.copy(), dtype=str(w.dtype)) for w in initial]
    trajectory = []
    for step_grads in grads:
        optimizer.apply_gradients(zip([torch.tensor(g) for g in step_grads], variables))
        trajectory.append([np.array(v.numpy()) for v in variables])
    return trajectory


def _assert_close(ours, theirs, dtype, err_msg="", **tolerance):
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, err_msg=err_msg, **tolerance)


# Keras computes one factor of these rules in float32 even for float64 weights (Lamb's trust ratio, a `where`
# with 1.0; Adafactor's step size, a `maximum` with epsilon_2): float32's rounding of it in every step
FLOAT32_FACTOR = ("Lamb", "Adafactor")


def _tolerance(dtype, extra, name=""):
    if dtype == np.float64 and name in FLOAT32_FACTOR:
        return dict(rtol=1e-6, atol=1e-7)
    if dtype == np.float64:
        # Keras' clipnorm/global_clipnorm scale of float64 gradients is float32-accurate (4e-8 measured)
        return dict(rtol=1e-6, atol=1e-8) if "clipnorm" in extra else dict(rtol=1e-12, atol=1e-14)
    return dict(rtol=2e-6, atol=2e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_matches_keras_step_by_step(keras, kernel_path, name, dtype):
    """Every step's weights, plain, with weight decay and with each clipping."""
    initial, grads = _data(dtype)
    for extra, extra_kwargs in EXTRAS.items():
        kwargs = {**ARGS[name], **extra_kwargs}
        optimizer = getattr(optimizers, name)(**kwargs)
        ours = _run_ours(optimizer, initial, grads)
        theirs = _run_keras(keras, getattr(keras.optimizers, name)(**kwargs), initial, grads)
        assert optimizer.iterations == STEPS
        if name == "Nadam" and dtype == np.float32:
            _check_nadam_float32(keras, kwargs, initial, grads, ours, theirs)
            continue
        for step, (a, b) in enumerate(zip(ours, theirs)):
            _assert_close(a, b, dtype, f"{extra}, step {step + 1}", **_tolerance(dtype, extra, name))


def _check_nadam_float32(keras, kwargs, initial, grads, ours, theirs):
    """Keras computes 1 - beta_2^t in float32 (a cancellation: ~1e-5 of a step); ours takes float64 scalars,
    so both are compared with Keras' float64 run: ours within float32 noise, Keras' own float32 run looser."""
    exact = _run_keras(keras, keras.optimizers.Nadam(**kwargs), [w.astype(np.float64) for w in initial],
                       [[g.astype(np.float64) for g in step] for step in grads])
    for step, (a, b, reference) in enumerate(zip(ours, theirs, exact)):
        for x, y, z in zip(a, b, reference):
            assert x.dtype == y.dtype == np.float32
            np.testing.assert_allclose(x, z, rtol=0, atol=5e-7, err_msg=f"ours, step {step + 1}")
            np.testing.assert_allclose(y, z, rtol=0, atol=2e-5, err_msg=f"Keras float32, step {step + 1}")


# -- the fused kernels -------------------------------------------------------------------------

FUSED_CASES = {
    "adadelta_decay": lambda: optimizers.Adadelta(0.5, weight_decay=0.01),
    "adamax_clipnorm": lambda: optimizers.Adamax(0.01, clipnorm=1.0),
    "nadam_schedule_decay": lambda: optimizers.Nadam(schedules.CosineDecay(0.01, 5), weight_decay=0.1),
    "lion_global_clipnorm": lambda: optimizers.Lion(0.01, weight_decay=0.5, global_clipnorm=3.0),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(FUSED_CASES))
def test_fused_updates_give_the_numpy_reference_bits(monkeypatch, case, dtype):
    if not compiled.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(updates, "PARALLEL_MIN", 1)         # every variable cut into slices per thread
    initial, grads = _data(dtype, seed=3, shapes=((3, 4), (4,), (300, 300)), steps=6)
    name = type(FUSED_CASES[case]()).__name__.lower()
    kernel, calls = getattr(updates, name), []
    monkeypatch.setattr(updates, name, lambda *args: calls.append(1) or kernel(*args))
    runs = []
    for flag in (False, True):
        optimizer = FUSED_CASES[case]()
        with compiled.use_compiled(flag):
            runs.append((_run_ours(optimizer, initial, grads)[-1], optimizer.get_state()))
        assert len(calls) == (3 * 6 if flag else 0)         # the fused path ran, once per variable and step
    (reference, reference_state), (fused, fused_state) = runs
    for a, b in zip(reference, fused):
        assert b.dtype == dtype
        np.testing.assert_array_equal(b, a)
    assert fused_state.keys() == reference_state.keys()
    for key in reference_state:
        np.testing.assert_array_equal(fused_state[key], reference_state[key], err_msg=key)


# -- schedules ---------------------------------------------------------------------------------

SCHEDULES = {
    "cosine": ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=50)),
    "cosine_alpha": ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=50, alpha=0.2)),
    "cosine_warmup": ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=40, alpha=0.1, warmup_target=0.5,
                                          warmup_steps=15)),
    "restarts": ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10)),
    "restarts_t1_5": ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=7, t_mul=1.5,
                                                  m_mul=0.5, alpha=0.1)),
    "restarts_t1": ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=6, t_mul=1.0,
                                                m_mul=0.8)),
    # float64 logarithms land below the restart at step 363: log(243) / log(3) = 4.999...
    "restarts_t3": ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=3, t_mul=3.0,
                                                m_mul=0.9)),
    "restarts_shrinking": ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=20, t_mul=0.75,
                                                       m_mul=1.2)),
    "inverse_time": ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5)),
    "inverse_time_staircase": ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5,
                                                        staircase=True)),
    "polynomial": ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30)),
    "polynomial_cycle": ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30, end_learning_rate=0.01,
                                                 power=2.0, cycle=True)),
    "polynomial_sqrt": ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30, end_learning_rate=0.01,
                                                power=0.5)),
}


def _schedule_steps(kwargs):
    """400 steps; with shrinking periods (t_mul < 1) the first half of their span (Keras gives NaN after it,
    and its float32 logarithm loses digits near its end)."""
    t_mul = kwargs.get("t_mul", 1.0)
    return range(400) if t_mul >= 1 else range(int(kwargs["first_decay_steps"] / (1 - t_mul) / 2))


@pytest.mark.parametrize("case", sorted(SCHEDULES))
def test_schedule_values_match_keras(keras, case):
    name, kwargs = SCHEDULES[case]
    ours = getattr(schedules, name)(**kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
    steps = _schedule_steps(kwargs)
    ours_values = np.array([ours(step) for step in steps])
    keras_values = np.array([float(theirs(step)) for step in steps])
    scale = max(kwargs["initial_learning_rate"], kwargs.get("warmup_target") or 0.0)
    np.testing.assert_allclose(ours_values, keras_values, rtol=0, atol=1e-6 * scale)   # Keras: float32
    assert ours(np.int64(5)) == ours(5.0) == ours(np.asarray(5))


@pytest.mark.parametrize("case", sorted(SCHEDULES))
def test_schedule_configs_match_keras_and_round_trip(keras, case):
    name, kwargs = SCHEDULES[case]
    ours = getattr(schedules, name)(**kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
    assert ours.get_config() == theirs.get_config()
    from_keras = schedules.deserialize(keras.optimizers.schedules.serialize(theirs))
    again = schedules.deserialize(schedules.serialize(ours))
    for schedule in (from_keras, again):
        assert type(schedule) is type(ours) and schedule.get_config() == ours.get_config()
        assert [schedule(s) for s in range(0, 60, 7)] == [ours(s) for s in range(0, 60, 7)]
    assert schedules.serialize(ours) == keras.optimizers.schedules.serialize(theirs)
    rebuilt = keras.optimizers.schedules.deserialize(schedules.serialize(ours))
    assert rebuilt.get_config() == theirs.get_config()


def test_existing_schedules_deserialize_from_keras(keras):
    for theirs in (keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True),
                   keras.optimizers.schedules.PiecewiseConstantDecay([3, 8], [0.1, 0.05, 0.01])):
        ours = schedules.deserialize(keras.optimizers.schedules.serialize(theirs))
        assert ours.get_config() == theirs.get_config()
        np.testing.assert_allclose([ours(s) for s in range(12)], [float(theirs(s)) for s in range(12)], rtol=1e-6)


# -- configs, names, slots ---------------------------------------------------------------------

KERAS_ONLY = {"use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps"}


@pytest.mark.parametrize("name", NAMES)
def test_configs_match_keras_and_round_trip(keras, name):
    cls, keras_cls = getattr(optimizers, name), getattr(keras.optimizers, name)
    for kwargs in ({}, {**ARGS[name], "weight_decay": 0.25, "clipvalue": 0.5, "name": "mine"},
                   {"learning_rate": keras.optimizers.schedules.CosineDecay(0.5, 20, warmup_target=1.0,
                                                                            warmup_steps=4), "global_clipnorm": 2.0}):
        theirs = keras_cls(**kwargs).get_config()
        ours_kwargs = dict(kwargs)
        if not isinstance(kwargs.get("learning_rate", 0.0), float):
            ours_kwargs["learning_rate"] = schedules.deserialize(keras.optimizers.schedules.serialize(
                kwargs["learning_rate"]))
        ours = cls(**ours_kwargs).get_config()
        assert set(theirs) - set(ours) == KERAS_ONLY
        for key, value in ours.items():
            if key == "learning_rate" and isinstance(value, float):
                assert value == pytest.approx(theirs[key], rel=1e-7)        # Keras: float32
            elif key == "learning_rate":
                assert value["config"] == theirs[key]["config"]
            elif key == "name" and "name" not in kwargs:          # Keras numbers its automatic names
                assert re.fullmatch(rf"{value}(_\d+)?", theirs[key]), theirs[key]
            else:
                assert value == theirs[key], key
        from_keras = cls.from_config(theirs).get_config()
        assert from_keras.keys() == ours.keys()
        again = optimizers.deserialize(optimizers.serialize(cls.from_config(ours)))
        assert type(again) is cls and again.get_config() == ours
        rebuilt = keras_cls.from_config(dict(ours)).get_config()            # Keras reads ours back
        assert {k: v for k, v in rebuilt.items() if k not in ("learning_rate", "name")} == \
            {k: v for k, v in theirs.items() if k not in ("learning_rate", "name")}
        assert rebuilt["name"] == ours["name"]


def test_registered_by_keras_names_and_aliases():
    for name in NAMES:
        cls = getattr(optimizers, name)
        for identifier in (name, name.lower(), name.upper()):
            assert type(optimizers.get(identifier)) is cls
        assert type(optimizers.get({"class_name": name, "config": {"learning_rate": 0.25}})) is cls
        assert optimizers.get(name.lower()).name == name.lower()          # Keras' default names


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_slot_names_are_keras(keras, name):
    theirs = getattr(keras.optimizers, name)()
    ours = getattr(optimizers, name)()
    keras_config = theirs.get_config()
    for key, value in ours.get_config().items():
        if key == "name":
            assert re.fullmatch(rf"{value}(_\d+)?", keras_config[key]), keras_config[key]
        elif key != "learning_rate":
            assert value == keras_config[key], key
    assert ours.learning_rate == pytest.approx(float(keras_config["learning_rate"]), rel=1e-7)
    variables = [keras.Variable(np.zeros((2, 3)), name="kernel"), keras.Variable(np.zeros(3), name="bias")]
    theirs.build(variables)
    slots = [v.name for v in theirs.variables if v.name.startswith(("kernel", "bias"))]
    expected = [f"{w}_{slot}" for w in ("kernel", "bias") for slot in SLOT_KEYS[name]]
    assert slots == KERAS_SLOT_VARIABLES.get(name, expected)
    assert tuple(ours._slot_names) == SLOT_KEYS[name]


def test_argument_errors_name_the_class_argument_and_value():
    cases = [
        (lambda: optimizers.Adadelta(rho=1.5), ValueError,
         r"Adadelta: argument `rho` must be in \[0.0, 1.0\], got 1.5"),
        (lambda: optimizers.Adadelta(epsilon="1e-7"), TypeError, r"Adadelta: argument `epsilon` must be a number, "
                                                                 r"got '1e-7'"),
        (lambda: optimizers.Adamax(beta_1=1.0), ValueError, r"Adamax: argument `beta_1` must be in \[0.0, 1.0\), "
                                                            r"got 1.0"),
        (lambda: optimizers.Adamax(beta_2=-0.1), ValueError, r"Adamax: argument `beta_2` must be in \[0.0, 1.0\], "
                                                             r"got -0.1"),
        (lambda: optimizers.Nadam(beta_2=1), ValueError, r"Nadam: argument `beta_2` must be in \[0.0, 1.0\), got 1"),
        (lambda: optimizers.Nadam(learning_rate=-1.0), ValueError, r"Nadam: argument `learning_rate` must be in "
                                                                   r"\[0.0, inf\], got -1.0"),
        (lambda: optimizers.Lion(beta_1=0.0), ValueError, r"Lion: argument `beta_1` must be in \(0.0, 1.0\], got 0.0"),
        (lambda: optimizers.Ftrl(learning_rate_power=0.5), ValueError,
         r"Ftrl: argument `learning_rate_power` must be in \[-inf, 0.0\], got 0.5"),
        (lambda: optimizers.Ftrl(l1_regularization_strength=-1.0), ValueError,
         r"Ftrl: argument `l1_regularization_strength` must be in \[0.0, inf\], got -1.0"),
        (lambda: optimizers.Lamb(beta_2=1.0), ValueError, r"Lamb: argument `beta_2` must be in \[0.0, 1.0\), got 1.0"),
        (lambda: optimizers.Adafactor(clip_threshold=0), ValueError,
         r"Adafactor: argument `clip_threshold` must be in \(0.0, inf\], got 0"),
        (lambda: optimizers.Adafactor(relative_step="yes"), TypeError,
         r"Adafactor: argument `relative_step` must be True or False, got 'yes'"),
        (lambda: optimizers.Lion(beta_2=True), TypeError, r"Lion: argument `beta_2` must be a number, got True"),
        (lambda: optimizers.Lion(clipnorm=1.0, clipvalue=1.0), ValueError, r"Lion: give at most one of clipnorm"),
        (lambda: optimizers.Nadam.from_config({"use_ema": True}), ValueError,
         r"Nadam.from_config: Keras' `use_ema` is not supported here; expected False \(off\), got True"),
        (lambda: optimizers.Adamax.from_config({"gradient_accumulation_steps": 4}), ValueError,
         r"Adamax.from_config: Keras' `gradient_accumulation_steps` is not supported here; expected None or 1 "
         r"\(off\), got 4"),
        (lambda: optimizers.Lion.from_config([0.1]), TypeError, r"Lion.from_config: expected a dict, got \[0.1\]"),
    ]
    for make, error, message in cases:
        with pytest.raises(error, match=message):
            make()


def test_schedule_errors_name_the_class_argument_and_value():
    cases = [
        (lambda: schedules.CosineDecay(0.1, 0), ValueError, r"CosineDecay: argument `decay_steps` must be a positive "
                                                           r"int, got 0"),
        (lambda: schedules.CosineDecay(0.1, 10.5), TypeError, r"CosineDecay: argument `decay_steps` must be a "
                                                             r"positive int, got 10.5"),
        (lambda: schedules.CosineDecay(0.1, 10, warmup_steps=-1), ValueError,
         r"CosineDecay: argument `warmup_steps` must be a non-negative int, got -1"),
        (lambda: schedules.CosineDecay(0.1, 10, warmup_target="1"), TypeError,
         r"CosineDecay: argument `warmup_target` must be a number, got '1'"),
        (lambda: schedules.CosineDecay(0.1, 10, alpha=float("nan")), ValueError,
         r"CosineDecay: argument `alpha` must be a finite number, got nan"),
        (lambda: schedules.CosineDecayRestarts(0.1, 10, t_mul=0.0), ValueError,
         r"CosineDecayRestarts: argument `t_mul` must be in \(0.0, inf\), got 0.0"),
        (lambda: schedules.CosineDecayRestarts(0.1, 10, m_mul=-1), ValueError,
         r"CosineDecayRestarts: argument `m_mul` must be in \[0.0, inf\), got -1"),
        (lambda: schedules.CosineDecayRestarts(0.1, 10, t_mul=0.5)(20), ValueError,
         r"CosineDecayRestarts: with t_mul=0.5 < 1 the periods end after first_decay_steps / \(1 - t_mul\) = 20 "
         r"steps; the step 20 is past them"),
        (lambda: schedules.InverseTimeDecay(0.1, 10, decay_rate=-0.5), ValueError,
         r"InverseTimeDecay: argument `decay_rate` must be in \[0.0, inf\), got -0.5"),
        (lambda: schedules.InverseTimeDecay(0.1, 10, 0.5, staircase=1), TypeError,
         r"InverseTimeDecay: argument `staircase` must be True or False, got 1"),
        (lambda: schedules.PolynomialDecay(0.1, 10, power=-1.0), ValueError,
         r"PolynomialDecay: argument `power` must be in \[0.0, inf\), got -1.0"),
        (lambda: schedules.PolynomialDecay(0.1, 10, cycle="yes"), TypeError,
         r"PolynomialDecay: argument `cycle` must be True or False, got 'yes'"),
        (lambda: schedules.PolynomialDecay(0.1, 10, name=3), TypeError,
         r"PolynomialDecay: argument `name` must be a str, got 3"),
        (lambda: schedules.PolynomialDecay(0.1, 10)(-1), ValueError,
         r"PolynomialDecay: the step must be a finite number >= 0, got -1"),
        (lambda: schedules.CosineDecay(0.1, 10)("3"), TypeError,
         r"CosineDecay: the step must be a number \(the optimizer's iterations\), got '3'"),
        (lambda: schedules.deserialize({"class_name": "Cosine", "config": {}}), ValueError,
         r"schedules.deserialize: expected \{'class_name': one of \['CosineDecay', "),
        (lambda: schedules.serialize(0.1), TypeError, r"schedules.serialize: expected a LearningRateSchedule, got 0.1"),
    ]
    for make, error, message in cases:
        with pytest.raises(error, match=message):
            make()


# -- inside a model: fit, save, load -----------------------------------------------------------

FIT_CASES = {
    "nadam_cosine_warmup": ("Nadam", dict(epsilon=1e-6), ("CosineDecay", dict(
        initial_learning_rate=0.0, decay_steps=6, alpha=0.25, warmup_target=0.0625, warmup_steps=3))),
    "lion_polynomial_cycle": ("Lion", dict(beta_2=0.9), ("PolynomialDecay", dict(
        initial_learning_rate=0.0625, decay_steps=4, end_learning_rate=0.001, power=2.0, cycle=True))),
    "adamax_inverse_time": ("Adamax", dict(weight_decay=0.25), ("InverseTimeDecay", dict(
        initial_learning_rate=0.0625, decay_steps=2, decay_rate=0.5, staircase=True))),
    "adadelta_restarts": ("Adadelta", dict(rho=0.9), ("CosineDecayRestarts", dict(
        initial_learning_rate=1.0, first_decay_steps=3, t_mul=2.0, m_mul=0.5))),
    "ftrl_exponential": ("Ftrl", dict(l1_regularization_strength=2 ** -8), ("ExponentialDecay", dict(
        initial_learning_rate=0.25, decay_steps=3, decay_rate=0.5))),
    "lamb_cosine": ("Lamb", dict(weight_decay=0.25), ("CosineDecay", dict(initial_learning_rate=0.0625,
                                                                          decay_steps=8))),
    "adafactor_polynomial": ("Adafactor", dict(clip_threshold=0.5), ("PolynomialDecay", dict(
        initial_learning_rate=0.5, decay_steps=6, end_learning_rate=0.0625))),
}


def _make_optimizer(module, case):
    name, kwargs, (schedule_name, schedule_kwargs) = FIT_CASES[case]
    schedule = getattr(module.schedules, schedule_name)(**schedule_kwargs)
    return getattr(module, name)(learning_rate=schedule, **kwargs)


def _our_model(case):
    model = Sequential([Dense(5, activation="tanh", input_shape=(6,)), Dense(2)])
    model.compile(optimizer=_make_optimizer(optimizers, case), loss="mse")
    return model


def _fit_data():
    rng = np.random.default_rng(11)
    return rng.normal(size=(32, 6)).astype(np.float32), rng.normal(size=(32, 2)).astype(np.float32)


class _Recorder(Callback):
    """The learning rate the next step will use and the weights, after each batch."""

    def __init__(self, model):
        super().__init__()
        self.watched, self.rates, self.weights = model, [], []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(self.watched.optimizer.learning_rate))
        self.weights.append([w.copy() for w in self.watched.get_weights()])


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_fit_with_a_schedule_follows_keras_step_by_step(keras, case):
    x, y = _fit_data()
    ours = _our_model(case)
    theirs = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(2)])
    theirs.set_weights(ours.get_weights())
    theirs.compile(optimizer=_make_optimizer(keras.optimizers, case), loss="mse")
    recorder = _Recorder(ours)
    keras_rates, keras_weights = [], []
    keras_recorder = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: (
        keras_rates.append(float(theirs.optimizer.learning_rate)),
        keras_weights.append([np.array(w) for w in theirs.get_weights()])))
    ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[recorder])
    theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[keras_recorder])
    assert len(recorder.rates) == len(keras_rates) == 12 and ours.optimizer.iterations == 12
    assert len(set(np.round(keras_rates, 6))) > 3                       # the schedule moves
    np.testing.assert_allclose(recorder.rates, keras_rates, rtol=1e-6, atol=1e-9)
    for step, (a, b) in enumerate(zip(recorder.weights, keras_weights)):
        for w, v in zip(a, b):
            np.testing.assert_allclose(w, v, rtol=1e-5, atol=2e-5, err_msg=f"step {step + 1}")


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_save_and_load_continue_training_exactly(tmp_path, case):
    x, y = _fit_data()
    reference = _our_model(case)
    initial = [w.copy() for w in reference.get_weights()]
    reference.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0)
    first = _our_model(case)
    first.set_weights(initial)
    first.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    first.save(tmp_path / "half.convscope")
    second = load_model(tmp_path / "half.convscope")
    assert type(second.optimizer) is type(first.optimizer)
    assert second.optimizer.get_config() == first.optimizer.get_config()
    assert second.optimizer.iterations == 8
    second.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(second.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    state, expected = second.optimizer.get_state(), reference.optimizer.get_state()
    assert state.keys() == expected.keys() == {"iterations"} | {
        f"{slot}/{i}" for slot in SLOT_KEYS[FIT_CASES[case][0]] for i in range(4)}
    for key in expected:
        np.testing.assert_array_equal(state[key], expected[key], err_msg=key)


@pytest.mark.parametrize("name", NAMES)
def test_set_state_midway_continues_exactly(kernel_path, name):
    """Nadam's product of momentum factors follows `iterations`: a fresh optimizer at step 5 continues exactly."""
    initial, grads = _data(np.float64, seed=5)
    reference = _run_ours(getattr(optimizers, name)(**ARGS[name]), initial, grads)
    first = getattr(optimizers, name)(**ARGS[name])
    halfway = _run_ours(first, initial, grads[:5])[-1]
    second = getattr(optimizers, name)(**ARGS[name])
    second.set_state(first.get_state())
    resumed = _run_ours(second, halfway, grads[5:])
    for step, (a, b) in enumerate(zip(resumed, reference[5:])):
        for w, v in zip(a, b):
            np.testing.assert_array_equal(w, v, err_msg=f"step {step + 6}")


def test_nadam_momentum_product_follows_iterations(keras):
    """Keras' `u_product` variable after t steps is u_1 * ... * u_t; here it is recomputed from `iterations`,
    forwards and backwards (set_state, or iterations set by hand)."""
    import torch
    theirs = keras.optimizers.Nadam(beta_1=0.8)
    variable = keras.Variable(np.zeros(3))
    ours = optimizers.Nadam(beta_1=0.8)
    for step in range(1, 8):
        theirs.apply_gradients([(torch.ones(3, dtype=torch.float64), variable)])
        ours.iterations = step
        assert ours._u_product(step) == pytest.approx(float(theirs._u_product.numpy()), rel=1e-7)
    u = [0.8 * (1 - 0.5 * 0.96 ** t) for t in range(1, 5)]
    ours.iterations = 2                                      # back: recomputed from the start; this is step 3
    u_next, next_denominator, grad_weight, denominator, correction = ours._factors()
    assert (u_next, grad_weight, correction) == (u[3], 1 - u[2], 1 - 0.999 ** 3)
    assert denominator == 1 - u[0] * u[1] * u[2] and next_denominator == 1 - u[0] * u[1] * u[2] * u[3]
