"""Optimizers against PyTorch's (re-parametrised where Keras' form differs), schedules, clipping, state.

The rules run on the NumPy reference and on the fused kernels (`kernel_path`), in
float64 and float32; the fused kernels must give the reference's bits.
"""

import numpy as np
import pytest

from convscope import optimizers
from convscope.constraints import NonNeg
from convscope.layers.base import Variable
from convscope.ops import compiled, updates
from convscope.optimizers import schedules

STEPS = 5
DTYPES = [np.float64, np.float32]
# float32: torch orders some operations differently, a few ulps per step
TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-6, atol=1e-7)}


def _grads(seed=0, shapes=((3, 4), (4,)), dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=s).astype(dtype) for s in shapes] for _ in range(STEPS)]


def _initial(seed=1, shapes=((3, 4), (4,)), dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(dtype) for s in shapes]


def _run_ours(optimizer, grads, initial=None):
    variables = [Variable(w.copy(), f"v{i}") for i, w in enumerate(initial or _initial())]
    for step_grads in grads:
        for v, g in zip(variables, step_grads):
            v.grad = g.copy()
        optimizer.apply(variables)
    return [v.value for v in variables]


def _run_torch(torch, make, grads, before_step=None):
    params = [torch.nn.Parameter(torch.tensor(w)) for w in _initial(dtype=grads[0][0].dtype)]
    opt = make(params)
    for step, step_grads in enumerate(grads):
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        if before_step:
            before_step(opt, step + 1)
        opt.step()
    return [p.detach().numpy() for p in params]


def _assert_same(ours, theirs, rtol=1e-10, atol=1e-12):
    for a, b in zip(ours, theirs):
        assert a.dtype == np.asarray(b).dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_torch(kernel_path, dtype, momentum, nesterov):
    torch = pytest.importorskip("torch")
    grads = _grads(dtype=dtype)
    ours = _run_ours(optimizers.SGD(learning_rate=0.05, momentum=momentum, nesterov=nesterov), grads,
                     _initial(dtype=dtype))
    theirs = _run_torch(torch, lambda p: torch.optim.SGD(p, lr=0.05, momentum=momentum, nesterov=nesterov), grads)
    _assert_same(ours, theirs, **TOLERANCE[dtype])


def _keras_eps_for_torch(eps, beta_2):
    """Torch adds eps to sqrt(v_hat) = sqrt(v) / sqrt(1 - beta_2^t); Keras adds it to sqrt(v)."""
    def adjust(opt, step):
        opt.param_groups[0]["eps"] = eps / np.sqrt(1 - beta_2 ** step)
    return adjust


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_torch_with_keras_epsilon(kernel_path, dtype, amsgrad):
    torch = pytest.importorskip("torch")
    grads = _grads(dtype=dtype)
    ours = _run_ours(optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-3, amsgrad=amsgrad),
                     grads, _initial(dtype=dtype))
    theirs = _run_torch(torch, lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), amsgrad=amsgrad), grads,
                        before_step=_keras_eps_for_torch(1e-3, 0.99))
    _assert_same(ours, theirs, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_matches_torch(kernel_path, dtype):
    torch = pytest.importorskip("torch")
    grads = _grads(dtype=dtype)
    ours = _run_ours(optimizers.AdamW(learning_rate=0.01, weight_decay=0.1, epsilon=1e-4), grads,
                     _initial(dtype=dtype))
    theirs = _run_torch(torch, lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1), grads,
                        before_step=_keras_eps_for_torch(1e-4, 0.999))
    _assert_same(ours, theirs, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,centered", [(0.0, False), (0.5, False), (0.0, True), (0.5, True)])
def test_rmsprop_matches_torch(kernel_path, dtype, momentum, centered):
    torch = pytest.importorskip("torch")
    grads = _grads(dtype=dtype)
    # Keras puts epsilon inside the square root, torch outside: compare with epsilon = 0.
    ours = _run_ours(optimizers.RMSprop(learning_rate=0.01, rho=0.8, momentum=momentum, centered=centered,
                                        epsilon=0.0), grads, _initial(dtype=dtype))
    theirs = _run_torch(torch, lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.8, momentum=momentum,
                                                             centered=centered, eps=0.0), grads)
    _assert_same(ours, theirs, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad_matches_torch(kernel_path, dtype):
    torch = pytest.importorskip("torch")
    grads = _grads(dtype=dtype)
    ours = _run_ours(optimizers.Adagrad(learning_rate=0.1, initial_accumulator_value=0.2, epsilon=0.0), grads,
                     _initial(dtype=dtype))
    theirs = _run_torch(torch, lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.2, eps=0.0),
                        grads)
    _assert_same(ours, theirs, **TOLERANCE[dtype])


# Every rule and option, with weight decay and clipping on some.
FUSED_CASES = {
    "sgd": lambda: optimizers.SGD(0.05),
    "sgd_momentum_clipvalue": lambda: optimizers.SGD(0.05, momentum=0.9, clipvalue=1.0),
    "sgd_nesterov_decay": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda: optimizers.Adam(0.01),
    "adam_amsgrad_clipnorm": lambda: optimizers.Adam(0.01, amsgrad=True, clipnorm=1.0),
    "adamw_schedule": lambda: optimizers.AdamW(schedules.ExponentialDecay(0.01, 2, 0.5), weight_decay=0.1),
    "rmsprop": lambda: optimizers.RMSprop(0.01),
    "rmsprop_centered_momentum_decay": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True,
                                                                  weight_decay=0.01),
    "adagrad_global_clipnorm": lambda: optimizers.Adagrad(0.1, weight_decay=0.01, global_clipnorm=5.0),
}
FUSED_SHAPES = ((3, 4), (4,), (300, 300))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(FUSED_CASES))
def test_fused_updates_give_the_numpy_reference_bits(monkeypatch, case, dtype):
    if not compiled.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(updates, "PARALLEL_MIN", 1)      # every variable through the blocks (the last one: 6)
    grads = _grads(seed=3, shapes=FUSED_SHAPES, dtype=dtype)
    initial = _initial(seed=4, shapes=FUSED_SHAPES, dtype=dtype)
    runs = []
    for flag in (False, True):
        optimizer = FUSED_CASES[case]()
        with compiled.use_compiled(flag):
            runs.append((_run_ours(optimizer, grads, initial), optimizer.get_state()))
    (reference, reference_state), (fused, fused_state) = runs
    for a, b in zip(reference, fused):
        assert b.dtype == dtype
        np.testing.assert_array_equal(b, a)
    assert fused_state.keys() == reference_state.keys()
    for key in reference_state:
        np.testing.assert_array_equal(fused_state[key], reference_state[key], err_msg=key)


def test_fused_path_takes_c_ordered_variables_and_any_gradient(monkeypatch):
    if not compiled.available():
        pytest.skip("numba is not installed")
    calls = []
    fused_adam = updates.adam
    monkeypatch.setattr(updates, "adam", lambda value, *args: calls.append(value.shape) or fused_adam(value, *args))
    rng = np.random.default_rng(5)
    initial = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)]
    grads = [[rng.normal(size=(3, 4)).astype(np.float32).T, rng.normal(size=(3, 5)).astype(np.float32)]
             for _ in range(STEPS)]                        # the first gradient transposed: not contiguous
    results = []
    for flag in (False, True):
        variables = [Variable(initial[0].copy(), "c"), Variable(np.asfortranarray(initial[1]), "fortran")]
        optimizer = optimizers.AdamW(0.01)
        with compiled.use_compiled(flag):
            for step_grads in grads:
                for variable, grad in zip(variables, step_grads):
                    variable.grad = grad
                optimizer.apply(variables)
        results.append([v.value for v in variables])
    assert calls == [(4, 3)] * STEPS                       # the Fortran-ordered variable took the NumPy path
    for a, b in zip(*results):
        np.testing.assert_array_equal(b, a)


def test_keras_defaults():
    adam = optimizers.get("adam")
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon, adam.amsgrad) == (0.001, 0.9, 0.999, 1e-7, False)
    sgd = optimizers.get("sgd")
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.01, 0.0, False)
    rms = optimizers.get("RMSprop")
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.epsilon, rms.centered) == (0.001, 0.9, 0.0, 1e-7, False)
    assert optimizers.get("adagrad").initial_accumulator_value == 0.1
    assert optimizers.get("adamw").weight_decay == 0.004


def test_updates_are_in_place_and_keep_float32(kernel_path):
    value = np.ones((2, 2), dtype="float32")
    variable = Variable(value, "w")
    variable.grad = np.full((2, 2), 0.5, dtype="float64")
    optimizers.Adam().apply([variable])
    assert variable.value is value and value.dtype == np.float32
    np.testing.assert_allclose(value, 1 - 0.001, rtol=1e-6)    # Adam's first step is lr * sign(g)


def test_clipping():
    torch = pytest.importorskip("torch")
    grads = [[np.array([3.0, 4.0]), np.array([0.3, -0.4])]]
    init = [np.zeros(2), np.zeros(2)]
    by_norm = _run_ours(optimizers.SGD(1.0, clipnorm=1.0), grads, init)
    _assert_same(by_norm, [[-0.6, -0.8], [-0.3, 0.4]])           # only the first exceeds the norm
    by_value = _run_ours(optimizers.SGD(1.0, clipvalue=0.35), grads, init)
    _assert_same(by_value, [[-0.35, -0.35], [-0.3, 0.35]])
    tensors = [torch.tensor(g.copy()) for g in grads[0]]
    params = [torch.nn.Parameter(torch.zeros(2, dtype=torch.float64)) for _ in tensors]
    for p, t in zip(params, tensors):
        p.grad = t
    torch.nn.utils.clip_grad_norm_(params, 2.0)
    by_global = _run_ours(optimizers.SGD(1.0, global_clipnorm=2.0), grads, init)
    _assert_same(by_global, [-p.grad.numpy() for p in params], rtol=1e-6)
    with pytest.raises(ValueError, match="at most one of clipnorm, clipvalue and global_clipnorm"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)


def test_constraint_applied_after_update():
    variable = Variable(np.array([0.05, 1.0]), "w", constraint=NonNeg())
    variable.grad = np.array([1.0, 1.0])
    optimizers.SGD(learning_rate=0.1).apply([variable])
    np.testing.assert_allclose(variable.value, [0.0, 0.9])


def test_schedules():
    decay = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert decay(0) == pytest.approx(0.1) and decay(5) == pytest.approx(0.1 * 0.5 ** 0.5)
    stair = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert stair(19) == pytest.approx(0.05) and stair(20) == pytest.approx(0.025)
    piecewise = schedules.PiecewiseConstantDecay([2, 4], [1.0, 0.5, 0.1])
    assert [piecewise(s) for s in range(6)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.1]
    sgd = optimizers.SGD(learning_rate=piecewise)
    variable = Variable(np.zeros(1), "w")
    steps = []
    for _ in range(6):
        before = variable.value.copy()
        variable.grad = np.ones(1)
        sgd.apply([variable])
        steps.append(float(before[0] - variable.value[0]))
    assert steps == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5, 0.1])
    with pytest.raises(TypeError, match="created with the schedule"):
        sgd.learning_rate = 0.3
    again = optimizers.deserialize(optimizers.serialize(sgd))
    assert isinstance(again._learning_rate, schedules.PiecewiseConstantDecay)
    with pytest.raises(ValueError, match="one more element than `boundaries`"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0])


def test_learning_rate_is_settable():
    adam = optimizers.Adam()
    adam.learning_rate = 0.5
    assert adam.learning_rate == 0.5 and adam.get_config()["learning_rate"] == 0.5
    with pytest.raises(ValueError, match=r"Adam: argument `learning_rate` must be in \[0.0, inf\], got -1"):
        adam.learning_rate = -1


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_state_round_trip_continues_exactly(kernel_path, name):
    make = {"sgd": lambda: optimizers.SGD(momentum=0.9), "adam": lambda: optimizers.Adam(amsgrad=True),
            "adamw": optimizers.AdamW, "rmsprop": lambda: optimizers.RMSprop(momentum=0.5, centered=True),
            "adagrad": optimizers.Adagrad}[name]
    grads = _grads(seed=7)
    reference = _run_ours(make(), grads)
    first = make()
    halfway = _run_ours(first, grads[:3])
    state = first.get_state()
    assert int(state["iterations"]) == 3 and all("/" in k for k in state if k != "iterations")
    second = optimizers.deserialize(optimizers.serialize(first))
    second.set_state(state)                      # before the slots exist: kept until the first apply
    assert second.get_state().keys() == state.keys()
    resumed = _run_ours(second, grads[3:], initial=halfway)
    for a, b in zip(resumed, reference):
        np.testing.assert_array_equal(a, b)


def test_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="unknown optimizer 'adamax2'"):
        optimizers.get("adamax2")
    with pytest.raises(TypeError, match="expected an optimizer name"):
        optimizers.get(3)
    with pytest.raises(ValueError, match=r"SGD: argument `momentum` must be in \[0.0, 1.0\], got 1.5"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match=r"Adam: argument `beta_1` must be in \[0.0, 1.0\), got 1"):
        optimizers.Adam(beta_1=1)
    variable = Variable(np.zeros(2), "dense/kernel")
    with pytest.raises(ValueError, match="variable 'dense/kernel' has no gradient"):
        optimizers.SGD().apply([variable])
    variable.grad = np.zeros(3)
    with pytest.raises(ValueError, match=r"gradient of 'dense/kernel' has shape \(3,\), expected \(2,\)"):
        optimizers.SGD().apply([variable])
    adam = optimizers.Adam()
    adam.set_state({"iterations": 1, "m/0": np.zeros(5), "v/0": np.zeros(5)})
    variable.grad = np.zeros(2)
    with pytest.raises(ValueError, match=r"slot 'm/0' has shape \(5,\), expected \(2,\)"):
        adam.apply([variable])
    with pytest.raises(ValueError, match=r"unknown slots \['momentum/0'\]"):
        optimizers.Adam().set_state({"iterations": 0, "momentum/0": np.zeros(2)})
