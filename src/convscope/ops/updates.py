"""Fused optimizer updates: one pass over a variable and its slots, in place, on both cores.

The optimizers' NumPy code (`convscope/optimizers/`) is the reference: it makes one
pass over memory per operation (Adam: ~10 passes).  Each kernel here does the same
float operations in the same order, in the variable's dtype (the scalars arrive cast
to it, as NumPy casts a Python float), so both paths give the same bits; it reads
the variable, its gradient and its slots once and writes them once.

Optional parts of a rule (weight decay, a slot such as AMSGrad's `vhat`) are passed
as None; numba compiles that branch away.  Arrays of `PARALLEL_MIN` elements or more
are cut into one slice per thread (`parallel.on_slices`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import compiled, parallel

__all__ = ["supports", "sgd", "adam", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "lion"]

#: below this many elements a variable is updated on the calling thread: handing blocks to the threads
#: costs as much as Adam's pass over about this many float32 elements takes on one core (measurements:
#: benchmarks/README.md, 'Measurements behind the code's choices')
PARALLEL_MIN = 1 << 19


def supports(value: np.ndarray, grad: np.ndarray, *slots: np.ndarray) -> bool:
    """True when the kernels can update `value` and `slots` in place: float32/float64, one dtype, C order."""
    dtype = value.dtype
    return (dtype in (np.float32, np.float64) and grad.dtype == dtype
            and all(a.dtype == dtype and a.flags.c_contiguous for a in (value,) + slots))


def _run(kernel, arrays, scalars) -> None:
    """`kernel(*arrays, *scalars)` on the arrays flattened (None stays None), a slice per thread."""
    flat = [None if a is None else a.reshape(-1) for a in arrays]     # views: `supports` checked C order
    parallel.on_slices(flat[0].size, flat[0].size,
                       lambda part: kernel(*[None if a is None else a[part] for a in flat], *scalars), PARALLEL_MIN)


@compiled.kernel
def _sgd(value, grad, velocity, decay, lr, momentum, nesterov):
    """SGD's rule; `velocity` None is plain SGD (see optimizers/sgd.py)."""
    for i in range(value.size):
        w = value[i]
        if decay is not None:
            w = w - w * decay
        step = lr * grad[i]
        if velocity is None:
            w = w - step
        else:
            u = velocity[i] * momentum - step
            velocity[i] = u
            if nesterov:
                w = w + (momentum * u - step)
            else:
                w = w + u
        value[i] = w


@compiled.kernel
def _adam(value, grad, m, v, vhat, decay, one_minus_beta_1, one_minus_beta_2, epsilon, alpha):
    """Adam's rule in Keras' form; `vhat` None is without AMSGrad (see optimizers/adam.py)."""
    for i in range(value.size):
        w = value[i]
        if decay is not None:
            w = w - w * decay
        g = grad[i]
        mi = m[i] + (g - m[i]) * one_minus_beta_1
        vi = v[i] + (g * g - v[i]) * one_minus_beta_2
        m[i] = mi
        v[i] = vi
        if vhat is not None:
            vi = np.maximum(vhat[i], vi)
            vhat[i] = vi
        value[i] = w - mi / (np.sqrt(vi) + epsilon) * alpha


@compiled.kernel
def _rmsprop(value, grad, velocity, average, buffer, decay, lr, rho, one_minus_rho, momentum, epsilon):
    """RMSprop's rule; `average` None is uncentered, `buffer` None is without momentum (see optimizers/rmsprop.py)."""
    for i in range(value.size):
        w = value[i]
        if decay is not None:
            w = w - w * decay
        g = grad[i]
        vel = velocity[i] * rho + one_minus_rho * (g * g)
        velocity[i] = vel
        if average is not None:
            avg = average[i] * rho + one_minus_rho * g
            average[i] = avg
            denominator = vel - avg * avg + epsilon
        else:
            denominator = vel + epsilon
        increment = lr * g / np.sqrt(denominator)
        if buffer is not None:
            increment = buffer[i] * momentum + increment
            buffer[i] = increment
        value[i] = w - increment


@compiled.kernel
def _adagrad(value, grad, accumulator, decay, lr, epsilon):
    """Adagrad's rule (see optimizers/adagrad.py)."""
    for i in range(value.size):
        w = value[i]
        if decay is not None:
            w = w - w * decay
        g = grad[i]
        acc = accumulator[i] + g * g
        accumulator[i] = acc
        value[i] = w - lr * g / np.sqrt(acc + epsilon)


@compiled.kernel
def _adadelta(value, grad, accumulated, delta_accumulated, decay, lr, rho, one_minus_rho, epsilon):
    """Adadelta's rule (see optimizers/adadelta.py)."""
    for i in range(value.size):
        w = value[i]
        if decay is not None:
            w = w - w * decay
        g = grad[i]
        acc = accumulated[i] * rho + (g * g) * one_minus_rho
        accumulated[i] = acc
        delta = np.sqrt(delta_accumulated[i] + epsilon) * g / np.sqrt(acc + epsilon)
        delta_accumulated[i] = delta_accumulated[i] * rho + (delta * delta) * one_minus_rho
        value[i] = w - delta * lr


@compiled.kernel
def _adamax(value, grad, m, u, decay, lr, one_minus_beta_1, beta_2, epsilon, correction):
    """Adamax's rule (see optimizers/adamax.py)."""
    for i in range(value.size):
        w = value[i]
        if decay is not None:
            w = w - w * decay
        g = grad[i]
        mi = m[i] + (g - m[i]) * one_minus_beta_1
        m[i] = mi
        ui = np.maximum(u[i] * beta_2, np.abs(g))
        u[i] = ui
        value[i] = w - mi * lr / ((ui + epsilon) * correction)


@compiled.kernel
def _nadam(value, grad, m, v, decay, lr, one_minus_beta_1, one_minus_beta_2, epsilon, u_next, next_denominator,
           grad_weight, denominator, correction):
    """Nadam's rule with this step's scalars (see optimizers/nadam.py)."""
    for i in range(value.size):
        w = value[i]
        if decay is not None:
            w = w - w * decay
        g = grad[i]
        mi = m[i] + (g - m[i]) * one_minus_beta_1
        vi = v[i] + (g * g - v[i]) * one_minus_beta_2
        m[i] = mi
        v[i] = vi
        m_hat = mi * u_next / next_denominator + g * grad_weight / denominator
        value[i] = w - m_hat * lr / (np.sqrt(vi / correction) + epsilon)


@compiled.kernel
def _lion(value, grad, m, decay, lr, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2):
    """Lion's rule (see optimizers/lion.py)."""
    for i in range(value.size):
        w = value[i]
        if decay is not None:
            w = w - w * decay
        g = grad[i]
        value[i] = w - np.sign(m[i] * beta_1 + g * one_minus_beta_1) * lr
        m[i] = m[i] * beta_2 + g * one_minus_beta_2


def _scalars(dtype, *numbers):
    """Python numbers as `dtype` scalars (None stays None), as NumPy casts them against a `dtype` array."""
    return [None if n is None else dtype.type(n) for n in numbers]


def sgd(value, grad, velocity: Optional[np.ndarray], decay: Optional[float], lr: float, momentum: float,
        nesterov: bool) -> None:
    """`w -= w * decay`, then SGD's step (momentum when `velocity` is given), in place."""
    _run(_sgd, (value, grad, velocity), _scalars(value.dtype, decay, lr, momentum) + [nesterov])


def adam(value, grad, m, v, vhat: Optional[np.ndarray], decay: Optional[float], beta_1: float, beta_2: float,
         epsilon: float, alpha: float) -> None:
    """`w -= w * decay`, then Adam's step with step size `alpha` (AMSGrad when `vhat` is given), in place."""
    _run(_adam, (value, grad, m, v, vhat), _scalars(value.dtype, decay, 1 - beta_1, 1 - beta_2, epsilon, alpha))


def rmsprop(value, grad, velocity, average: Optional[np.ndarray], buffer: Optional[np.ndarray],
            decay: Optional[float], lr: float, rho: float, momentum: float, epsilon: float) -> None:
    """`w -= w * decay`, then RMSprop's step (centered with `average`, momentum with `buffer`), in place."""
    _run(_rmsprop, (value, grad, velocity, average, buffer),
         _scalars(value.dtype, decay, lr, rho, 1 - rho, momentum, epsilon))


def adagrad(value, grad, accumulator, decay: Optional[float], lr: float, epsilon: float) -> None:
    """`w -= w * decay`, then Adagrad's step, in place."""
    _run(_adagrad, (value, grad, accumulator), _scalars(value.dtype, decay, lr, epsilon))


def adadelta(value, grad, accumulated, delta_accumulated, decay: Optional[float], lr: float, rho: float,
             epsilon: float) -> None:
    """`w -= w * decay`, then Adadelta's step, in place."""
    _run(_adadelta, (value, grad, accumulated, delta_accumulated),
         _scalars(value.dtype, decay, lr, rho, 1 - rho, epsilon))


def adamax(value, grad, m, u, decay: Optional[float], lr: float, beta_1: float, beta_2: float, epsilon: float,
           correction: float) -> None:
    """`w -= w * decay`, then Adamax's step (`correction` = 1 - beta_1^t), in place."""
    _run(_adamax, (value, grad, m, u), _scalars(value.dtype, decay, lr, 1 - beta_1, beta_2, epsilon, correction))


def nadam(value, grad, m, v, decay: Optional[float], lr: float, beta_1: float, beta_2: float, epsilon: float,
          u_next: float, next_denominator: float, grad_weight: float, denominator: float, correction: float) -> None:
    """`w -= w * decay`, then Nadam's step with this step's momentum-schedule factors, in place."""
    _run(_nadam, (value, grad, m, v), _scalars(value.dtype, decay, lr, 1 - beta_1, 1 - beta_2, epsilon, u_next,
                                               next_denominator, grad_weight, denominator, correction))


def lion(value, grad, m, decay: Optional[float], lr: float, beta_1: float, beta_2: float) -> None:
    """`w -= w * decay`, then Lion's step, in place."""
    _run(_lion, (value, grad, m), _scalars(value.dtype, decay, lr, beta_1, 1 - beta_1, beta_2, 1 - beta_2))
