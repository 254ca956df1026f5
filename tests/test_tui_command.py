"""`allo watch` as a command: --once summary, bad paths, and what it must not import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui import command
from tui.summary import summarize

try:
    from tests.synthetic import make_run
except ImportError:  # tests/ itself on sys.path (pytest's default rootdir insertion)
    from synthetic import make_run

FIXTURE = Path(__file__).parent / "fixtures" / "watch_run"
REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


NO_HEAVY = """
import sys
heavy = sorted(m for m in ("torch", "matplotlib") if m in sys.modules)
assert not heavy, f"imported {heavy}"
"""


def test_once_imports_neither_torch_nor_matplotlib_nor_textual() -> None:
    code = (
        "import sys\n"
        "from allo.cli import main\n"
        f"assert main(['watch', {str(FIXTURE)!r}, '--once']) == 0\n"
        + NO_HEAVY
        + "assert 'textual.app' not in sys.modules, 'textual imported on the --once path'\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert "finished" in done.stdout


@pytest.mark.slow
def test_importing_the_app_imports_neither_torch_nor_matplotlib() -> None:
    code = "import tui.app, tui.watcher, tui.chart, tui.render\n" + NO_HEAVY
    done = run_python(code)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_first_paint_path_imports_no_numpy() -> None:
    """numpy (~0.2 s) loads after the first frame: the command, the app and its
    widgets must not import it (allo.rundir imports it only inside array functions)."""
    code = (
        "import sys\n"
        "import tui.command, tui.app\n"
        "from tui.app import make_app\n"
        f"make_app({str(FIXTURE)!r})\n"
        "loaded = sorted(m for m in ('numpy', 'plotext') if m in sys.modules)\n"
        "assert not loaded, f'imported {loaded} before the first frame'\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr


def test_once_summary_content(capsys) -> None:
    assert command.main([str(FIXTURE), "--once"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) <= 24  # one screen
    assert lines[0] == f"allo run  {FIXTURE}"
    assert "room4 13x13, 104 cells" in out and "d 6" in out and "device cpu" in out
    assert "status    finished  step 2,000/2,000 (100%)  100 steps/s  elapsed 20s" in out
    assert "mean |cos| 1.0000" in out
    assert "   1          0    -0.0030     0.0030    1.000" in out  # first eigenvalue row
    assert "exports   2, latest step 2,000; final export: yes" in out


def test_not_a_tty_prints_summary(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "allo.cli", "watch", str(FIXTURE)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("allo run  ")


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda tmp: tmp / "missing", "no such directory"),
        (lambda tmp: tmp, "no runs below it"),
        (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", "not a directory"),
    ],
)
def test_bad_path_is_one_line_and_exit_2(tmp_path: Path, capsys, make, expected) -> None:
    path = make(tmp_path)
    assert command.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and err.startswith("allo watch: ")


def test_bad_run_json_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{not json")
    assert command.main([str(run), "--once"]) == 2
    err = capsys.readouterr().err
    assert "invalid JSON" in err and err.count("\n") == 1
    (run / "run.json").write_text(json.dumps({"format_version": 99}))
    assert command.main([str(run), "--once"]) == 2
    assert "upgrade allo" in capsys.readouterr().err


def test_bad_path_subprocess_has_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "allo.cli", "watch", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.slow
def test_folder_opens_newest_and_default_is_results(tmp_path: Path, monkeypatch) -> None:
    older = make_run(tmp_path / "results" / "small" / "a", total_steps=100, exports=1)
    newer = make_run(tmp_path / "results" / "small" / "b", total_steps=100, exports=1)
    info = json.loads((older / "run.json").read_text())
    info["started"] = 1.0  # older by its recorded start time, whatever the mtimes say
    (older / "run.json").write_text(json.dumps(info))
    run, runs = command.resolve(tmp_path / "results" / "small")
    assert run == newer and runs == [newer, older]
    monkeypatch.chdir(tmp_path)
    run, runs = command.resolve(None)
    assert run.name == "b" and len(runs) == 2
    # A run given directly still lets the user switch to its siblings.
    run, runs = command.resolve(older)
    assert run == older and len(runs) == 2


@pytest.mark.slow
def test_summary_of_a_run_without_metrics_yet(tmp_path: Path) -> None:
    path = make_run(tmp_path / "run", total_steps=100, exports=1, finished=False)
    (path / "metrics.jsonl").unlink()
    text = summarize(path)
    assert "metrics   none yet" in text and "status    running" in text
