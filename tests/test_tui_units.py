"""Pure pieces of `allo watch`: bounded series, downsampling, ticks, painting, status."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from renderers import colors, shrink
from tui import chart, gridpaint, runinfo
from tui.series import BoundedSeries, MetricStore, ema, minmax_downsample, rows_to_columns


# --------------------------------------------------------------------------- series
def test_bounded_series_never_exceeds_capacity_and_keeps_newest() -> None:
    series = BoundedSeries(capacity=64)
    for step in range(10_000):
        series.append(step, float(step))
        assert len(series) <= 64
    steps, values = series.arrays()
    assert len(steps) <= 65
    assert steps[-1] == 9_999  # the newest row is always shown
    assert steps[0] == 0  # the start of the run is still covered
    assert series.last() == (9_999, 9_999.0)
    assert np.all(np.diff(steps) > 0)
    np.testing.assert_array_equal(steps, values)


def test_bounded_series_even_spacing_after_compaction() -> None:
    series = BoundedSeries(capacity=8)
    for step in range(32):
        series.append(step, 0.0)
    steps, _ = series.arrays()
    assert len(set(np.diff(steps[:-1]))) == 1  # one stride everywhere but the newest row
    assert steps[-1] == 31


def test_metric_store_columns_skip_missing_values() -> None:
    rows = [{"step": 1, "a": 1.0}, {"step": 2, "b": 5.0}, {"step": 3, "a": None, "flag": True}]
    steps, columns = rows_to_columns(rows)
    assert list(steps) == [1, 2, 3]
    assert set(columns) == {"a", "b"}  # booleans are not metrics
    store = MetricStore()
    store.add_rows(rows)
    x, y = store.get("a")
    assert list(x) == [1] and list(y) == [1.0]
    assert store.latest == rows[-1]
    assert store.get("missing")[0].size == 0


def test_minmax_downsample_keeps_spike() -> None:
    x = np.arange(10_000, dtype=float)
    y = np.zeros_like(x)
    y[7_777] = 50.0
    dx, dy = minmax_downsample(x, y, 100)
    assert len(dx) <= 100
    assert 50.0 in dy and 7_777 in dx
    assert np.all(np.diff(dx) > 0)


def test_ema_is_debiased_and_smooth() -> None:
    values = np.array([10.0, 10.0, 10.0])
    np.testing.assert_allclose(ema(values), values)  # no pull towards 0 at the start
    noisy = np.tile([0.0, 1.0], 200)
    assert ema(noisy)[-1] == pytest.approx(0.5, abs=0.1)


# --------------------------------------------------------------------------- chart helpers
def test_y_ticks_come_from_the_shared_tick_module_in_original_units() -> None:
    positions, labels = chart.y_ticks(-4.2, 0.3, log=True, rows=12)
    assert labels[0] == "1e-4" and labels[-1] == "1"
    assert all(float(p).is_integer() for p in positions)
    # under two decades: 1-2-5 ticks (renderers.ticks.log_ticks), in original units
    positions, labels = chart.y_ticks(math.log10(0.15), math.log10(0.9), log=True, rows=12)
    assert labels == ["0.2", "0.5"]
    # linear: enough ticks to read a value, never more than one every other row
    positions, labels = chart.y_ticks(0.9, 1.0, log=False, rows=10)
    assert len(positions) >= 3 and labels[-1] == "1"
    assert len(chart.y_ticks(0.0, 100.0, log=False, rows=3)[0]) <= 2
    # 0.25 / 0.5 / 0.75 are the roundest ticks of this range; three labels in a three-row
    # panel overprinted each other ("00.5")
    assert len(chart.y_ticks(0.22, 0.96, log=False, rows=3)[0]) <= 2


def test_nice_ticks_and_labels() -> None:
    ticks, labels = chart.x_labels(0, 2000, 48, time_axis=False)
    assert ticks == [0, 500, 1000, 1500, 2000] and labels[-1] == "2000"
    assert chart.x_labels(0, 150, 48, time_axis=True)[1][-1] == "2:30"
    assert chart.step_label(25_000) == "25k" and chart.step_label(1_500_000) == "1.5M"
    assert chart.format_number(7.8e-16) == "0"
    assert chart.format_number(0.05213) == "0.0521"
    assert chart.format_number(6.9e-4) == "6.9e-4"
    assert chart.format_number(-1.3e-4) == "-1.3e-4"  # 7 characters: fits the table
    assert chart.format_number(2.5e7) == "2.5e7"
    fractions = (0.004, 0.123, 0.9996, 2.5, 9.996, 54.76, 999.6, 1e4, None)
    percents = [chart.format_percent(f) for f in fractions]
    assert percents == ["0.4%", "12.3%", "100%", "250%", "10x", "55x", ">999x", ">999x", "—"]
    assert all(len(p) <= 5 for p in percents)  # the table's "rel" column
    assert chart.format_number(None) == "—"


def _plain(text) -> str:
    console = Console(width=200, color_system=None, force_terminal=False)
    with console.capture() as capture:
        console.print(text)
    return capture.get()


def test_render_chart_log_y_hides_nonpositive_and_labels_decades() -> None:
    store = MetricStore()
    steps = np.arange(10, 1010, 10)
    store.add_columns(
        steps,
        {
            "loss/total": np.exp(-steps / 100.0),
            "loss/dual": -np.ones(len(steps)),
            "loss/graph": np.ones(len(steps)),
            "loss/barrier": np.full(len(steps), 0.5),
        },
    )
    text = chart.render_chart(store, chart.chart_by_key("loss"), 60, 26, log_y=True, color=False)
    out = _plain(text)
    assert "dual (log)  -1.0000 (≤0 hidden)" in out
    assert "1e-4" in out  # exp(-10) ~ 4.5e-5: the axis reaches 1e-4
    assert "1000" in out  # x axis reaches the last step
    assert len(out.splitlines()) <= 26
    # too short for four panels: the ones left out are named
    out = _plain(chart.render_chart(store, chart.chart_by_key("loss"), 60, 14, color=False))
    assert "+ dual, barrier" in out and len(out.splitlines()) <= 14


def _store(**columns) -> MetricStore:
    store = MetricStore()
    steps = np.arange(10, 1010, 10)
    store.add_columns(steps, {k: v(steps) for k, v in columns.items()})
    return store


def test_convergence_panel_shows_one_minus_cos_on_a_log_axis() -> None:
    """0.99 and 0.9995 must not look the same: 1 - mean |cos| spans decades."""
    store = _store(**{"cos/mean": lambda s: 1.0 - 0.5 * np.exp(-s / 100.0),
                      "time": lambda s: s / 100.0})
    out = _plain(chart.render_chart(store, chart.chart_by_key("cos"), 60, 24, color=False))
    assert "1 − mean |cos| (log)" in out and "mean |cos|" in out
    assert "1e-4" in out and "0.01" in out  # 5e-5 at the end: decades are labelled
    assert "strict" not in out  # no cos_strict column: no panel


def test_cos_strict_gets_its_panel_when_present() -> None:
    store = _store(**{"cos/mean": lambda s: 0.99 + 0 * s,
                      "cos_strict/mean": lambda s: 0.9 + 0 * s})
    out = _plain(chart.render_chart(store, chart.chart_by_key("cos"), 60, 30, color=False))
    assert "1 − strict |cos|" in out and "0.1000" in out


def test_each_metric_has_its_own_scale() -> None:
    """A barrier coefficient of 3 does not share an axis with a gradient norm of 80."""
    store = _store(**{"grad/norm": lambda s: 80.0 + 0 * s, "barrier/coef": lambda s: s / 333.0})
    panels = chart.store_panels(store, chart.chart_by_key("grad"), chart.View())
    assert [len(p.lines) for p in panels] == [1, 1]
    out = _plain(chart.render_chart(store, chart.chart_by_key("grad"), 60, 24, color=False))
    assert "barrier b" in out and "grad norm" in out and "80.00" in out


def test_y_range_follows_the_visible_x_range() -> None:
    store = _store(**{"loss/total": lambda s: np.where(s < 100, 1000.0, 1.0 + s / 1e4)})
    view = chart.View(x_window=(0.5, 1.0))
    panel = chart.store_panels(store, chart.chart_by_key("loss"), view)[0]
    x_range = chart.visible_range(chart.x_extent([panel]), view.x_window)
    drawn = chart.prepare(panel.lines[0], False, view, x_range, 60)
    lo, hi = chart.y_limits([drawn], False)
    assert hi < 2.0  # the early 1000s are outside the window
    assert drawn.x.min() >= 505


def test_cursor_reads_each_line_at_the_same_x() -> None:
    store = _store(**{"loss/total": lambda s: s * 2.0})
    view = chart.View(cursor=0.5)
    panel = chart.store_panels(store, chart.chart_by_key("loss"), view)[0]
    drawn = chart.prepare(panel.lines[0], False, view, (10.0, 1000.0), 60)
    assert drawn.at_cursor == pytest.approx(1010.0)


def test_time_axis_maps_steps_to_training_time() -> None:
    store = _store(**{"loss/total": lambda s: s * 1.0, "time": lambda s: s / 50.0})
    view = chart.View(time_axis=True)
    line = chart.store_panels(store, chart.chart_by_key("loss"), view)[0].lines[0]
    assert line.x[-1] == pytest.approx(20.0)


def test_view_state_keys() -> None:
    from tui.viewstate import ViewState

    state = ViewState()
    state.cycle_last()
    assert state.view.x_window == (0.5, 1.0) and "last 50%" in state.flags()
    state.cycle_last()
    state.cycle_last()
    assert state.view.x_window == pytest.approx((0.95, 1.0))
    state.cycle_last()
    assert state.view.x_window == (0.0, 1.0)
    state.zoom(0.5)
    assert state.view.x_window == (0.5, 1.0)  # pinned to the newest data
    state.pan(-1)
    assert state.view.x_window == (0.375, 0.875) and "38%–88%" in state.flags()
    state.zoom(0.5)
    assert state.view.x_window == pytest.approx((0.5, 0.75))
    for _ in range(20):
        state.pan(1)
    assert state.view.x_window == pytest.approx((0.75, 1.0))
    state.reset_range()
    state.toggle_cursor()
    state.move_cursor(-1)
    assert state.view.cursor == pytest.approx(0.98)
    state.toggle_axis()
    assert "x=time" in state.flags() and "cursor" in state.flags()
    before = state.version
    state.toggle_log()
    assert state.version == before + 1


def test_render_chart_waits_without_data() -> None:
    out = _plain(chart.render_chart(MetricStore(), chart.CHARTS[0], 60, 16))
    assert "waiting for metrics" in out


# --------------------------------------------------------------------------- painting
def test_paint_half_blocks_walls_and_signs() -> None:
    grid = np.array([[np.nan, 1.0, -1.0], [0.0, np.nan, 0.5], [1.0, 1.0, 1.0]])
    text = gridpaint.paint(grid)
    lines = text.plain.split("\n")
    assert lines == ["▀▀▀", "▀▀▀"]  # 3 rows of cells -> 2 text rows
    styles = {span.start: span.style for span in text.spans}
    wall = styles[0]
    assert wall.color.triplet == colors.WALL  # upper cell is a wall
    assert styles[1].color.triplet == tuple(colors.diverging(np.array(1.0), 1.0))
    assert styles[2].color.triplet == tuple(colors.diverging(np.array(-1.0), 1.0))
    assert gridpaint.painted_size(13, 13) == (13, 7)


def test_shrunk_grids_average_free_cells_and_keep_mostly_wall_blocks_as_walls() -> None:
    nan = np.nan
    grid = np.array([[nan, nan, 1.0, 3.0, 5.0],
                     [2.0, 4.0, nan, 5.0, nan],
                     [nan, nan, nan, 7.0, 9.0]])
    small = gridpaint.shrunk(grid, 2)
    assert small.shape == (2, 3)
    # half free counts as free: the mean of the free cells
    assert small[0, 0] == 3.0 and small[0, 1] == 3.0
    # the right column is half outside the layout: its 2 real cells, one of them free
    assert small[0, 2] == 5.0
    # one free cell of two real ones; a block of walls stays a wall
    assert small[1, 1] == 7.0 and np.isnan(small[1, 0])
    assert gridpaint.shrunk(grid, 1) is grid
    assert gridpaint.painted_size(32, 32, shrink=2) == (16, 8)
    assert gridpaint.painted_size(21, 21, shrink=3) == (7, 4)


def test_shrunk_rooms_keep_their_one_cell_walls_and_doors() -> None:
    """Four rooms with one-cell walls, 4x smaller: each wall is 1 cell of a 4-cell block
    (a quarter), which the majority rule alone drew as free."""
    grid = np.zeros((41, 41))
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = np.nan
    grid[21, :] = np.nan  # on a block's first row
    grid[:, 18] = np.nan  # inside a block
    grid[21, 9] = grid[30, 18] = 0.0  # doors
    small = gridpaint.shrunk(grid, 4)
    walls = np.isnan(small)
    assert walls[5, [0, 1, 3, 5, 7, 8, 9, 10]].all() and not walls[5, 2]  # door at column 9
    assert walls[[1, 2, 3, 6, 8], 4].all() and not walls[7, 4]  # door at row 30
    assert not walls[0, 1:4].any() and not walls[1:4, 0].any()  # the outer wall: no edge
    # a maze (walls 44% of the grid) keeps the majority rule: its walls cross most
    # blocks, and its half-free blocks stay free
    maze = np.zeros((40, 40))
    maze[::2, :] = np.nan
    maze[:, ::8] = 0.0
    assert np.isnan(maze).mean() > shrink.ROOMY
    assert np.isfinite(gridpaint.shrunk(maze, 4)).all()


def test_paint_monochrome_uses_signed_glyphs() -> None:
    grid = np.array([[np.nan, 1.0, -1.0, 0.0]])
    assert gridpaint.paint(grid, color=False).plain == "░#=·"


# --------------------------------------------------------------------------- status
def _info(**overrides) -> dict:
    info = {
        "status": "running",
        "step": 500,
        "total_steps": 1000,
        "heartbeat": 1_000.0,
        "elapsed": 50.0,
        "started": 900.0,
        "message": None,
    }
    info.update(overrides)
    return info


def test_status_running_eta_from_steps_per_second() -> None:
    state = runinfo.run_status(_info(), {"step": 500, "sps": 100.0, "time": 49.0}, now=1_010.0)
    assert state.status == "running"
    assert state.eta_seconds == pytest.approx(5.0)
    assert state.elapsed_seconds == 50.0
    assert state.fraction == 0.5


def test_status_stalled_when_heartbeat_stops() -> None:
    state = runinfo.run_status(_info(), {"step": 500, "sps": 100.0}, now=1_000.0 + 121)
    assert state.status == "stalled"
    assert state.eta_seconds is None
    assert "no heartbeat for 2:01" in runinfo.status_note(state)


def test_status_finished_and_failed_do_not_depend_on_clock() -> None:
    done = _info(status="finished", step=1000)
    a = runinfo.run_status(done, {"step": 1000, "sps": 9.0}, now=1e9)
    b = runinfo.run_status(done, {"step": 1000, "sps": 9.0}, now=2e9)
    assert a == b and a.eta_seconds is None
    failed = runinfo.run_status(_info(status="failed", message="CUDA out of memory"), None, 0)
    assert runinfo.status_note(failed) == "CUDA out of memory"


def test_duration_and_config_items() -> None:
    assert runinfo.duration(3_909) == "1:05:09"
    assert runinfo.duration(247) == "4:07"
    assert runinfo.duration(None) == "—"
    items = runinfo.config_items(
        {
            "objective": "allo",
            "d": 8,
            "config": {"learning_rate": 0.001, "batch_size": 256, "lr_duals": 0.1,
                       "unrelated": 7},
        }
    )
    assert ("", "allo") in items and ("lr", "0.001") in items and ("batch", "256") in items
    assert ("dual lr", "0.1") in items
    assert all(value != "7" for _, value in items)  # only the highlighted fields
    # the default batch (null) is the exact expectation over the whole data set
    exact = runinfo.config_items({"config": {"batch_size": None, "lr_duals": None}})
    assert exact == [("batch", "all data")]


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(min_value=4, max_value=40),
    chunks=st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=8),
)
def test_vectorised_extend_equals_appending_one_by_one(capacity: int, chunks: list[int]) -> None:
    one, many = BoundedSeries(capacity), BoundedSeries(capacity)
    start = 0
    for size in chunks:
        steps = np.arange(start, start + size)
        start += size
        for step in steps:
            one.append(int(step), step * 0.5)
        many.extend(steps, steps * 0.5)
        np.testing.assert_array_equal(one.arrays()[0], many.arrays()[0])
        assert one.stride == many.stride and one.last() == many.last()
        assert len(many) <= capacity


def test_rundir_imports_no_numpy_for_the_first_frame() -> None:
    """The dashboard reads run.json through allo.rundir before numpy loads."""
    import subprocess
    import sys

    code = "import sys, allo.rundir, tui.command; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr




def test_eigenvalue_row_shows_both_estimates_and_the_duals_error():
    import numpy as np

    from tui.chart import format_number
    from tui.widgets.eigenvalues import COLUMNS, Eigenvalues

    table = Eigenvalues()
    table.truth = np.array([0.0, 0.5])
    table.latest = {"eig/estimate": [0.0, 0.55], "eig/rayleigh": [0.0, 0.4999],
                    "cos/per_vector": [1.0, 0.9]}
    cells = dict(zip(COLUMNS, (cell.plain for cell in table.row_cells(1)), strict=True))
    assert cells["est. λ"] == format_number(0.55)
    assert cells["vec. λ"] == format_number(0.4999)
    assert cells["rel"] == "10.0%"  # of the duals' estimate
    assert cells["|cos|"] == "0.900"
    # a row written before Rayleigh quotients were logged: a dash, not a crash
    table.latest = {"eig/estimate": [0.0, 0.55]}
    assert table.row_cells(1)[COLUMNS.index("vec. λ")].plain == format_number(None)


def test_rate_is_the_trainers_windowed_rate() -> None:
    from allo.rate import RATE_WINDOW_SECONDS, RateWindow, eta_seconds, rate_of_rows

    # 100 steps/s for a minute, then 50 steps/s: the window follows the change
    rows = [{"step": 10 * i, "time": i / 10} for i in range(601)]
    rows += [{"step": 6000 + 10 * i, "time": 60 + i / 5} for i in range(1, 301)]
    assert rate_of_rows(rows) == pytest.approx(50.0, rel=0.02)
    assert rate_of_rows(rows[:601]) == pytest.approx(100.0)
    # one slow interval (an export) barely moves it, unlike the last row's sps
    bumpy = rows[:600] + [{"step": 6000, "time": 61.0}]
    assert rate_of_rows(bumpy) > 90
    window = RateWindow()
    window.extend((r["time"], r["step"]) for r in rows)
    span = window.points[-1][0] - window.points[0][0]
    assert RATE_WINDOW_SECONDS <= span < RATE_WINDOW_SECONDS + 1
    window.add(1.0, 10)  # a resume starts over
    assert window.rate() is None
    assert eta_seconds(50.0, 9000, 10000) == 20.0 and eta_seconds(None, 1, 2) is None


def test_trainer_line_and_watch_show_the_same_rate() -> None:
    from allo.progress import TrainProgress
    from allo.rate import rate_of_rows

    rows = [{"step": 10 * i, "time": i / 7, "cos/mean": 0.5} for i in range(1, 400)]
    bar = TrainProgress(10_000)
    for row in rows:
        bar.update(row["step"], 10_000, row)
    shown = bar.progress.tasks[0].fields["sps"]
    assert shown == f"{rate_of_rows(rows):.0f}" == "70"
    state = runinfo.run_status(_info(total_steps=10_000, step=3990), rows[-1], now=1_000.0,
                               rate=rate_of_rows(rows))
    assert f"{state.sps:.0f}" == shown
