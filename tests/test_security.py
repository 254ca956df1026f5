"""A run directory from someone else is safe to open (issue 6, item 5; DESIGN.md rules).

Nothing ever unpickles, renderers write only under RUN/plots, `allo watch` writes nothing.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_run
from trainproc import layout_file, train_args, warm

from allo import rundir
from renderers import command

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = [
    (re.compile(r"^\s*(import\s+(c?pickle|dill|cloudpickle|shelve|marshal)\b|"
                r"from\s+(c?pickle|dill|cloudpickle|shelve|marshal)\s+import)", re.M),
     "imports an unpickler"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"weights_only\s*=\s*False"), "weights_only=False"),
]


def source_files() -> list[Path]:
    files = []
    for package in ("allo", "renderers", "tui"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def test_source_tree_never_unpickles():
    files = source_files()
    assert len(files) > 20
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for pattern, what in FORBIDDEN:
            if pattern.search(text):
                problems.append(f"{path.relative_to(ROOT)}: {what}")
        for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in call.group(1):
                problems.append(f"{path.relative_to(ROOT)}: torch.load without weights_only=True")
        for call in re.finditer(r"np\.load\(([^)]*)\)", text):
            if "allow_pickle=False" not in call.group(1):
                problems.append(f"{path.relative_to(ROOT)}: np.load without allow_pickle=False")
    assert problems == []


def test_the_scan_can_fail(tmp_path):
    """The patterns catch what they are meant to catch."""
    text = "import pickle\nnp.load(p, allow_pickle=True)\ntorch.load(p, weights_only=False)\n"
    assert all(pattern.search(text) for pattern, _ in FORBIDDEN)


# --------------------------------------------------------------------------- planted files


def _pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"rm": "-rf"}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.slow
def test_planted_pickle_npy_is_refused_by_every_reader(tmp_path, capsys):
    run = make_run(tmp_path / "run", d=3, total_steps=100, exports=2)
    steps = rundir.RunReader(run).export_steps()
    (run / rundir.export_name(steps[-1])).write_bytes(_pickled_npy())
    (run / rundir.GT_EIGENVALUES).write_bytes(_pickled_npy())
    reader = rundir.RunReader(run)
    for load in (lambda: reader.learned(steps[-1]), reader.ground_truth):
        with pytest.raises(rundir.RunDirError, match="pickled objects; refused"):
            load()
    code = command.main([str(run), "--format", "text", "--jobs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "pickled objects; refused" in err


class Payload:
    """What a malicious checkpoint would carry: unpickling it would run print()."""

    def __reduce__(self):
        return (print, ("UNPICKLED",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sec")
    layout = layout_file(folder)
    result = warm().run(*train_args(layout, folder / "run", 40))
    assert result.code == 0, result.stderr
    return folder / "run"


def _plant_checkpoint(run: Path, step: int, obj) -> Path:
    torch = pytest.importorskip("torch")
    path = run / rundir.CHECKPOINTS / rundir.checkpoint_name(step)
    torch.save(obj, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("alone", [True, False])
def test_planted_checkpoint_with_a_python_object_is_refused(tmp_path, trained, alone):
    run = shutil.copytree(trained, tmp_path / "run")
    if alone:
        for path in (run / rundir.CHECKPOINTS).iterdir():
            path.unlink()
    state_rows = (run / rundir.METRICS_JSONL).read_bytes()
    _plant_checkpoint(run, 1000, {"step": 1000, "model": Payload()})
    result = warm().run("train", "--resume", run, "--steps", "60")
    assert "UNPICKLED" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "checkpoint_step_1000.pt" in result.stderr and "refused" in result.stderr
    if alone:  # nothing else to resume from: exit 2, nothing lost
        assert result.code == 2, result.stderr
        assert "none of 1 checkpoint(s) is usable" in result.stderr
        assert (run / rundir.METRICS_JSONL).read_bytes() == state_rows
    else:  # the older, genuine checkpoint is used
        assert result.code == 0, result.stderr
        assert rundir.RunReader(run).info().resumes[-1]["step"] == 40


@pytest.mark.slow
def test_checkpoint_of_tensors_but_not_ours_is_refused(tmp_path, trained):
    torch = pytest.importorskip("torch")
    run = shutil.copytree(trained, tmp_path / "run")
    for path in (run / rundir.CHECKPOINTS).iterdir():
        path.unlink()
    _plant_checkpoint(run, 10, {"weights": torch.zeros(3)})
    result = warm().run("train", "--resume", run)
    assert result.code == 2, result.stderr
    assert "not a checkpoint of this allo version" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- output paths


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_renderers_write_only_under_plots(tmp_path, capsys):
    run = make_run(tmp_path / "box" / "run", d=3, total_steps=100, exports=2)
    info = json.loads((run / rundir.RUN_JSON).read_text())
    info["name"] = "../../escaped"
    info["env"]["name"] = "/tmp/absolute"
    (run / rundir.RUN_JSON).write_text(json.dumps(info))
    before = _snapshot(tmp_path)
    code = command.main([str(run), "--format", "svg", "--jobs", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    after = _snapshot(tmp_path)
    changed = {name for name in after if before.get(name) != after[name]}
    assert changed and all(name.startswith("box/run/plots/") for name in changed), changed
    assert not Path("/tmp/absolute").exists()


@pytest.mark.parametrize("name", ["../x.svg", "/etc/x.svg", "..", "", "a/b.svg", "x\x00.svg"])
def test_safe_plot_path_refuses_escapes(tmp_path, name):
    with pytest.raises(rundir.RunDirError):
        rundir.safe_plot_path(tmp_path, name)


@pytest.mark.slow
def test_allo_watch_writes_nothing(tmp_path):
    pytest.importorskip("tui.command")
    run = make_run(tmp_path / "run", d=3, total_steps=100, exports=2)
    before = _snapshot(tmp_path)
    result = warm().run("watch", run, "--once")
    assert result.code == 0 and "Traceback" not in result.stderr, result.stderr
    assert _snapshot(tmp_path) == before
    # no temporaries: the only hidden file is the (synthetic) writer's lock
    assert [name for name in os.listdir(run) if name.startswith(".")] == [".writer.lock"]
