"""Pilot-driven tests of the dashboard against synthetic runs growing on disk."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from allo import rundir
from tui.app import WatchApp, make_app
from tui.gridpaint import painted_size
from tui.widgets.curves import Curves
from tui.widgets.eigenvalues import Eigenvalues
from tui.widgets.eigenvectors import Eigenvectors
from tui.widgets.help import HelpScreen
from tui.widgets.overview import Overview
from tui.widgets.runpicker import RunPicker

try:
    from tests.synthetic import SyntheticRun
except ImportError:  # tests/ itself on sys.path (pytest's default rootdir insertion)
    from synthetic import SyntheticRun

SIZE = (100, 30)


def sync(test):
    """Run an async test on a fresh event loop (no pytest-asyncio in the test extra)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        pilot.app.poll_now()
        await pilot.pause(0.02)
    assert predicate(), "condition not met in time"


def overview_text(app: WatchApp) -> str:
    found = app.query(Overview)  # empty until the screen has composed (a busy machine)
    return found.first().compose_text().plain if found else ""


def loaded(app: WatchApp) -> bool:
    return app.query_one(Eigenvectors).aligned is not None and app.store.latest is not None


def fast_app(path: Path, runs: list[Path] | None = None) -> WatchApp:
    return make_app(path, runs, poll_seconds=0.05)


def finished_run(tmp_path: Path, layout, d: int) -> Path:
    """A 100-step synthetic run with one export, on `layout` (a name or a Layout)."""
    run = SyntheticRun(tmp_path / "run", layout=layout, d=d, total_steps=100)
    run.advance(100, log_freq=10, export_freq=100)
    return run.path


async def shown(pilot, app: WatchApp) -> None:
    """Wait for the first load and the layout pass after it."""
    await wait_for(pilot, lambda: loaded(app))
    await pilot.pause()


@pytest.mark.slow
@sync
async def test_widgets_follow_a_growing_run(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", layout="room4", d=6, total_steps=1000)
    app = fast_app(run.path)
    async with app.run_test(size=SIZE) as pilot:
        # The first frame shows run.json's status; the watcher then brings the rest.
        assert "RUNNING" in overview_text(app) and "step 0/1,000" in overview_text(app)
        # Ground truth shows before any export.
        await wait_for(pilot, lambda: app.query_one(Eigenvectors).truth is not None)

        run.advance(100, log_freq=10, export_freq=100)
        await wait_for(pilot, lambda: app.query_one(Eigenvectors).export_step == 100)
        await wait_for(pilot, lambda: "step 100/1,000" in overview_text(app))
        assert "steps/s" in overview_text(app) and "ETA" in overview_text(app)
        table = app.query_one(Eigenvalues)
        assert table.row_count == 6
        assert "export step 100" in str(app.query_one(Eigenvectors).border_subtitle)
        x, _ = app.store.get("cos/mean")
        assert list(x) == list(range(10, 101, 10))

        run.advance(100, log_freq=10, export_freq=100)
        await wait_for(pilot, lambda: app.query_one(Eigenvectors).export_step == 200)
        assert app.store.get("cos/mean")[0][-1] == 200

        run.finish()
        await wait_for(pilot, lambda: "FINISHED" in overview_text(app))
        await wait_for(pilot, lambda: app.query_one(Eigenvectors).export_step == "final")
        assert "ETA" not in overview_text(app)
        assert app.is_running  # the final state stays on screen until q
        await pilot.press("q")
    assert not app.is_running


@pytest.mark.slow
@sync
async def test_chart_keys_log_smooth_and_focus(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4, total_steps=500)
    run.advance(500, log_freq=10, export_freq=100)
    app = fast_app(run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: loaded(app) and app.query_one(Curves).plot_ready)
        curves = app.query_one(Curves)
        assert curves.chart.key == "cos"
        await pilot.press("2")
        assert curves.chart.key == "loss"
        assert "losses" in str(curves.border_title)
        await pilot.press("l", "s")
        assert curves.log_y and curves.smooth
        assert "log-y EMA" in str(curves.border_subtitle)
        rendered = curves.render().plain
        assert "dual" in rendered and "(≤0 hidden)" in rendered
        await pilot.press("l", "s")
        assert not curves.log_y and not curves.smooth
        assert app.focused is curves
        await pilot.press("right")  # the focused curves panel cycles charts
        assert curves.chart.key == "orth"
        await pilot.press("tab")
        assert isinstance(app.focused, (Eigenvalues, Eigenvectors))
        await pilot.press("shift+tab")
        assert app.focused is curves


@pytest.mark.slow
@sync
async def test_t_switches_between_curves_and_the_whole_table_at_80x24(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=10, total_steps=500)
    run.advance(500, log_freq=10, export_freq=100)
    app = fast_app(run.path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: loaded(app))
        await pilot.pause()
        curves, table = app.query_one(Curves), app.query_one(Eigenvalues)
        assert curves.display and not table.display  # a short screen is not split
        await pilot.press("t")
        await pilot.pause()
        assert table.display and not curves.display
        assert app.focused is table  # focus never stays on a hidden panel
        # every row and every column, the Rayleigh quotient's included, on screen
        assert table.size.height >= 11 and table.max_scroll_y == 0
        assert table.max_scroll_x == 0
        await pilot.press("t")
        await pilot.pause()
        assert curves.display and not table.display
        assert app.focused is curves


@pytest.mark.slow
@sync
async def test_t_steps_through_both_curves_and_table_on_a_tall_screen(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=6, total_steps=200)
    run.advance(200, log_freq=10, export_freq=100)
    app = fast_app(run.path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: loaded(app))
        await pilot.pause()
        curves, table = app.query_one(Curves), app.query_one(Eigenvalues)
        assert curves.display and table.display
        before = curves.size.height
        await pilot.press("t")
        await pilot.pause()
        assert not table.display and curves.size.height > before
        await pilot.press("t")
        await pilot.pause()
        assert table.display and not curves.display
        await pilot.press("t")
        await pilot.pause()
        assert table.display and curves.display and curves.size.height == before


@pytest.mark.slow
@sync
async def test_eigenvector_paging(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", layout="room4", d=8, total_steps=100)
    run.advance(100, log_freq=10, export_freq=100)
    app = fast_app(run.path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: loaded(app))
        await pilot.pause()
        panel = app.query_one(Eigenvectors)
        per_page = panel.per_page
        assert per_page >= 1
        assert "#1 λ 0" in panel.render().plain
        await pilot.press("right_square_bracket")
        assert panel.first == per_page
        assert f"#{per_page + 1} λ" in panel.render().plain
        assert "|cos| 1.000" in panel.render().plain or "|cos| 0.9" in panel.render().plain
        for _ in range(20):
            await pilot.press("right_square_bracket")
        assert panel.first <= 7 and panel.first % per_page == 0
        for _ in range(20):
            await pilot.press("left_square_bracket")
        assert panel.first == 0
        assert "Eigenvectors #1" in str(panel.border_title)


@pytest.mark.slow
@sync
async def test_help_screen_opens_and_closes(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4)
    app = fast_app(run.path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@sync
async def test_stalled_when_heartbeat_is_old(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4)
    run.advance(20, log_freq=10, export_freq=1000)
    run.writer.update_info(heartbeat=time.time() - 600)  # trainer silent for 10 minutes
    app = fast_app(run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "STALLED" in overview_text(app))
        assert "no heartbeat for 10:" in overview_text(app)
        run.writer.update_info(heartbeat=time.time())  # it came back
        await wait_for(pilot, lambda: "RUNNING" in overview_text(app))


@sync
async def test_failed_run_shows_its_message(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4)
    run.advance(20, log_freq=10, export_freq=1000)
    run.writer.update_info(status="failed", message="loss became NaN at step 20")
    app = fast_app(run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "FAILED" in overview_text(app))
        assert "loss became NaN at step 20" in overview_text(app)


@pytest.mark.slow
@sync
async def test_resume_replaces_series(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4, total_steps=1000)
    run.advance(200, log_freq=10, export_freq=1000)
    app = fast_app(run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.store.get("cos/mean")[0]) == 20)
        run.writer.truncate_metrics_after(100)
        await wait_for(pilot, lambda: app.store.get("cos/mean")[0][-1] == 100)
        assert list(app.store.get("cos/mean")[0]) == list(range(10, 101, 10))
        run.step = 100
        run.advance(50, log_freq=10, export_freq=1000)
        await wait_for(pilot, lambda: app.store.get("cos/mean")[0][-1] == 150)
        assert len(app.store.get("cos/mean")[0]) == 15  # no duplicates of the replayed rows


@pytest.mark.slow
@sync
async def test_switch_to_another_run(tmp_path: Path) -> None:
    old = SyntheticRun(tmp_path / "room4" / "a", d=4, total_steps=300)
    old.advance(300, log_freq=10, export_freq=100)
    old.finish()
    new = SyntheticRun(tmp_path / "room4" / "b", d=5, total_steps=300)
    new.advance(100, log_freq=10, export_freq=100)
    runs = rundir.find_runs(tmp_path / "room4")
    assert runs[0].name == "b"
    app = fast_app(runs[0], runs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: loaded(app))
        assert "run b" in overview_text(app)
        await pilot.press("o")
        assert isinstance(app.screen, RunPicker)
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: "FINISHED" in overview_text(app))
        assert "run a" in overview_text(app)
        await wait_for(pilot, lambda: app.query_one(Eigenvectors).export_step == "final")
        assert app.query_one(Eigenvectors).count == 4
        assert app.store.get("cos/mean")[0][-1] == 300


@sync
async def test_render_key_reports_outcome(tmp_path: Path, monkeypatch) -> None:
    import tui.render

    calls: list[Path] = []

    def fake_render(run: Path, fmt: str = "png", timeout: float = 1.0):
        calls.append(run)
        return tui.render.RenderResult(False, "render failed: no renderer named 'png'")

    monkeypatch.setattr(tui.render, "run_render", fake_render)
    run = SyntheticRun(tmp_path / "run", d=4)
    app = fast_app(run.path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: any("render failed" in n.message for n in app.notices))
        notice = app.query_one("#notice")
        assert notice.display and notice.region.y + 1 < app.size.height  # its own row
        for panel in ("#eigenvectors", "#curves", "#overview"):  # covering none of them
            assert not notice.region.overlaps(app.query_one(panel).region)
        assert calls == [run.path]


def test_render_command_uses_the_cli_in_a_child_process(tmp_path: Path) -> None:
    import sys

    from tui.render import render_command

    command = render_command(tmp_path)
    assert command[:3] == [sys.executable, "-m", "allo.cli"]
    assert command[3:] == ["render", str(tmp_path), "--format", "png", "--latest-only", "--quiet"]


@pytest.mark.slow
@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
@sync
async def test_layout_fits_small_and_large_terminals(tmp_path: Path, size) -> None:
    app = fast_app(finished_run(tmp_path, "room4", d=8))
    async with app.run_test(size=size) as pilot:
        await shown(pilot, app)
        curves = app.query_one(Curves)
        panel = app.query_one(Eigenvectors)
        assert curves.content_size.height >= 10
        assert curves.content_size.width >= 40
        assert panel.content_size.width >= panel.pair_width()
        if size[0] >= 160:
            assert panel.per_page >= 4  # a big terminal shows more eigenvectors at once


@pytest.mark.slow
@sync
async def test_export_from_before_a_resume_is_marked(tmp_path: Path) -> None:
    run = SyntheticRun(tmp_path / "run", d=4, total_steps=1000)
    run.advance(400, log_freq=10, export_freq=400)
    run.writer.truncate_metrics_after(200)  # resumed from step 200; export 400 is stale
    run.writer.update_info(step=200)
    app = fast_app(run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: loaded(app))
        await wait_for(
            pilot, lambda: "pre-resume" in str(app.query_one(Eigenvectors).border_subtitle)
        )
        run.step = 200
        run.advance(200, log_freq=10, export_freq=400)  # step 400 reached again: fresh export
        await wait_for(
            pilot, lambda: app.query_one(Eigenvectors).border_subtitle == "export step 400"
        )


@pytest.mark.slow
@sync
async def test_big_layout_stacks_truth_above_learned(tmp_path: Path) -> None:
    from allo.layouts import parse_layout

    text = "\n".join(["X" * 40] + ["X" + " " * 38 + "X"] * 10 + ["X" * 40])
    app = fast_app(finished_run(tmp_path, parse_layout(text, "wide"), d=3))
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot, app)
        panel = app.query_one(Eigenvectors)
        assert panel.stacked()
        lines = [line.rstrip() for line in panel.render().plain.split("\n")]
        assert lines[1] == "truth" and "learned" in lines
        assert max(len(line) for line in lines) <= panel.content_size.width


@pytest.mark.slow
@pytest.mark.parametrize(("size", "stacked"), [((80, 24), False), ((80, 40), True)])
@sync
async def test_a_stack_too_tall_for_the_screen_goes_side_by_side(tmp_path: Path, size,
                                                                 stacked) -> None:
    """A 21x21 layout (rooms16) at 80x24: stacked, the learned picture would be cut off at
    the bottom, so the pair goes side by side and the curves narrow; a taller screen
    keeps the stack and the wider curves."""
    from allo.layouts import parse_layout

    text = "\n".join(["X" * 21] + ["X" + " " * 19 + "X"] * 19 + ["X" * 21])
    app = fast_app(finished_run(tmp_path, parse_layout(text, "square"), d=3))
    async with app.run_test(size=size) as pilot:
        await shown(pilot, app)
        panel = app.query_one(Eigenvectors)
        assert panel.stacked() is stacked
        lines = [line.rstrip() for line in panel.render().plain.split("\n")]
        assert "learned" in lines[1] or "learned" in lines  # a caption of the pair
        # every row of both pictures is on screen: the item fits the panel's height
        _, rows = painted_size(21, 21, panel.color)
        needed = 2 * rows + 4 if stacked else rows + 3
        assert panel.content_size.height >= needed + 1
        assert app.query_one(Curves).content_size.width >= 20


@pytest.mark.slow
@pytest.mark.parametrize(("size", "shrink"), [((80, 24), 2), ((160, 50), 1)])
@sync
async def test_a_layout_too_big_for_the_screen_is_drawn_smaller_not_cut(tmp_path: Path,
                                                                        size, shrink) -> None:
    """A 32x32 room at 80x24 fits neither side by side nor stacked: both pictures are
    drawn at half size (2x2 cells per character), whole; a big screen draws them full."""
    from allo.layouts import parse_layout

    text = "\n".join(["X" * 32] + ["X" + " " * 30 + "X"] * 30 + ["X" * 32])
    app = fast_app(finished_run(tmp_path, parse_layout(text, "open"), d=3))
    async with app.run_test(size=size) as pilot:
        await shown(pilot, app)
        panel = app.query_one(Eigenvectors)
        assert panel.arrangement()[1] == shrink
        lines = panel.render().plain.split("\n")
        assert ("1/2 size" in lines[0]) is (shrink == 2)
        cols, rows = painted_size(32, 32, panel.color, shrink)
        pictures = [line for line in lines if "▀" in line]
        assert len(pictures) >= rows  # the learned picture's rows are all there
        stacked = panel.stacked()
        needed = 2 * rows + 4 if stacked else rows + 3
        assert panel.content_size.height >= needed + 1
        assert max(len(line.rstrip()) for line in lines) <= panel.content_size.width
        if not stacked:  # side by side: both pictures on each picture row
            assert all(line.count("▀") == 2 * cols for line in pictures)
