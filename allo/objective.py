"""ALLO (Gomez, Bowling & Machado, ICLR 2024) and the GGDO baseline.

Every loss is written over the representation table U (N, d) of all free cells and
weights on cells: a pair weight matrix W (N, N) for the graph term and two state weight
vectors w1, w2 (N,) for the constraint batches. A minibatch gives the weights as counts
divided by the batch size (`batch_weights`); the exact expectation gives the pair law D
and the state law rho (used by the tests). Both are the same estimator as gathering rows
per sample, but the cost no longer grows with the batch.

ALLO:  sum_i <u_i, L u_i>
     + sum_{k<=j} beta_jk h_jk + b sum_{k<=j} h_jk h'_jk,
       h_jk = E_c[u_j(c) [[u_k(c)]]] - delta_jk   ([[.]] stops the gradient)
with h and h' from the two independent constraint batches, so the barrier's gradient is
unbiased. The stop-gradient and the lower triangle make u_1 ignore u_2.., u_2 ignore
u_3.., which breaks the rotation symmetry: the stable point is the eigenvectors
themselves, with beta_ii = -2 lambda_i (docs/math.md).

GGDO (Wang et al. 2021, generalised graph drawing): the nested sum over i of the graph-
drawing objective of u_1..u_i, i.e. sum_i c_i <u_i, L u_i> with c_i = d - i + 1, plus
b sum_{j,k} min(c_j, c_k) (E[u_j u_k] - delta_jk)^2 with a fixed b; no duals, no
stop-gradients.

The training step does not differentiate these with autograd: `allo_step` and `ggdo_step`
return the same Terms and the loss's gradient with respect to the table in closed form
(docs/math.md section 11), which saves the autograd graph's few hundred small operations.
The `*_terms` functions stay the differentiable definitions the tests check it against.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass
class Terms:
    """Each field has the seeds' leading dimensions (none for one unbatched table)."""

    total: torch.Tensor
    graph: torch.Tensor
    dual: torch.Tensor
    barrier: torch.Tensor
    constraint: torch.Tensor  # (d, d) lower-triangular h, mean of the two batches
    barrier_signal: torch.Tensor  # sum h * h', the unbiased squared constraint error
    graph_per_vector: torch.Tensor  # (d,) detached <u_i, L u_i> estimates


@dataclass
class Weights:
    pairs: torch.Tensor  # (..., N, N) weight of each (s, s'); sums to 1
    states1: torch.Tensor  # (..., N) first constraint batch; sums to 1
    states2: torch.Tensor  # (..., N) second, independent constraint batch
    # L_W of `pairs` (graph_term) when the weights are fixed and it can be built once
    laplacian: torch.Tensor | None = None
    # B > 0: the table is not every cell's but a batch's own rows (allo/cells.py): rows
    # [0, B) are the pairs' s, rows [B, 2B) their s' (pair b joins rows b and B + b, each
    # of weight 1 / B); `pairs` is then unused and the states weigh rows, not cells
    pair_rows: int = 0
    # (..., N) row + column sums of `pairs`, where pairs and laplacian are one sparse
    # block-diagonal (S N, S N) CSR matrix over the seeds (allo.data.sparse_expectation)
    degree: torch.Tensor | None = None


def counts(index: torch.Tensor, size: int, weight: torch.Tensor) -> torch.Tensor:
    """Histogram by index_add_: unlike bincount it never reads the maximum back to the
    host, so a CUDA step needs no synchronisation (and sums of equal weights are exact)."""
    return torch.zeros(size, device=index.device).index_add_(0, index, weight)


def batch_weights(batch: torch.Tensor, n: int) -> Weights:
    """Counts of a (4, B) batch of cell indices (rows s, s', c1, c2), divided by B."""
    weight = torch.full((batch.shape[1],), 1.0 / batch.shape[1], device=batch.device)
    pairs = counts(batch[0] * n + batch[1], n * n, weight).view(n, n)
    return Weights(pairs, counts(batch[2], n, weight), counts(batch[3], n, weight))


def pair_laplacian(pairs: torch.Tensor) -> torch.Tensor:
    """2 L_W = diag(row + column sums of W) - W - W^T, graph_term's matrix without its
    1/2; a caller whose weights never change builds it once."""
    degree = pairs.sum(dim=-1) + pairs.sum(dim=-2)  # (..., N)
    return torch.diag_embed(degree) - pairs - pairs.transpose(-1, -2)


def graph_term(table: torch.Tensor, pairs: torch.Tensor,
               laplacian: torch.Tensor | None = None) -> torch.Tensor:
    """Per-eigenvector 1/2 sum_ss' W(s,s') (u(s) - u(s'))^2 -> (..., d); = <u_i, L u_i>_rho.

    Written as u^T L_W u with the weights' graph Laplacian
    L_W = (diag(row + column sums of W) - W - W^T) / 2, built from the weights alone
    (no gradient), so autograd sees one matmul instead of the pairwise differences.
    Leading dimensions are seeds: a (S, N, d) table with (S, N, N) weights gives (S, d).
    """
    return quadratic_form(table, laplacian_table(table, pairs, laplacian))


def weights_laplacian_table(table: torch.Tensor, weights: Weights) -> torch.Tensor:
    """2 L_W U of these weights: laplacian_table, or its batch-row form (pair_rows)."""
    if weights.pair_rows:
        return row_laplacian_table(table, weights.pair_rows)
    return laplacian_table(table, weights.pairs, weights.laplacian)


def row_laplacian_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """2 L_W U when pair b joins rows b and size + b with weight 1 / size: (u(s) - u(s'))
    / size at s's row, its negative at s''s, zero at the constraint rows (docs/math.md
    section 16). Static shapes, so a CUDA graph captures it."""
    difference = (table[..., :size, :] - table[..., size:2 * size, :]) / size
    out = torch.zeros_like(table)
    out[..., :size, :] = difference
    out[..., size:2 * size, :] = -difference
    return out


def pair_degree(weights: Weights, table: torch.Tensor) -> torch.Tensor:
    """Row + column sums of W (..., N): each pair row's 1 / B in the batch-row form."""
    if weights.pair_rows:
        size = weights.pair_rows
        degree = torch.zeros(table.shape[:-1], device=table.device, dtype=table.dtype)
        degree[..., :2 * size] = 1.0 / size
        return degree
    if weights.degree is not None:  # sparse pairs (allo.data.sparse_expectation)
        return weights.degree
    return weights.pairs.sum(dim=-1) + weights.pairs.sum(dim=-2)


def laplacian_table(table: torch.Tensor, pairs: torch.Tensor,
                    laplacian: torch.Tensor | None = None) -> torch.Tensor:
    """2 L_W U, from the prebuilt L_W when there is one: the graph term's product, and
    also its gradient with respect to U."""
    if laplacian is None:
        laplacian = pair_laplacian(pairs)
    return product(laplacian, table)


def quadratic_form(table: torch.Tensor, lap_table: torch.Tensor) -> torch.Tensor:
    """graph_term from 2 L_W U, when the caller needs that product for the gradient too."""
    return 0.5 * (table * lap_table).sum(dim=-2)


def product(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """left @ right; bmm directly when both have a seed dimension (matmul's dispatch costs
    more than these small products on a CPU); a sparse CSR `left` is block-diagonal over
    the seeds of a (S, N, d) `right`: one sparse product."""
    if left.layout == torch.sparse_csr:
        return (left @ right.reshape(-1, right.shape[-1])).view(right.shape)
    if left.dim() == right.dim() == 3:
        return torch.bmm(left, right)
    return left @ right


def weighted_rows(table: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """D U: each cell's row times its state weight."""
    return table * states[..., None]


def allo_constraint(weighted: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """h_jk = E[u_j [[u_k]]] - delta_jk for k <= j, from D U: the gradient flows only
    through the first factor."""
    lower, eye = triangle_and_identity(table.shape[-1], table.device, table.dtype)
    return (product(weighted.transpose(-1, -2), table.detach()) - eye) * lower


@functools.cache
def triangle_and_identity(d: int, device: torch.device, dtype: torch.dtype
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Constant (d, d) masks, made once rather than at every step."""
    return (torch.ones(d, d, device=device, dtype=dtype).tril(),
            torch.eye(d, device=device, dtype=dtype))


def allo_terms(
    table: torch.Tensor, weights: Weights, duals: torch.Tensor, barrier: torch.Tensor
) -> Terms:
    h1, h2 = allo_constraints(table, weights)
    per_vector = quadratic_form(table, weights_laplacian_table(table, weights))
    return allo_terms_from(per_vector, h1, h2, duals, barrier)


def allo_constraints(table: torch.Tensor, weights: Weights
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """h and h' of the two constraint batches, lower-triangular (..., d, d)."""
    h1 = allo_constraint(weighted_rows(table, weights.states1), table)
    # the exact expectation gives both batches the same law: h' = h, computed once
    h2 = h1 if weights.states2 is weights.states1 else allo_constraint(
        weighted_rows(table, weights.states2), table)
    return h1, h2


def allo_terms_from(per_vector: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor,
                    duals: torch.Tensor, barrier: torch.Tensor) -> Terms:
    graph = per_vector.sum(dim=-1)
    dual = (duals * (h1 + h2)).sum(dim=(-2, -1)) * 0.5
    signal = (h1 * h2).sum(dim=(-2, -1))
    barrier_loss = barrier * signal
    return Terms(graph + dual + barrier_loss, graph, dual, barrier_loss,
                 0.5 * (h1 + h2).detach(), signal.detach(), per_vector.detach())


def ggdo_terms(table: torch.Tensor, weights: Weights, barrier: torch.Tensor) -> Terms:
    g1, g2 = ggdo_constraints(table, weights)
    per_vector = quadratic_form(table, weights_laplacian_table(table, weights))
    return ggdo_terms_from(per_vector, g1, g2, barrier)


def ggdo_coefficients(d: int, like: torch.Tensor) -> torch.Tensor:
    """c_i = d - i + 1."""
    return torch.arange(d, 0, -1, device=like.device, dtype=like.dtype)


@functools.cache
def nested_penalty(d: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """M_jk = min(c_j, c_k): how many of the nested prefixes 1..i hold entry (j, k), the
    weight of the generalised objective's penalty sum_i |G_(1..i) - I|^2."""
    c = torch.arange(d, 0, -1, device=device, dtype=dtype)
    return torch.minimum(c[:, None], c[None, :])


def ggdo_constraints(table: torch.Tensor, weights: Weights
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """g = E[u u^T] - I of both batches, gradient through both factors."""
    _, eye = triangle_and_identity(table.shape[-1], table.device, table.dtype)
    g1 = product(weighted_rows(table, weights.states1).transpose(-1, -2), table) - eye
    g2 = g1 if weights.states2 is weights.states1 else (
        product(weighted_rows(table, weights.states2).transpose(-1, -2), table) - eye)
    return g1, g2


def ggdo_terms_from(per_vector: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor,
                    barrier: torch.Tensor) -> Terms:
    d = per_vector.shape[-1]
    graph = (ggdo_coefficients(d, per_vector) * per_vector).sum(dim=-1)
    signal = (g1 * g2).sum(dim=(-2, -1))
    barrier_loss = barrier * (nested_penalty(d, per_vector.device, per_vector.dtype)
                              * g1 * g2).sum(dim=(-2, -1))
    zero = torch.zeros_like(graph)
    return Terms(graph + barrier_loss, graph, zero, barrier_loss,
                 (0.5 * (g1 + g2)).tril().detach(), signal.detach(), per_vector.detach())


# --- the same losses' gradients with respect to the table, in closed form (math.md 11)


@torch.no_grad()
def allo_step(table: torch.Tensor, weights: Weights, duals: torch.Tensor,
              barrier: torch.Tensor) -> tuple[Terms, torch.Tensor]:
    """ALLO's terms and d(total)/dU:

        2 L_W U + D1 U (beta/2 + b h')^T + D2 U (beta/2 + b h)^T   (lower triangles),

    D1, D2 the constraint batches' state weights; with one law for both (h' = h) the two
    last terms are one, D U (beta + 2 b h)^T."""
    lower, _ = triangle_and_identity(table.shape[-1], table.device, table.dtype)
    lap_table = weights_laplacian_table(table, weights)
    per_vector = quadratic_form(table, lap_table)
    weighted1 = weighted_rows(table, weights.states1)
    h1 = allo_constraint(weighted1, table)
    b = barrier[..., None, None]
    if weights.states2 is weights.states1:
        terms = allo_terms_from(per_vector, h1, h1, duals, barrier)
        pull = (duals * lower + 2.0 * b * h1).transpose(-1, -2)
        return terms, plus_product(lap_table, weighted1, pull)
    weighted2 = weighted_rows(table, weights.states2)
    h2 = allo_constraint(weighted2, table)
    terms = allo_terms_from(per_vector, h1, h2, duals, barrier)
    half_duals = 0.5 * duals * lower
    pull1 = (half_duals + b * h2).transpose(-1, -2)
    pull2 = (half_duals + b * h1).transpose(-1, -2)
    gradient = plus_product(lap_table, weighted1, pull1)
    return terms, plus_product(gradient, weighted2, pull2)


@torch.no_grad()
def ggdo_step(table: torch.Tensor, weights: Weights, barrier: torch.Tensor
              ) -> tuple[Terms, torch.Tensor]:
    """GGDO's terms and d(total)/dU = 2 L_W U diag(c) + 2 b (D1 U (M * g') + D2 U (M * g))."""
    lap_table = weights_laplacian_table(table, weights)
    per_vector = quadratic_form(table, lap_table)
    g1, g2 = ggdo_constraints(table, weights)
    terms = ggdo_terms_from(per_vector, g1, g2, barrier)
    gradient = lap_table * ggdo_coefficients(table.shape[-1], table)
    b2 = 2.0 * barrier[..., None, None] * nested_penalty(table.shape[-1], table.device,
                                                          table.dtype)
    gradient = plus_product(gradient, weighted_rows(table, weights.states1), b2 * g2)
    return terms, plus_product(gradient, weighted_rows(table, weights.states2), b2 * g1)


def plus_product(base: torch.Tensor, left: torch.Tensor, right: torch.Tensor
                 ) -> torch.Tensor:
    """base + left @ right in one operation, for a table with or without seeds."""
    if base.dim() == 3:
        return torch.baddbmm(base, left, right)
    return torch.addmm(base, left, right)
