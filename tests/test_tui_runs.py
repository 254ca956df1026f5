"""`allo watch FOLDER`: the runs table, filter, sort, overlay, groups, and --once."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path

import numpy as np
import pytest

from allo import rundir
from renderers import grouping
from renderers.stats import mean_interval
from tui import command
from tui.app import make_app
from tui.groups import band, group_rows
from tui.runstable import FilterError, compile_filter, sorted_rows
from tui.runsummary import folder_rows, summarize_runs
from tui.tracker import FolderWatcher, RunTracker
from tui.widgets.overlay import Overlay
from tui.widgets.runs import RunsScreen

try:
    from tests.runsfolder import make_study, study_run
except ImportError:
    from runsfolder import make_study, study_run


def sync(test):
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


async def wait_for(pilot, predicate, timeout: float = 8.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        screen = pilot.app.screen
        if isinstance(screen, RunsScreen):
            screen.poll_now()
        await pilot.pause(0.05)
    assert predicate(), "condition not met in time"


def runs_screen(app) -> RunsScreen:
    return app.get_screen("runs")


def table_text(screen: RunsScreen) -> dict[str, dict[str, str]]:
    """layout/run (the last two parts of its path) -> its cells, as the table holds them."""
    table = screen.query_one("#runs-table")
    out = {}
    for path in screen.order:
        cells = table.get_row(path)
        names = [name for name, _ in screen.columns]
        row = {n: c.plain.strip() for n, c in zip(names, cells, strict=True)}
        out["/".join(Path(path).parts[-2:])] = row
    return out


def folder_app(folder: Path):
    runs = sorted(p for p in folder.rglob("run.json"))
    return make_app(runs[0].parent, [r.parent for r in runs], poll_seconds=0.05, folder=folder)


# ------------------------------------------------------------------- live table
@pytest.mark.slow
@sync
async def test_runs_appear_progress_finish_fail_and_stall(tmp_path: Path) -> None:
    a = study_run(tmp_path, "small", "allo", 0, total=300)
    a.advance(100, log_freq=10)
    app = folder_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = runs_screen(app)
        await wait_for(pilot, lambda: "small/allo_s0" in table_text(screen))
        assert table_text(screen)["small/allo_s0"]["status"] == "running"
        assert table_text(screen)["small/allo_s0"]["step"] == "100/300"
        # a run that appears while the table is open joins it
        b = study_run(tmp_path, "small", "ggdo", 0, total=300)
        b.advance(50, log_freq=10)
        await wait_for(pilot, lambda: "small/ggdo_s0" in table_text(screen), timeout=15)
        # progress, finish, failure and a silent trainer show in their own rows
        a.advance(200, log_freq=10)
        a.finish()
        b.writer.update_info(status="failed", message="loss became NaN")
        c = study_run(tmp_path, "room4", "allo", 1, total=300)
        c.advance(30, log_freq=10)
        c.writer.update_info(heartbeat=time.time() - 600)
        await wait_for(pilot, lambda: table_text(screen).get("small/allo_s0", {}).get(
            "status") == "finished" and "room4/allo_s1" in table_text(screen), timeout=15)
        rows = table_text(screen)
        await wait_for(pilot, lambda: table_text(screen)["small/ggdo_s0"]["status"] == "failed")
        await wait_for(pilot, lambda: table_text(screen)["room4/allo_s1"]["status"] == "stalled")
        rows = table_text(screen)
        assert rows["small/allo_s0"]["step"] == "300/300"
        assert rows["small/allo_s0"]["→0.99"] not in ("", "—")
        assert rows["small/allo_s0"]["ETA"] == "—"


@pytest.mark.slow
@sync
async def test_a_broken_run_shows_in_its_row_only(tmp_path: Path) -> None:
    make_study(tmp_path, seeds=1, layouts=("small",), total=100)
    broken = tmp_path / "small" / "half_copied"
    broken.mkdir()
    (broken / "run.json").write_text('{"format_version": 1, "status": "runn')  # cut short
    app = folder_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = runs_screen(app)
        await wait_for(pilot, lambda: len(table_text(screen)) == 3)
        rows = table_text(screen)
        assert rows["small/half_copied"]["status"].startswith("unreadable")
        assert rows["small/allo_s0"]["status"] == "finished"
        # deleted while open: its row says so, the others carry on
        import shutil

        shutil.rmtree(tmp_path / "small" / "ggdo_s0")
        await wait_for(pilot, lambda: "deleted" in table_text(screen)["small/ggdo_s0"]["status"])
        assert table_text(screen)["small/allo_s0"]["status"] == "finished"


@pytest.mark.slow
@sync
async def test_overlay_selection_colours_hide_isolate_and_groups(tmp_path: Path) -> None:
    make_study(tmp_path, seeds=2, layouts=("small",), total=200)
    app = folder_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = runs_screen(app)
        await wait_for(pilot, lambda: len(table_text(screen)) == 4)
        overlay = screen.query_one(Overlay)
        assert "select runs with space" in overlay.render().plain
        await pilot.press("space", "space")  # the first two rows (the cursor moves down)
        assert [Path(p).name for p in screen.selected] == ["allo_s0", "allo_s1"]
        text = overlay.render().plain
        assert "small allo s0" in text and "small allo s1" in text and "1 − mean |cos|" in text
        first_colour = screen.colours[screen.selected[0]]
        # unselect the first, select another: colours stay with their runs
        await pilot.press("up", "up", "space")
        await pilot.press("down", "space")
        assert screen.colours[str(tmp_path / "small" / "allo_s0")] == first_colour
        assert len(set(screen.colours.values())) == len(screen.colours)
        # hide and isolate the run under the cursor
        await pilot.press("up")
        path = screen.cursor_path()
        assert path in screen.selected
        await pilot.press("h")
        assert [e[3] for e in overlay.entries if e[1].path == path] == [False]
        await pilot.press("h", "i")
        assert [e[1].path for e in overlay.entries if e[3]] == [path]
        await pilot.press("i", "a")  # all shown runs, then groups of one configuration
        assert len(screen.selected) == 4
        await pilot.press("g")
        text = overlay.render().plain
        assert "small allo (n=2)" in text and "small ggdo (n=2)" in text
        assert "mean, 95% band" in str(overlay.border_title)
        await pilot.press("2", "x", "z", "c", "comma")
        assert overlay.chart.key == "loss" and overlay.state.view.time_axis
        assert overlay.state.view.x_window == (0.5, 1.0) and overlay.state.view.cursor < 1


@pytest.mark.slow
@sync
async def test_filter_sort_and_open_a_run_and_come_back(tmp_path: Path) -> None:
    make_study(tmp_path, seeds=2, layouts=("small",), total=100)
    app = folder_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = runs_screen(app)
        await wait_for(pilot, lambda: len(table_text(screen)) == 4)
        await pilot.press("f")
        await pilot.press(*"ggdo", "enter")
        assert set(table_text(screen)) == {"small/ggdo_s0", "small/ggdo_s1"}
        await pilot.press("f", *["backspace"] * 4, *"objective=allo -s1", "enter")
        assert set(table_text(screen)) == {"small/allo_s0"}
        await pilot.press("f", *["backspace"] * 18, "enter")
        assert len(table_text(screen)) == 4
        screen.sort_column, screen.reverse = "seed", True
        screen.refresh_table()
        assert [Path(p).name[-1] for p in screen.order] == ["1", "1", "0", "0"]
        await pilot.press("o")
        assert screen.sort_column == "status"
        # space selects, enter opens the single-run screen, escape comes back
        await pilot.press("space", "up")
        chosen = screen.cursor_path()
        await pilot.press("enter")
        assert not isinstance(app.screen, RunsScreen)
        await wait_for(pilot, lambda: app.store.latest is not None)
        assert app.run_path == Path(chosen)
        assert f"run {Path(chosen).name}" in app.query_one("#overview").compose_text().plain
        await pilot.press("escape")
        assert app.screen is screen and len(screen.selected) == 1


def test_filter_syntax() -> None:
    class Row:
        def __init__(self, *words):
            self.words = list(words)

        def haystack(self):
            return self.words

    run = Row("room4/allo_s0", "room4", "allo", "running", "0", "lr=0.001", "objective=allo")
    assert compile_filter("allo")(run) and compile_filter("ROOM4 allo")(run)
    assert not compile_filter("ggdo")(run) and not compile_filter("allo -room4")(run)
    assert compile_filter("room*")(run) and compile_filter("room")(Row("rooms16x"))
    assert compile_filter("room?")(run) and not compile_filter("room?")(Row("rooms16x"))
    assert compile_filter("objective=al*")(run) and not compile_filter("objective=gg*")(run)
    assert compile_filter("/_s[0-2]$/")(run) and compile_filter("re:^ROOM")(run)
    assert not compile_filter("/_s[3-9]$/")(run)
    assert compile_filter("")(run)
    with pytest.raises(FilterError, match="bad regular expression"):
        compile_filter("/[unclosed/")


# ------------------------------------------------------------------- statistics
def test_group_statistics_equal_allo_compare(tmp_path: Path) -> None:
    make_study(tmp_path, seeds=3, layouts=("small",), objectives=("allo",), total=300)
    runs = sorted(tmp_path.rglob("run.json"))
    summaries = []
    trackers = []
    for path in runs:
        reader = rundir.RunReader(path.parent)
        info = reader.info()
        summaries.append(grouping.RunSummary(str(path.parent), path.parent.name,
                                             info.status, grouping.setting(info),
                                             reader.metrics(), None))
        tracker = RunTracker(path.parent)
        tracker.poll()
        trackers.append(tracker)
    from tui.chart import CHARTS, ONE_MINUS_FLOOR, metric_values

    checked = set()
    for metric in (m for chart in CHARTS for m in chart.metrics):
        steps_values = [t.get(metric.key) for t in trackers]
        if not len(steps_values[0][0]):
            continue
        # compare's kind for this panel: 1 - |cos| is its "gap" band of |cos|
        kind = "gap" if metric.one_minus else metric.interval
        steps, centre, low, high = grouping.band(summaries, metric.key, kind)
        ours = band([(s, metric_values(metric, v)) for s, v in steps_values], metric.interval)
        np.testing.assert_array_equal(ours[0], steps)
        for a, b in zip(ours[1:], (centre, low, high), strict=True):
            if metric.one_minus:  # where a run's 1 - |cos| is below float32's resolution
                # (0 included: compare has no log band there) ours draws it at its floor
                _, raw = grouping.aligned(summaries, metric.key)
                keep = np.all(1.0 - raw >= ONE_MINUS_FLOOR, axis=0)
                assert keep.mean() > 0.8
                a, b = a[keep], b[keep]
            np.testing.assert_allclose(a, b, rtol=1e-9)
        checked.add(metric.interval)
    assert checked == {"any", "positive", "unit"}
    # the groups of the table are compare's groups
    rows = folder_rows(tmp_path)
    assert len(group_rows(rows)) == len(grouping.group_runs(summaries)) == 1
    finals = np.array([[s.final("cos/mean")] for s in summaries])
    mean, low, high = mean_interval(finals, axis=0)
    got = group_rows(rows)[0].final("cos")
    assert got[0] == pytest.approx(mean[0]) and got[1] == pytest.approx(low[0])
    assert got[3] == 3


@pytest.mark.slow
def test_tracker_reads_only_new_bytes_and_keeps_memory_bounded(tmp_path: Path) -> None:
    run = study_run(tmp_path, "small", "allo", 0, total=20000)
    run.advance(200, log_freq=10)
    watcher = FolderWatcher(tmp_path)
    assert len(watcher.poll()) == 1
    assert watcher.poll() == []  # nothing changed: nothing read
    tracker = next(iter(watcher.trackers.values()))
    offset = tracker._tail._offset
    run.advance(100, log_freq=10)
    assert watcher.poll() == [tracker] and tracker._tail._offset > offset and tracker.rows == 30
    run.advance(19_700, log_freq=10)
    watcher.poll()
    x, _ = tracker.get("cos/mean")
    assert tracker.rows == 2000 and len(x) <= 512 + 1 and x[-1] == 20000


# ------------------------------------------------------------------- --once
def test_once_prints_the_table_and_each_configurations_interval(tmp_path: Path,
                                                                 capsys) -> None:
    make_study(tmp_path, seeds=3, layouts=("small",), total=200)
    assert command.main([str(tmp_path), "--once"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"allo runs  {tmp_path}  (6 runs: 6 finished)")
    header = next(line for line in lines if line.startswith("run "))
    for column in ("layout", "objective", "seed", "status", "step", "|cos|", "eig err", "→0.99"):
        assert column in header
    assert sum("finished" in line for line in lines) >= 6
    assert "small allo  [3 runs]" in out and "small ggdo  [3 runs]" in out
    assert "(n=3)" in out and "±" in out and "\x1b[" not in out
    assert summarize_runs(tmp_path) in out


def test_folder_without_runs_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert command.main([str(tmp_path / "empty"), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no runs below it" in err


def test_runs_at_any_depth_and_study_names(tmp_path: Path) -> None:
    from tui.discover import find_run_dirs, study_names

    deep = tmp_path / "studies" / "s1" / "runs" / "a" / "b"
    run = study_run(deep, "small", "allo", 0, total=10)
    (tmp_path / "studies" / "s1" / "study.json").write_text(json.dumps(
        {"format_version": 1, "runs": {"small-allo-0": {"run_dir": str(run.path)}}}))
    assert find_run_dirs(tmp_path) == [run.path]
    assert study_names(tmp_path / "studies" / "s1") == {run.path.resolve(): "small-allo-0"}
    watcher = FolderWatcher(tmp_path / "studies" / "s1")
    watcher.poll()
    assert [t.name for t in watcher.trackers.values()] == ["small-allo-0"]
    assert [r.name for r in sorted_rows(folder_rows(tmp_path), "run")] == ["allo_s0"]
    twin = study_run(tmp_path / "other", "small", "allo", 0, total=10)
    names = sorted(r.name for r in folder_rows(tmp_path))
    assert names == ["other/small/allo_s0", "studies/s1/runs/a/b/small/allo_s0"]
    assert twin.path.exists()


def test_strict_cos_column_only_when_a_run_logs_it(tmp_path: Path) -> None:
    older = study_run(tmp_path, "small", "allo", 0, total=100)  # an older run: no strict
    older.writer.append_metrics({"step": 10, "time": 0.1, "cos/mean": 0.95})
    assert "strict" not in summarize_runs(tmp_path).splitlines()[2]
    run = study_run(tmp_path, "small", "sqp", 0, total=100)
    run.writer.append_metrics({"step": 10, "time": 0.1, "cos/mean": 0.95,
                               "cos_strict/mean": 0.75})
    text = summarize_runs(tmp_path)
    assert "strict" in text.splitlines()[2] and "0.7500" in text
    assert "strict |cos| 0.75 (n=1)" in text


def test_settings_column_leaves_the_layout_to_its_own_column() -> None:
    from tui.runstable import differing_keys

    configs = [{"env_file": "/grids/GridRoom-4.txt", "objective": "allo", "data": "exact"},
               {"env_file": "/grids/GridMaze-7.txt", "objective": "ggdo", "data": "exact"},
               {"env": "room4", "objective": "allo", "data": "sampled"}]
    assert differing_keys(configs) == ["data"]


def test_settings_column_leaves_out_what_follows_from_objective_and_protocol() -> None:
    """Under --protocol paper each objective has its own preset (steps, barrier, learning
    rates): repeating them beside the objective column says nothing. What varies among
    runs of one objective and protocol (here the layout's discount) is still shown, and
    so is the protocol itself."""
    from tui.runstable import differing_keys

    def run(objective: str, protocol: str, gamma: float = 0.9) -> dict:
        steps = {"allo": 50000, "ggdo": 200000}[objective] if protocol == "paper" else None
        return {"objective": objective, "protocol": protocol, "num_gradient_steps": steps,
                "barrier_max": 5000 if objective == "allo" else 3, "gamma": gamma}

    paper = [run("allo", "paper"), run("ggdo", "paper"), run("allo", "paper", 0.99),
             run("ggdo", "paper")]
    assert differing_keys(paper) == ["gamma"]
    both = [run("allo", "paper"), run("allo", "allo"), run("ggdo", "paper"), run("ggdo", "allo")]
    assert differing_keys(both) == ["protocol"]


def strict_runs(folder: Path, lower_by: float) -> None:
    """Three finished runs at |cos| 0.99 whose strict score is `lower_by` lower per run
    (finished: a running one's status could turn "stalled" and widen its column)."""
    for number, (layout, objective) in enumerate((("small", "allo"), ("room4", "ggdo"),
                                                  ("small", "ggdo"))):
        run = study_run(folder, layout, objective, number, total=100)
        run.writer.append_metrics({"step": 10, "time": 0.1, "cos/mean": 0.99,
                                   "cos_strict/mean": 0.99 - lower_by * number})
        run.finish()


@pytest.mark.slow
@pytest.mark.parametrize("lower_by, shown", [(0.1, True), (0.0, False)],
                         ids=["strict-differs", "strict-equals-cos"])
@sync
async def test_a_narrow_table_keeps_strict_only_where_it_differs_from_cos(
        tmp_path: Path, lower_by: float, shown: bool) -> None:
    """The score to compare with the paper outlasts the run name and the seed on a narrow
    screen, unless it repeats |cos| on every run."""
    strict_runs(tmp_path, lower_by)
    app = folder_app(tmp_path)
    async with app.run_test(size=(70, 24)) as pilot:
        screen = runs_screen(app)
        await wait_for(pilot, lambda: len(table_text(screen)) == 3)
        names = [name for name, _ in screen.columns]
        assert ("strict" in names) is shown, names
        assert "run" not in names  # the screen is narrow: something went
