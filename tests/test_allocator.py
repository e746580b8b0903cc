"""The malloc thresholds set at import (glibc), and the switch that leaves malloc alone."""

import os
import platform
import subprocess
import sys

import pytest

from convscope._allocator import tune_allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_glibc_accepts_the_thresholds():
    assert tune_allocator() is True


def test_the_environment_switch_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv("CONVSCOPE_MALLOC_TUNING", "0")
    assert tune_allocator() is False


CYCLE = """
import os, resource, numpy as np
(getattr(np, "_core", None) or np.core).multiarray._set_madvise_hugepage(False)   # count 4 KiB pages
import convscope
np.ones(8 << 20, np.float32)                         # one 32 MiB array, freed: glibc raises its thresholds
def step():                                          # three 28 MiB arrays alive, then freed, as a training step
    arrays = [np.ones(7 << 20, np.float32) for _ in range(3)]
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 4)
"""


def _faults_per_step(tuning: str, cycle: str = CYCLE) -> int:
    env = dict(os.environ, CONVSCOPE_MALLOC_TUNING=tuning)
    return int(subprocess.run([sys.executable, "-c", cycle], capture_output=True, text=True, check=True,
                              env=env).stdout)


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_freed_arrays_are_reused_by_the_next_step_without_page_faults():
    assert _faults_per_step("0") > 10_000      # glibc's defaults give the 84 MB back, and fault it in again
    assert _faults_per_step("1") < 1_000


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_arrays_above_the_mmap_threshold_are_reused_too():
    """Arrays over 32 MiB (MobileNetV2's first output at batch 32: 51 MB) come from the heap, not from a
    fresh mapping faulted in again on every call."""
    large = CYCLE.replace("7 << 20", "12 << 20")          # three 48 MiB arrays a step
    assert _faults_per_step("0", large) > 20_000
    assert _faults_per_step("1", large) < 1_000
