"""The one safe reader (allo/safeio.py) and rundir's readers on top of it: regular files
only, inside the run, size caps, bounded JSON, typed fields, one line per problem."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest
from synthetic import make_run

from allo import rundir, safeio


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run", d=3, total_steps=100, exports=2)


def one_line(err: Exception) -> str:
    message = str(err)
    assert "\n" not in message and message
    return message


@pytest.mark.timeout(20)
def test_a_fifo_in_place_of_a_file_is_refused_without_waiting(run):
    (run / rundir.METRICS_JSONL).unlink()
    os.mkfifo(run / rundir.METRICS_JSONL)
    with pytest.raises(rundir.RunDirError) as err:
        rundir.RunReader(run).metrics()
    assert "FIFO" in one_line(err.value)
    tail = rundir.RunReader(run).tail()
    assert tail.read_new() == ([], False) and "not a regular file" in tail.problems[0]
    os.unlink(run / rundir.GT_EIGENVALUES)
    os.mkfifo(run / rundir.GT_EIGENVALUES)
    with pytest.raises(rundir.RunDirError, match="FIFO"):
        rundir.RunReader(run).ground_truth()


@pytest.mark.timeout(20)
def test_dev_zero_and_links_out_of_the_run_are_refused(run, tmp_path):
    (run / rundir.METRICS_JSONL).unlink()
    os.symlink("/dev/zero", run / rundir.METRICS_JSONL)
    with pytest.raises(rundir.RunDirError) as err:
        rundir.RunReader(run).metrics()
    assert "outside" in one_line(err.value) or "device" in str(err.value)
    secret = tmp_path / "secret.npy"
    np.save(secret, np.zeros((14, 3)))
    final = run / rundir.FINAL_LEARNED
    final.unlink(missing_ok=True)
    os.symlink(secret, final)
    with pytest.raises(rundir.RunDirError, match="points outside"):
        rundir.RunReader(run).final()
    # a link inside the run is fine
    final.unlink()
    os.symlink(run / rundir.export_name(100), final)
    assert rundir.RunReader(run).final().shape[1] == 3


def test_deep_json_is_refused_before_parsing(run):
    deep = "[" * 100_000 + "]" * 100_000
    info = json.loads((run / rundir.RUN_JSON).read_text())
    text = json.dumps(info)[:-1] + ', "x": ' + deep + "}"
    (run / rundir.RUN_JSON).write_text(text)
    with pytest.raises(rundir.RunDirError) as err:
        rundir.RunReader(run).info()
    assert "nested deeper than" in one_line(err.value)
    assert safeio.json_depth('{"a": "[[[[", "b": [[1], {"c": []}]}') == 4


def test_strings_holding_brackets_do_not_count_as_nesting():
    text = json.dumps({"s": "[" * 500 + '\\"' + "{" * 500})
    assert safeio.loads_json(text, "x")["s"].startswith("[[[")


def test_size_caps_are_kept(tmp_path):
    big = tmp_path / "big.json"
    big.write_text("[" + "1," * 1000 + "1]")
    with pytest.raises(safeio.ReadError, match="larger than the 100"):
        safeio.read_json(big, cap=100)
    header = tmp_path / "huge.npy"
    with open(header, "wb") as handle:  # a header claiming 10^12 float64 cells, no data
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    began = time.perf_counter()
    with pytest.raises(safeio.ReadError, match="larger than"):
        safeio.load_npy(header)
    assert time.perf_counter() - began < 2


def test_wrongly_typed_fields_are_one_line(run):
    info = json.loads((run / rundir.RUN_JSON).read_text())
    for key, value in (("budget", "lots"), ("step", "7"), ("status", 3), ("resumes", {})):
        (run / rundir.RUN_JSON).write_text(json.dumps({**info, key: value}))
        with pytest.raises(rundir.RunDirError) as err:
            rundir.RunReader(run).info()
        assert f"'{key}'" in one_line(err.value)


def test_a_grid_beyond_the_trainers_limit_is_refused(run):
    from allo.layouts import MAX_SIDE

    info = json.loads((run / rundir.RUN_JSON).read_text())
    info["env"]["width"] = info["env"]["height"] = MAX_SIDE + 1
    (run / rundir.RUN_JSON).write_text(json.dumps(info))
    with pytest.raises(rundir.RunDirError, match="bad grid size"):
        rundir.RunReader(run).env()


def test_permission_errors_are_one_line(run, monkeypatch):
    real_open = os.open

    def denied(path, *args, **kw):
        if str(path).endswith(rundir.RUN_JSON):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(rundir.RunDirError) as err:
        rundir.RunReader(run).info()
    assert "permission denied" in one_line(err.value)


def test_one_broken_run_does_not_hide_the_others(tmp_path):
    good = make_run(tmp_path / "env" / "good", d=3, total_steps=100, exports=1)
    bad = make_run(tmp_path / "env" / "bad", d=3, total_steps=100, exports=1)
    (bad / rundir.RUN_JSON).write_text("[" * 200_000)
    odd = tmp_path / "env" / "odd"
    shutil.copytree(good, odd)
    (odd / rundir.RUN_JSON).unlink()
    os.mkfifo(odd / rundir.RUN_JSON)  # not a file: not a run
    found = rundir.find_runs(tmp_path)
    assert set(found) == {good, bad}
    assert found[0] == bad  # its start time unreadable: its mtime, the newest
    rundir.RunReader(good).info()


# ------------------------------------------------------------- found by tests/test_fuzz.py


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from trainproc import layout_file, train_args, warm

    folder = tmp_path_factory.mktemp("trained")
    result = warm().run(*train_args(layout_file(folder), folder / "run", 40))
    assert result.code == 0, result.stderr
    return folder / "run"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_fifo_checkpoint_is_skipped_not_waited_on(trained, tmp_path):
    from trainproc import warm

    run = shutil.copytree(trained, tmp_path / "run")
    newest = run / rundir.CHECKPOINTS / rundir.checkpoint_name(40)
    newest.unlink()
    os.mkfifo(newest)
    result = warm().run("train", "--resume", run, "--steps", "60")
    assert result.code == 0 and "Traceback" not in result.stderr, result.stderr
    assert "checkpoint_step_40.pt: refused, it is a FIFO" in result.stderr
    assert rundir.RunReader(run).info().resumes[-1]["step"] == 20


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_fifo_metrics_file_stops_a_resume_in_one_line(trained, tmp_path):
    from trainproc import one_line_error, warm

    run = shutil.copytree(trained, tmp_path / "run")
    (run / rundir.METRICS_JSONL).unlink()
    os.mkfifo(run / rundir.METRICS_JSONL)
    result = warm().run("train", "--resume", run, "--steps", "60")
    assert result.code == 2 and one_line_error(result.stderr), result.stderr
    assert "metrics.jsonl: refused" in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "devzero"])
def test_an_env_file_that_is_not_a_file_is_one_line(tmp_path, kind):
    from trainproc import one_line_error, warm

    path = tmp_path / "layout.txt"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink("/dev/zero", path)
    result = warm().run("train", "--env-file", path, "--run-dir", tmp_path / "run")
    assert result.code == 2 and one_line_error(result.stderr), result.stderr
    assert "not a regular file" in result.stderr and not (tmp_path / "run").exists()


@pytest.mark.timeout(30)
def test_a_hostile_study_json_beside_runs_is_ignored(tmp_path):
    from tui.discover import study_names

    (tmp_path / "study.json").write_text("[" * 200_000)
    assert study_names(tmp_path) == {}
    (tmp_path / "study.json").unlink()
    os.mkfifo(tmp_path / "study.json")
    assert study_names(tmp_path) == {}
