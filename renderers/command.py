"""`allo render RUN`: figures from a run directory, on demand, while it trains or after.

    allo render results/room4/<run>                       # every figure, PNG, in RUN/plots
    allo render results/room4/<run> --latest-only         # newest export only (fast)
    allo render results/room4/<run> --format text --latest-only   # in the terminal
    allo render results/room4/<run> --format svg --steps 1000,5000 --eigenvectors 1,2,3
    allo render results/room4/<run> --format pdf --size page --tail 0.5   # for a paper

Incremental: a figure newer than its input files is skipped unless --force, so calling
this every 30 s during training costs almost nothing. Exit 0 when every figure that the
data allows was made, 1 when some figure failed (corrupt file), 2 for usage errors or a
missing / non-run directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from allo import rundir
from allo.cliparse import AlloParser
from renderers import (
    RendererError,
    available,
    drawn_with,
    entry_point_target,
    kinds,
    load,
)
from renderers.figopts import add_figure_options, render_options
from renderers.plan import Selection, inside_run_outside_plots, make_plan
from renderers.runner import (
    CURRENT,
    FAILED,
    MADE,
    NOT_YET,
    Outcome,
    cpu_times,
    default_jobs,
    run_jobs,
)

PROG = "allo render"


class UsageError(Exception):
    """Bad arguments or a path that is not a run: one line, exit 2."""


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = AlloParser(
        prog=PROG,
        description="Figures from a run directory (png, svg, pdf or text), written to "
                    "RUN/plots.",
    )
    p.add_argument("run", nargs="?", help="run directory (holds run.json)")
    p.add_argument("--format", default="png",
                   help="png | svg | pdf | text, or an installed plugin")
    for group in ("ground-truth", "learned", "metrics", "comparison"):
        names = kinds.in_group(group)
        shown = f"{names[0]}_step_S figures" if group == "learned" else ", ".join(names)
        p.add_argument(f"--skip-{group}", action="store_true", help=f"no {shown}")
    p.add_argument(
        "--latest-only", action="store_true", help="only the export with the highest step number"
    )
    p.add_argument("--steps", type=int_list, help="only these export steps, e.g. 1000,5000")
    p.add_argument(
        "--eigenvectors", type=int_list,
        help="only these eigenvectors, numbered from 1 as in the figures, e.g. 1,2,3"
    )
    add_figure_options(p)
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="processes working in parallel (default: number of cores, fewer while other "
        "work keeps them busy)",
    )
    p.add_argument("--force", action="store_true", help="redo figures that are up to date")
    p.add_argument("--list-formats", action="store_true", help="list installed renderers")
    p.add_argument("--quiet", action="store_true", help="print nothing unless an error")
    p.add_argument(
        "--out", type=Path, help="write files here instead (text: instead of printing to stdout)"
    )
    return p


def list_formats() -> int:
    for name in available():
        target = entry_point_target(name)
        try:
            cls = load(name)
            print(f"{name:<6} {cls.extension:<5} {target}")
        except RendererError as err:
            print(f"{name:<6} {'-':<5} {target}  ({err})")
    return 0


def summarize(outcomes: list[Outcome], seconds: float, where: str, stream) -> None:
    counts = {s: sum(o.status == s for o in outcomes) for s in (MADE, CURRENT, NOT_YET, FAILED)}
    parts = [
        f"{counts[MADE]} made",
        f"{counts[CURRENT]} up to date",
        f"{counts[NOT_YET]} not yet possible",
    ]
    if counts[FAILED]:
        parts.append(f"{counts[FAILED]} failed")
    print(f"{PROG}: {', '.join(parts)} in {seconds:.2f} s{where}", file=stream)
    for outcome in outcomes:
        if outcome.status == NOT_YET:
            print(f"  not yet: {outcome.stem}: {outcome.message}", file=stream)


def main(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.list_formats:
        return list_formats()
    try:
        return render(args)
    except UsageError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2


def render(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    cpu_started = cpu_times() if args.jobs is None else None  # --jobs given: no guessing
    if not args.run:
        raise UsageError("missing the run directory (allo render RUN)")
    try:
        reader = rundir.RunReader(args.run)
        reader.env()  # a run.json that cannot be read makes the directory no usable run
        renderer = load(args.format)
    except (rundir.RunDirError, RendererError) as err:
        raise UsageError(str(err)) from None
    out_dir = args.out
    if out_dir is not None:
        inside = inside_run_outside_plots(out_dir)
        if inside is not None:
            raise UsageError(f"--out {out_dir}: lies inside run {inside}; use its plots/")
    to_stdout = args.format == "text" and out_dir is None
    check_request(reader, args.eigenvectors, args.steps)
    # e1 is the first eigenvector everywhere a person reads (figures, allo watch, notes,
    # docs/math.md); the figures take column indices
    columns = None if args.eigenvectors is None else [n - 1 for n in args.eigenvectors]
    selection = Selection(
        ground_truth=not args.skip_ground_truth,
        learned=not args.skip_learned,
        metrics=not args.skip_metrics,
        comparison=not args.skip_comparison,
        latest_only=args.latest_only,
        steps=args.steps,
        eigenvectors=columns,
    )
    plan = make_plan(reader, selection)
    options = render_options(
        args,
        color=not os.environ.get("NO_COLOR")
        and (not to_stdout or sys.stdout.isatty() or bool(os.environ.get("FORCE_COLOR"))),
        width=_text_width(to_stdout),
    )
    wanted = drawn_with.signature(options, columns,
                                  getattr(renderer, "options_used", None),
                                  getattr(renderer, "drawing_version", None))
    record = None if to_stdout else _record_path(reader.path, out_dir)
    drawn = drawn_with.read(record) if record is not None and not args.force else {}
    outcomes = [Outcome(stem, NOT_YET, why) for stem, why in plan.not_yet]
    todo = []
    for job in plan.jobs:
        if not (args.force or to_stdout):
            try:
                target = (
                    rundir.safe_plot_path(reader.path, job.stem + renderer.extension)
                    if out_dir is None
                    else out_dir / (job.stem + renderer.extension)
                )
            except rundir.RunDirError as err:
                outcomes.append(Outcome(job.stem, FAILED, str(err)))
                continue
            if target.exists() and drawn_with.is_current(
                    drawn.get(target.name), wanted, drawn_with.stamp(reader.path, job.inputs)):
                outcomes.append(Outcome(job.stem, CURRENT, path=str(target)))
                continue
        todo.append(job)
    # the inputs as they are before they are read: a figure is current while they stay so
    stamps = {job.stem: drawn_with.stamp(reader.path, job.inputs) for job in todo}
    if todo:
        outcomes += run_jobs(
            reader.path,
            args.format,
            options,
            todo,
            columns,
            out_dir,
            to_stdout,
            args.jobs or default_jobs(),
            idle_since=cpu_started,
        )
    if record is not None:
        drawn_with.remember(record, {
            Path(o.path).name: {**wanted, drawn_with.INPUTS: stamps.get(o.stem)}
            for o in outcomes if o.status == MADE and o.path})
    for outcome in outcomes:
        if outcome.text is not None:
            sys.stdout.write(outcome.text if outcome.text.endswith("\n") else outcome.text + "\n")
    for outcome in outcomes:
        if outcome.status == FAILED:
            print(f"{PROG}: {outcome.stem}: {outcome.message}", file=sys.stderr)
    if selection.metrics:
        try:
            _, problems = reader.metrics_with_problems()
        except rundir.RunDirError:  # unreadable: each figure that needed it said so
            problems = []
        if problems:  # the curves skip them; say so once
            print(f"{PROG}: warning: {reader.path / rundir.METRICS_JSONL}: skipped "
                  f"{len(problems)} malformed line(s) ({problems[0]})", file=sys.stderr)
    if not args.quiet:
        where = "" if to_stdout else f" -> {out_dir or reader.plots_dir}"
        summarize(
            outcomes, time.perf_counter() - started, where, sys.stderr if to_stdout else sys.stdout
        )
    return 1 if any(o.status == FAILED for o in outcomes) else 0


def check_request(reader: rundir.RunReader, eigenvectors: list[int] | None,
                  steps: list[int] | None) -> None:
    """Eigenvectors the run does not have, or exports a finished run never wrote: usage
    errors, not figures "not yet possible" (a running or interrupted run may still write
    a step; a finished one will not unless resumed)."""
    if not eigenvectors and not steps:
        return  # nothing to check: no run.json reads on the nothing-changed path
    try:
        d = reader.num_eigenvectors()
        finished = rundir.effective_status(reader.info()) == "finished"
    except rundir.RunDirError as err:
        raise UsageError(str(err)) from None
    outside = [number for number in eigenvectors or [] if not 1 <= number <= d]
    if outside:
        raise UsageError(f"--eigenvectors {_numbers(outside)}: this run has {d} eigenvectors, "
                         f"numbered 1..{d}")
    if steps and finished:
        exports = reader.export_steps()
        missing = sorted(set(steps) - set(exports))
        if missing:
            raise UsageError(f"--steps {_numbers(missing)}: this finished run has no export "
                             f"there (its exports: {_numbers(exports) or 'none'})")


def _numbers(values: list[int], most: int = 8) -> str:
    if len(values) > most:
        return ",".join(map(str, values[: most - 2])) + ",...," + ",".join(map(str, values[-2:]))
    return ",".join(map(str, values))


def _record_path(run: Path, out_dir: Path | None) -> Path | None:
    """Where the options of the figures in the output folder are kept."""
    if out_dir is not None:
        return out_dir / drawn_with.RECORD
    try:
        return rundir.safe_plot_path(run, drawn_with.RECORD)
    except rundir.RunDirError:
        return None  # the figures themselves will fail with that message


def _text_width(to_stdout: bool) -> int:
    if to_stdout and sys.stdout.isatty():
        try:
            return max(60, os.get_terminal_size().columns)
        except OSError:
            pass
    return int(os.environ.get("COLUMNS", "0") or 0) or 120
