"""Quality of learned eigenvectors against exact ground truth (numpy only).

Cosines are plain Euclidean cosines over the free cells, as in the ALLO paper. Where
ground-truth eigenvalues repeat, an eigenvector is only defined up to a rotation within
its eigenspace, so a learned vector is scored by its cosine to that eigenspace and,
for pictures, rotated onto its ground-truth partners (orthogonal Procrustes). "Repeat"
includes near-repeats, eigenvalues within REPEAT_TOLERANCE of each other: their
eigenvectors turn by (perturbation / gap) under any error of the operator, so no finite
data set determines them one by one, while their joint eigenspace is well determined
(docs/math.md section 6). `strict_cosines` is the other metric, `cos_strict`: the
official code's greedy rotation within exactly repeated eigenvalues only, what published
tables report.

Renderers and the TUI import this module: it must never import torch or matplotlib.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allo.rundir import Metric

# Eigenvalues whose spread is within this fraction of their size count as one eigenspace
# (docs/math.md section 6): wide enough for the symmetric four-room grids' clusters of
# room-local modes, narrow enough that every distinct pair benchmarked, which data can
# tell apart, stays scored one by one (BENCHMARKS.md, "Accuracy across layouts").
REPEAT_TOLERANCE = 5e-3
# Below this absolute difference (relative to the spectrum's scale) eigenvalues are equal
# whatever the tolerance: round-off, e.g. two components' zero eigenvalues.
ROUND_OFF = 1e-6


def eigenspace_blocks(eigenvalues: np.ndarray, tol: float = REPEAT_TOLERANCE) -> list[range]:
    """Consecutive index ranges of (near-)equal eigenvalues, ascending input.

    A block grows while the next value is within `tol` (relative) of the block's first,
    so a long run of slightly spaced eigenvalues does not chain into one block.
    """
    values = np.asarray(eigenvalues, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(values)))) if values.size else 1.0
    blocks: list[range] = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or (values[i] - values[start]
                                > tol * abs(values[i]) + ROUND_OFF * scale):
            blocks.append(range(start, i))
            start = i
    return blocks


def block_complete_width(values: np.ndarray, d: int) -> int:
    """Columns of ground truth needed so the eigenspace of eigenvalue d is complete."""
    finite = values[np.isfinite(values)]
    for block in eigenspace_blocks(finite):
        if d - 1 in block:
            return max(d, block.stop)
    return d


def near_repeat_note(eigenvalues: np.ndarray, d: int) -> str | None:
    """One line naming the blocks among the top d that are one eigenspace only because
    they nearly repeat (not exactly), so a user knows why their vectors' |cos| is the
    eigenspace's; None when there are none."""
    values = np.asarray(eigenvalues, dtype=np.float64)
    values = values[np.isfinite(values)]
    exact = {(b.start, b.stop) for b in eigenspace_blocks(values, tol=0.0)}
    near = [b for b in eigenspace_blocks(values) if b.start < d and len(b) > 1
            and (b.start, b.stop) not in exact]
    if not near:
        return None
    names = ", ".join(
        f"lambda_{b.start + 1}..lambda_{b.stop} ({values[b.start]:.4g}-{values[b.stop - 1]:.4g})"
        for b in near)
    return (f"{names} agree to within {REPEAT_TOLERANCE:.1%}: no finite data set pins their "
            "vectors down one by one, so each is scored against their joint eigenspace "
            "(docs/math.md section 6)")


def _unit_columns(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=0, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def eigenspace_bases(
    truth: np.ndarray, eigenvalues: np.ndarray, d: int, tol: float = REPEAT_TOLERANCE
) -> list[tuple[range, np.ndarray]]:
    """An orthonormal basis of each ground-truth eigenspace that the first d vectors
    touch. It depends on the ground truth only: a trainer computes it once per run."""
    truth = np.asarray(truth, dtype=np.float64)
    bases = []
    for block in eigenspace_blocks(np.asarray(eigenvalues)[: truth.shape[1]], tol):
        if block.start >= d:
            break
        basis, _ = np.linalg.qr(truth[:, block.start : block.stop])
        bases.append((block, basis))
    return bases


def cosines_to_bases(learned: np.ndarray, bases: list[tuple[range, np.ndarray]]) -> np.ndarray:
    """|cos| of each learned column to its eigenspace (see cosine_similarities)."""
    unit = _unit_columns(np.asarray(learned, dtype=np.float64))
    d = unit.shape[1]
    if not bases:
        return np.zeros(d)
    # one projection onto every basis at once; each column keeps its own block's part
    # (a metrics row per log step: one matmul instead of a norm per block)
    owner = np.repeat(np.arange(len(bases)), [basis.shape[1] for _, basis in bases])
    block_of = np.full(d, -1)
    for number, (block, _) in enumerate(bases):
        block_of[block.start : min(block.stop, d)] = number
    projection = np.hstack([basis for _, basis in bases]).T @ unit
    squares = np.where(owner[:, None] == block_of[None, :], projection * projection, 0.0)
    return np.clip(np.sqrt(squares.sum(axis=0)), 0.0, 1.0)


def cosine_similarities(
    learned: np.ndarray,
    truth: np.ndarray,
    eigenvalues: np.ndarray,
    tol: float = REPEAT_TOLERANCE,
) -> np.ndarray:
    """Per-eigenvector |cos| of learned (N, d) to ground truth (N, D>=d).

    For a vector whose ground-truth eigenvalue repeats, the cosine is to the whole
    eigenspace: the norm of its projection onto an orthonormal basis of the block.
    `truth` may hold more columns than `learned` so that a block cut at d is complete.
    """
    d = np.asarray(learned).shape[1]
    return cosines_to_bases(learned, eigenspace_bases(truth, eigenvalues, d, tol))


def align_to_truth(
    learned: np.ndarray,
    truth: np.ndarray,
    eigenvalues: np.ndarray,
    tol: float = REPEAT_TOLERANCE,
) -> np.ndarray:
    """Learned vectors made comparable to ground truth for pictures.

    Each vector is flipped to agree in sign with its partner; within a block of repeated
    eigenvalues the learned vectors are rotated (orthogonal Procrustes) onto the
    ground-truth basis. Norms are kept.
    """
    learned = np.asarray(learned, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    d = min(learned.shape[1], truth.shape[1])
    aligned = learned.copy()
    for block in eigenspace_blocks(np.asarray(eigenvalues)[:d], tol):
        cols = list(block)
        if len(cols) == 1:
            i = cols[0]
            if float(learned[:, i] @ truth[:, i]) < 0:
                aligned[:, i] = -learned[:, i]
            continue
        sub = learned[:, cols]
        u, _, vt = np.linalg.svd(sub.T @ truth[:, cols])
        aligned[:, cols] = sub @ (u @ vt)
    return aligned


ZERO_EIGENVALUE = 1e-9  # below it a ground-truth eigenvalue is a free region's zero


def eigenvalue_errors(estimates: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Absolute errors per eigenvalue, their mean, and the mean relative error over the
    nonzero eigenvalues.

    The Laplacian has one zero eigenvalue per disconnected free region; relative to zero
    an error is meaningless, so the relative mean skips every one of them, not only the first.
    """
    estimates = np.asarray(estimates, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)[: len(estimates)]
    abs_err = np.abs(estimates - truth)
    nonzero = np.abs(truth) > ZERO_EIGENVALUE
    rel = abs_err[nonzero] / np.abs(truth[nonzero])
    return {
        "abs": abs_err,
        "mean_abs": float(abs_err.mean()) if abs_err.size else float("nan"),
        "mean_rel": float(rel.mean()) if rel.size else float("nan"),
    }


def rayleigh_eigenvalues(learned: np.ndarray, pair_law: Any) -> np.ndarray:
    """<u_i, L u_i>_rho / <u_i, u_i>_rho for each column, L the operator of `pair_law`
    (docs/math.md (13)).

    Given the training data's own law this is an estimate a learner can make without the
    ground truth, and its error is second order in the vector's (docs/math.md section 9),
    while the duals' estimate carries their first-order noise. `pair_law`: (N, N), dense
    or scipy sparse.
    """
    sym = 0.5 * (pair_law + pair_law.T)
    rho = np.asarray(sym.sum(axis=1), dtype=np.float64).ravel()
    learned = np.asarray(learned, dtype=np.float64)
    norms = rho @ (learned * learned)
    quadratic = norms - np.einsum("ni,ni->i", learned, sym @ learned)
    return quadratic / np.maximum(norms, 1e-300)


def greedy_rotation(truth: np.ndarray, learned: np.ndarray) -> np.ndarray:
    """The official code's rotation of a block of learned vectors towards the exact ones
    (tarod13/laplacian_dual_dynamics, src/trainer/laplacian_encoder.py,
    `rotate_eigenvectors`): with E the learned unit columns and u_1..u_m the exact ones,
    w_1 is E^T u_1 and each later w_k is E^T u_k minus its least-squares part on
    w_1..w_(k-1), each made unit; the result is E W (columns not yet unit). Greedy: u_1
    gets the best combination, u_2 the best among what is left, and so on
    (docs/math.md section 6)."""
    rotation: list[np.ndarray] = []
    for k in range(truth.shape[1]):
        w = learned.T @ truth[:, k]
        if rotation:
            basis = np.stack(rotation, axis=1)
            mu = np.linalg.lstsq(basis, w, rcond=None)[0]
            w = w - basis @ mu
        rotation.append(w / max(float(np.linalg.norm(w)), 1e-10))
    return learned @ np.stack(rotation, axis=1)


def strict_cosines(learned: np.ndarray, truth: np.ndarray, eigenvalues: np.ndarray
                   ) -> np.ndarray:
    """cos_strict: per-vector |cos| as the official code scores it (docs/math.md
    section 6). Only the first d exact eigenvectors are used (a repeated block cut at d
    stays cut); within a block of exactly repeated eigenvalues (tol=0: equal up to
    round-off) the learned vectors are turned by `greedy_rotation` first; every vector
    is then scored alone against its own exact eigenvector."""
    learned = _unit_columns(np.asarray(learned, dtype=np.float64))
    d = learned.shape[1]
    truth = _unit_columns(np.asarray(truth, dtype=np.float64)[:, :d])
    values = np.asarray(eigenvalues, dtype=np.float64)[:d]
    scores = np.zeros(d)
    for block in eigenspace_blocks(values, tol=0.0):
        cols = list(block)
        mine = learned[:, cols]
        if len(cols) > 1:
            mine = _unit_columns(greedy_rotation(truth[:, cols], mine))
        scores[cols] = np.abs(np.einsum("ni,ni->i", mine, truth[:, cols]))
    return np.clip(scores, 0.0, 1.0)


def quality_row(
    learned: np.ndarray,
    estimates: np.ndarray,
    truth_vectors: np.ndarray,
    truth_values: np.ndarray,
    d: int,
    bases: list[tuple[range, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """The eig/*, cos/* and cos_strict/* keys of a metrics row (docs/run-format.md).

    `truth_*` may hold more columns than d, so a repeated block cut at d is complete;
    `bases` (from eigenspace_bases) saves recomputing them for every row.
    """
    if bases is None:
        bases = eigenspace_bases(truth_vectors, truth_values, d)
    cos = cosines_to_bases(learned, bases)
    strict = strict_cosines(learned, truth_vectors, truth_values)
    errors = eigenvalue_errors(estimates, np.asarray(truth_values)[:d])
    return {
        Metric.EIG_ESTIMATE: np.asarray(estimates, dtype=np.float64).tolist(),
        Metric.EIG_ABS_ERROR: errors["abs"].tolist(),
        Metric.EIG_MEAN_ABS_ERROR: errors["mean_abs"],
        Metric.EIG_MEAN_REL_ERROR: errors["mean_rel"],
        Metric.COS_PER_VECTOR: cos.tolist(),
        Metric.COS_MEAN: float(cos.mean()),
        Metric.COS_STRICT_PER_VECTOR: strict.tolist(),
        Metric.COS_STRICT_MEAN: float(strict.mean()),
    }
