"""Which figures a render makes, from which files, and whether each is already current.

A figure is current when its output file is newer than every input file it is drawn
from. run.json is deliberately not an input: the trainer rewrites it at every log step
(heartbeat), and the layout in it never changes during a run. Options that change a
picture (--eigenvectors, --dpi) are checked beside this, in renderers/drawn_with.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from allo import rundir

GT_FILES = (rundir.GT_EIGENVALUES, rundir.GT_EIGENVECTORS)
METRIC_KINDS = ("learning_curves", "dual_variable_evolution", "cosine_similarity")
# CPU cost of each figure in about 10 ms units: PNG, room4, d = 10, drawn in a worker
# forked after prepare() (median of 5 on the 2-core VM: learning_curves 0.72 s,
# dual_variable_evolution 0.49, cosine_similarity 0.23, a learned grid 0.21, the final
# comparison 0.31). A grid figure costs about GRID_BASE_COST + its panel count: its cells
# are painted with numpy and only its text goes through matplotlib, while a curve figure
# pays for axes, ticks and legends. See BENCHMARKS.md, "Rendering".
CURVE_COST = {"learning_curves": 70, "dual_variable_evolution": 48, "cosine_similarity": 22}
GRID_BASE_COST = 9


@dataclass(frozen=True)
class Job:
    """One figure: its output stem, the renderer method, and the run files it reads."""

    stem: str
    kind: str
    inputs: tuple[str, ...]
    step: int | str | None = None  # the export drawn (learned figures)
    cost: int = 1  # rough relative CPU (about 10 ms units), for balancing processes


@dataclass
class Selection:
    """The CLI's choice of figures."""

    ground_truth: bool = True
    learned: bool = True
    metrics: bool = True
    comparison: bool = True
    latest_only: bool = False
    steps: list[int] | None = None
    eigenvectors: list[int] | None = None


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    not_yet: list[tuple[str, str]] = field(default_factory=list)  # (figure, why)


def metrics_source(run: Path) -> str:
    """metrics.jsonl, or metrics_history.json for runs from older tools."""
    if not (run / rundir.METRICS_JSONL).exists() and (run / rundir.METRICS_HISTORY).exists():
        return rundir.METRICS_HISTORY
    return rundir.METRICS_JSONL


def learned_stem(step: int) -> str:
    return f"learned_eigenvectors_step_{int(step)}"


def make_plan(reader: rundir.RunReader, selection: Selection, d_hint: int = 10) -> Plan:
    plan = Plan()
    run = reader.path
    panels = len(selection.eigenvectors) if selection.eigenvectors else d_hint
    if selection.ground_truth:
        plan.jobs.append(
            Job(
                "ground_truth_eigenvectors",
                "ground_truth_eigenvectors",
                GT_FILES,
                cost=GRID_BASE_COST + panels,
            )
        )
    if selection.learned:
        steps = reader.export_steps()  # sorted by number: 999 < 1000 < 10000
        if selection.steps:
            wanted = set(selection.steps)
            for step in sorted(wanted - set(steps)):
                plan.not_yet.append((learned_stem(step), f"no export for step {step}"))
            steps = [s for s in steps if s in wanted]
        if selection.latest_only and steps:
            steps = steps[-1:]
        if not steps and not selection.steps:
            plan.not_yet.append(("learned_eigenvectors_step_*", "no learned export yet"))
        for step in steps:
            plan.jobs.append(
                Job(
                    learned_stem(step),
                    "learned_eigenvectors",
                    (rundir.export_name(step), *GT_FILES),
                    step=step,
                    cost=GRID_BASE_COST + panels,
                )
            )
    if selection.comparison:
        plan.jobs.append(
            Job(
                "final_comparison",
                "final_comparison",
                (rundir.FINAL_LEARNED, *GT_FILES),
                step="final",
                cost=GRID_BASE_COST + 2 * panels,
            )
        )
    if selection.metrics:
        source = metrics_source(run)
        inputs = {
            "learning_curves": (source,),
            "dual_variable_evolution": (source, rundir.GT_EIGENVALUES),
            "cosine_similarity": (source,),
        }
        for kind in METRIC_KINDS:
            plan.jobs.append(Job(kind, kind, inputs[kind], cost=CURVE_COST[kind]))
    return plan


def _mtime_ns(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def is_current(target: Path, run: Path, job: Job) -> bool:
    """The output exists and is strictly newer than every input (a missing input: no)."""
    made = _mtime_ns(target)
    if made is None:
        return False
    for name in job.inputs:
        changed = _mtime_ns(run / name)
        if changed is None or changed >= made:
            return False
    return True


def inside_run_outside_plots(path: Path) -> Path | None:
    """The run directory that `path` lies in but outside its plots/, if any."""
    path = path.resolve()
    for parent in (path, *path.parents):
        if rundir.is_run_dir(parent):
            plots = (parent / rundir.PLOTS).resolve()
            if path != plots and plots not in path.parents:
                return parent
            return None
    return None
