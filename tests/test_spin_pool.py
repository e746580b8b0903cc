"""The ops' thread pool whose threads and callers spin a short while before they sleep."""

import os
import threading
import time

import numpy as np
import pytest

from convscope import backend
from convscope.ops import compiled, parallel, spin_pool


def test_changed_within_sees_another_threads_bump_and_gives_up_when_nothing_changes():
    counter = np.zeros(1, np.int64)
    assert spin_pool.changed_within(counter, 0, 200.0) is False
    assert spin_pool.changed_within(counter, 5, 0.0) is True        # already different: no spin needed

    def bump():
        time.sleep(0.002)
        counter[0] += 1

    thread = threading.Thread(target=bump)
    thread.start()
    seen = spin_pool.changed_within(counter, 0, 2e6)                 # 2 s at most: returns on the bump
    thread.join()
    assert seen is True and counter[0] == 1


def test_jobs_give_their_results_and_errors_in_any_order_of_waiting():
    pool = spin_pool.SpinningPool(2, "test-pool")
    jobs = [pool.submit(lambda i=i: i * i) for i in range(50)]
    assert [job.wait() for job in reversed(jobs)] == [i * i for i in reversed(range(50))]
    failing = pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.wait()
    assert pool.submit(lambda: "after an error").wait() == "after an error"


def test_a_caller_that_stops_spinning_sleeps_until_the_job_is_done_and_may_wait_again(monkeypatch):
    """A job longer than the caller's spin: the caller sleeps on the job's lock, wakes with its result
    once it is done, and a second wait (an error path waits on every job) returns at once."""
    monkeypatch.setattr(spin_pool, "SPIN_US", 0.0)
    pool = spin_pool.SpinningPool(1, "test-long-job")
    started = threading.Event()

    def slow():
        started.set()
        time.sleep(0.05)
        return "done"

    job = pool.submit(slow)
    started.wait()
    assert job.wait() == "done"
    deadline = time.monotonic() + 5.0       # marked done just after the lock is let go (the GIL given up first)
    while job.done[0] != 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert job.done[0] == 1
    assert job.wait() == "done"
    failing = pool.submit(lambda: time.sleep(0.02) or 1 / 0)
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            failing.wait()


@pytest.mark.parametrize("spin_us", [0.0, 50.0, 500.0])
def test_a_job_posted_while_the_pool_thread_sleeps_or_spins_runs(spin_us):
    """The pool thread spins, then sleeps on the queue: a job posted in either state runs (a submit
    whose counter bump another submitter overwrote is found on the queue, not lost)."""
    pool = spin_pool.SpinningPool(1, "test-sleeper", spin_us=spin_us)
    assert pool.submit(lambda: 1).wait() == 1
    time.sleep(0.01)                                                   # well past the spin: asleep
    assert pool.submit(lambda: 2).wait() == 2
    pool._posted[0] -= 1                                               # as if a bump were overwritten
    assert pool.submit(lambda: 3).wait() == 3


def test_many_threads_submitting_at_once_all_get_their_own_results():
    pool = spin_pool.SpinningPool(2, "test-many")
    results, errors = {}, []

    def submitter(k):
        try:
            results[k] = [pool.submit(lambda i=i: (k, i)).wait() for i in range(200)]
        except BaseException as error:               # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and all(not thread.is_alive() for thread in threads)
    assert results == {k: [(k, i) for i in range(200)] for k in range(8)}


def test_run_in_parallel_uses_the_spinning_pool_and_keeps_chunk_order():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        out = parallel.run_in_parallel(list(range(10)), lambda chunk: (threading.current_thread().name, chunk))
    assert [chunk for _, chunk in out] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert out[1][0].startswith("convscope-ops")
    assert isinstance(parallel._state["pools"][1], spin_pool.SpinningPool)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_its_own_pool():
    """The parent's pool threads do not exist in a forked child: its first parallel op must not wait for
    them forever."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        parallel.run_in_parallel([1, 2], lambda chunk: chunk)       # the parent's pool exists
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:                                                   # the child: report, then leave at once
            try:
                ok = parallel.run_in_parallel([1, 2], lambda chunk: chunk) == [[1], [2]]
                os.write(write, b"1" if ok else b"0")
            finally:
                os._exit(0)
        os.close(write)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.01)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's parallel op did not finish")
        assert os.read(read, 1) == b"1"
        os.close(read)


@pytest.mark.skipif(not compiled.available(), reason="the spin loop is compiled with numba")
def test_the_spin_loop_releases_the_gil():
    """Another Python thread keeps running while one thread spins."""
    counter, ticks = np.zeros(1, np.int64), []

    def ticker():
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            ticks.append(1)

    thread = threading.Thread(target=ticker)
    thread.start()
    spin_pool.changed_within(counter, 0, 50_000.0)                     # 50 ms of spinning
    thread.join()
    assert len(ticks) > 1000


def test_gates_are_handed_out_once_each_zeroed_and_taken_back():
    pool = spin_pool.SpinningPool(1, "test-gates")
    gates = [pool.gate() for _ in range(spin_pool.GATES)]
    assert sorted(gates) == list(range(spin_pool.GATES))
    assert pool.gate() == -1                                 # none left: a job is posted without one
    pool.counter(gates[1], caller=True)[:] = 5
    pool.release(gates[1])
    pool.counter(gates[0])[0] = 7
    pool.release(gates[0])
    pool.release(-1)                                         # no gate: nothing to give back
    again = pool.gate()
    assert again == gates[0] and pool.counter(again)[0] == 0
    assert pool.counter(again).shape == (1,) and np.shares_memory(pool.counter(again), pool._gates)
    reused = pool.gate(3)          # the caller's view: claims 0, jobs ended 0, 3 jobs, its spin's rounds
    caller = pool.counter(reused, caller=True)
    assert reused == gates[1] and list(caller[:3]) == [0, 0, 3] and caller[3] == spin_pool._rounds(pool._spin_us) > 0
    assert np.shares_memory(caller, pool.counter(reused))
    pool.release(reused)           # given back before its 3 jobs counted their end (a caller's wait ran out):
    assert pool.gate() == -1       # not handed out again (a late count would end the next caller's wait early)
    caller[1] = 3
    assert pool.gate() == reused
    pool.release(gates[2])         # a ready gate, then one still waiting for its jobs released after it:
    waiting = pool.gate(1)
    assert waiting == gates[2]
    pool.release(reused)
    pool.release(waiting)
    assert pool.gate() == reused   # the ready one is found behind the waiting one, which stays free
    caller = pool.counter(waiting, caller=True)
    caller[1] = 1
    assert pool.gate() == waiting


@pytest.mark.parametrize("grace_us", [0.0, spin_pool.GRACE_US, 5000.0])
def test_a_job_behind_a_gate_that_never_opens_still_runs_and_one_that_opens_runs_at_once(grace_us, monkeypatch):
    """A gate only delays the pool thread (by at most GATE_US) until the caller's kernel claims an item; a job
    without one by `GRACE_US` (none, the default, or longer than the pool's spin): every job runs, in order."""
    monkeypatch.setattr(spin_pool, "GRACE_US", grace_us)
    pool = spin_pool.SpinningPool(1, f"test-gate-closed-{grace_us}")
    closed = pool.gate()
    assert pool.submit(lambda: "ran", closed).wait() == "ran"
    opened = pool.gate()
    pool.counter(opened)[0] = 1
    assert pool.submit(lambda: "ran too", opened).wait() == "ran too"
    for _ in range(20):                                      # gated and plain jobs in turn
        gate = pool.gate()
        results = [pool.submit(lambda k=k: k, gate).wait() for k in range(3)] + [pool.submit(lambda: 9).wait()]
        pool.release(gate)
        assert results == [0, 1, 2, 9]


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_a_thread_that_saw_a_job_spins_its_grace_where_no_gate_is_watched_and_not_behind_an_open_gate():
    """`_spin_gated` once the posted count changed: with no gate watched (-1) it spins `grace_rounds` more (a
    pause each: 20 ms of rounds take far longer than none); watching an open gate it returns at once, its grace
    unused; and it returns False without a post."""
    posted, gates = np.ones(1, np.int64), np.zeros((2, 8), np.int64)
    gates[1, 0] = 1                                          # gate 1 open: its caller's kernel has claimed
    rounds = spin_pool._rounds(20000.0)

    def seconds(watch, grace):
        start = time.perf_counter()
        assert spin_pool._spin_gated(posted, 0, 10, np.full(1, watch, np.int64), gates, 0, grace)
        return time.perf_counter() - start

    seconds(-1, 0)                                           # compiled (or loaded) before it is timed
    assert seconds(-1, rounds) > 0.002 > seconds(-1, 0) and seconds(1, rounds) < 0.002
    assert not spin_pool._spin_gated(np.zeros(1, np.int64), 0, 10, np.full(1, -1, np.int64), gates, 0, rounds)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_run_claimed_shares_its_items_through_a_gated_counter_and_gives_the_gate_back(monkeypatch):
    """Every item claimed once, by this thread and a pool thread; the gate's counter is the pool's memory and
    is free again after the call."""
    from convscope.ops.claims import claim
    from convscope.ops import compiled as compiled_ops

    @compiled_ops.kernel
    def take(counter, count, seen):
        while True:
            item = claim(counter, count)
            if item >= count:
                break
            seen[item] += 1

    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    pool = parallel._pool(1)
    free = len(pool._free)
    seen = np.zeros(500, np.int64)
    counters = []
    for _ in range(20):
        parallel.run_claimed(500, lambda counter: counters.append(counter) or take(counter, 500, seen))
    assert len(pool._free) == free
    assert (seen == 20).all()
    assert all(np.shares_memory(counter, pool._gates) for counter in counters)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("failing", ["caller", "pool"])
def test_run_claimed_raises_a_threads_error_after_the_other_has_finished_and_gives_the_gate_back(failing,
                                                                                                 monkeypatch):
    import threading
    import time
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    pool = parallel._pool(1)
    free = len(pool._free)
    finished = []
    caller = threading.current_thread()

    def work(counter):
        on_caller = threading.current_thread() is caller
        assert (counter.shape[0] >= 4) == on_caller          # the caller's longer view of the gate's counter
        assert parallel._region.inside                       # nested calls run in place, on either thread
        assert not compiled.active() and not backend.keeps_for_backward()      # the caller's context
        if on_caller == (failing == "caller"):
            raise ValueError(f"the {failing}'s part failed")
        time.sleep(0.05)
        finished.append(threading.current_thread().name)

    with pytest.raises(ValueError, match=f"the {failing}'s part failed"), compiled.use_compiled(False), \
            backend.no_backward():
        parallel.run_claimed(8, work)
    assert len(finished) == 1                     # the other thread's part ended before the error surfaced
    assert len(pool._free) == free


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_run_claimed_waits_for_every_pool_job_before_raising_one_jobs_error(monkeypatch):
    """Three threads: the first pool job to start fails at once, the other is still running then."""
    import threading
    import time
    monkeypatch.setattr(parallel, "worker_count", lambda: 3)
    caller, lock, started, finished = threading.current_thread(), threading.Lock(), [], []

    def work(counter):
        if threading.current_thread() is caller:
            return
        with lock:
            started.append(1)
            first = len(started) == 1
        if first:
            raise ValueError("a pool job failed")
        time.sleep(0.05)
        finished.append(1)

    with pytest.raises(ValueError, match="a pool job failed"):
        parallel.run_claimed(8, work)
    assert finished == [1]


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_the_callers_kernel_returns_after_the_pool_threads_job_has_ended(monkeypatch):
    """In `run_claimed` the calling thread's last claim waits (in compiled code) until the pool thread's job
    has ended, so that it never returns to the GIL while that thread holds it; the pool thread's kernel does
    not wait (it ends its own job).  Each kernel records the jobs ended when its claims ran out."""
    from convscope.ops.claims import claim
    from convscope.ops import compiled as compiled_ops

    @compiled_ops.kernel
    def take(counter, count, ended_seen, slot):
        while True:
            item = claim(counter, count)
            if item >= count:
                break
            x = 1.0
            for _ in range(20_000):          # each item some microseconds: both threads take items
                x = x * 1.0000001 + 1e-9
            ended_seen[2 + slot] += x > 0        # the items this thread did
        ended_seen[slot] = counter[1] if counter.shape[0] >= 4 else -1

    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    pool = parallel._pool(1)
    monkeypatch.setattr(pool, "_spin_us", 5e4)          # a long bound (50 ms): the wait ends on the count
    for _ in range(10):
        seen = np.zeros(4, np.int64)
        parallel.run_claimed(64, lambda counter: take(counter, 64, seen, 0 if counter.shape[0] >= 4 else 1))
        assert list(seen[:2]) == [1, -1] and seen[2] + seen[3] == 64
    seen = np.zeros(4, np.int64)
    parallel.run_claimed(64, lambda counter: take(counter, 64, seen, 0), alone=True)
    assert list(seen) == [-1, 0, 64, 0]     # alone: a plain one-element counter, nothing to wait for
    counts = iter([2] + [1] * 10)           # the thread count lowered while the call runs (another thread's
    monkeypatch.setattr(parallel, "worker_count", lambda: next(counts))       # threadpool_limits): the
    seen = np.zeros(4, np.int64)            # region keeps the count its gate was taken for
    parallel.run_claimed(64, lambda counter: take(counter, 64, seen, 0 if counter.shape[0] >= 4 else 1))
    assert list(seen[:2]) == [1, -1] and seen[2] + seen[3] == 64
