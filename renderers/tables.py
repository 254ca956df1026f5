"""A study's results as the table a paper needs: Markdown, CSV or LaTeX (booktabs).

Runs are grouped by configuration (study.json's job: everything but the seed). Per layout
(rows) and setting (columns: the objective and whatever else varies in the study), a cell
holds the final mean |cos| as mean +- the half-width of a 95% Student-t interval over the
seeds (renderers.stats.mean_interval) with n, the strict score (cos_strict: rotation
within exactly repeated eigenvalues only, what published tables report) where the runs
logged it, the final eigenvalue error, and the steps and training seconds at which mean
|cos| first reached 0.99 (mean over the seeds that reached it, and how many did).
`--reference FILE` (layout,objective,obs,seeds,metric,value rows) adds published values.
Imports numpy and allo.rundir only: no torch, no matplotlib.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from allo import rundir, safeio
from renderers.stats import mean_interval

COS, STRICT, ERR = "cos/mean", "cos_strict/mean", "eig/mean_abs_error"
THRESHOLD = 0.99
FORMATS = ("md", "csv", "tex")
# Options that never name a setting: where and how a run was computed.
NOT_SETTING = frozenset({"layout", "layout_sha256", "device", "cuda_graph", "threads",
                         "plot_during_training", "log_freq", "plot_freq", "checkpoint_freq"})


class TableError(ValueError):
    """A study directory or reference file that cannot make a table: one line."""


@dataclass
class RunResult:
    final_cos: float
    final_strict: float
    final_err: float
    steps_to: float  # NaN when it never reached THRESHOLD
    seconds_to: float
    status: str
    ceiling_strict: float = math.nan  # the strict score of the data set's own eigenvectors


# Quantities that live in [0, 1]: their intervals are clipped there, as the figures' bands
# are (with n = 2-3 seeds a t-interval of |cos| can pass 1 or 0 by far).
BOUNDED = frozenset({"final_cos", "final_strict", "ceiling_strict"})


@dataclass
class Cell:
    layout: str
    setting: str
    options: dict
    runs: list[RunResult] = field(default_factory=list)
    unfinished: int = 0  # runs with metrics that did not finish (interrupted, running, failed)

    def stat(self, attr: str) -> tuple[float, float, int]:
        """(mean, half-width of the 95% interval (NaN for n < 2), n) of one quantity."""
        values = np.asarray([getattr(r, attr) for r in self.runs], dtype=np.float64)
        n = int(np.isfinite(values).sum())
        if n == 0:
            return math.nan, math.nan, 0
        mean, low, high = (float(x) for x in mean_interval(values))
        return mean, (high - low) / 2.0, n

    def interval(self, attr: str) -> tuple[float, float, float, int]:
        """(mean, low, high, n): the 95% interval, clipped to [0, 1] for BOUNDED ones."""
        mean, half, n = self.stat(attr)
        low, high = mean - half, mean + half
        if attr in BOUNDED and math.isfinite(half):
            low, high = max(0.0, low), min(1.0, high)
        return mean, low, high, n


def is_study_dir(path: Path | str) -> bool:
    return (Path(path) / "study.json").is_file()


def study_runs(folder: Path) -> list[str]:
    """The run directories a study has made so far, in study.json's order."""
    groups = load_groups(folder)
    return [str(p) for g in groups.values() for p in g["runs"] if rundir.is_run_dir(p)]


def run_result(path: Path) -> RunResult | None:
    """A run's final numbers and its first crossing of THRESHOLD, or None if unreadable."""
    try:
        reader = rundir.RunReader(path)
        info, rows = reader.info(), reader.metrics()
    except (rundir.RunDirError, OSError):
        return None
    if not rows:
        return None

    def final(key: str) -> float:
        values = rundir.series(rows, key)[1]
        return float(values[-1]) if len(values) else math.nan

    steps, cos = rundir.series(rows, COS)
    times = {row["step"]: row.get("time") for row in rows if isinstance(row.get("step"), int)}
    crossed = np.flatnonzero(cos >= THRESHOLD)
    step_to = float(steps[crossed[0]]) if len(crossed) else math.nan
    time_to = times.get(int(step_to)) if len(crossed) else None
    ceiling = info.budget.data_ceiling_strict if info.budget is not None else None
    return RunResult(final(COS), final(STRICT), final(ERR), step_to,
                     float(time_to) if isinstance(time_to, (int, float)) else math.nan,
                     rundir.effective_status(info),
                     float(ceiling) if isinstance(ceiling, (int, float)) else math.nan)


def load_groups(folder: Path) -> dict[str, dict]:
    """study.json's runs grouped by job: {job: {"config": ..., "runs": [paths]}}."""
    try:
        data = rundir.read_json(folder / "study.json")
    except rundir.RunDirError as err:
        raise TableError(str(err)) from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, dict):
        raise TableError(f"{folder / 'study.json'}: not a study.json (no 'runs' object)")
    groups: dict[str, dict] = {}
    for name, entry in runs.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            continue
        group = groups.setdefault(str(entry.get("job", name)),
                                  {"config": entry["config"], "runs": []})
        group["runs"].append(folder / "runs" / Path(str(entry.get("run_dir", name))).name)
    return groups


def load_cells(folder: Path) -> list[Cell]:
    """One cell per configuration of the study, in study.json's order."""
    groups = load_groups(folder)
    varying = varying_options([g["config"] for g in groups.values()])
    cells = []
    for group in groups.values():
        config = group["config"]
        options = {k: config.get(k) for k in varying}
        cell = Cell(str(config.get("layout", "?")), setting_label(config, varying), options)
        results = [r for r in (run_result(p) for p in group["runs"]) if r is not None]
        # a table reports final numbers: an interrupted or running run's last row is not one
        cell.runs = [r for r in results if r.status == rundir.Status.FINISHED]
        cell.unfinished = len(results) - len(cell.runs)
        cells.append(cell)
    return cells


def varying_options(configs: list[dict]) -> list[str]:
    """The objective, and every other option that takes more than one value."""
    keys = sorted({k for c in configs for k in c} - NOT_SETTING)
    varying = [k for k in keys
               if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]
    return ["objective", *[k for k in varying if k != "objective"]]


def setting_label(config: dict, varying: list[str]) -> str:
    parts = [str(config.get("objective", "allo"))]
    for key in varying[1:]:
        value = config.get(key)
        shown = "default" if value is None else (f"{value:g}" if isinstance(value, float)
                                                 else str(value))
        parts.append(f"{key.replace('_', '-')}={shown}")
    return " ".join(parts)


def read_reference(path: Path | str) -> dict[tuple[str, str], tuple[float, str, int | None]]:
    """(layout, objective) -> (value, metric, seeds) from a published-values CSV."""
    path = Path(path)
    try:  # allo.safeio: a regular file of at most 64 MiB
        text = safeio.read_bytes(path, safeio.MAX_JSON_BYTES).decode("utf-8")
    except safeio.ReadError as err:
        raise TableError(f"--reference {err}") from None
    except UnicodeDecodeError:
        raise TableError(f"--reference {path}: not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    need = {"layout", "objective", "metric", "value"}
    if not reader.fieldnames or not need <= set(reader.fieldnames):
        raise TableError(f"--reference {path}: expected the columns "
                         "layout,objective,obs,seeds,metric,value")
    values = {}
    for line, row in enumerate(reader, 2):
        if row.get("obs") not in (None, "", "xy"):
            continue
        try:
            value = float(row["value"])
            seeds = int(row["seeds"]) if row.get("seeds") else None
        except ValueError:
            raise TableError(f"--reference {path}: line {line}: value {row['value']!r} "
                             "is not a number") from None
        values[(row["layout"], row["objective"])] = (value, row["metric"], seeds)
    return values


def fmt(mean: float, half: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "-"
    if not math.isfinite(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def fmt_clipped(cell: Cell, attr: str, digits: int = 4) -> str:
    """mean ± half-width, or mean [low, high] where the interval was clipped to [0, 1]."""
    mean, low, high, _ = cell.interval(attr)
    _, half, _ = cell.stat(attr)
    if not (math.isfinite(half) and (mean - half < low or mean + half > high)):
        return fmt(mean, half, digits)
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def cos_text(cell: Cell) -> str:
    n = cell.stat("final_cos")[2]
    text = f"{fmt_clipped(cell, 'final_cos')} (n={n})" if n else "-"
    if cell.stat("final_strict")[2]:
        text += f"; strict {fmt_clipped(cell, 'final_strict')}"
    if cell.stat("ceiling_strict")[2]:
        text += f"; ceiling {cell.stat('ceiling_strict')[0]:.4f}"
    if cell.unfinished:
        text += f"; {cell.unfinished} not finished"
    return text


def reached(cell: Cell, attr: str, digits: int) -> str:
    mean, half, n = cell.stat(attr)
    if n == 0:
        return f"never (0/{len(cell.runs)})"
    return f"{fmt(mean, half, digits)} ({n}/{len(cell.runs)})"


def pivot(cells: list[Cell]) -> tuple[list[str], list[str], dict[tuple[str, str], Cell]]:
    layouts = list(dict.fromkeys(c.layout for c in cells))
    settings = list(dict.fromkeys(c.setting for c in cells))
    return layouts, settings, {(c.layout, c.setting): c for c in cells}


def reference_for(reference: dict | None, layout: str, setting: str) -> str:
    if not reference:
        return ""
    found = reference.get((layout, setting.split()[0]))
    return f"{found[0]:.4f}" if found else "-"


def markdown(cells: list[Cell], reference: dict | None = None) -> str:
    """The paper table (layouts x settings, mean |cos|) and one row per cell of details."""
    layouts, settings, by = pivot(cells)
    head = ["layout"]
    for s in settings:
        head += [s] + ([f"{s} (published)"] if reference else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for layout in layouts:
        row = [layout]
        for s in settings:
            cell = by.get((layout, s))
            row.append(cos_text(cell) if cell else "")
            if reference:
                row.append(reference_for(reference, layout, s))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| layout | setting | n | mean abs eigenvalue error | steps to 0.99 "
              "| seconds to 0.99 |", "|---|---|---|---|---|---|"]
    for cell in cells:
        err, err_half, _ = cell.stat("final_err")
        lines.append(f"| {cell.layout} | {cell.setting} | {len(cell.runs)} | "
                     f"{fmt(err, err_half, 5)} | {reached(cell, 'steps_to', 0)} | "
                     f"{reached(cell, 'seconds_to', 1)} |")
    lines += ["", NOTE]
    return "\n".join(lines) + "\n"


NOTE = ("Final mean |cos| to the ground truth: mean ± half-width of a 95% Student-t interval "
        "over seeds (n seeds), as mean [low, high] where it is clipped to [0, 1]; strict: "
        "rotation within exactly repeated eigenvalues only (cos_strict); ceiling: the strict "
        "score of the data set's own eigenvectors (the strict data ceiling), mean over seeds; "
        "only finished runs count. "
        "Steps / seconds to 0.99: first logged step with mean |cos| >= 0.99, over the seeds "
        "that reached it (k/n); seconds are training time.")


def csv_text(cells: list[Cell], reference: dict | None = None) -> str:
    """One row per (layout, setting), every number in a column of its own."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    options = list(dict.fromkeys(k for c in cells for k in c.options))
    quantities = (("cos", "final_cos"), ("cos_strict", "final_strict"),
                  ("ceiling_strict", "ceiling_strict"),
                  ("eig_error", "final_err"), ("steps_to_0.99", "steps_to"),
                  ("seconds_to_0.99", "seconds_to"))
    head = ["layout", "setting", *options, "runs"]
    for name, attr in quantities:
        head += [f"{name}_mean", f"{name}_ci95_half", f"{name}_n"]
        if attr in BOUNDED:  # the interval clipped to [0, 1]
            head += [f"{name}_ci95_low", f"{name}_ci95_high"]
    writer.writerow(head + (["published", "published_metric"] if reference else []))
    for cell in cells:
        row: list = [cell.layout, cell.setting, *(cell.options.get(k) for k in options),
                     len(cell.runs)]
        for _, attr in quantities:
            mean, half, n = cell.stat(attr)
            row += [_num(mean), _num(half), n]
            if attr in BOUNDED:
                _, low, high, _ = cell.interval(attr)
                row += [_num(low), _num(high)]
        if reference:
            found = reference.get((cell.layout, cell.setting.split()[0]))
            row += [found[0], found[1]] if found else ["", ""]
        writer.writerow(row)
    return out.getvalue()


def _num(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6g}"


def latex(cells: list[Cell], reference: dict | None = None) -> str:
    """The paper table with booktabs rules: \\usepackage{booktabs} in the preamble. Cells
    hold the strict score when every cell has it (what published tables report), else
    mean |cos|; the comment under the table says which."""
    layouts, settings, by = pivot(cells)
    strict = all(cell.stat("final_strict")[2] for cell in cells)
    columns = []
    for s in settings:
        columns.append(tex_escape(s))
        if reference:
            columns.append(f"{tex_escape(s.split()[0])} (published)")
    lines = [r"\begin{tabular}{l" + "c" * len(columns) + "}", r"\toprule",
             "Layout & " + " & ".join(columns) + r" \\", r"\midrule"]
    for layout in layouts:
        row = [tex_escape(layout)]
        for s in settings:
            cell = by.get((layout, s))
            row.append(tex_cell(cell, "final_strict" if strict else "final_cos") if cell else "")
            if reference:
                row.append(reference_for(reference, layout, s))
        lines.append(" & ".join(row) + r" \\")
    shown = "strict score" if strict else "mean |cos| (eigenspace-aware)"
    lines += [r"\bottomrule", r"\end{tabular}",
              f"% cells: final {shown}, mean +- 95% t-interval half-width over seeds", ""]
    return "\n".join(lines)


def tex_cell(cell: Cell, attr: str) -> str:
    mean, half, n = cell.stat(attr)
    if not n:
        return "--"
    if not math.isfinite(half):
        return f"{mean:.4f}"
    _, low, high, _ = cell.interval(attr)
    if mean - half < low or mean + half > high:  # clipped to [0, 1]
        return f"${mean:.4f}\\,[{low:.4f}, {high:.4f}]$"
    return f"${mean:.4f} \\pm {half:.4f}$"


def tex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"),
                          ("&", r"\&"), ("#", r"\#"), ("$", r"\$")):
        text = text.replace(char, escaped)
    return text


def render(folder: Path, fmt_name: str, reference: Path | None = None) -> str:
    cells = load_cells(folder)
    if not cells:
        raise TableError(f"{folder}: the study has no runs yet")
    ref = read_reference(reference) if reference is not None else None
    return {"md": markdown, "csv": csv_text, "tex": latex}[fmt_name](cells, ref)
