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
from typing import Any

import numpy as np

from allo import rundir
from allo.metrics import align_to_truth, cosine_similarities
from renderers import RenderOptions, ticks

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


GRID_COLUMNS = 5  # grid panels per row before wrapping


def step_window(last: float, x_range: tuple, tail: float | None) -> tuple[float, float]:
    """The steps a curve shows: --x-range START:END (either end open), narrowed to the
    last --tail fraction of the run's `last` step."""
    low = -math.inf if x_range[0] is None else x_range[0]
    high = math.inf if x_range[1] is None else x_range[1]
    if tail is not None:
        low = max(low, last * (1 - tail))
    return low, high


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
    vmax: float = 0.0  # this panel's colour scale (+-vmax); 0: the figure's

    @property
    def blank(self) -> bool:
        """A place left empty (the end of a wrapped row); renderers skip it."""
        return self.values.size == 0


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
    scale: str = "shared"  # per-vector: each panel's colours span its own vmax

    @property
    def nrows(self) -> int:
        return math.ceil(len(self.panels) / self.ncols)

    @property
    def bar_label(self) -> str:
        return "÷ max |e|" if self.scale == "per-vector" else ""

    def bar_ticks(self) -> tuple[list[float], list[str]]:
        """Colour bar ticks as (positions in -1..1, labels): values, or fractions of each
        vector's largest |value| when every vector has its own scale."""
        if self.scale == "per-vector":
            values = [-1.0, -0.5, 0.0, 0.5, 1.0]
            return values, ticks.scalar_labels(values)
        values = ticks.nice_ticks(-self.vmax, self.vmax, 4)
        return [v / self.vmax for v in values], ticks.scalar_labels(values)


@dataclass
class Line:
    label: str
    steps: np.ndarray
    values: np.ndarray
    color: int  # index into colors.PALETTE
    dashed: bool = False
    bold: bool = False
    band: tuple[np.ndarray, np.ndarray] | None = None  # (low, high) at `steps`
    zorder: float = 2.0  # drawn above lines of lower order


@dataclass
class CurvePanel:
    title: str
    lines: list[Line]
    ylabel: str = ""
    xlabel: str = "gradient step"
    log_y: bool = False
    ylim: tuple[float, float] | None = None
    legend: str = "upper right"  # matplotlib-style location; renderers may approximate
    symlog: float | None = None  # a symmetric-log y axis with this linear range around 0
    # settled by renderers.axes.settle before drawing: view, ticks and labels
    x_axis: Any = None
    y_axis: Any = None


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

    def __init__(self, reader: rundir.RunReader, options: RenderOptions | None = None):
        self.reader = reader
        self.options = options or RenderOptions()
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, load):
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def info(self) -> rundir.RunInfo:
        return self._once("info", self.reader.info)

    def env(self) -> rundir.EnvInfo:
        return self._once("env", lambda: rundir.parse_env(self.info()))

    def label(self) -> str:
        """The layout's name; with --annotate, the run's name before it."""
        env = clean(self.env().name, 30)
        if not self.options.annotate:
            return env
        name = clean(self.info().name or self.reader.path.name, 60)
        return f"{name} · {env}"

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

    def curve_rows(self) -> list[dict]:
        """The rows a curve figure shows: inside --x-range, within the --tail fraction."""
        rows = self.rows_or_wait()
        low, high = step_window(rows[-1]["step"], self.options.x_range, self.options.tail)
        kept = [row for row in rows if low <= row["step"] <= high]
        if not kept:
            raise NotYet(f"no metric rows in steps {low}..{high} (the run logged "
                         f"{rows[0]['step']}..{rows[-1]['step']})")
        return kept

    def convention(self) -> str:
        try:
            raw = self.info().eigenvalue_convention
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
    """Panels per row: at most GRID_COLUMNS, balanced (10 -> 5 + 5, 7 -> 4 + 3)."""
    rows = math.ceil(count / GRID_COLUMNS)
    return max(1, math.ceil(count / rows))


def _vector_scales(truth: np.ndarray, chosen: list[int], learned: np.ndarray | None = None):
    """max |value| of each chosen vector: ground truth and learned share it (the larger
    of the two, so neither saturates)."""
    scales = []
    for i in chosen:
        top = float(np.max(np.abs(truth[:, i]))) if truth.shape[0] else 1.0
        if learned is not None and i < learned.shape[1]:
            top = max(top, float(np.max(np.abs(learned[:, i]))))
        scales.append(top if top > 0 else 1.0)
    return scales


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
    scale = data.options.scale
    if scale != "per-vector":
        for panel in panels:
            panel.vmax = 0.0
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
        scale=scale,
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
    chosen = _select(vectors.shape[1], eigenvectors)
    panels = [
        GridPanel(env.grid(vectors[:, i]), f"e{i + 1}  λ = {values[i]:.4f}", top)
        for i, top in zip(chosen, _vector_scales(vectors, chosen), strict=True)
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
    chosen = [i for i in chosen if i < d]
    for i, top in zip(chosen, _vector_scales(truth, chosen, aligned), strict=True):
        estimate = _number(estimates, i)
        second = f"λ est {estimate:.4f}" if estimate is not None else "λ est n/a"
        panels.append(
            GridPanel(env.grid(aligned[:, i]), f"e{i + 1}  |cos| {cosines[i]:.3f}\n{second}", top)
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
        f"Learned eigenvectors, {where}; mean |cos| {mean_cos:.4f}",
        f"{data.label()} · aligned to ground truth · {data.convention()}{note}",
        panels,
    )


def final_comparison_figure(data: RunData, eigenvectors: list[int] | None = None) -> GridFigure:
    truth_values, truth = data.ground_truth()
    chosen = _select(len(truth_values), eigenvectors)
    learned_panels, _, mean_cos = _learned_panels(data, "final", chosen)
    env = data.env()
    truth_panels = [
        GridPanel(env.grid(truth[:, i]), f"e{i + 1}  λ = {truth_values[i]:.4f}", learned.vmax)
        for i, learned in zip(chosen, learned_panels, strict=False)
    ]
    # wide: wrap into rows of at most GRID_COLUMNS, a truth row above each learned row
    ncols = _columns(len(truth_panels))
    panels: list[Any] = []
    labels: list[Any] = []
    for start in range(0, len(truth_panels), ncols):
        for part, label in ((truth_panels, "ground truth"), (learned_panels, "learned")):
            chunk = part[start : start + ncols]
            panels += chunk + [GridPanel(np.zeros((0, 0)), "")] * (ncols - len(chunk))
            labels.append(label)
    return _grid_figure(
        data,
        "final_comparison",
        f"Ground truth vs final learned; mean |cos| {mean_cos:.4f}",
        f"{data.label()} · {data.convention()}",
        panels,
        ncols=ncols,
        row_labels=labels,
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


def loss_scale(lines: list[Line]) -> tuple[bool, float | None]:
    """(log, symlog linthresh) for loss terms: log when every value is positive, else a
    symmetric log whose linear range is the decade of the smallest typical |value|."""
    values = np.concatenate([np.asarray(line.values, dtype=np.float64) for line in lines])
    values = values[np.isfinite(values)]
    if not len(values) or np.all(values > 0):
        return bool(len(values)), None
    nonzero = np.abs(values[values != 0])
    if not len(nonzero):
        return False, 1.0
    return False, float(10 ** math.floor(math.log10(np.percentile(nonzero, 10))))


def cos_line(rows: list[dict], linear: bool, label: str = "mean |cos|", color: int = 0,
             **kw) -> Line | None:
    """mean |cos|, or 1 - mean |cos| for a log axis (where convergence shows)."""
    line = _scalar(rows, "cos/mean", label if linear else f"1 - {label}", color, **kw)
    if line is not None and not linear:
        line.values = _positive(1.0 - line.values)
    return line


def cos_panel(title: str, lines: list[Line], linear: bool, legend: str) -> CurvePanel:
    if linear:
        return CurvePanel(title, lines, ylabel="|cos|", ylim=(0.0, 1.0), legend=legend)
    return CurvePanel(f"1 - {title[0].lower()}{title[1:]}", lines, ylabel="1 - |cos|",
                      log_y=True, legend=legend)


def learning_curves_figure(data: RunData) -> CurveFigure:
    rows = data.curve_rows()
    losses = [
        line
        for i, (key, label) in enumerate(LOSS_KEYS)
        if (line := _scalar(rows, key, label, i, bold=(key == "loss/total"))) is not None
    ]
    panels = []
    if losses:
        log, linthresh = loss_scale(losses)
        if log:
            for line in losses:
                line.values = _positive(line.values)
        panels.append(CurvePanel("Loss terms", losses, ylabel="loss", log_y=log,
                                 symlog=linthresh, legend="outside"))
    linear = data.options.linear_cos
    cos = cos_line(rows, linear, bold=True)
    if cos is not None:
        panels.append(cos_panel("Mean |cos| to ground truth", [cos], linear, "upper right"))
    orth = _scalar(rows, "orth/error", "‖h‖ (orthogonality)", 4)
    if orth is not None:
        orth.values = _positive(orth.values)
        panels.append(CurvePanel("Orthogonality error", [orth], ylabel="error", log_y=True))
    grad = _scalar(rows, "grad/norm", "gradient norm", 5)
    if grad is not None:
        grad.values = _positive(grad.values)
        panels.append(CurvePanel("Gradient norm", [grad], ylabel="norm", log_y=True))
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
    """A y-range around the ground truth: the first estimates can be many times too large, and
    an axis fitted to them squashes the converged estimates into one line."""
    low, high = float(np.min(truth)), float(np.max(truth))
    spread = max(high - low, 0.05 * max(abs(high), 1e-3))
    return low - 0.25 * spread, high + 0.5 * spread


def dual_variables_figure(data: RunData, eigenvectors: list[int] | None = None) -> CurveFigure:
    rows = data.curve_rows()
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
        # the truth in black dashes over the estimates: seen where they converge onto it
        estimate_lines.append(Line("", steps[[0, -1]], np.full(2, truth[i]), -1, dashed=True,
                                   zorder=3.0))
        error_lines.append(Line(f"e{i + 1}", steps, _positive(errors[:, i]), i))
    source = "duals" if has_duals else "Rayleigh quotients"
    panels = [
        CurvePanel(
            f"From the {source} (colour) and ground truth (black dashes)",
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
    rows = data.curve_rows()
    steps, cos = rundir.vector_series(rows, "cos/per_vector")
    if not len(steps):
        raise NotYet("metrics rows hold no cos/per_vector yet")
    linear = data.options.linear_cos
    shown = cos if linear else _positive(1.0 - cos)
    lines = [Line(f"e{i + 1}", steps, shown[:, i], i)
             for i in _select(cos.shape[1], eigenvectors)]
    mean = cos_line(rows, True, "mean", -1, bold=True, dashed=True, zorder=3.0)
    if mean is not None:
        if not linear:
            mean.values = _positive(1.0 - mean.values)
        lines.append(mean)
    panel = cos_panel("Per-eigenvector |cos| to ground truth", lines, linear, "outside")
    return CurveFigure(
        "cosine_similarity", "Cosine similarity", _curve_subtitle(data, rows), [panel]
    )
