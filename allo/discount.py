"""The discount a run trains with when --gamma is not given.

The offset law's discount sets the scale of the eigenvalues, not the eigenvectors. Where
the pair law is a function of the random walk P (no goal, no fixed start, no one-way
door), lambda = mu / (1 - gamma + gamma mu) for each eigenvalue mu of I - P (docs/math.md
section 8, (12)): the small eigenvalues, and the gaps between them, grow like
1 / (1 - gamma), and the steps ALLO needs (allo/budget.py) shrink alike. Large rooms and
mazes, whose top eigenvalues are all small, need many times fewer steps at a larger
discount; on small layouts the slow pairs sit higher in the spectrum, where a larger
discount compresses, so they keep DEFAULT_GAMMA and train exactly as before.

The choice is made from the exact spectrum at DEFAULT_GAMMA, before any data: the
eigenvalues at each candidate discount follow from (12), the budget of each is
`budget.recommend`, and the largest discount that keeps the eigenspaces wins.
The spectrum is then computed again at that discount, and kept only if its real budget
is smaller. Only the exact expectation (no --batch-size) chooses: a sampled pair at a
larger discount is noisier, and that trade was not measured. Layouts above
`sparse_law.DENSE_MAX_CELLS` keep DEFAULT_GAMMA too: there the data's sparse pair law
holds about 1 / (1 - gamma) offsets per transition, and its memory and build time grow
with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allo import sparse_law
from allo.budget import MIN_STEPS, Budget, recommend
from allo.config import DEFAULT_GAMMA
from allo.layouts import Layout
from allo.metrics import eigenspace_blocks

# The largest that keeps the eigenspaces is taken. 0.99 keeps the mean offset (100 steps)
# well inside allo's 1000-step episodes.
CANDIDATES = (0.9, 0.95, 0.99)


@dataclass(frozen=True)
class Choice:
    """A discount other than DEFAULT_GAMMA, and the budgets that chose it."""

    gamma: float
    steps_at_default: int  # Budget.needed at DEFAULT_GAMMA
    steps: int  # Budget.needed at gamma (predicted by (12) until the spectrum is redone)

    def note(self) -> str:
        return (f"gamma {self.gamma:g}, not {DEFAULT_GAMMA:g}: this layout's top eigenvalues "
                f"are close, and a larger discount spreads them without changing the "
                f"eigenvectors (steps needed: {self.steps} instead of "
                f"{self.steps_at_default}; docs/math.md section 8); --gamma "
                f"{DEFAULT_GAMMA:g} keeps the usual discount")


def random_walk_eigenvalues(eigenvalues: np.ndarray, gamma: float) -> np.ndarray:
    """mu, the eigenvalues of I - P, from lambda at discount gamma: (12) solved for mu."""
    values = np.asarray(eigenvalues, dtype=np.float64)
    return values * (1.0 - gamma) / (1.0 - gamma * values)


def at_discount(mu: np.ndarray, gamma: float) -> np.ndarray:
    """lambda at discount gamma from mu, (12)."""
    return mu / (1.0 - gamma + gamma * mu)


def spectrum_scales_with_discount(layout: Layout) -> bool:
    """Whether (12) holds: without goals, a fixed start or one-way doors the pair law is
    a function of P and its eigenvectors are P's at every discount."""
    return layout.start is None and not layout.goals and not layout.doors


def may_choose(layout: Layout, gamma: float | None, batch_size: int | None) -> bool:
    return (gamma is None and batch_size is None and spectrum_scales_with_discount(layout)
            and layout.num_free <= sparse_law.DENSE_MAX_CELLS)


def choose(eigenvalues: np.ndarray, d: int, tol: float) -> Choice | None:
    """The discount to train with, from the exact eigenvalues at DEFAULT_GAMMA; None keeps
    DEFAULT_GAMMA (its budget is already at the floor, or no candidate does better).

    The largest candidate that needs fewer steps wins, not the first to reach the floor:
    the floor is the least a cascade of d vectors needs, while a swapped pair turns at
    the rate of its gap whatever the budget says (docs/math.md section 8 gives the
    GridMaze-32 runs that showed it). A candidate must keep the same eigenspaces: a
    larger discount compresses the upper spectrum, and must not merge two eigenvalues
    into one near-repeat the budget skips."""
    values = np.asarray(eigenvalues, dtype=np.float64)
    values = values[np.isfinite(values)][: d + 1]
    base = recommend(values, d, tol=tol)
    if base.needed <= MIN_STEPS:
        return None
    mu = random_walk_eigenvalues(values, DEFAULT_GAMMA)
    blocks = len(eigenspace_blocks(values, tol))
    for gamma in sorted(CANDIDATES, reverse=True):
        scaled = at_discount(mu, gamma)
        if len(eigenspace_blocks(scaled, tol)) != blocks:
            continue
        needed = recommend(scaled, d, tol=tol).needed
        if needed < base.needed:
            return Choice(gamma, base.needed, needed)
    return None


def keep(choice: Choice, budget_at_choice: Budget) -> Choice | None:
    """The choice with its real budget, or None where the real spectrum does no better."""
    if budget_at_choice.needed >= choice.steps_at_default:
        return None
    return Choice(choice.gamma, choice.steps_at_default, budget_at_choice.needed)
