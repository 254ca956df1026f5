"""The typed run.json contract: docs/run-format.md's tables and allo.rundir's types say
the same, and nothing outside rundir spells a run.json key."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import time
from pathlib import Path

import pytest

from allo import rundir

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "run-format.md"


def doc_table(heading: str) -> list[str]:
    """The backticked first column of the table under `heading` (a line of the doc)."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    keys: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("## ") or (keys and not line.startswith("|")):
            break
        match = re.match(r"\|\s*`([^`]+)`", line)
        if match:
            keys.extend(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return keys


def typed_fields(record: type) -> list[str]:
    return [f.name for f in dataclasses.fields(record) if f.name != "extra"]


def test_run_json_table_matches_run_info():
    assert doc_table("## run.json") == typed_fields(rundir.RunInfo)


def test_metrics_table_matches_metric_keys_and_row_type():
    keys = doc_table("## metrics.jsonl and metrics_history.json")
    constants = [v for k, v in vars(rundir.Metric).items() if k.isupper()]
    assert keys == constants
    assert list(rundir.MetricsRow.__annotations__) == constants


def test_budget_keys_are_documented():
    row = next(line for line in DOC.read_text(encoding="utf-8").splitlines()
               if line.startswith("| `budget`"))
    for name in typed_fields(rundir.BudgetInfo):
        assert f"`{name}`" in row, name


def test_status_values_are_the_documented_ones():
    row = next(line for line in DOC.read_text(encoding="utf-8").splitlines()
               if line.startswith("| `status`"))
    for status in rundir.STATUSES:
        assert f"`{status.value}`" in row
    assert json.dumps({"status": rundir.Status.FAILED}) == '{"status": "failed"}'


def test_run_info_round_trips_and_keeps_unknown_keys():
    raw = {"format_version": 1, "name": "r", "status": "running", "step": 5,
           "budget": {"gap": 0.25, "from_a_newer_allo": 1}, "future_key": [1, 2]}
    info = rundir.RunInfo.from_json(raw)
    assert info.status is rundir.Status.RUNNING and info.step == 5
    assert info.budget is not None and info.budget.gap == 0.25
    again = info.to_json()
    assert again["future_key"] == [1, 2] and again["budget"]["from_a_newer_allo"] == 1


@pytest.mark.parametrize("field,value", [("step", "12"), ("d", True), ("status", "done"),
                                         ("config", [1]), ("heartbeat", "now")])
def test_a_field_of_the_wrong_type_reads_as_missing(field, value):
    info = rundir.RunInfo.from_json({"format_version": 1, field: value})
    assert getattr(info, field) is None


def test_writer_events_leave_a_readable_run(tmp_path):
    writer = rundir.RunWriter(tmp_path / "run")
    now = time.time()
    writer.start(rundir.RunInfo(
        name="run", status=rundir.Status.RUNNING, message=None, step=0, total_steps=10,
        started=now, heartbeat=now, finished=None, elapsed=0.0, device="cpu", versions={},
        config={"seed": 0}, d=2, gamma=0.9, objective="allo", seed=0, trained_with_seeds=[0],
        eigenvalue_convention="laplacian_I_minus_T", env={}, ground_truth=rundir.TruthInfo(),
        resumes=[]))
    writer.plan({"seed": 0}, rundir.BudgetInfo(recommended_steps=10))
    writer.heartbeat(4, 1.5)
    writer.going_on(20)
    writer.fail("diverged at step 6", 6, 2.0, {"training": 2.0})
    info = rundir.RunReader(tmp_path / "run").info()
    assert (info.status, info.step, info.total_steps, info.message) == (
        rundir.Status.FAILED, 6, 20, "diverged at step 6")
    assert info.budget is not None and info.budget.recommended_steps == 10
    assert info.timings == {"training": 2.0} and info.finished is not None
    writer.release()  # one writer at a time (allo/runlock.py)
    reopened = rundir.RunWriter(tmp_path / "run")
    reopened.reopen()
    reopened.resume(4, 20, {"seed": 0}, "cpu")
    again = rundir.RunReader(tmp_path / "run").info()
    assert again.status is rundir.Status.RUNNING and again.finished is None
    assert [r["step"] for r in again.resumes or []] == [4]
    reopened.release()


def test_an_event_before_start_is_refused(tmp_path):
    with pytest.raises(rundir.RunDirError, match="before start"):
        rundir.RunWriter(tmp_path / "run").heartbeat(1, 0.0)


RUN_JSON_KEYS = set(typed_fields(rundir.RunInfo)) - {"step", "name", "d", "device", "seed"}


def string_keys_read_from(path: Path) -> list[tuple[int, str]]:
    """run.json keys as string constants indexing something named like run.json's
    object (`info[...]`, `info.get(...)`, `reader.info()[...]`, `budget.get(...)`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        key, receiver = None, None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key, receiver = node.slice.value, node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "get" and node.args
              and isinstance(node.args[0], ast.Constant)):
            key, receiver = node.args[0].value, node.func.value
        if (isinstance(key, str) and key in RUN_JSON_KEYS and receiver is not None
                and re.search(r"info|budget|run_json", ast.unparse(receiver))):
            found.append((node.lineno, key))
    return found


def test_no_run_json_key_is_read_outside_rundir():
    """Readers use RunInfo's attributes; keys shared with other objects (step, name, d,
    device, seed: metric rows, configs, layouts) are left out of this check."""
    offenders = []
    for folder in ("allo", "tui", "renderers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "rundir.py":
                continue
            offenders += [f"{path.relative_to(ROOT)}:{line} {key!r}"
                          for line, key in string_keys_read_from(path)]
    assert offenders == []
