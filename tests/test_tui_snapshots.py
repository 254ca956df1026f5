"""Snapshots of the main screen against a frozen run committed in tests/fixtures/.

Review before accepting: `pytest tests/test_tui_snapshots.py --snapshot-update`, then
open the SVGs in tests/__snapshots__/. Regenerate the fixture with
`python tests/test_tui_snapshots.py` (deterministic: fixed seed, fixed clock).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from tui.app import make_app
from tui.widgets.curves import Curves
from tui.widgets.eigenvectors import Eigenvectors

FIXTURE = Path(__file__).parent / "fixtures" / "watch_run"
FIXED_START = 1_700_000_000.0


def build_fixture(path: Path = FIXTURE) -> Path:
    """A small finished room4 run whose every number and time is fixed."""
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic import SyntheticRun

    shutil.rmtree(path, ignore_errors=True)
    run = SyntheticRun(path, layout="room4", d=6, total_steps=2000, seed=0)
    run.advance(2000, log_freq=40, export_freq=1000)
    run.finish()
    info = json.loads((path / "run.json").read_text())
    info.update(
        name=path.name,
        started=FIXED_START,
        heartbeat=FIXED_START + 20.0,
        finished=FIXED_START + 20.0,
        elapsed=20.0,
        device="cpu",
        config={**info["config"], "lr": 0.001, "batch_size": 256},
    )
    (path / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    return path


def run_before_loaded(timeout: float = 10.0):
    async def wait(pilot) -> None:
        app = pilot.app
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            curves = app.query_one(Curves)
            if (
                curves.plot_ready
                and app.store.latest is not None
                and app.query_one(Eigenvectors).export_step == "final"
                and app.query_one("#overview").info is not None
            ):
                break
            app.poll_now()
            await pilot.pause(0.05)
        await pilot.pause(0.2)

    return wait


class TestMainScreen:
    @pytest.mark.slow
    def test_100x30(self, snap_compare) -> None:
        app = make_app(FIXTURE, poll_seconds=0.05)
        assert snap_compare(app, terminal_size=(100, 30), run_before=run_before_loaded())

    def test_80x24(self, snap_compare) -> None:
        app = make_app(FIXTURE, poll_seconds=0.05)
        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before_loaded())

    @pytest.mark.slow
    def test_100x30_losses_log_smoothed(self, snap_compare) -> None:
        app = make_app(FIXTURE, poll_seconds=0.05)

        async def before(pilot) -> None:
            await run_before_loaded()(pilot)
            await pilot.press("2", "l", "s", "right_square_bracket")
            await pilot.pause(0.1)

        assert snap_compare(app, terminal_size=(100, 30), run_before=before)


if __name__ == "__main__":
    print(build_fixture())


def runs_fixture(root: Path) -> Path:
    """2 layouts x 2 objectives x 2 seeds, finished, every time fixed; returns the
    folder relative to `root` (the snapshot's heading names it)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from runsfolder import freeze, make_study

    folder = root / "study"
    for run in make_study(folder, seeds=2, total=300):
        freeze(run.path, FIXED_START)
    return Path("study")


def runs_ready(select: str = "", timeout: float = 15.0):
    async def wait(pilot) -> None:
        from tui.widgets.runs import RunsScreen

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            screen = pilot.app.screen
            if isinstance(screen, RunsScreen) and len(screen.order) == 8:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        if select:
            await pilot.press(*select)
        await pilot.pause(0.3)

    return wait


class TestRunsScreen:
    def app(self, tmp_path: Path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        folder = runs_fixture(tmp_path)
        runs = sorted(p.parent for p in folder.rglob("run.json"))
        return make_app(runs[0], runs, poll_seconds=0.05, folder=folder)

    @pytest.mark.slow
    def test_table_100x30(self, snap_compare, tmp_path, monkeypatch) -> None:
        app = self.app(tmp_path, monkeypatch)
        assert snap_compare(app, terminal_size=(100, 30), run_before=runs_ready())

    @pytest.mark.slow
    def test_overlay_100x30(self, snap_compare, tmp_path, monkeypatch) -> None:
        app = self.app(tmp_path, monkeypatch)
        keys = ["space", "space", "down", "down", "space", "space"]
        assert snap_compare(app, terminal_size=(100, 30), run_before=runs_ready(keys))

    @pytest.mark.slow
    def test_groups_80x24(self, snap_compare, tmp_path, monkeypatch) -> None:
        app = self.app(tmp_path, monkeypatch)
        assert snap_compare(app, terminal_size=(80, 24), run_before=runs_ready(["a", "g"]))

    @pytest.mark.slow
    def test_table_80x24(self, snap_compare, tmp_path, monkeypatch) -> None:
        app = self.app(tmp_path, monkeypatch)
        assert snap_compare(app, terminal_size=(80, 24), run_before=runs_ready(["v"]))
