"""One writer per run (allo/runlock.py): the lock, its holder line, kills, --run-dir."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from trainproc import layout_file, one_line_error, train_args, wait_for, warm

from allo import rundir, runlock


def holder_pid(run: Path) -> int | None:
    try:
        return json.loads((run / runlock.LOCK_NAME).read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


def test_a_second_lock_names_the_holder_and_the_first_release_frees_it(tmp_path):
    first = runlock.RunLock(tmp_path)
    with pytest.raises(runlock.RunLockedError) as err:
        runlock.RunLock(tmp_path)
    message = str(err.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
    assert "\n" not in message
    first.release()
    runlock.RunLock(tmp_path).release()  # free again
    assert (tmp_path / runlock.LOCK_NAME).exists()  # the file stays; only the flock goes


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = (f"import sys, time; sys.path.insert(0, {str(Path.cwd())!r}); "
            "from allo.runlock import RunLock; "
            f"lock = RunLock({str(tmp_path)!r}); print('held', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(runlock.RunLockedError, match=f"pid {child.pid} "):
            runlock.RunLock(tmp_path)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    runlock.RunLock(tmp_path).release()  # the kernel dropped it with the process


def test_locks_taken_in_a_scope_are_released_when_it_raises(tmp_path):
    with pytest.raises(RuntimeError), runlock.released_on_exit():
        writer = rundir.RunWriter(tmp_path / "run")
        raise RuntimeError("half-way")
    assert not writer.lock.held
    rundir.RunWriter(tmp_path / "run").release()


def test_a_writer_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(rundir.RunDirError, match="not empty and not a run directory"):
        rundir.RunWriter(tmp_path / "mine", new=True)
    runlock.RunLock(tmp_path / "mine").release()  # refused writers release the lock
    (tmp_path / "file").write_text("x")
    with pytest.raises(rundir.RunDirError, match="not a folder"):
        rundir.check_new_run_dir(tmp_path / "file")
    rundir.RunWriter(tmp_path / "empty", new=True).release()  # new or empty: fine


def test_cleanup_removes_only_the_writers_own_temporaries(tmp_path):
    writer = rundir.RunWriter(tmp_path / "run")
    run = tmp_path / "run"
    ours = [".run.json.abcd_123.tmp", ".metrics_history.json.zz99zz99.tmp",
            ".learned_eigenvectors_step_40.npy.k2j3h4g5.tmp"]
    theirs = [".notes.tmp", ".run.json.tmp", ".draft.abcdefgh.tmp", "x.tmp"]
    for name in ours + theirs:
        (run / name).write_text("x")
    (run / "checkpoints" / ".checkpoint_step_20.pt.qwertyui.tmp").write_text("x")
    removed = writer.remove_temporaries()
    assert sorted(removed) == sorted([*ours, ".checkpoint_step_20.pt.qwertyui.tmp"])
    assert all((run / name).exists() for name in theirs)
    writer.release()


# ---------------------------------------------------------------------- real trainings


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lock")
    layout = layout_file(folder)
    result = warm().run(*train_args(layout, folder / "run", 40))
    assert result.code == 0, result.stderr
    return layout, folder / "run"


@pytest.mark.slow
def test_two_resumes_of_one_run_the_second_is_refused(tmp_path, trained):
    _, original = trained
    run = shutil.copytree(original, tmp_path / "run")
    first = warm().start("train", "--resume", run, "--steps", "100000")
    try:
        assert wait_for(lambda: holder_pid(run) == first.pid, timeout=60)
        rows_before = (run / rundir.METRICS_JSONL).read_bytes()
        second = warm().run("train", "--resume", run, "--steps", "100000")
        assert second.code == 2, second.stderr
        assert one_line_error(second.stderr), second.stderr
        assert f"pid {first.pid} on host" in second.stderr
        assert first.alive()
    finally:
        first.signal(signal.SIGKILL)
        first.wait()
    # what the first wrote is the only writer's work: rows in order, never twice
    steps = [row["step"] for row in rundir.RunReader(run).metrics()]
    assert steps == sorted(set(steps)) and len(steps) >= rows_before.count(b"\n")
    runlock.RunLock(run).release()  # SIGKILL left no stale lock


@pytest.mark.slow
def test_two_new_trainings_into_one_run_dir(tmp_path, trained):
    layout, _ = trained
    run = tmp_path / "run"
    first = warm().start(*train_args(layout, run, 100000))
    try:
        assert wait_for(lambda: holder_pid(run) == first.pid, timeout=60)
        second = warm().run(*train_args(layout, run, 40, "--seed", "9"))
        assert second.code == 2, second.stderr
        assert one_line_error(second.stderr), second.stderr
        assert f"pid {first.pid}" in second.stderr or "already holds a run" in second.stderr
    finally:
        first.signal(signal.SIGKILL)
        first.wait()
    assert rundir.RunReader(run).info().seed == 3  # the first's seed (TINY), not 9


@pytest.mark.slow
def test_run_dir_at_a_folder_of_ones_own_files_is_refused(tmp_path, trained):
    layout, _ = trained
    folder = tmp_path / "mine"
    folder.mkdir()
    files = {"metrics.jsonl": '{"step": 5}\n', ".draft.tmp": "keep", "notes.md": "keep"}
    for name, text in files.items():
        (folder / name).write_text(text)
    result = warm().run(*train_args(layout, folder, 20))
    assert result.code == 2 and one_line_error(result.stderr), result.stderr
    assert "not empty and not a run directory" in result.stderr
    assert {p.name: p.read_text() for p in folder.iterdir()} == files
