"""Which figures a render makes, from which files, and whether each is already current.

A figure is current when the input files it was drawn from are still exactly as they
were when the render read them, and it was drawn with the options asked for now
(renderers/drawn_with.py keeps both). run.json is deliberately not an input: the trainer
rewrites it at every log step (heartbeat), and the layout in it never changes during a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from allo import rundir
from renderers import kinds

GT_FILES = (rundir.GT_EIGENVALUES, rundir.GT_EIGENVECTORS)
# Each kind's CPU cost (renderers/kinds.py) balances the worker processes; a grid's grows
# with its panels, a curve figure's with its axes and legends. BENCHMARKS.md, "Rendering".


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
    """One job per figure the selection asks for, in the order of the kinds table."""
    plan = Plan()
    panels = len(selection.eigenvectors) if selection.eigenvectors else d_hint
    wanted = {
        "ground-truth": selection.ground_truth,
        "learned": selection.learned,
        "comparison": selection.comparison,
        "metrics": selection.metrics,
    }
    names = {kinds.METRICS: metrics_source(reader.path)}
    for kind in kinds.TABLE:
        if not wanted.get(kind.group, False):
            continue
        cost = kind.cost + kind.panel_cost * panels
        if not kind.per_export:
            inputs = tuple(names.get(name, name) for name in kind.inputs)
            plan.jobs.append(Job(kind.name, kind.name, inputs, step=kind.step, cost=cost))
            continue
        for step in _export_steps(reader, selection, plan):
            inputs = tuple(
                rundir.export_name(step) if name == kinds.EXPORT else names.get(name, name)
                for name in kind.inputs
            )
            plan.jobs.append(Job(learned_stem(step), kind.name, inputs, step=step, cost=cost))
    return plan


def _export_steps(reader: rundir.RunReader, selection: Selection, plan: Plan) -> list[int]:
    """The exports to draw; steps asked for but not exported go to plan.not_yet."""
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
    return steps


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
