"""`allo compare RUN RUN...`: several runs in one figure and one table.

Runs that share a setting (see renderers.grouping: same config apart from seed and
bookkeeping) are drawn as one line with a 95% Student-t band across seeds
(renderers.stats): 1 - mean |cos| and the eigenvalue error are positive, so their
centre is the geometric mean and their band is taken in log space (never negative);
with --linear-cos, |cos| itself with a band that never passes 1. Different settings
get a line each, in numeric order of what sets them apart.

Output goes to --out, or by default to COMMON/comparisons/<runs>-<hash>/ where COMMON is
the folder holding the runs, so two comparisons never share a folder. A folder that
already holds a comparison of other runs is refused unless --force. Files:
comparison.<ext>, comparison_table.txt and comparison.json. Run directories are only read.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from allo import rundir
from allo.cliparse import AlloParser
from renderers import RendererError, axes, load, tables
from renderers.figopts import add_figure_options, render_options
from renderers.figures import CurveFigure, CurvePanel, Line, RunData, clean, step_window
from renderers.grouping import Group, RunSummary, band, group_runs, setting
from renderers.plan import inside_run_outside_plots
from renderers.runner import draw_figure
from renderers.stats import mean_interval

PROG = "allo compare"
COS, ERR = "cos/mean", "eig/mean_abs_error"
STRICT = "cos_strict/mean"  # the official code's metric (docs/math.md section 6)


def parser() -> argparse.ArgumentParser:
    p = AlloParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories, or one study directory")
    p.add_argument("--format", default="png",
                   help="png | svg | pdf | text (text: to stdout); for a study also md | csv | "
                        "tex "
                        "(its table: renderers/tables.py)")
    p.add_argument("--reference", type=Path, default=None,
                   help="study tables: published values to show beside them (CSV: "
                        "layout,objective,obs,seeds,metric,value)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: comparisons/<runs>-<hash> in the folder holding the runs)",
    )
    p.add_argument("--force", action="store_true",
                   help="replace a comparison of other runs already in the output folder")
    add_figure_options(p)
    return p


def default_out(paths: list[Path]) -> Path:
    """COMMON/comparisons/<first run>-<n>runs-<hash of the run set>: COMMON is the
    deepest folder holding every run that is not itself a run."""
    resolved = sorted({str(p.resolve()) for p in paths})
    common = Path(os.path.commonpath(resolved))
    while rundir.is_run_dir(common) and common.parent != common:
        common = common.parent
    digest = hashlib.sha256("\n".join(resolved).encode()).hexdigest()[:8]
    first = clean(Path(resolved[0]).name, 40).replace("/", "_")
    return common / "comparisons" / f"{first}-{len(resolved)}runs-{digest}"


def other_comparison(out: Path, runs: list[str]) -> str | None:
    """Why writing to `out` would replace another comparison's files, or None."""
    record = out / "comparison.json"
    if not record.exists():
        present = [name for name in ("comparison_table.txt",) if (out / name).exists()]
        return f"{out} holds {present[0]} of unknown runs" if present else None
    try:
        before = rundir.read_json(record).get("runs")
    except (rundir.RunDirError, AttributeError):
        return f"{record} is not a comparison this tool can read"
    if sorted(before or []) != sorted(runs):
        return f"{out} holds a comparison of other runs"
    return None


def summarize_run(path: str) -> RunSummary:
    reader = rundir.RunReader(path)
    data = RunData(reader)
    info = data.info()
    elapsed = info.elapsed
    rows = data.rows()
    if elapsed is None:
        times = rundir.series(rows, "time")[1]
        elapsed = float(times[-1]) if len(times) else None
    return RunSummary(
        path=str(reader.path),
        name=clean(reader.path.name, 60),
        status=rundir.effective_status(info),
        config=setting(info),
        rows=rows,
        wall_time=float(elapsed) if elapsed is not None else None,
    )


def comparison_figure(groups: list[Group], linear_cos: bool = False) -> CurveFigure:
    cos_kind = "unit" if linear_cos else "gap"
    cos_lines: list[Line] = []
    err_lines: list[Line] = []
    for index, group in enumerate(groups):
        n = len(group.runs)
        label = f"{group.label} (n={n})"
        for key, lines, kind in ((COS, cos_lines, cos_kind), (ERR, err_lines, "positive")):
            steps, centre, low, high = band(group.runs, key, kind)
            if not len(steps):
                continue
            shown = (low, high) if n > 1 else None
            lines.append(Line(label, steps, centre, index, bold=True, band=shown))
    runs = sum(len(g.runs) for g in groups)
    if linear_cos:
        cos_panel = CurvePanel("Mean |cos| to ground truth", cos_lines, ylabel="mean |cos|",
                               ylim=(0.0, 1.0), legend="lower right")
    else:
        cos_panel = CurvePanel("1 - mean |cos| to ground truth", cos_lines,
                               ylabel="1 - mean |cos|", log_y=True, legend="upper right")
    return CurveFigure(
        "comparison",
        f"{runs} runs in {len(groups)} setting(s): centre and 95% t-interval over seeds",
        "log-scale quantities: geometric mean, interval in log space"
        if not linear_cos else "|cos|: interval of 1 - |cos| in log space; error: the same",
        [
            cos_panel,
            CurvePanel(
                "Mean absolute eigenvalue error",
                err_lines,
                ylabel="error",
                log_y=True,
                legend="upper right",
            ),
        ],
        ncols=2,
    )


def clip_steps(figure: CurveFigure, x_range, tail: float | None) -> None:
    """Keep only the steps inside --x-range and the last --tail fraction."""
    last = max((float(line.steps[-1]) for p in figure.panels for line in p.lines
                if len(line.steps)), default=0.0)
    low, high = step_window(last, x_range, tail)
    for panel in figure.panels:
        for line in panel.lines:
            steps = np.asarray(line.steps, dtype=np.float64)
            keep = (steps >= low) & (steps <= high)
            line.steps, line.values = line.steps[keep], line.values[keep]
            if line.band is not None:
                line.band = (line.band[0][keep], line.band[1][keep])


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def _mean_ci(values: list[float], digits: int = 4) -> str:
    array = np.asarray([v if v is not None else np.nan for v in values], dtype=np.float64)
    if not np.isfinite(array).any():
        return "-"
    mean, low, high = (float(x) for x in mean_interval(array))
    if not math.isfinite(low):
        return _fmt(mean, digits)
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def table(groups: list[Group]) -> tuple[str, dict]:
    """The text table and the same numbers as JSON-ready data."""
    header = ("setting", "run", "status", "steps", "mean |cos|", "cos_strict", "eig error",
              "wall s")
    rows = []
    data: dict[str, Any] = {"groups": []}
    for group in groups:
        entry: dict[str, Any] = {"label": group.label, "config": group.config, "runs": []}
        for run in group.runs:
            final = (run.final(COS), run.final(ERR), run.final(STRICT))
            rows.append(
                (
                    group.label,
                    run.name,
                    run.status,
                    str(run.final_step or "-"),
                    _fmt(final[0]),
                    _fmt(final[2]),
                    _fmt(final[1], 5),
                    _fmt(run.wall_time, 1),
                )
            )
            entry["runs"].append(
                {
                    "path": run.path,
                    "name": run.name,
                    "status": run.status,
                    "steps": run.final_step,
                    "cos_mean": final[0],
                    "cos_strict_mean": final[2],
                    "eig_error": final[1],
                    "wall_time": run.wall_time,
                }
            )
        cos = [r["cos_mean"] for r in entry["runs"]]
        err = [r["eig_error"] for r in entry["runs"]]
        strict = [r["cos_strict_mean"] for r in entry["runs"]]
        wall = [r["wall_time"] for r in entry["runs"]]
        steps = [r["steps"] for r in entry["runs"] if r["steps"] is not None]
        rows.append(
            (
                group.label,
                f"mean of {len(group.runs)}",
                "",
                str(min(steps, default="-")),
                _mean_ci(cos),
                _mean_ci(strict),
                _mean_ci(err, 5),
                _mean_ci(wall, 1),
            )
        )
        entry["summary"] = {
            "n": len(group.runs),
            "cos_mean": _stats(cos),
            "cos_strict_mean": _stats(strict),
            "eig_error": _stats(err),
            "wall_time": _stats(wall),
        }
        data["groups"].append(entry)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)),
        "  ".join("-" * w for w in widths),
    ]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in rows
    ]
    lines.append("± is the half-width of a 95% Student-t interval over the runs of a setting.")
    return "\n".join(lines) + "\n", data


def _stats(values: list) -> dict:
    array = np.asarray([v if v is not None else np.nan for v in values], dtype=np.float64)
    mean, low, high = (float(x) for x in mean_interval(array))
    return {"mean": mean, "ci95_low": low, "ci95_high": high}


def main(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    study = args.runs[0] if len(args.runs) == 1 and tables.is_study_dir(args.runs[0]) else None
    if study is not None:
        if args.format in tables.FORMATS:
            return study_table(Path(study), args)
        args.runs = tables.study_runs(Path(study))  # the figures of every run it has
    elif args.format in tables.FORMATS or args.reference is not None:
        print(f"{PROG}: --format {args.format} and --reference need one study directory "
              "(results/studies/<name>)", file=sys.stderr)
        return 2
    try:
        renderer_cls = load(args.format)
    except RendererError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    runs, failed = [], False
    for path in args.runs:
        try:
            runs.append(summarize_run(path))
        except rundir.NotARunError as err:
            print(f"{PROG}: {err}", file=sys.stderr)
            return 2
        except rundir.RunDirError as err:
            print(f"{PROG}: skipping {path}: {err}", file=sys.stderr)
            failed = True
    if not runs:
        return 1
    out = args.out or default_out([Path(run.path) for run in runs])
    inside = inside_run_outside_plots(out)
    if inside is not None:
        print(f"{PROG}: --out {out}: lies inside run {inside}; choose another folder",
              file=sys.stderr)
        return 2
    paths = sorted(str(Path(run.path).resolve()) for run in runs)
    clash = None if args.force else other_comparison(out, paths)
    if clash is not None:
        print(f"{PROG}: {clash}; use --force to replace it or --out for another folder",
              file=sys.stderr)
        return 2
    problem = out_dir_problem(out)  # before any drawing
    if problem:
        print(f"{PROG}: --out {out}: {problem}", file=sys.stderr)
        return 2
    groups = group_runs(runs)
    text, data = table(groups)
    data = {"runs": paths, **data}
    to_stdout = args.format == "text"
    options = render_options(
        args,
        color=not os.environ.get("NO_COLOR") and (sys.stdout.isatty() or not to_stdout),
        width=int(os.environ.get("COLUMNS", "0") or 0) or 120,
    )
    try:
        description = comparison_figure(groups, args.linear_cos)
        clip_steps(description, options.x_range, options.tail)
        axes.settle(description, options.size)
        figure = draw_figure(renderer_cls(options), "comparison", description)
    except Exception as err:  # the table is still worth having
        print(f"{PROG}: figure failed: {type(err).__name__}: {err}", file=sys.stderr)
        figure, failed = None, True
    try:
        written = write_outputs(out, figure if not to_stdout else None,
                                renderer_cls.extension, text, data)
    except WriteFailed as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    if figure is not None and to_stdout:
        sys.stdout.write(figure.decode("utf-8"))
    sys.stdout.write(text)
    print(
        f"{PROG}: {len(runs)} runs, {len(groups)} setting(s) -> "
        + ", ".join(str(p) for p in written)
    )
    return 1 if failed else 0


def study_table(folder: Path, args: argparse.Namespace) -> int:
    """A study's table in one format: to stdout and to OUT/table.<ext>."""
    try:
        text = tables.render(folder, args.format, args.reference)
    except tables.TableError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    out = args.out or folder  # beside the study's own files
    inside = inside_run_outside_plots(out)
    if inside is not None:
        print(f"{PROG}: --out {out}: lies inside run {inside}; choose another folder",
              file=sys.stderr)
        return 2
    problem = out_dir_problem(out)
    target = out / f"table.{args.format}"
    try:
        if problem:
            raise OSError(problem)
        rundir.atomic_write_text(target, text)
    except OSError as err:
        print(f"{PROG}: cannot write {target}: {err.strerror or err}; nothing written",
              file=sys.stderr)
        return 1
    sys.stdout.write(text)
    print(f"{PROG}: {folder}: table -> {target}", file=sys.stderr)
    return 0


def write_outputs(out: Path, figure: bytes | None, extension: str, text: str,
                  data: dict) -> list[Path]:
    """The figure (unless printed), the table and its JSON, each written atomically: a
    file already there stays whole when its replacement cannot be written (WriteFailed
    says which, and what was written before it)."""
    payloads = [] if figure is None else [(f"comparison{extension}", figure)]
    payloads += [
        ("comparison_table.txt", text.encode()),
        ("comparison.json", (rundir.dumps(data, indent=2) + "\n").encode()),
    ]
    written: list[Path] = []
    for name, payload in payloads:
        try:
            rundir.atomic_write_bytes(out / name, payload)
        except OSError as err:
            kept = ", ".join(str(p) for p in written) or "nothing new"
            raise WriteFailed(f"cannot write {out / name}: {err.strerror or err}; written: "
                              f"{kept}; files already there are unchanged") from None
        written.append(out / name)
    return written


class WriteFailed(Exception):
    """An output that could not be written; one line."""


def out_dir_problem(out: Path) -> str | None:
    """Why the output folder cannot take the files (checked before anything is drawn),
    or None; the folder is created here when missing."""
    if out.exists() and not out.is_dir():
        return "exists and is not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot create it ({err.strerror or err})"
    if not os.access(out, os.W_OK | os.X_OK):
        return "not writable"
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
