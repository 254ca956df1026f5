"""Messages the run watcher (a thread) posts to the app.

`post_message` is the one thread-safe way into the UI, so everything the watcher
learns travels as one of these; heavy work (parsing, alignment) is already done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:  # numpy stays off the first-paint path (tui.app imports this module)
    import numpy as np

    from allo.rundir import EnvInfo, RunInfo


@dataclass
class MetricsArrived(Message):
    """New metrics rows as columns; `reset` means earlier rows were replaced (resume)."""

    steps: np.ndarray
    columns: dict[str, np.ndarray]
    latest: Mapping[str, Any] | None
    reset: bool = False
    run: Path | None = None


@dataclass
class InfoChanged(Message):
    """run.json was rewritten (status, step, heartbeat...)."""

    info: RunInfo
    run: Path | None = None


@dataclass
class GroundTruthLoaded(Message):
    """Ground truth and the layout, once both files exist."""

    env: EnvInfo
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    run: Path | None = None


@dataclass
class ExportLanded(Message):
    """A learned export, already sign-aligned/rotated onto the ground truth."""

    step: int | str  # an int, or "final"
    aligned: np.ndarray  # (N, d)
    cosines: np.ndarray  # (d,)
    run: Path | None = None


@dataclass
class WatchProblem(Message):
    """Something the user should know about, phrased as one line."""

    text: str
    run: Path | None = None
    extra: dict = field(default_factory=dict)
