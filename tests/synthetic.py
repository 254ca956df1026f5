"""Synthetic run directories for renderer, TUI and reader tests (no torch needed).

Ground truth is exact (allo.spectrum); "learned" vectors are the truth with a random
rotation and noise that shrink with the step, so figures look like a real run's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from conftest import SMALL_LAYOUT

from allo import rundir
from allo.layouts import Layout, load_builtin, parse_layout
from allo.metrics import eigenspace_blocks, quality_row
from allo.spectrum import CONVENTION, ground_truth

SMALL = SMALL_LAYOUT


def make_info(layout: Layout, d: int, total_steps: int, status: str = "running") -> dict:
    now = time.time()
    return {
        "name": "synthetic",
        "status": status,
        "message": None,
        "step": 0,
        "total_steps": total_steps,
        "started": now,
        "heartbeat": now,
        "finished": None,
        "elapsed": 0.0,
        "device": "cpu",
        "versions": {"allo": "test"},
        "config": {"env": layout.name, "num_eigenvectors": d, "seed": 0, "gamma": 0.9},
        "d": d,
        "gamma": 0.9,
        "objective": "allo",
        "seed": 0,
        "eigenvalue_convention": CONVENTION,
        "env": layout.record(),
        "ground_truth": {"blocks": [], "eigenvalues_next": None},
        "resumes": [],
    }


class SyntheticRun:
    """Grows a run directory step by step, like a trainer would."""

    def __init__(
        self,
        path: Path,
        layout: Layout | str = "small",
        d: int = 4,
        total_steps: int = 1000,
        seed: int = 0,
    ):
        if isinstance(layout, str):
            layout = parse_layout(SMALL, "small") if layout == "small" else load_builtin(layout)
        self.layout = layout
        self.d = d
        self.total_steps = total_steps
        self.rng = np.random.default_rng(seed)
        truth = ground_truth(layout, gamma=0.9, num_steps=200, max_len=200)
        self.values, self.vectors = truth.top(d)
        self.writer = rundir.RunWriter(path)
        self.path = Path(path)
        info = make_info(layout, d, total_steps)
        info["ground_truth"]["blocks"] = [
            [b.start, b.stop] for b in eigenspace_blocks(truth.eigenvalues[: d + 1]) if b.start < d
        ]
        self.writer.write_info(info)
        self.writer.write_ground_truth(self.values, self.vectors)
        self.step = 0

    def learned(self, step: int) -> np.ndarray:
        progress = step / max(1, self.total_steps)
        noise = self.rng.normal(size=self.vectors.shape) * (1.0 - progress) * 0.5
        signs = self.rng.choice([-1.0, 1.0], size=self.d)
        return (self.vectors + noise) * signs

    def log(self, step: int) -> dict:
        learned = self.learned(step)
        estimate = self.values + self.rng.normal(size=self.d) * 0.1 / (1 + step / 100)
        decay = np.exp(-step / 300)
        row = {
            "step": step,
            "time": step / 100.0,
            "sps": 100.0,
            "loss/total": float(1.0 + decay),
            "loss/graph": float(0.5 + decay),
            "loss/dual": float(-0.1 * decay),
            "loss/barrier": float(0.01 * decay),
            "orth/error": float(decay),
            "grad/norm": float(0.1 + decay),
            "barrier/coef": float(min(1.0, 0.5 + step / 1000)),
            "dual/diag": (-2 * estimate).tolist(),
            **quality_row(learned, estimate, self.vectors, self.values, self.d),
        }
        self.writer.append_metrics(row)
        self.writer.update_info(step=step, heartbeat=time.time())
        return row

    def export(self, step: int) -> None:
        self.writer.export_learned(step, self.learned(step))
        self.writer.write_metrics_history()

    def advance(self, steps: int, log_freq: int = 10, export_freq: int = 100) -> None:
        for _ in range(steps):
            self.step += 1
            if self.step % log_freq == 0:
                self.log(self.step)
            if self.step % export_freq == 0:
                self.export(self.step)

    def finish(self) -> None:
        self.writer.export_final(self.learned(self.total_steps))
        self.writer.write_metrics_history()
        self.writer.update_info(status="finished", finished=time.time(), step=self.step)
        self.writer.close()


def make_run(
    path: Path,
    layout: Layout | str = "small",
    d: int = 4,
    total_steps: int = 1000,
    exports: int = 5,
    finished: bool = True,
) -> Path:
    """A complete synthetic run with `exports` evenly spaced exports."""
    run = SyntheticRun(path, layout=layout, d=d, total_steps=total_steps)
    export_freq = max(1, total_steps // max(1, exports))
    run.advance(total_steps, log_freq=max(1, total_steps // 100), export_freq=export_freq)
    if finished:
        run.finish()
    else:
        run.writer.close()
    return Path(path)
