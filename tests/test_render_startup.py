"""What `allo render` does to start and stop fast: lazy imports, frozen gc, fast exit."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic import make_run

from renderers import RenderOptions, mplimport, runner
from renderers.plan import Selection, make_plan

ROOT = Path(__file__).resolve().parents[1]


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("startup") / "run", d=3, total_steps=300, exports=3)


@pytest.mark.slow
def test_import_agg_restores_kwdoc_and_gc_and_keeps_pictures_documented_later():
    code = (
        "import gc\n"
        "from renderers.mplimport import import_agg\n"
        "loaded = import_agg()\n"
        "import matplotlib.artist as artist, matplotlib.lines as lines\n"
        "print(gc.isenabled(), artist.kwdoc.__name__)\n"
        "print('linewidth' in artist.kwdoc(lines.Line2D))\n"
        "print(loaded['Figure'].__module__, loaded['Canvas'].__name__)\n"
    )
    result = python(code)
    assert result.stdout.split() == [
        "True",
        "kwdoc",
        "True",
        "matplotlib.figure",
        "FigureCanvasAgg",
    ], result.stderr


@pytest.mark.slow
def test_import_agg_skips_generated_set_docs_but_set_still_works():
    code = (
        "from renderers.mplimport import import_agg\n"
        "import_agg()\n"
        "import matplotlib.lines as lines\n"
        "import matplotlib.artist as artist, inspect\n"
        "print(lines.Line2D.set.__doc__ is None)\n"
        "print('linewidth' in str(inspect.signature(lines.Line2D.set)))\n"
        "line = lines.Line2D([0, 1], [0, 1])\n"
        "line.set(linewidth=3, color='red')\n"
        "print(line.get_linewidth(), line.get_color())\n"
        "hook = vars(artist.Artist)['_update_set_signature_and_docstring']\n"
        "print(hook.__func__.__module__)\n"
    )
    result = python(code)
    assert result.stdout.split() == ["True", "False", "3.0", "red", "matplotlib.artist"], (
        result.stderr
    )


def test_gc_paused_restores_a_disabled_collector():
    gc.disable()
    try:
        with mplimport.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.slow
def test_run_jobs_draws_with_imports_frozen_and_unfreezes(run, monkeypatch):
    seen = []
    real = runner.draw

    def draw(*args):
        seen.append(gc.get_freeze_count())
        return real(*args)

    monkeypatch.setattr(runner, "draw", draw)
    jobs = make_plan(rundir_reader(run), Selection(latest_only=True)).jobs[:1]
    outcomes = runner.run_jobs(run, "svg", RenderOptions(), jobs, None, None, False, 1)
    assert [o.status for o in outcomes] == [runner.MADE]
    assert seen and seen[0] > 0
    assert gc.get_freeze_count() == 0


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_prepare_does_not_end_the_render(run, tmp_path, monkeypatch, workers):
    from renderers import png

    def broken(self, kinds=()):
        raise RuntimeError("prepare failed")

    monkeypatch.setattr(png.PngRenderer, "prepare", broken)
    jobs = make_plan(rundir_reader(run), Selection(latest_only=True)).jobs
    outcomes = runner.run_jobs(
        run, "png", RenderOptions(dpi=20), jobs, None, tmp_path, False, workers
    )
    assert {o.status for o in outcomes} == {runner.MADE}
    assert len(outcomes) == len(jobs)


def rundir_reader(run: Path):
    from allo import rundir

    return rundir.RunReader(run)


ENTRY = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('TEARDOWN', flush=True))\n"
    "sys.argv = ['allo', *sys.argv[1:]]\n"
    "from allo.cli import entry\n"
    "entry()\n"
)


@pytest.mark.slow
def test_render_exits_without_teardown_and_delivers_its_output(run):
    result = python(ENTRY, "render", str(run), "--format", "text", "--latest-only")
    assert result.returncode == 0, result.stderr
    assert "TEARDOWN" not in result.stdout
    assert "Learning curves" in result.stdout
    assert "made" in result.stderr  # the summary goes to stderr when figures go to stdout


def test_render_fast_exit_keeps_the_exit_code():
    result = python(ENTRY, "render", "/no/such/run")
    assert result.returncode == 2
    assert "TEARDOWN" not in result.stdout
    assert "allo render" in result.stderr


def test_other_commands_exit_normally():
    result = python(ENTRY, "envs")
    assert result.returncode == 0, result.stderr
    assert "TEARDOWN" in result.stdout


def test_idle_cpus_from_two_samples(monkeypatch):
    monkeypatch.setattr(runner, "online_cpus", lambda: 2)
    assert runner.idle_cpus((100, 1000), (150, 1100)) == pytest.approx(1.0)
    assert runner.idle_cpus((100, 1000), (100, 1100)) == 0.0
    assert runner.idle_cpus((100, 1000), (101, 1005)) is None  # too short to tell
    assert runner.idle_cpus(None, (1, 2)) is None


@pytest.mark.parametrize(("idle_ticks", "expected"), [(50, 2), (35, 2), (20, 1), (0, 1)])
def test_workers_while_busy_keeps_a_worker_per_idle_cpu(monkeypatch, idle_ticks, expected):
    """100 ticks on 2 CPUs while this process used one: 50 idle ticks = the other free."""
    monkeypatch.setattr(runner, "online_cpus", lambda: 2)
    monkeypatch.setattr(runner, "cpu_times", lambda: (1000 + idle_ticks, 10100))
    assert runner.workers_while_busy(2, (1000, 10000)) == expected


def test_workers_while_busy_without_a_measurement_changes_nothing(monkeypatch):
    monkeypatch.setattr(runner, "cpu_times", lambda: None)
    assert runner.workers_while_busy(2, (1000, 10000)) == 2


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux only")
def test_cpu_times_reads_proc_stat():
    first = runner.cpu_times()
    assert first is not None and 0 <= first[0] <= first[1]


@pytest.mark.parametrize(("argv", "measured"), [([], True), (["--jobs", "2"], False)])
def test_render_measures_idle_cpus_only_for_the_default_jobs(run, monkeypatch, argv, measured):
    from renderers import command

    seen = {}

    def fake_run_jobs(*args, idle_since=None):
        seen["idle_since"] = idle_since
        return []

    monkeypatch.setattr(command, "run_jobs", fake_run_jobs)
    monkeypatch.setattr(command, "cpu_times", lambda: (1, 2))
    assert command.main([str(run), "--format", "svg", "--force", "--quiet", *argv]) == 0
    assert (seen["idle_since"] is not None) == measured


@pytest.mark.slow
@pytest.mark.parametrize("command", [["render", "--format", "text"], ["envs"]])
def test_a_reader_that_closes_the_pipe_gets_no_traceback(run, command):
    """`allo render RUN --format text | head -3`: the rest of the output has no reader."""
    argv = [command[0], str(run), *command[1:]] if command[0] == "render" else command
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-c", ENTRY, *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    process.stdout.readline()
    process.stdout.close()  # like head after its lines
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)
    process.stderr.close()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert process.returncode in (0, 1)
