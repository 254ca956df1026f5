"""The figure kinds: ONE table that the registry, the runner, the plan and `--help` read.

A kind names its output file, its shape (every renderer has one method per shape:
`grid` or `curves`), the `--skip-*` group that leaves it out, the run files it is drawn
from (an incremental render redraws it when one of them changes), a rough cost for
balancing worker processes, and the builder in renderers/figures.py that describes it.
Adding a figure is a row here and a builder there. Importing this module is cheap (no
numpy): builders are named, and looked up when a figure is built.
"""

from __future__ import annotations

from dataclasses import dataclass

# Placeholders in `inputs`, replaced by renderers/plan.py with the run's real file names.
METRICS = "<metrics>"  # metrics.jsonl, or metrics_history.json from older tools
EXPORT = "<export>"  # the learned export of the figure's step
GT_VALUES = "gt_eigenvalues.npy"
GT_VECTORS = "gt_eigenvectors.npy"
FINAL = "final_learned_eigenvectors.npy"


@dataclass(frozen=True)
class Kind:
    name: str  # the file stem (learned figures add _step_S) and the name in messages
    shape: str  # "grid" or "curves": the renderer method that draws it
    group: str  # the --skip-GROUP flag leaving it out; "compare": drawn by allo compare
    inputs: tuple[str, ...]  # run files it is drawn from
    builder: str  # function in renderers/figures.py: (RunData, step, eigenvectors) -> figure
    cost: int  # rough CPU in about 10 ms units (PNG, d = 10)
    panel_cost: int = 0  # added per eigenvector panel
    per_export: bool = False  # one figure per learned export
    step: str | None = None  # the export it draws, where fixed ("final")
    args: tuple[str, ...] = ("eigenvectors",)  # what its builder takes besides the run


TABLE = (
    Kind("ground_truth_eigenvectors", "grid", "ground-truth", (GT_VALUES, GT_VECTORS),
         "ground_truth_figure", 9, 1),
    Kind("learned_eigenvectors", "grid", "learned", (EXPORT, GT_VALUES, GT_VECTORS),
         "learned_figure", 9, 1, per_export=True, args=("step", "eigenvectors")),
    Kind("final_comparison", "grid", "comparison", (FINAL, GT_VALUES, GT_VECTORS),
         "final_comparison_figure", 9, 2, step="final"),
    Kind("learning_curves", "curves", "metrics", (METRICS,), "learning_curves_figure", 70,
         args=()),
    Kind("dual_variable_evolution", "curves", "metrics", (METRICS, GT_VALUES),
         "dual_variables_figure", 48),
    Kind("cosine_similarity", "curves", "metrics", (METRICS,), "cosine_figure", 22),
    Kind("comparison", "curves", "compare", (), "", 40),
)
KINDS = {kind.name: kind for kind in TABLE}
SHAPES = ("grid", "curves")


def in_group(group: str) -> list[str]:
    """The kinds a --skip-GROUP flag leaves out, in drawing order (for --help)."""
    return [kind.name for kind in TABLE if kind.group == group]


def build(kind: Kind, data, step, eigenvectors):
    """The figure description of one kind (renderers/figures.py)."""
    from renderers import figures

    given = {"step": step, "eigenvectors": eigenvectors}
    return getattr(figures, kind.builder)(data, **{name: given[name] for name in kind.args})
