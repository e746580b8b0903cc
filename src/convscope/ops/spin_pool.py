"""A pool of threads that spin a short while between jobs, and jobs whose callers spin a short while
for them: a hand-over between two ops in microseconds.

A thread asleep in the kernel is slow to wake on a VM (its idle vCPU is halted): at batch 1
that is as long as a convolution, and `run_in_parallel` pays it twice per op (the pool thread wakes
for its chunk, the caller for the pool thread's end): measured beside a plain thread pool, Keras'
MobileNetV2 and ResNet50 at batch 1 ran slower and less steadily (measurements: benchmarks/README.md,
'Measurements behind the code's choices').  Here an idle pool thread, and a caller waiting
for a job, first watch a counter for up to `SPIN_US` without the GIL (a compiled loop with an atomic
load and the CPU's pause hint), as OpenMP's and ONNX Runtime's pools do, and only then sleep.  The
pool thread marks a job done after it has let the GIL go, so that the caller it wakes finds the GIL
free (a pool thread taking a job still waits for the GIL while its caller runs Python: `SpinningPool`'s
gates and grace).  A spin costs at most `SPIN_US` of one core after each op (and `GATE_US` or `GRACE_US`
before a job).  Without numba nothing spins: the pool is a plain queue of jobs.
"""

from __future__ import annotations

import platform
import queue
import threading
import time
from typing import Any, Callable

import numpy as np

from . import compiled

SPIN_US = 500.0        # how long an idle pool thread or a waiting caller spins before it sleeps
GATE_US = 50.0         # how long a pool thread that saw a gated job waits for its caller's kernel to start
GRACE_US = 30.0        # ... and one that saw a job without a gate, before it asks for the GIL (`SpinningPool`)
GATES = 64             # gated jobs a pool can have in flight at once (more: posted without a gate)

_calibration = {"rounds_per_us": None}
_calibrate_lock = threading.Lock()

if compiled.available():
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    _PAUSE = platform.machine() in ("x86_64", "AMD64", "i686")       # elsewhere a plain loop

    @intrinsic
    def _load_acquire(typingctx, counter):
        """counter[0] read atomically with acquire order (never hoisted out of the loop)."""
        if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
            return None

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            return builder.load_atomic(array.data, "acquire", 8)
        return types.int64(counter), codegen

    @intrinsic
    def _store_release(typingctx, counter, value):
        """counter[0] = value, written atomically with release order."""
        if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
            return None

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            builder.store_atomic(args[1], array.data, "release", 8)
            return context.get_dummy_value()
        return types.void(counter, types.int64), codegen

    @intrinsic
    def _relax(typingctx):
        """x86's spin-wait hint `pause`: the loop yields the core's shared resources while it waits."""
        def codegen(context, builder, signature, args):
            if _PAUSE:
                pause = builder.module.declare_intrinsic("llvm.x86.sse2.pause",
                                                         fnty=ir.FunctionType(ir.VoidType(), []))
                builder.call(pause, [])
            return context.get_dummy_value()
        return types.void(), codegen

    @njit(nogil=True, cache=True)
    def _spin(counter, seen, rounds):
        for _ in range(rounds):
            if _load_acquire(counter) != seen:
                return True
            _relax()
        return _load_acquire(counter) != seen

    @njit(nogil=True, cache=True)
    def _spin_gated(counter, seen, rounds, watch, gates, gate_rounds, grace_rounds):
        """`_spin`; once `counter` changed, while the gate that `watch` names (a row of `gates`) is still 0, up
        to `gate_rounds` more, or, where it names none (-1), `grace_rounds` more."""
        if not _spin(counter, seen, rounds):
            return False
        gate = _load_acquire(watch)
        if gate >= 0:
            for _ in range(gate_rounds):
                if _load_acquire(gates[gate]) != 0:
                    break
                _relax()
        else:
            for _ in range(grace_rounds):
                _relax()
        return True

    def _add_one(ordering: str):
        """The code of `counter[0] += 1`, atomic with LLVM's memory `ordering`, giving the value before."""
        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            return builder.atomic_rmw("add", array.data, ir.Constant(ir.IntType(64), 1), ordering)
        return codegen

    @intrinsic
    def _add_release(typingctx, counter):
        """counter[0] += 1 atomically with release order (its value before): this thread's writes before it are
        visible to a thread that reads the new count with acquire order (a job's end on its gate;
        `claims.mark_done`, `claims.wait_for`)."""
        if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
            raise TypeError(f"claims.mark_done: expected an int64 array, got {counter}")
        return types.int64(counter), _add_one("release")

    @njit(nogil=True, cache=True)
    def _mark_then_spin(done, ended, counter, seen, rounds, watch, gates, gate_rounds, grace_rounds):
        """The job counted in `ended` (its gate's count of ended jobs), then marked `done`, the GIL already let
        go; then `_spin_gated` for the next."""
        _add_release(ended)
        _store_release(done, 1)
        return _spin_gated(counter, seen, rounds, watch, gates, gate_rounds, grace_rounds)
else:  # pragma: no cover - exercised where numba is not installed
    _spin = _spin_gated = _mark_then_spin = None


def _rounds(microseconds: float) -> int:
    """Spin rounds in `microseconds` on this CPU (a pause's length differs widely by CPU model: measured
    once; benchmarks/README.md, 'Measurements behind the code's choices')."""
    if _calibration["rounds_per_us"] is None:
        with _calibrate_lock:
            if _calibration["rounds_per_us"] is None:
                counter = np.zeros(1, np.int64)
                _spin(counter, 0, 10)                       # compiled (or loaded) before it is timed
                best = float("inf")
                for _ in range(3):
                    start = time.perf_counter()
                    _spin(counter, 0, 20000)
                    best = min(best, time.perf_counter() - start)
                _calibration["rounds_per_us"] = max(20000 / max(best * 1e6, 1e-3), 1.0)
    return int(microseconds * _calibration["rounds_per_us"])


def changed_within(counter: np.ndarray, seen: int, microseconds: float) -> bool:
    """True as soon as `counter[0]` (a 1-element int64 array) differs from `seen`, False after
    `microseconds` of spinning without the GIL (at once without numba)."""
    if _spin is None or microseconds <= 0:
        return int(counter[0]) != seen
    return bool(_spin(counter, seen, _rounds(microseconds)))


class Job:
    """One submitted call: `wait()` gives its result or raises its error.  `finished` is a plain lock
    held until the call is done (a `threading.Event` took several times longer to make and set, twice
    per op at batch 1)."""

    __slots__ = ("call", "result", "error", "done", "ended", "finished")

    def __init__(self, call: Callable[[], Any], ended: np.ndarray):
        self.call, self.result, self.error = call, None, None
        self.done = np.zeros(1, np.int64)        # 1 once finished (written without the GIL)
        self.ended = ended                       # its gate's count of ended jobs (or the pool's unread scratch)
        self.finished = threading.Lock()         # released just before: for a caller that stopped spinning
        self.finished.acquire()

    def wait(self) -> Any:
        if not changed_within(self.done, 0, SPIN_US):
            with self.finished:                  # taken once released, and given back for another wait
                pass
        if self.error is not None:
            raise self.error
        return self.result


class SpinningPool:
    """`workers` daemon threads running submitted calls in order of submission; `submit(call)` -> Job.

    Gates: a pool thread that sees a job posted needs the GIL to take it, and its caller holds the GIL until
    its own compiled kernel starts; a thread that asks for the GIL meanwhile sleeps, and is slow to wake.  A
    caller whose work claims items from a counter takes the counter from the pool (`gate`, `counter`) and
    posts its job with it: the pool thread first spins without the GIL until the caller's kernel has claimed
    an item (the GIL is free then), for at most `GATE_US`.  For a job posted without a gate (`run_in_parallel`'s:
    its caller's Python runs until some kernel it calls lets the GIL go) the pool thread spins `GRACE_US` before
    it asks for the GIL: where the caller's kernel started meanwhile, the thread takes the GIL without sleeping;
    where not, it sleeps as it would have (ResNet-20's training step, whose batch norms' passes are such jobs, ran
    faster: benchmarks/README.md, 'Measurements behind the code's choices').

    A gate also counts its jobs that ended, each once its thread has let the GIL go: the caller's last claim
    (`claims.claim` on `counter(gate, caller=True)`) waits for them in compiled code, for at most the spin's
    rounds, before its kernel returns.  Else both threads often end at once and one waits for the GIL the other
    holds, asleep (~20 us on a VM).  A gate only delays a thread, by at most those bounds: a wrong or reused one
    changes no result.  A gate is handed out again only once every job of its last use has counted its end (a
    caller whose wait ran out may have released it before)."""

    def __init__(self, workers: int, name: str, spin_us: float = SPIN_US):
        self._spin_us = spin_us
        self._jobs: "queue.SimpleQueue[Job]" = queue.SimpleQueue()
        self._posted = np.zeros(1, np.int64)     # bumped at each submit: what idle threads watch
        self._gates = np.zeros((GATES, 8), np.int64)     # the gated jobs' counters, each on a 64-byte row
        self._watch = np.full(1, -1, np.int64)  # the gate of the job posted last (-1: none)
        self._ungated = np.zeros(1, np.int64)    # what a job without a gate counts its end in (unread)
        self._free, self._free_lock = list(range(GATES)), threading.Lock()
        for index in range(workers):
            threading.Thread(target=self._serve, name=f"{name}_{index}", daemon=True).start()

    def gate(self, jobs: int = 0) -> int:
        """A free gate (-1: none left) for `jobs` jobs, its row set to (0 claims, 0 jobs ended, `jobs`, the
        caller's spin rounds) (`counter`); give it back with `release`."""
        with self._free_lock:
            gate = self._take_ready()
            if gate < 0:
                return -1
        self._gates[gate, :4] = (0, 0, jobs, _rounds(self._spin_us) if _spin is not None else 0)
        return gate

    def _take_ready(self) -> int:
        """The free gate released last whose jobs have all ended, taken off the free list (-1: none); checked
        from the end, one gate in the usual case (checking all of them was a large share of a region at batch 1:
        benchmarks/README.md, 'Measurements behind the code's choices')."""
        gates = self._gates
        for index in range(len(self._free) - 1, -1, -1):
            gate = self._free[index]
            if gates[gate, 1] >= gates[gate, 2]:
                del self._free[index]
                return gate
        return -1

    def counter(self, gate: int, caller: bool = False) -> np.ndarray:
        """The int64 counter of `gate` (the pool's memory: it outlives any spin that reads it): for a pool
        thread's kernel 1 element, the claims; for the caller's 4 (`claims.claim`): the claims, the gate's jobs
        ended, its jobs, and the spin rounds of the caller's wait for them."""
        return self._gates[gate, :4 if caller else 1]

    def release(self, gate: int) -> None:
        if gate >= 0:
            with self._free_lock:
                self._free.append(gate)

    def submit(self, call: Callable[[], Any], gate: int = -1) -> Job:
        job = Job(call, self._gates[gate, 1:2] if gate >= 0 else self._ungated)
        self._jobs.put(job)
        self._watch[0] = gate
        self._posted[0] += 1      # two submitters may write the same value: a spinner then sleeps, and wakes
        return job                # on the queue (later, never lost)

    def _posted_within(self, seen: int) -> bool:
        """`changed_within` of the posted count, then the gate's wait (compiled only)."""
        if _spin_gated is None or self._spin_us <= 0:
            return changed_within(self._posted, seen, self._spin_us)
        return bool(_spin_gated(self._posted, seen, _rounds(self._spin_us), self._watch, self._gates,
                                _rounds(GATE_US), _rounds(GRACE_US)))

    def _serve(self) -> None:
        seen, spun = int(self._posted[0]), False      # spun: the last spin ran out with no job posted
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                if not spun and self._posted_within(seen):
                    seen = int(self._posted[0])
                    continue
                job = self._jobs.get()
            seen = int(self._posted[0])
            try:
                job.result = job.call()
            except BaseException as error:       # handed to the caller, as concurrent.futures does
                job.error = error
            job.finished.release()
            done, ended, job = job.done, job.ended, None     # no reference kept while idle
            if _mark_then_spin is None:
                ended[0] += 1                    # (no compiled kernels claim from a gate without numba)
                done[0], spun = 1, False
            else:                                # the next job, if one comes meanwhile, is taken at the top
                spun = not _mark_then_spin(done, ended, self._posted, seen, _rounds(self._spin_us), self._watch,
                                           self._gates, _rounds(GATE_US), _rounds(GRACE_US))
