"""The trainer keeps the memory it frees (allo/heap.py): repeated large allocations stop
faulting pages in; the user's own malloc settings and the opt-out are left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from trainproc import TINY, layout_file

from allo import heap

needs_glibc = pytest.mark.skipif(not heap.on_glibc(), reason="mallopt is glibc's")

# Allocates and frees blocks the size of a step's activations (8 MiB) and of a large
# grid's (64 MiB), then prints the minor page faults that the loop took.
FAULTS_OF_A_LOOP = """
import resource, sys
import numpy as np
from allo import heap
if sys.argv[1] == "keep":
    assert heap.keep_freed_memory({})
def loop(times, nbytes):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        a = np.ones(nbytes // 8); b = np.ones(nbytes // 8); del a
        c = np.ones(nbytes // 8); del b, c
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
loop(2, 8 << 20); loop(2, 64 << 20)  # the first touches fault under any setting
print(loop(20, 8 << 20) + loop(20, 64 << 20))
"""


def faults(mode: str) -> int:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("MALLOC_") and key != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", FAULTS_OF_A_LOOP, mode], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return int(done.stdout.split()[-1])


@needs_glibc
def test_kept_memory_is_reused_without_faulting_its_pages_in_again():
    """40 loops of 3 x 8 MiB and 3 x 64 MiB blocks: tens of thousands of page faults
    under glibc's defaults (the control: the loop can tell), almost none once kept."""
    default, kept = faults("default"), faults("keep")
    assert default > 10_000, default
    assert kept < 500, (default, kept)


def test_the_users_own_settings_and_the_opt_out_are_left_alone():
    assert not heap.keep_freed_memory({heap.OPT_OUT: "0"})
    assert not heap.keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert not heap.keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"})
    assert heap.user_tuned({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"})
    assert not heap.user_tuned({"MALLOC": "x", "GLIBC_TUNABLES": "glibc.rtld.nns=2"})


def test_allo_train_asks_to_keep_freed_memory(tmp_path, monkeypatch, capsys):
    """The process entry point asks for it, once per process."""
    from allo import train_cli

    asked: list[bool] = []
    monkeypatch.setattr(heap, "keep_freed_memory", lambda: asked.append(True) or True)
    run = tmp_path / "run"
    code = train_cli.main(["--env-file", str(layout_file(tmp_path)), "--run-dir", str(run),
                           *TINY, "--steps", "20"])
    assert code == 0, capsys.readouterr().err
    assert asked == [True]


@pytest.mark.parametrize("flags, words", [(["--repeats", "0"], "--repeats must be >= 1"),
                                          (["--threads", "-1"], "--threads must be >= 1")])
def test_bench_heap_refuses_a_bad_count_in_one_line(flags, words, tmp_path, capsys):
    from conftest import benchmark_script

    out = tmp_path / "heap.json"
    assert benchmark_script("bench_heap").main([*flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"bench_heap: {words}" and not out.exists()
