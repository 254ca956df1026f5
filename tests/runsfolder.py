"""A folder of synthetic runs like a small study: layouts x objectives x seeds."""

from __future__ import annotations

import json
import time
from pathlib import Path

try:
    from tests.synthetic import SyntheticRun
except ImportError:  # tests/ itself on sys.path
    from synthetic import SyntheticRun


def study_run(folder: Path, layout: str, objective: str, seed: int, total: int = 400,
              fixed_time: float | None = None) -> SyntheticRun:
    """A synthetic run whose run.json names its objective and seed in the config."""
    path = folder / layout / f"{objective}_s{seed}"
    run = SyntheticRun(path, layout=layout, d=4, total_steps=total, seed=seed)
    info = json.loads((path / "run.json").read_text())
    info["objective"] = objective
    info["seed"] = seed
    info["config"].update(objective=objective, seed=seed, learning_rate=0.001)
    if fixed_time is not None:
        info.update(started=fixed_time, heartbeat=fixed_time)
    run.writer.write_info(info)
    return run


def make_study(folder: Path, seeds: int = 2, total: int = 400, layouts=("small", "room4"),
               objectives=("allo", "ggdo"), finish: bool = True) -> list[SyntheticRun]:
    runs = []
    for layout in layouts:
        for objective in objectives:
            for seed in range(seeds):
                run = study_run(folder, layout, objective, seed, total)
                run.advance(total, log_freq=10, export_freq=total)
                if finish:
                    run.finish()
                runs.append(run)
    return runs


def freeze(run_dir: Path, when: float) -> None:
    """Fixed start, heartbeat and end times, for snapshots."""
    path = run_dir / "run.json"
    info = json.loads(path.read_text())
    info.update(started=when, heartbeat=when + 4.0, finished=when + 4.0, elapsed=4.0)
    path.write_text(json.dumps(info, indent=2) + "\n")


__all__ = ["freeze", "make_study", "study_run", "time"]
