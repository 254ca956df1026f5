"""`allo compare RUN RUN...`: several runs in one figure and one table.

Runs that share a setting (see renderers.grouping: same config apart from seed and
bookkeeping) are drawn as their mean with a 95% Student-t interval band across seeds
(renderers.stats); different settings get a line each. Output goes to ./comparisons/
(or --out): comparison.<ext>, comparison_table.txt and comparison.json. Run directories
are only read.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from allo import rundir
from renderers import RendererError, RenderOptions, load, tables
from renderers.figures import CurveFigure, CurvePanel, Line, RunData, clean
from renderers.grouping import Group, RunSummary, band, group_runs, setting
from renderers.plan import inside_run_outside_plots
from renderers.stats import mean_interval

PROG = "allo compare"
COS, ERR = "cos/mean", "eig/mean_abs_error"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories, or one study directory")
    p.add_argument("--format", default="png",
                   help="png | svg | text (text: to stdout); for a study also md | csv | tex "
                        "(its table: renderers/tables.py)")
    p.add_argument("--reference", type=Path, default=None,
                   help="study tables: published values to show beside them (CSV: "
                        "layout,objective,obs,seeds,metric,value)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("comparisons"),
        help="output folder (default ./comparisons)",
    )
    p.add_argument("--dpi", type=int, default=100, help="PNG resolution")
    return p


def summarize_run(path: str) -> RunSummary:
    reader = rundir.RunReader(path)
    data = RunData(reader)
    info = data.info()
    elapsed = info.get("elapsed")
    rows = data.rows()
    if not isinstance(elapsed, (int, float)) or isinstance(elapsed, bool):
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


def comparison_figure(groups: list[Group]) -> CurveFigure:
    cos_lines, err_lines = [], []
    for index, group in enumerate(groups):
        n = len(group.runs)
        label = f"{group.label} (n={n})"
        for key, lines, positive in ((COS, cos_lines, False), (ERR, err_lines, True)):
            steps, mean, low, high = band(group.runs, key)
            if not len(steps):
                continue
            if positive:
                mean, low, high = (np.where(a > 0, a, np.nan) for a in (mean, low, high))
            shown = (low, high) if n > 1 else None
            lines.append(Line(label, steps, mean, index, bold=True, band=shown))
    runs = sum(len(g.runs) for g in groups)
    return CurveFigure(
        "comparison",
        f"{runs} runs in {len(groups)} setting(s): mean with 95% t-interval over seeds",
        "bands: mean ± t(0.975, n-1)·s/√n across runs of one setting",
        [
            CurvePanel(
                "Mean |cos| to ground truth",
                cos_lines,
                ylabel="mean |cos|",
                ylim=(0.0, 1.02),
                legend="lower right",
            ),
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
    header = ("setting", "run", "status", "steps", "mean |cos|", "eig error", "wall s")
    rows = []
    data = {"groups": []}
    for group in groups:
        entry = {"label": group.label, "config": group.config, "runs": []}
        for run in group.runs:
            final = (run.final(COS), run.final(ERR))
            rows.append(
                (
                    group.label,
                    run.name,
                    run.status,
                    str(run.final_step or "-"),
                    _fmt(final[0]),
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
                    "eig_error": final[1],
                    "wall_time": run.wall_time,
                }
            )
        cos = [r["cos_mean"] for r in entry["runs"]]
        err = [r["eig_error"] for r in entry["runs"]]
        wall = [r["wall_time"] for r in entry["runs"]]
        steps = [r["steps"] for r in entry["runs"] if r["steps"] is not None]
        rows.append(
            (
                group.label,
                f"mean of {len(group.runs)}",
                "",
                str(min(steps, default="-")),
                _mean_ci(cos),
                _mean_ci(err, 5),
                _mean_ci(wall, 1),
            )
        )
        entry["summary"] = {
            "n": len(group.runs),
            "cos_mean": _stats(cos),
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
    inside = inside_run_outside_plots(args.out)
    if inside is not None:
        print(
            f"{PROG}: --out {args.out}: lies inside run {inside}; choose another folder",
            file=sys.stderr,
        )
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
    groups = group_runs(runs)
    text, data = table(groups)
    to_stdout = args.format == "text"
    options = RenderOptions(
        dpi=args.dpi,
        color=not os.environ.get("NO_COLOR") and (sys.stdout.isatty() or not to_stdout),
        width=int(os.environ.get("COLUMNS", "0") or 0) or 120,
    )
    try:
        figure = renderer_cls(options).comparison(comparison_figure(groups))
    except Exception as err:  # the table is still worth having
        print(f"{PROG}: figure failed: {type(err).__name__}: {err}", file=sys.stderr)
        figure, failed = None, True
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    if figure is not None and not to_stdout:
        target = args.out / f"comparison{renderer_cls.extension}"
        rundir.atomic_write_bytes(target, figure)
        written.append(target)
    for name, payload in (
        ("comparison_table.txt", text.encode()),
        ("comparison.json", (rundir.dumps(data, indent=2) + "\n").encode()),
    ):
        rundir.atomic_write_bytes(args.out / name, payload)
        written.append(args.out / name)
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
    inside = inside_run_outside_plots(args.out)
    if inside is not None:
        print(f"{PROG}: --out {args.out}: lies inside run {inside}; choose another folder",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"table.{args.format}"
    rundir.atomic_write_text(target, text)
    sys.stdout.write(text)
    print(f"{PROG}: {folder}: table -> {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
