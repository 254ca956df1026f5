"""Format-neutral figure descriptions, built from a run directory (numpy only).

Every renderer draws the same `GridFigure` / `CurveFigure`, so the science (alignment,
cosines, which eigenvalue estimate belongs to which export) lives here once and the
plugins only draw. Builders raise `NotYet` when the run has not written what a figure
needs, and `RunDirError` (naming the file) when a file is corrupt.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from allo import rundir
from allo.metrics import align_to_truth, cosine_similarities

Cell = tuple[int, int]

# Human names of the eigenvalue conventions a run.json may state.
CONVENTIONS = {
    "laplacian_I_minus_T": "eigenvalues of L = I - T",
}
# Loss terms on the learning-curves figure: (key, label).
LOSS_KEYS = (
    ("loss/total", "total"),
    ("loss/graph", "graph drawing"),
    ("loss/dual", "dual"),
    ("loss/barrier", "barrier"),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class NotYet(Exception):
    """The run has not (yet) written what this figure needs; the message says what."""


def clean(text: object, limit: int = 80) -> str:
    """Text from run.json made safe to print or draw: no control characters, bounded."""
    text = _CONTROL.sub("", str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class GridPanel:
    values: np.ndarray  # (H, W), NaN on walls
    title: str


@dataclass
class GridFigure:
    kind: str
    title: str
    subtitle: str
    panels: list[GridPanel]
    ncols: int
    walls: np.ndarray  # (H, W) bool
    vmax: float
    doors: list[tuple[Cell, Cell]] = field(default_factory=list)
    start: Cell | None = None
    goals: list[Cell] = field(default_factory=list)
    row_labels: list[str] = field(default_factory=list)  # one per panel row, or none

    @property
    def nrows(self) -> int:
        return math.ceil(len(self.panels) / self.ncols)


@dataclass
class Line:
    label: str
    steps: np.ndarray
    values: np.ndarray
    color: int  # index into colors.PALETTE
    dashed: bool = False
    bold: bool = False
    band: tuple[np.ndarray, np.ndarray] | None = None  # (low, high) at `steps`


@dataclass
class CurvePanel:
    title: str
    lines: list[Line]
    ylabel: str = ""
    xlabel: str = "gradient step"
    log_y: bool = False
    ylim: tuple[float, float] | None = None
    legend: str = "upper right"  # matplotlib-style location; renderers may approximate


@dataclass
class CurveFigure:
    kind: str
    title: str
    subtitle: str
    panels: list[CurvePanel]
    ncols: int = 1

    @property
    def nrows(self) -> int:
        return math.ceil(len(self.panels) / self.ncols)


# --------------------------------------------------------------------------- run data


class RunData:
    """What the builders read from one run, each file loaded at most once."""

    def __init__(self, reader: rundir.RunReader):
        self.reader = reader
        self._cache: dict[str, object] = {}

    def _once(self, key: str, load):
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def info(self) -> dict:
        return self._once("info", self.reader.info)

    def env(self) -> rundir.EnvInfo:
        return self._once("env", lambda: rundir.parse_env(self.info()))

    def label(self) -> str:
        info = self.info()
        name = clean(info.get("name") or self.reader.path.name, 60)
        return f"{name} · {clean(self.env().name, 30)}"

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray]:
        def load():
            for name in (rundir.GT_EIGENVALUES, rundir.GT_EIGENVECTORS):
                if not (self.reader.path / name).exists():
                    raise NotYet(f"{name} not written yet")
            values, vectors = self.reader.ground_truth()
            self._check_rows(vectors, rundir.GT_EIGENVECTORS)
            return values, vectors

        return self._once("gt", load)

    def scoring_truth(self) -> tuple[np.ndarray, np.ndarray]:
        """ground_truth() plus the eigenpairs completing the eigenspace of lambda_d."""
        def load():
            # NotYet and the row check come with ground_truth(); a corrupt completion
            # fails the learned figures only
            return self.reader.scoring_truth(self.ground_truth())

        return self._once("scoring", load)

    def ground_truth_values(self) -> np.ndarray:
        """Only gt_eigenvalues.npy: curve figures must not depend on the vectors file."""
        if "gt" in self._cache:
            return self._cache["gt"][0]

        def load():
            path = self.reader.path / rundir.GT_EIGENVALUES
            if not path.exists():
                raise NotYet(f"{rundir.GT_EIGENVALUES} not written yet")
            return rundir.load_npy(path, ndim=1)

        return self._once("gt_values", load)

    def learned(self, step: int | str) -> np.ndarray:
        if step == "final":
            path = self.reader.final_path()
            if not path.exists():
                raise NotYet(f"{rundir.FINAL_LEARNED} not written yet")
            vectors = rundir.load_npy(path, ndim=2)
        else:
            path = self.reader.export_path(int(step))
            if not path.exists():
                raise NotYet(f"{path.name} not written yet")
            vectors = self.reader.learned(int(step))
        self._check_rows(vectors, path.name)
        return vectors

    def _check_rows(self, vectors: np.ndarray, name: str) -> None:
        expected = len(self.env().free_cells)
        if vectors.shape[0] != expected:
            raise rundir.RunDirError(
                f"{self.reader.path / name}: {vectors.shape[0]} rows, but run.json lists "
                f"{expected} free cells"
            )

    def rows(self) -> list[dict]:
        """Complete metric rows: metrics.jsonl, or metrics_history.json from older tools."""

        def load():
            jsonl = self.reader.path / rundir.METRICS_JSONL
            if jsonl.exists():
                return self.reader.metrics()
            history = self.reader.path / rundir.METRICS_HISTORY
            if history.exists():
                rows = rundir.read_json(history)
                if not isinstance(rows, list):
                    raise rundir.RunDirError(f"{history}: expected a JSON array of rows")
                return [r for r in rows if isinstance(r, dict) and isinstance(r.get("step"), int)]
            return []

        return self._once("rows", load)

    def rows_or_wait(self) -> list[dict]:
        rows = self.rows()
        if not rows:
            raise NotYet(f"{rundir.METRICS_JSONL} has no complete rows yet")
        return rows

    def convention(self) -> str:
        try:
            raw = self.info().get("eigenvalue_convention")
        except rundir.RunDirError:
            raw = None
        if not raw:
            return "eigenvalue convention not stated"
        return CONVENTIONS.get(str(raw), clean(raw, 40))


# --------------------------------------------------------------------------- grids


def _select(d: int, eigenvectors: list[int] | None) -> list[int]:
    if not eigenvectors:
        return list(range(d))
    chosen = [i for i in eigenvectors if 0 <= i < d]
    if not chosen:
        raise rundir.RunDirError(f"--eigenvectors: none of {eigenvectors} lies in 0..{d - 1}")
    return chosen


def _columns(count: int) -> int:
    """Panels per row: at most 5, balanced (10 -> 5 + 5, 7 -> 4 + 3)."""
    rows = math.ceil(count / 5)
    return max(1, math.ceil(count / rows))


def _grid_figure(data: RunData, kind: str, title: str, subtitle: str, panels, **extra):
    env = data.env()
    marks = [
        text
        for present, text in (
            (env.start is not None, "● start"),
            (bool(env.goals), "□ goal"),
            (bool(env.doors), "→ one-way door"),
        )
        if present
    ]
    if marks:
        subtitle = f"{subtitle} · {', '.join(marks)}"
    vmax = max(
        (float(np.nanmax(np.abs(p.values))) for p in panels if np.isfinite(p.values).any()),
        default=1.0,
    )
    return GridFigure(
        kind=kind,
        title=title,
        subtitle=subtitle,
        panels=panels,
        ncols=extra.pop("ncols", _columns(len(panels))),
        walls=env.wall_mask(),
        vmax=vmax if vmax > 0 else 1.0,
        doors=[(tuple(d["from"]), tuple(d["to"])) for d in env.doors if _door_ok(d, env)],
        start=env.start,
        goals=list(env.goals),
        **extra,
    )


def _door_ok(door: dict, env: rundir.EnvInfo) -> bool:
    """A door with two in-grid [row, col] ends; anything else in run.json is ignored."""
    try:
        cells = [tuple(int(v) for v in door[k]) for k in ("from", "to")]
    except (KeyError, TypeError, ValueError):
        return False
    return all(len(c) == 2 and 0 <= c[0] < env.height and 0 <= c[1] < env.width for c in cells)


def ground_truth_figure(data: RunData, eigenvectors: list[int] | None = None) -> GridFigure:
    values, vectors = data.ground_truth()
    env = data.env()
    panels = [
        GridPanel(env.grid(vectors[:, i]), f"e{i + 1}   λ = {values[i]:.4f}")
        for i in _select(vectors.shape[1], eigenvectors)
    ]
    return _grid_figure(
        data,
        "ground_truth_eigenvectors",
        "Ground-truth eigenvectors",
        f"{data.label()} · {data.convention()}",
        panels,
    )


def estimate_at(rows: list[dict], step: int | None) -> tuple[int | None, list[float] | None]:
    """(row step, eig/estimate) of the last metrics row at or before `step` (None: last)."""
    best: tuple[int | None, list[float] | None] = (None, None)
    for row in rows:
        if step is not None and row["step"] > step:
            continue
        estimate = row.get("eig/estimate")
        if isinstance(estimate, list) and (best[0] is None or row["step"] >= best[0]):
            best = (row["step"], estimate)
    return best


def _number(values: list | None, i: int) -> float | None:
    if values is None or i >= len(values):
        return None
    value = values[i]
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _learned_panels(data: RunData, step: int | str, chosen: list[int]):
    truth_values, truth = data.ground_truth()
    learned = data.learned(step)
    d = min(learned.shape[1], truth.shape[1])
    learned = learned[:, :d]
    aligned = align_to_truth(learned, truth[:, :d], truth_values[:d])
    # scored as training scores them: a block of lambda_d cut at d against all of it
    scoring_values, scoring_vectors = data.scoring_truth()
    cosines = cosine_similarities(learned, scoring_vectors, scoring_values)
    try:
        rows = data.rows()
    except rundir.RunDirError:
        rows = []  # a corrupt history costs the estimates in the titles, not the figure
    row_step, estimates = estimate_at(rows, None if step == "final" else int(step))
    env = data.env()
    panels = []
    for i in chosen:
        if i >= d:
            continue
        estimate = _number(estimates, i)
        second = f"λ est {estimate:.4f}" if estimate is not None else "λ est n/a"
        panels.append(
            GridPanel(env.grid(aligned[:, i]), f"e{i + 1}   |cos| {cosines[i]:.3f}\n{second}")
        )
    return panels, row_step, float(np.mean(cosines[:d])) if d else float("nan")


def learned_figure(
    data: RunData, step: int | str, eigenvectors: list[int] | None = None
) -> GridFigure:
    truth_values, _ = data.ground_truth()
    chosen = _select(len(truth_values), eigenvectors)
    panels, row_step, mean_cos = _learned_panels(data, step, chosen)
    where = "final" if step == "final" else f"step {step}"
    note = ""
    if row_step is not None and step != "final" and row_step != step:
        note = f" · λ estimates from step {row_step}"
    return _grid_figure(
        data,
        "learned_eigenvectors",
        f"Learned eigenvectors, {where} (aligned to ground truth; mean |cos| {mean_cos:.3f})",
        f"{data.label()} · {data.convention()}{note}",
        panels,
    )


def final_comparison_figure(data: RunData, eigenvectors: list[int] | None = None) -> GridFigure:
    truth_values, truth = data.ground_truth()
    chosen = _select(len(truth_values), eigenvectors)
    learned_panels, _, mean_cos = _learned_panels(data, "final", chosen)
    env = data.env()
    truth_panels = [
        GridPanel(env.grid(truth[:, i]), f"e{i + 1}   λ = {truth_values[i]:.4f}") for i in chosen
    ]
    return _grid_figure(
        data,
        "final_comparison",
        f"Ground truth (top) vs final learned (bottom); mean |cos| {mean_cos:.3f}",
        f"{data.label()} · {data.convention()}",
        truth_panels + learned_panels[: len(truth_panels)],
        ncols=len(truth_panels),
        row_labels=["ground truth", "learned"],
    )


# --------------------------------------------------------------------------- curves


def _scalar(rows: list[dict], key: str, label: str, color: int, **kw) -> Line | None:
    steps, values = rundir.series(rows, key)
    if not len(steps):
        return None
    return Line(label, steps, values, color, **kw)


def _positive(values: np.ndarray) -> np.ndarray:
    """Log axes cannot show zero or negative values: they become gaps (NaN)."""
    return np.where(values > 0, values, np.nan)


def learning_curves_figure(data: RunData) -> CurveFigure:
    rows = data.rows_or_wait()
    losses = [
        line
        for i, (key, label) in enumerate(LOSS_KEYS)
        if (line := _scalar(rows, key, label, i, bold=(key == "loss/total"))) is not None
    ]
    panels = [CurvePanel("Loss terms", losses, ylabel="loss")]
    orth = _scalar(rows, "orth/error", "‖h‖ (orthogonality)", 4)
    if orth is not None:
        orth.values = _positive(orth.values)
        panels.append(CurvePanel("Orthogonality error", [orth], ylabel="error", log_y=True))
    grad = _scalar(rows, "grad/norm", "gradient norm", 5)
    if grad is not None:
        grad.values = _positive(grad.values)
        panels.append(CurvePanel("Gradient norm", [grad], ylabel="norm", log_y=True))
    cos = _scalar(rows, "cos/mean", "mean |cos|", 0, bold=True)
    if cos is not None:
        panels.append(
            CurvePanel(
                "Mean |cos| to ground truth",
                [cos],
                ylabel="|cos|",
                ylim=(0.0, 1.02),
                legend="lower right",
            )
        )
    panels = [p for p in panels if p.lines]
    if not panels:
        raise NotYet("metrics rows hold none of the learning-curve keys yet")
    return CurveFigure(
        "learning_curves", "Learning curves", _curve_subtitle(data, rows), panels, ncols=2
    )


def _curve_subtitle(data: RunData, rows: list[dict]) -> str:
    try:
        label = data.label()
    except rundir.RunDirError:
        label = clean(data.reader.path.name, 60)
    return f"{label} · {len(rows)} metric rows up to step {rows[-1]['step']}"


def estimate_window(truth: np.ndarray) -> tuple[float, float]:
    """A y-range around the ground truth: the first estimates can be 30x too large, and
    an axis fitted to them squashes the converged estimates into one line."""
    low, high = float(np.min(truth)), float(np.max(truth))
    spread = max(high - low, 0.05 * max(abs(high), 1e-3))
    return low - 0.25 * spread, high + 0.5 * spread


def dual_variables_figure(data: RunData, eigenvectors: list[int] | None = None) -> CurveFigure:
    rows = data.rows_or_wait()
    steps, estimates = rundir.vector_series(rows, "eig/estimate")
    if not len(steps):
        raise NotYet("metrics rows hold no eig/estimate yet")
    truth = data.ground_truth_values()
    d = min(estimates.shape[1], len(truth))
    chosen = _select(d, eigenvectors)
    has_duals = any("dual/diag" in row for row in rows)
    errors = np.abs(estimates[:, :d] - truth[None, :d])
    estimate_lines, error_lines = [], []
    for i in chosen:
        estimate_lines.append(Line(f"e{i + 1}", steps, estimates[:, i], i))
        estimate_lines.append(Line("", steps[[0, -1]], np.full(2, truth[i]), i, dashed=True))
        error_lines.append(Line(f"e{i + 1}", steps, _positive(errors[:, i]), i))
    source = "duals" if has_duals else "Rayleigh quotients"
    panels = [
        CurvePanel(
            f"Eigenvalue estimates from the {source} (solid) vs ground truth (dashed)",
            estimate_lines,
            ylabel="eigenvalue",
            legend="outside",
            ylim=estimate_window(truth[chosen]),
        ),
        CurvePanel(
            "Absolute error |estimate - truth|",
            error_lines,
            ylabel="abs. error",
            log_y=True,
            legend="outside",
        ),
    ]
    return CurveFigure(
        "dual_variable_evolution",
        f"Eigenvalue estimates ({data.convention()})",
        _curve_subtitle(data, rows),
        panels,
        ncols=1,
    )


def cosine_figure(data: RunData, eigenvectors: list[int] | None = None) -> CurveFigure:
    rows = data.rows_or_wait()
    steps, cos = rundir.vector_series(rows, "cos/per_vector")
    if not len(steps):
        raise NotYet("metrics rows hold no cos/per_vector yet")
    lines = [Line(f"e{i + 1}", steps, cos[:, i], i) for i in _select(cos.shape[1], eigenvectors)]
    mean = _scalar(rows, "cos/mean", "mean", -1, bold=True, dashed=True)
    if mean is not None:
        lines.append(mean)
    panel = CurvePanel(
        "Per-eigenvector |cos| to ground truth",
        lines,
        ylabel="|cos|",
        ylim=(0.0, 1.02),
        legend="outside",
    )
    return CurveFigure(
        "cosine_similarity", "Cosine similarity", _curve_subtitle(data, rows), [panel]
    )
