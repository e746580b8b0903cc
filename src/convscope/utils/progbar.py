"""`Progbar`: Keras' `keras.utils.Progbar`, the progress line of a hand-written training loop.

Values given to `update` are averaged over the steps they covered (a value for steps 4..6 counts three
times), except the `stateful_metrics`, shown as given; the numbers and the line are Keras'.  The line is
redrawn in place on a terminal, in Keras' colours; elsewhere (a log file, a notebook's captured output) each
update is a plain line of its own, without Keras' backspaces and colour codes.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

_WHERE = "Progbar"


def _check_names(value, arg: str):
    if value is None:
        return None
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise TypeError(f"{_WHERE}: argument `{arg}` must be an iterable of metric names, got {value!r}")
    return set(value)


def _check_number(value, arg: str, allow_none: bool = False, positive: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 0:      # a NumPy scalar array, as Keras takes it
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{_WHERE}: argument `{arg}` must be a number{' or None' if allow_none else ''}, "
                        f"got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{_WHERE}: argument `{arg}` must be {'positive' if positive else 'at least 0'}, "
                         f"got {value!r}")
    return value


class Progbar:
    """A progress bar for `target` steps (None: unknown), Keras' arguments and output."""

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None, stateless_metrics=None,
                 unit_name="step"):
        self.target = _check_number(target, "target", allow_none=True)
        self.width = int(_check_number(width, "width", positive=True))
        if verbose not in (0, 1, 2):
            raise ValueError(f"{_WHERE}: argument `verbose` must be 0, 1 or 2, got {verbose!r}")
        self.verbose = verbose
        self.interval = _check_number(interval, "interval")
        if not isinstance(unit_name, str):
            raise TypeError(f"{_WHERE}: argument `unit_name` must be a str, got {unit_name!r}")
        self.unit_name = unit_name
        stateful, stateless = _check_names(stateful_metrics, "stateful_metrics"), \
            _check_names(stateless_metrics, "stateless_metrics")
        if stateful is not None and stateless is not None:
            raise ValueError(f"{_WHERE}: give only one of `stateful_metrics` (the names shown as given) or "
                             "`stateless_metrics` (the names averaged), got both")
        self.stateful_metrics = stateful if stateless is None else None
        self.stateless_metrics = stateless
        if self.stateful_metrics is None and self.stateless_metrics is None:
            self.stateful_metrics = set()
        self._values, self._values_order = {}, []
        self._seen_so_far = 0
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step = None
        self._prev_total_width = 0

    def update(self, current, values=None, finalize=None):
        """Step `current` reached; `values`: [(name, value for the steps since the last update), ...];
        `finalize` (default: `current >= target`) ends the line."""
        current = _check_number(current, "current")
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or []:
            if name not in self._values_order:
                self._values_order.append(name)
            averaged = (name not in self.stateful_metrics if self.stateful_metrics is not None
                        else name in self.stateless_metrics)
            if averaged and not finalize:
                steps = max(current - self._seen_so_far, 1)
                total, count = self._values.get(name, [0.0, 0])
                self._values[name] = [total + value * steps, count + steps]
            else:
                self._values[name] = [value, 1]
        self._seen_so_far = current
        now = time.time()
        per_unit = self._step_duration(current, now)
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return              # drawn again once `interval` seconds have passed since the last time
            self._draw(current, now, per_unit, finalize)
        elif self.verbose == 2 and finalize and self.target:
            line = f"{self._count(current)} - {now - self._start:.0f}s -{_format_time(per_unit, self.unit_name)}"
            _write(line + self._metrics(positive_only=True) + "\n")
        self._last_update = now

    def add(self, n, values=None):
        """`update` at `n` steps further."""
        self.update(self._seen_so_far + n, values)

    # -- the line ------------------------------------------------------------------------------
    def _draw(self, current, now, per_unit, finalize):
        dynamic = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
        if self.target:
            done = int(self.width * current / self.target)
            plain_bar = f"{self._count(current)} " + "━" * done + "─" * (self.width - done)    # light: to do
            bar = (f"\x1b[1m{self._count(current)}\x1b[0m \x1b[32m{'━' * done}\x1b[0m"
                   f"\x1b[37m{'━' * (self.width - done)}\x1b[0m") if dynamic else plain_bar
        else:
            bar = plain_bar = "%7d/Unknown" % current
        if self.target and not finalize:
            timing = _format_eta(per_unit * (self.target - current))
        else:
            timing = f"{now - self._start:.0f}s"
        info = f" {timing}{_format_time(per_unit, self.unit_name)}{self._metrics()}"
        width = len(plain_bar) + len(info)
        line = ("\r" if dynamic else "\n") + bar + info + " " * max(self._prev_total_width - width, 0)
        self._prev_total_width = width
        _write(line + ("\n" if finalize else ""))

    def _count(self, current) -> str:
        digits = int(math.log10(self.target)) + 1
        return f"%{digits}d/%d" % (current, self.target)

    def _metrics(self, positive_only: bool = False) -> str:
        """' - name: average' for each value, Keras' four decimals (or exponent for small ones)."""
        text = ""
        for name in self._values_order:
            total, count = self._values[name]
            average = (total if isinstance(total, float) else np.mean(total)) / max(1, count)
            small = average <= 1e-3 if positive_only else abs(average) <= 1e-3
            text += f" - {name}: {average:.4e}" if small else f" - {name}: {average:.4f}"
        return text

    def _step_duration(self, current, now) -> float:
        """Seconds per step, the first step left out once there are more (it is not typical)."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_unit


def _format_time(seconds: float, unit: str) -> str:
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit}"
    return f" {seconds * 1e6:.0f}us/{unit}"


def _format_eta(eta: float) -> str:
    if eta > 3600:
        return "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
    if eta > 60:
        return "%d:%02d" % (eta // 60, eta % 60)
    return "%ds" % eta


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
