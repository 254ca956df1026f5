"""How many gradient steps a layout needs, read from its exact spectrum before training.

ALLO turns each learned vector u_i towards its eigenvector e_i at a speed proportional to
the gap to the next eigenvalue: near the solution, the part of u_i along e_j (j > i)
shrinks like (1 - 2 eta (lambda_j - lambda_i))^t, and neither the barrier nor the duals
act on it (docs/math.md, section 8). The slowest direction of the whole representation is
therefore set by the smallest gap among lambda_1 .. lambda_{d+1}, and the steps needed grow
like 1 / gap. The ground truth is exact and known before the first step, so `allo train`
can size the run (or say which --steps to use) instead of leaving the user to guess.

Repeated eigenvalues (one eigenspace, `metrics.eigenspace_blocks`, near-repeats within
0.5% included) need no separating: they are scored by the eigenspace cosine, so their
gap is skipped.

Steps are not the only limit. The sampler draws from one finite data set, whose empirical
pair law defines a slightly different operator; where two eigenvalues are close, its
eigenvectors are turned against the exact ones by about (perturbation / gap), and ALLO
learns those: the learned vectors match the empirical operator's more closely than the
exact ones. `data_ceiling` measures that limit once, before training (BENCHMARKS.md,
"Data ceiling"), and `data_advice` says how much more data to collect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from allo import sparse_law
from allo.layouts import Layout
from allo.metrics import (
    REPEAT_TOLERANCE,
    cosine_similarities,
    eigenspace_blocks,
    strict_cosines,
)
from allo.sparse_law import Law
from allo.spectrum import DENSE_MAX_CELLS, operator_spectrum

# Steps x gap that sampled batches (--batch-size) need for the closest pair to reach
# 0.99, with a margin for a pair that settles swapped and must leave that saddle
# (BENCHMARKS.md, "Accuracy across layouts": the budget's constants).
STEPS_TIMES_GAP_SAMPLED = 45.0
# The same with the exact expectation (the default): without sampling noise the gap only
# decides for very close pairs, where a pair that starts swapped leaves the saddle at the
# rate of its gap. Chosen to cover the slowest seed measured, not every seed: seeds still
# turning at the budget go on (allo/settling.py), and unsettled_advice names any still
# turning at the end.
STEPS_TIMES_GAP = 4.0
# The vectors settle as a cascade (u_i aims at e_i only once u_1 .. u_(i-1) are in place),
# and the time constants of a cascade add: steps also grow like sum_i 1 / gap_i
# (docs/math.md section 8); the factor covers the layout where no single gap dominates.
STEPS_TIMES_GAP_SUM = 1.5
# Never recommend fewer steps than this (small layouts still need the cascade of all d
# vectors to settle: spiral 6000 with the expectation) nor more than this without saying
# so (a run of ~5 minutes on a 2-core CPU).
MIN_STEPS = 8000
MAX_STEPS = 60000
ROUND_TO = 1000


@dataclass(frozen=True)
class Budget:
    """The recommendation and why: the closest pair of distinct eigenvalues."""

    steps: int  # recommended --steps (rounded up, within MIN_STEPS..MAX_STEPS)
    needed: int  # steps before the cap (closest pair or cascade), rounded up
    gap: float  # lambda_{i+1} - lambda_i of the closest distinct pair (inf if none)
    pair: tuple[int, int]  # its 1-based indices (i, i + 1); (0, 0) if none
    cascade: bool = False  # the sum over all gaps, not the closest pair, set the steps

    @property
    def capped(self) -> bool:
        return self.needed > self.steps


def gaps_between_eigenspaces(eigenvalues: np.ndarray, d: int, tol: float = REPEAT_TOLERANCE
                             ) -> list[tuple[float, tuple[int, int]]]:
    """lambda_(i+1) - lambda_i and its 1-based pair (i, i + 1) for each pair of neighbouring
    eigenspaces among lambda_1 .. lambda_(d+1) (near-repeats within `tol` are one
    eigenspace, as the quality metric scores them).

    lambda_(d+1) counts: u_d must also turn away from e_(d+1). Off-support padding (NaN)
    is ignored.
    """
    values = np.asarray(eigenvalues, dtype=np.float64)
    values = values[np.isfinite(values)][: d + 1]
    return [(float(values[right.start] - values[left.stop - 1]), (left.stop, right.start + 1))
            for left, right in pairwise(eigenspace_blocks(values, tol))]


def smallest_gap(eigenvalues: np.ndarray, d: int, tol: float = REPEAT_TOLERANCE
                 ) -> tuple[float, tuple[int, int]]:
    """The closest pair of neighbouring eigenspaces: (gap, 1-based pair); (inf, (0, 0))
    when there is none."""
    return closest_pair(gaps_between_eigenspaces(eigenvalues, d, tol))


def closest_pair(between: list[tuple[float, tuple[int, int]]]) -> tuple[float, tuple[int, int]]:
    return min(between, default=(math.inf, (0, 0)), key=lambda item: item[0])


def separation_tolerance(data: str) -> float:
    """Which eigenvalues the budget and the settling check treat as one eigenspace.

    A collected data set cannot pin down the vectors of near-repeats (REPEAT_TOLERANCE),
    so they are scored by their eigenspace. On --data exact nothing but the optimiser
    stands between the learner and each eigenvector, and cos_strict scores every vector
    of a near-repeat on its own: only exact repeats (float rounding) are one eigenspace
    there, so their small gaps enter the budget and settling waits for them."""
    return 0.0 if data == "exact" else REPEAT_TOLERANCE


def recommend(eigenvalues: np.ndarray, d: int, sampled: bool = False,
              tol: float = REPEAT_TOLERANCE) -> Budget:
    """Steps for mean |cos| >= 0.99 with the default optimiser, from the exact spectrum;
    `sampled`: training on sampled batches (--batch-size), whose noise slows it; `tol`:
    see separation_tolerance.

    The larger of the closest pair's need (rate / gap) and the cascade's (sum of 1 / gap).
    """
    between = gaps_between_eigenspaces(eigenvalues, d, tol)
    gap, pair = closest_pair(between)
    gaps = [g for g, _ in between]
    rate = STEPS_TIMES_GAP_SAMPLED if sampled else STEPS_TIMES_GAP
    if gap <= 0:
        raw, cascade = math.inf, False
    else:
        closest, chain = rate / gap, STEPS_TIMES_GAP_SUM * sum(1.0 / g for g in gaps)
        raw, cascade = max(closest, chain), chain > closest
    needed = MAX_STEPS * 1000 if not math.isfinite(raw) else _round_up(raw)
    return Budget(steps=min(MAX_STEPS, max(MIN_STEPS, needed)), needed=needed, gap=gap,
                  pair=pair, cascade=cascade)


def recommended_steps(eigenvalues: np.ndarray, d: int, sampled: bool = False) -> int:
    return recommend(eigenvalues, d, sampled).steps


def advice(budget: Budget, steps: int, flag_given: bool) -> str | None:
    """One line for `allo train` to print before training, or None when all is well.

    `steps` is what the run will do; `flag_given` says whether the user chose it.
    """
    i, j = budget.pair
    why = (f"lambda_{i} and lambda_{j} differ by only {budget.gap:.2g}; ALLO separates "
           f"their eigenvectors at a speed proportional to that gap")
    if budget.cascade:
        why = (f"the top eigenvalues are all close together (closest: lambda_{i} and "
               f"lambda_{j}, {budget.gap:.2g} apart), and the vectors settle one after "
               "another, each at a speed proportional to its gap")
    if budget.capped and steps <= budget.steps:
        return (f"{why}: about {budget.needed} steps are needed for mean |cos| 0.99 "
                f"(this run does {steps}; --steps {budget.needed} to go all the way, or "
                "read the eigenspace of these vectors rather than each vector)")
    if flag_given and steps < budget.steps and budget.needed > MIN_STEPS:
        # only where the spectrum asks for more than the default floor: a deliberately
        # short run of an easy layout needs no lecture
        return f"{why}: use --steps {budget.steps} or more for mean |cos| 0.99"
    return None


def _round_up(value: float) -> int:
    return int(math.ceil(value / ROUND_TO) * ROUND_TO)


# The data advice asks for mean |cos| of the empirical eigenvectors at least this high.
CEILING_TARGET = 0.995
# Without --num-envs, a data set grows at most this many times in all (allo.dataset):
# enough for the closest distinct pair benchmarked (BENCHMARKS.md, "Data ceiling").
MAX_GROWTH = 32


def data_spectrum(joint: Law, count: int, layout: Layout | None = None,
                  gamma: float = 0.8) -> np.ndarray:
    """The top `count` eigenvectors of the empirical operator of `joint` (N, count),
    rho-orthonormal for the law's own rho.

    Given the `layout` (and the run's `gamma`), a law of more than DENSE_MAX_CELLS cells
    gets only its top count + 1 eigenpairs, from the solver of the exact ground truth
    (allo/sparse_spectrum.py) applied to this law, instead of a full O(N^3) eigh."""
    if layout is not None and joint.shape[0] > DENSE_MAX_CELLS:
        from allo.pair_operator import transitions_csr  # scipy only where needed
        from allo.sparse_spectrum import spectrum_of

        sym = sparse_law.symmetric(joint)
        spectrum = spectrum_of(lambda x: np.asarray(sym @ x), sparse_law.row_sums(sym),
                               transitions_csr(layout), gamma, count + 1)
    else:
        spectrum = operator_spectrum(sparse_law.dense(joint))
    return spectrum.top(count)[1]


def data_ceiling(joint: Law, truth_values: np.ndarray, truth_vectors: np.ndarray,
                 d: int, layout: Layout | None = None, gamma: float = 0.8) -> np.ndarray:
    """Per-vector |cos| between the eigenvectors of the empirical operator of `joint` and
    the exact ones (the metric the trainer logs): the best a learner of this data gets.
    `layout`, `gamma`: see data_spectrum."""
    vectors = data_spectrum(joint, d, layout, gamma)
    return cosine_similarities(vectors, truth_vectors, truth_values)


def strict_data_ceiling(joint: Law, truth_values: np.ndarray,
                        truth_vectors: np.ndarray, d: int, layout: Layout | None = None,
                        gamma: float = 0.8) -> np.ndarray:
    """data_ceiling by the other metric, cos_strict (allo.metrics.strict_cosines): the
    strict score of the data set's own top-d eigenvectors, what published numbers can
    be held against (docs/math.md section 6)."""
    vectors = data_spectrum(joint, d, layout, gamma)
    return strict_cosines(vectors, truth_vectors, truth_values)


def ceilings(joint: Law, truth_values: np.ndarray, truth_vectors: np.ndarray, d: int,
             layout: Layout | None = None, gamma: float = 0.8
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data_ceiling, strict_data_ceiling, the data's own eigenvectors) from one solve of
    the data's spectrum. The eigenvectors are as many as `truth_vectors` has columns (d,
    or through the block of repeated eigenvalues lambda_d belongs to): the eigenspace the
    settling check measures each learned vector against (allo/settling.py)."""
    vectors = data_spectrum(joint, max(d, truth_vectors.shape[1]), layout, gamma)
    return (cosine_similarities(vectors[:, :d], truth_vectors, truth_values),
            strict_cosines(vectors[:, :d], truth_vectors, truth_values), vectors)


def growth_factor(ceiling: np.ndarray) -> int:
    """How many times more data would bring the mean ceiling to CEILING_TARGET (1: none).

    The turn of an eigenvector shrinks like 1 / sqrt(data), so 1 - |cos| like 1 / data
    (2x .. MAX_GROWTH x). Eigenvalues closer than the data's error are not in that regime:
    there more data helps little, and the advice says so after trying.
    """
    mean = float(np.mean(ceiling))
    if mean >= CEILING_TARGET:
        return 1
    return min(MAX_GROWTH, max(2, math.ceil((1.0 - mean) / (1.0 - CEILING_TARGET))))


def data_advice(ceiling: np.ndarray, num_envs: int, base_ceiling: float | None = None,
                more_data_helps: bool = True) -> str | None:
    """One line when the data set, not the optimiser, limits mean |cos|; else None.

    `base_ceiling`: the mean ceiling of the smaller data set this one grew from, if any;
    `more_data_helps`: False when growing it barely moved the ceiling.
    """
    mean = float(np.mean(ceiling))
    if mean >= CEILING_TARGET:
        return None
    worst = [str(i + 1) for i in np.argsort(ceiling)[:2] if ceiling[i] < CEILING_TARGET]
    line = (f"this data set ({num_envs} environments) limits mean |cos| to {mean:.3f} "
            f"(vectors {', '.join(sorted(worst))}")
    if not more_data_helps:
        return (f"{line}); growing it from {base_ceiling:.3f} did not raise that: these "
                "vectors' eigenvalues may be too close together to tell apart with any "
                "practical data set (compare their eigenspace rather than each vector), or "
                f"need far more data (--num-envs {num_envs * growth_factor(ceiling)})")
    line += (": too few transitions to pin them down, where eigenvalues are nearly equal or "
             "cells rarely visited)")
    if base_ceiling is not None:
        line += f"; growing it from {base_ceiling:.3f} got this far"
    return f"{line}; collect more with --num-envs {num_envs * growth_factor(ceiling)}"


# A vector this far below its data ceiling at the end is still turning, not data-limited.
UNSETTLED_LAG = 0.05


def unsettled_advice(cos: list[float], ceiling: list[float], steps: int, run_dir: str,
                     recommended: int | None = None) -> str | None:
    """One line after training when some vectors ended far below what their data allows;
    else None.

    A pair of nearly equal eigenvalues that starts swapped (u_i nearer e_(i+1)) leaves
    that saddle at the rate of their gap from however deep it started (docs/math.md
    section 8), so no budget fixed in advance always suffices (rooms16: one seed in five
    or more). The ground truth says which vectors lag; more steps are what helps.
    """
    lagging = sorted((i for i, (c, top) in enumerate(zip(cos, ceiling, strict=True))
                      if top - c > UNSETTLED_LAG), key=lambda i: cos[i] - ceiling[i])
    if not lagging:
        return None
    shown = sorted(lagging[:4])
    names = ", ".join(str(i + 1) for i in shown)
    got = ", ".join(f"{cos[i]:.3f}" for i in shown)
    allowed = ", ".join(f"{ceiling[i]:.3f}" for i in shown)
    more = f" (and {len(lagging) - 4} more)" if len(lagging) > 4 else ""
    why = ("nearly equal eigenvalues that start swapped turn slowly, docs/math.md section 8"
           if recommended is None or steps >= recommended else
           f"this run did {steps} steps; its spectrum asks for {recommended}")
    return (f"vectors {names}{more} ended at |cos| {got}, below what this data set allows "
            f"({allowed}): they are still turning ({why}); to go on: allo train --resume "
            f"{run_dir} --steps {max(2 * steps, recommended or 0)}")


# ALLO's dual estimates are within exp(-3), 5%, of the eigenvalues after three relaxation times.
DUAL_RELAXED_TIMES = 3.0


def dual_relaxation_steps(barrier: float, lr_duals: float) -> float:
    """tau = 2 b / eta: the steps over which ALLO's estimates -beta_ii / 2 approach the
    eigenvalues (docs/math.md section 13)."""
    return 2.0 * barrier / lr_duals


def unrelaxed_duals_advice(steps: int, barrier: float, lr_duals: float) -> str | None:
    """One line after an ALLO run too short for its duals to reach the eigenvalues; else
    None. allo's defaults relax within tens of steps; the paper's preset needs about
    5e5, ten times its own 50000, and its eig/estimate then looks like a failure when
    only the duals are slow."""
    if lr_duals <= 0 or barrier <= 0:
        return None
    tau = dual_relaxation_steps(barrier, lr_duals)
    if steps >= DUAL_RELAXED_TIMES * tau:
        return None
    return (f"the duals' eigenvalue estimates (eig/estimate) approach the eigenvalues over "
            f"2 b / lr_duals = {tau:.0f} steps at this run's barrier {barrier:.3g}, and this "
            f"run did {steps} ({steps / tau:.2g} of that; within 5% takes "
            f"{DUAL_RELAXED_TIMES:.0f}), so they have not converged "
            "(docs/math.md section 13); the Rayleigh quotients (eig/rayleigh) do not wait "
            "for them")
