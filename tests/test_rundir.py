"""The run-directory contract: atomic files, append-only metrics, ordering, versions."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from allo import rundir
from allo.rundir import MetricsTail, RunDirError, RunReader, RunWriter


def minimal_info() -> dict:
    return {"name": "t", "status": "running", "d": 2, "env": {
        "name": "t", "layout": "  ", "width": 2, "height": 1, "free_cells": [[0, 0], [0, 1]]}}


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "run.json"
    rundir.atomic_write_json(target, {"a": 1})

    def explode(handle):
        handle.write(b'{"a": ')
        raise OSError("disk full")

    with pytest.raises(OSError):
        rundir.atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary left


def test_json_is_strict_and_nan_becomes_null(tmp_path):
    rundir.atomic_write_json(tmp_path / "x.json", {"v": float("nan"), "w": np.float32(2.5)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"v": None, "w": 2.5}


def test_reader_ignores_unfinished_last_line_until_complete(tmp_path):
    writer = RunWriter(tmp_path)
    writer.write_info(minimal_info())
    writer.append_metrics({"step": 1, "cos/mean": 0.5})
    with open(tmp_path / rundir.METRICS_JSONL, "a") as handle:
        handle.write('{"step": 2, "cos/me')
    tail = MetricsTail(tmp_path / rundir.METRICS_JSONL)
    rows, reset = tail.read_new()
    assert [r["step"] for r in rows] == [1] and not reset
    assert [r["step"] for r in RunReader(tmp_path).metrics()] == [1]
    with open(tmp_path / rundir.METRICS_JSONL, "a") as handle:
        handle.write('an": 0.6}\n')
    rows, _ = tail.read_new()
    assert [r["step"] for r in rows] == [2]
    assert tail.read_new() == ([], False)


def test_tail_resets_when_resume_truncates(tmp_path):
    writer = RunWriter(tmp_path)
    writer.write_info(minimal_info())
    for step in (10, 20, 30):
        writer.append_metrics({"step": step})
    tail = MetricsTail(tmp_path / rundir.METRICS_JSONL)
    assert len(tail.read_new()[0]) == 3
    assert writer.truncate_metrics_after(20) == 2
    writer.append_metrics({"step": 30})
    rows, reset = tail.read_new()
    assert reset and [r["step"] for r in rows] == [10, 20, 30]


def test_garbage_lines_are_reported_not_fatal(tmp_path):
    path = tmp_path / rundir.METRICS_JSONL
    path.write_bytes(b'{"step": 1}\nnot json\n\xff\xfe\n{"step": "x"}\n{"step": 2}\n')
    rows, problems = rundir.read_metrics_file(path)
    assert [r["step"] for r in rows] == [1, 2]
    assert len(problems) == 3 and problems[0].startswith("line 2")


def test_metrics_history_is_the_complete_good_rows_one_a_line(tmp_path):
    writer = RunWriter(tmp_path)
    writer.write_metrics_history()
    assert json.loads((tmp_path / rundir.METRICS_HISTORY).read_text()) == []
    writer.append_metrics({"step": 1, "cos/per_vector": [0.5, 0.25], "loss/total": float("nan")})
    writer.append_metrics({"step": 2, "cos/per_vector": [0.75, 1.0], "loss/total": -1.5})
    with open(tmp_path / rundir.METRICS_JSONL, "a") as handle:
        handle.write('not json\n{"step": 3, "cos/me')  # a bad line, an unfinished one
    writer.write_metrics_history()
    text = (tmp_path / rundir.METRICS_HISTORY).read_text()
    assert json.loads(text) == [{"step": 1, "cos/per_vector": [0.5, 0.25], "loss/total": None},
                                {"step": 2, "cos/per_vector": [0.75, 1.0], "loss/total": -1.5}]
    assert len(text.splitlines()) == 4  # "[", a row a line, "]"


def test_exports_and_checkpoints_are_ordered_by_step_number(tmp_path):
    writer = RunWriter(tmp_path)
    writer.write_info(minimal_info())
    for step in (10000, 999, 1000):
        writer.export_learned(step, np.zeros((2, 2)))
        (writer.checkpoint_dir / rundir.checkpoint_name(step)).write_bytes(b"x")
    (tmp_path / "learned_eigenvectors_step_abc.npy").write_bytes(b"")
    assert RunReader(tmp_path).export_steps() == [999, 1000, 10000]
    assert rundir.checkpoint_steps(tmp_path) == [999, 1000, 10000]
    writer.prune_checkpoints(keep=2)
    assert rundir.checkpoint_steps(tmp_path) == [1000, 10000]


def test_npy_loading_refuses_pickles_and_checks_shapes(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RunDirError, match="pickled objects; refused"):
        rundir.load_npy(tmp_path / "obj.npy")
    (tmp_path / "junk.npy").write_bytes(b"garbage")
    with pytest.raises(RunDirError, match="not a .npy file"):
        rundir.load_npy(tmp_path / "junk.npy")
    np.save(tmp_path / "v.npy", np.zeros(3))
    with pytest.raises(RunDirError, match="expected 2 dimensions"):
        rundir.load_npy(tmp_path / "v.npy", ndim=2)
    full = (tmp_path / "v.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(full[: len(full) - 8])
    with pytest.raises(RunDirError, match="cut.npy"):
        rundir.load_npy(tmp_path / "cut.npy")


def test_format_version_and_not_a_run(tmp_path):
    with pytest.raises(rundir.NotARunError, match="no such directory"):
        RunReader(tmp_path / "missing")
    with pytest.raises(rundir.NotARunError, match="no run.json"):
        RunReader(tmp_path)
    info = minimal_info()
    info["format_version"] = rundir.FORMAT_VERSION + 1
    (tmp_path / rundir.RUN_JSON).write_text(json.dumps(info))
    with pytest.raises(RunDirError, match="newer than this allo reads"):
        RunReader(tmp_path).info()


def test_stalled_status_from_heartbeat():
    assert rundir.effective_status({"status": "running", "heartbeat": 0.0}, now=1e9) == "stalled"
    assert rundir.effective_status({"status": "running", "heartbeat": 1e9}, now=1e9) == "running"
    assert rundir.effective_status({"status": "finished", "heartbeat": 0.0}, now=1e9) == "finished"


def test_safe_plot_path_refuses_escapes(tmp_path):
    assert rundir.safe_plot_path(tmp_path, "a.png").parent == (tmp_path / "plots").resolve()
    for name in ("../x.png", "/etc/passwd", "..", "a/b.png"):
        with pytest.raises(RunDirError):
            rundir.safe_plot_path(tmp_path, name)


def test_find_runs_newest_first(tmp_path):
    for name, started in (("old", 1.0), ("new", 2.0)):
        writer = RunWriter(tmp_path / "env" / name)
        writer.write_info({**minimal_info(), "started": started})
    assert [p.name for p in rundir.find_runs(tmp_path)] == ["new", "old"]
    os.makedirs(tmp_path / "env" / "not_a_run")
    assert len(rundir.find_runs(tmp_path / "env")) == 2
