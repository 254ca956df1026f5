"""Outputs: a full disk is one line saying what was kept, a figure is current only while
its inputs are the ones it was drawn from, divergence at the last step is a failure."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from synthetic import SyntheticRun
from trainproc import TINY, layout_file

from allo import rundir
from allo.config import EXPORT_EVERY, TrainConfig
from allo.training.outputs import EXPORTS_BYTES, export_interval


def test_disk_full_during_a_checkpoint_is_one_line_saying_what_was_kept(
        tmp_path, monkeypatch, capsys):
    """ENOSPC while a checkpoint's bytes are written: the line names the checkpoint (not
    torch's writer error around it), says nothing earlier is lost, and how to go on."""
    from allo import train_cli

    real_fdopen = os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def fdopen(fd, *args, **kw):
        handle = real_fdopen(fd, *args, **kw)
        if ".checkpoint_step_" in os.readlink(f"/proc/self/fd/{fd}"):
            return Full(handle)
        return handle

    monkeypatch.setattr(rundir.os, "fdopen", fdopen)
    run = tmp_path / "run"
    code = train_cli.main(["--env-file", str(layout_file(tmp_path)), "--run-dir", str(run),
                           *TINY, "--steps", "40"])
    err = capsys.readouterr().err
    monkeypatch.undo()
    lines = [line for line in err.splitlines() if line.startswith("allo train")]
    assert code == 1 and "Traceback" not in err and len(lines) == 1, err
    assert "checkpoint_step_20.pt: No space left on device" in lines[0]
    assert f"allo train --resume {run}" in lines[0] and "kept" in lines[0]
    rows = rundir.RunReader(run).metrics()
    assert [row["step"] for row in rows] == [10, 20]  # what came before is all there
    assert not list((run / rundir.CHECKPOINTS).iterdir())  # and no partial checkpoint


def test_divergence_at_the_last_step_is_recorded_as_failed(tmp_path, monkeypatch):
    from allo.train import train
    from allo.training import outputs

    real = outputs.failure

    def diverges_last(step, loss, table):
        return "diverged at step 40: loss/total is not finite" if step == 40 else real(
            step, loss, table)

    monkeypatch.setattr(outputs, "failure", diverges_last)
    cfg = TrainConfig(env_file=str(layout_file(tmp_path)), run_dir=str(tmp_path / "run"),
                      num_envs=50, num_steps=100, hidden_size=32, hidden_layers=2,
                      batch_size=256, num_eigenvectors=3, log_freq=10, plot_freq=20,
                      checkpoint_freq=20, device="cpu", seed=3, num_gradient_steps=40)
    outcome = train(cfg)
    assert outcome.status == "failed" and outcome.exit_code == 1
    info = rundir.RunReader(outcome.run_dir).info()
    assert info.status == "failed" and "diverged at step 40" in info.message
    assert not (outcome.run_dir / rundir.FINAL_LEARNED).exists()
    assert rundir.checkpoint_steps(outcome.run_dir) == [20]  # the last good one


def test_a_figure_read_before_the_last_rows_is_drawn_again(tmp_path, capsys):
    """Freshness from inputs: rows appended after the render read metrics.jsonl, even
    before the figure was saved (so the figure is newer), make it stale."""
    from renderers import command, drawn_with

    run = SyntheticRun(tmp_path / "run", d=3, total_steps=100)
    run.advance(60, log_freq=10, export_freq=1000)
    args = [str(run.path), "--format", "text", "--jobs", "1", "--quiet", "--skip-comparison"]
    assert command.main([*args, "--out", str(tmp_path / "out")]) == 0
    record = drawn_with.read(tmp_path / "out" / drawn_with.RECORD)
    entry = record["learning_curves.txt"]
    assert entry[drawn_with.INPUTS][rundir.METRICS_JSONL][1] == (
        run.path / rundir.METRICS_JSONL).stat().st_size
    capsys.readouterr()
    run.log(70)  # a row lands; then the figure's file is touched to look newest
    figure = tmp_path / "out" / "learning_curves.txt"
    os.utime(figure, ns=(2**62, 2**62))
    assert command.main([*args, "--out", str(tmp_path / "out")]) == 0
    again = drawn_with.read(tmp_path / "out" / drawn_with.RECORD)["learning_curves.txt"]
    assert again[drawn_with.INPUTS] != entry[drawn_with.INPUTS]
    assert figure.stat().st_mtime_ns != 2**62  # drawn again
    assert command.main([*args, "--out", str(tmp_path / "out")]) == 0
    assert figure.stat().st_mtime_ns == Path(figure).stat().st_mtime_ns  # now current


def compared_runs(tmp_path: Path) -> list[str]:
    runs = [SyntheticRun(tmp_path / f"r{i}", d=3, total_steps=100, seed=i) for i in range(2)]
    for run in runs:
        run.advance(50, log_freq=10, export_freq=50)
    return [str(r.path) for r in runs]


def test_compare_out_at_a_file_is_one_line_before_drawing(tmp_path, capsys):
    from renderers import compare

    blocker = tmp_path / "blocker"
    blocker.write_text("keep")
    for out in (blocker, blocker / "x"):
        code = compare.main([*compared_runs(tmp_path), "--out", str(out), "--format", "svg"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err
        assert "--out" in err and blocker.read_text() == "keep"


def test_compare_on_a_full_disk_keeps_the_good_files(tmp_path, capsys, monkeypatch):
    from renderers import compare

    out = tmp_path / "out"
    runs = compared_runs(tmp_path)
    assert compare.main([*runs, "--out", str(out), "--format", "svg"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    real_fsync = os.fsync

    def fsync(fd):
        if "comparison.json" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(rundir.os, "fsync", fsync)
    code = compare.main([*runs, "--out", str(out), "--format", "svg"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    line = err.strip()
    assert "\n" not in line and "No space left on device" in line and "unchanged" in line
    assert "comparison_table.txt" in line  # what was written before the failure
    after = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    assert after["comparison.json"] == before["comparison.json"]  # never truncated


def test_a_large_grids_exports_are_spaced_to_fit_their_budget():
    """Without --plot-freq: every 1000 steps, unless N x d float32 exports would pass
    EXPORTS_BYTES over the run; then as often as fits, in whole thousands."""
    assert export_interval(104, 10, 8000) == EXPORT_EVERY == 1000
    assert export_interval(15633, 10, 60000) == 1000  # 60 x 0.6 MB
    every = export_interval(65536, 10, 60000)  # 2.6 MB each
    assert every == 3000 and every % EXPORT_EVERY == 0
    assert 60000 // every * 65536 * 10 * 4 <= EXPORTS_BYTES
    assert 60000 // (every - EXPORT_EVERY) * 65536 * 10 * 4 > EXPORTS_BYTES
    assert export_interval(65536, 10, 8000) == 1000
    assert TrainConfig().export_every == 1000 and TrainConfig(plot_freq=7).export_every == 7
