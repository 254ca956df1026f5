"""Make figures: build each description, draw it with a renderer, write it atomically.

Work is split across processes by figure (`--jobs`). The parent draws one share itself
and forks the rest after the renderer has imported its heavy dependencies (`prepare(kinds)`),
so children start warm; where fork is unavailable the same top-level function runs
under spawn. Only plain data (paths, names, numbers) crosses a process boundary.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from allo import rundir
from renderers import RendererError, RenderOptions, axes, kinds, load
from renderers import figures as figs
from renderers.plan import Job

MADE, CURRENT, NOT_YET, FAILED = "made", "up to date", "not yet possible", "failed"


@dataclass
class Outcome:
    stem: str
    status: str
    message: str = ""
    path: str | None = None
    text: str | None = None  # the figure itself, when printed instead of written


def build(data: figs.RunData, job: Job, eigenvectors: list[int] | None, size: str = "column"):
    """The figure description for one job; a curve figure's axes settled for `size`."""
    figure = kinds.build(kinds.KINDS[job.kind], data, job.step, eigenvectors)
    if isinstance(figure, figs.CurveFigure):
        axes.settle(figure, size)
    return figure


def draw_figure(renderer, kind: str, figure) -> bytes:
    """The renderer's method for the kind's shape (`grid` / `curves`); a plugin written
    for the older protocol may have one method per kind instead."""
    method = getattr(renderer, kinds.KINDS[kind].shape, None)
    if method is None:
        method = getattr(renderer, kind)
    return method(figure)


def target_path(run: Path, out_dir: Path | None, stem: str, extension: str) -> Path:
    if out_dir is None:
        return rundir.safe_plot_path(run, stem + extension)
    name = stem + extension
    if "/" in name or "\\" in name or name.startswith("."):
        raise rundir.RunDirError(f"refusing figure name {name!r}")
    return out_dir / name


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def draw(
    run: Path,
    fmt: str,
    options: RenderOptions,
    jobs: list[Job],
    eigenvectors: list[int] | None,
    out_dir: Path | None,
    to_stdout: bool,
) -> list[Outcome]:
    """Make `jobs` in this process; every problem becomes an Outcome, never an exception."""
    outcomes: list[Outcome] = []
    try:
        renderer = load(fmt)(options)
        data = figs.RunData(rundir.RunReader(run), options)
    except (RendererError, rundir.RunDirError) as err:
        return [Outcome(job.stem, FAILED, _one_line(err)) for job in jobs]
    status = _status(data)
    for job in jobs:
        try:
            figure = build(data, job, eigenvectors, options.size)
            payload = draw_figure(renderer, job.kind, figure)
            if to_stdout:
                outcomes.append(Outcome(job.stem, MADE, text=payload.decode("utf-8")))
                continue
            target = target_path(run, out_dir, job.stem, renderer.extension)
            target.parent.mkdir(parents=True, exist_ok=True)
            rundir.atomic_write_bytes(target, payload)
            outcomes.append(Outcome(job.stem, MADE, path=str(target)))
        except figs.NotYet as err:
            outcomes.append(Outcome(job.stem, NOT_YET, f"{err} (run {status})"))
        except rundir.RunDirError as err:
            outcomes.append(Outcome(job.stem, FAILED, _one_line(err)))
        except NotImplementedError:
            outcomes.append(Outcome(job.stem, FAILED, f"renderer {fmt!r} cannot draw {job.kind}"))
        except Exception as err:  # a figure's bug must not cost the other figures
            outcomes.append(Outcome(job.stem, FAILED, f"{type(err).__name__}: {_one_line(err)}"))
    return outcomes


def _status(data: figs.RunData) -> str:
    try:
        return f"is {rundir.effective_status(data.info())}"
    except rundir.RunDirError:
        return "status unknown"


def _draw_plain(*args) -> list[dict]:
    """Process entry point: plain dicts back across the boundary."""
    return [asdict(o) for o in draw(*args)]


def _shares(jobs: list[Job], count: int) -> list[list[Job]]:
    """Split jobs into `count` shares of similar cost (largest first, to the lightest)."""
    shares: list[list[Job]] = [[] for _ in range(count)]
    loads = [0] * count
    for job in sorted(jobs, key=lambda j: -j.cost):
        lightest = loads.index(min(loads))
        shares[lightest].append(job)
        loads[lightest] += job.cost
    return [share for share in shares if share]


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


MIN_TICKS = 20  # /proc/stat counts in 10 ms ticks per CPU: 0.1 s on two CPUs


def cpu_times() -> tuple[int, int] | None:
    """(idle, total) clock ticks of all CPUs so far, from /proc/stat; None without it."""
    try:
        with open("/proc/stat", "rb") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != b"cpu" or len(fields) < 5:
        return None
    ticks = [int(value) for value in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return idle, sum(ticks[:8])  # guest time is already inside user time


def idle_cpus(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """How many CPUs sat idle, on average, between two cpu_times() samples."""
    if before is None or after is None or after[1] - before[1] < MIN_TICKS:
        return None  # too short an interval to tell
    share = (after[0] - before[0]) / (after[1] - before[1])
    return max(0.0, share) * online_cpus()


def online_cpus() -> int:
    """The CPUs that /proc/stat's first line adds up (all of them, not our affinity)."""
    return max(1, os.cpu_count() or 1)


def workers_while_busy(workers: int, since: tuple[int, int] | None) -> int:
    """`workers` capped at this process plus the CPUs left idle since `since`.

    While another session keeps the other cores busy, a second worker runs on the
    same share of CPU as this process would alone (Linux's autogroup scheduling, on by
    default, splits CPU between sessions) and only adds its own start-up
    (BENCHMARKS.md, "Rendering").
    Without a measurement (no /proc/stat) nothing changes.
    """
    idle = idle_cpus(since, cpu_times())
    if idle is None:
        return workers
    return max(1, min(workers, 1 + int(idle + 0.5)))


def run_jobs(
    run: Path,
    fmt: str,
    options: RenderOptions,
    jobs: list[Job],
    eigenvectors: list[int] | None,
    out_dir: Path | None,
    to_stdout: bool,
    workers: int,
    idle_since: tuple[int, int] | None = None,
) -> list[Outcome]:
    """Make all jobs, in `workers` processes at most (this one included).

    With `idle_since` (a cpu_times() sample), workers beyond the CPUs that stayed idle
    from then until the fork are not started (workers_while_busy).
    """
    order = {job.stem: i for i, job in enumerate(jobs)}
    workers = min(workers, len(jobs))
    if to_stdout:
        return draw(run, fmt, options, jobs, eigenvectors, out_dir, to_stdout)
    _prepare(fmt, options, jobs)
    if idle_since is not None and workers > 1:
        workers = workers_while_busy(workers, idle_since)
    with _frozen_gc():
        if workers <= 1:
            return draw(run, fmt, options, jobs, eigenvectors, out_dir, to_stdout)
        outcomes = _fork_and_draw(run, fmt, options, jobs, eigenvectors, out_dir, workers)
    return sorted(outcomes, key=lambda o: order.get(o.stem, 0))


def _prepare(fmt: str, options: RenderOptions, jobs: list[Job]) -> None:
    """Let the renderer import its heavy dependencies now, before any fork.

    Only a head start: whatever fails here fails again in draw(), which reports it per
    figure instead of ending the command.
    """
    try:
        renderer = load(fmt)(options)
        prepare = getattr(renderer, "prepare", None)
        if callable(prepare):
            prepare(sorted({job.kind for job in jobs}))
    except Exception:  # see the docstring
        return


@contextmanager
def _frozen_gc() -> Iterator[None]:
    """Everything imported so far lives until exit: the collector stops visiting it.

    Each collection while drawing then traverses only the figures' objects, and a
    forked worker's collections no longer write to the pages it shares with this process
    (no copy-on-write of matplotlib's objects); this is the recipe the `gc` docs give for
    fork (BENCHMARKS.md, "Rendering").
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _fork_and_draw(
    run: Path,
    fmt: str,
    options: RenderOptions,
    jobs: list[Job],
    eigenvectors: list[int] | None,
    out_dir: Path | None,
    workers: int,
) -> list[Outcome]:
    """This process draws the first share; forked workers draw the others."""
    # Imported here: the single-process path (text, one figure) does not pay for them.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    shares = _shares(jobs, workers)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    outcomes: list[Outcome] = []
    with ProcessPoolExecutor(max_workers=len(shares) - 1, mp_context=context) as pool:
        futures = [
            pool.submit(_draw_plain, run, fmt, options, share, eigenvectors, out_dir, False)
            for share in shares[1:]
        ]
        outcomes.extend(draw(run, fmt, options, shares[0], eigenvectors, out_dir, False))
        for future, share in zip(futures, shares[1:], strict=False):
            try:
                outcomes.extend(Outcome(**o) for o in future.result())
            except Exception as err:  # a worker that died takes only its own figures
                outcomes.extend(
                    Outcome(job.stem, FAILED, f"worker failed: {_one_line(err)}") for job in share
                )
    return outcomes
