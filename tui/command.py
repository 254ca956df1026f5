"""`allo watch [RUN | FOLDER]`: argument handling, the --once summary, then the app.

Textual is imported only when the dashboard really opens, so the summary path (and
`--help`) stays fast and never touches torch or matplotlib. The dashboard path reads
run.json through allo.rundir (numpy-free at import) and hands it to the app, so the first frame
already shows the run's status; numpy loads after it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from allo import rundir

DEFAULT_RESULTS = Path("results")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="allo watch",
        description="Live terminal dashboard of a training run (read-only; works over SSH).",
    )
    parser.add_argument(
        "path",
        nargs="?",
        type=Path,
        help="a run directory, or a folder of runs at any depth (a study, results/): "
        "opens the runs table; default ./results",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="print a text summary and exit (also when stdout is not a terminal): a run's "
        "state, or a folder's runs table with each configuration's mean and 95%% interval",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.5,
        help="seconds between polls of the run directory (default 0.5)",
    )
    return parser


class WatchError(Exception):
    """A one-line reason to exit 2."""


def resolve(path: Path | None) -> tuple[Path, list[Path]]:
    """The run to open and the runs the user may switch to (newest first)."""
    target = DEFAULT_RESULTS if path is None else path
    if not target.exists():
        hint = " (run `allo train` first, or pass a run directory)" if path is None else ""
        raise WatchError(f"{target}: no such directory{hint}")
    if not target.is_dir():
        raise WatchError(f"{target}: not a directory")
    if rundir.is_run_dir(target):
        siblings = rundir.find_runs(target.parent) if target.parent != target else []
        runs = siblings if any(_same(r, target) for r in siblings) else [target]
        return target, [target if _same(r, target) else r for r in runs]
    runs = rundir.find_runs(target)
    if not runs:
        raise WatchError(f"{target}: not a run directory and no runs below it (no run.json)")
    return runs[0], runs


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.interval <= 0:
        print("allo watch: --interval must be positive", file=sys.stderr)
        return 2
    target = DEFAULT_RESULTS if args.path is None else args.path
    if target.is_dir() and not rundir.is_run_dir(target):
        return watch_folder(target, args)
    try:
        run, runs = resolve(args.path)
        info = rundir.RunReader(run).info()  # fail now, in one line, rather than inside the app
    except (WatchError, rundir.RunDirError) as err:
        print(f"allo watch: {err}", file=sys.stderr)
        return 2
    if args.once or not sys.stdout.isatty():
        from tui.summary import summarize

        try:
            print(summarize(run, runs))
        except rundir.RunDirError as err:
            print(f"allo watch: {err}", file=sys.stderr)
            return 2
        return 0
    from tui.app import make_app

    make_app(run, runs, poll_seconds=args.interval, info=info).run()
    return 0


def watch_folder(folder: Path, args: argparse.Namespace) -> int:
    """A folder of runs: the runs table (or its text). A broken run is shown in its row,
    never a reason to exit; only a folder without any run is."""
    from tui.discover import find_run_dirs

    try:
        runs = find_run_dirs(folder)
    except OSError as err:
        print(f"allo watch: {folder}: {err.strerror or err}", file=sys.stderr)
        return 2
    if not runs:
        print(f"allo watch: {folder}: not a run directory and no runs below it (no run.json)",
              file=sys.stderr)
        return 2
    if args.once or not sys.stdout.isatty():
        from tui.runsummary import summarize_runs

        print(summarize_runs(folder))
        return 0
    from tui.app import make_app

    make_app(runs[0], runs, poll_seconds=args.interval, folder=folder).run()
    return 0
