"""The baselines beside ALLO: SQP, CQP (the official code's ablations), OMM and LoRA.

Like allo/objective.py, each is written over the table U (N, d) of every free cell and
weights on cells (a pair weight matrix W and two state weight vectors D1, D2; minibatch
counts or the exact laws), and each `*_step` returns the loss terms and the loss's
gradient with respect to U in closed form, so the MLP's hand-written backward serves
them all. The `*_terms` functions are the differentiable definitions (with their
stop-gradients) that tests/test_baselines.py checks the closed forms against.

Notation (docs/math.md section 14): c_i = d - i + 1; <u, L u> the graph term (9);
S = (W + W^T) / 2, so <f, T g> is f^T S g under the pair law; A = U^T S U,
G_k = U^T D_k U; a lower-triangular mask Low (k <= j).

- SQP (tarod13/laplacian_dual_dynamics, src/trainer/sqp.py): ALLO without duals,
  sum_i <u_i, L u_i> + b sum_{k<=j} h_jk h'_jk with ALLO's stop-gradient h; b grows.
- CQP (src/trainer/cqp.py): sum_i c_i <u_i, L u_i> + b kappa sum_{j,k} M_jk g_jk g'_jk,
  g = G - I with no stop-gradient, M_jk = min(c_j, c_k), kappa = d^2 / sum M; b grows.
- OMM (Ryu, Zhou & Wornell, NeurIPS 2025, arXiv 2510.21952; samueltzhou/
  laplacian_dual_dynamics_omm, src/trainer/seq_low_rank.py with orbital_enabled): for each
  i, with u_1..u_(i-1) frozen, c_i (-2 tr A_i + sum(A_i * G1_i)) over the top-left i x i
  blocks; its minimisers are the top eigenvectors of T, orthonormal.
- LoRA (Ryu et al., NeuralSVD, ICML 2024, arXiv 2402.03655, nested low-rank
  approximation; the same file without orbital_enabled): the same nesting of
  -2 tr A_i + sum(G1_i * G2_i); its minimisers are sqrt(1 - lambda_i) e_i.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import torch

from allo.objective import (
    Terms,
    Weights,
    allo_step,
    ggdo_coefficients,
    nested_penalty,
    pair_degree,
    plus_product,
    product,
    quadratic_form,
    triangle_and_identity,
    weighted_rows,
    weights_laplacian_table,
)


@functools.cache
def nested_weights(d: int, device: torch.device, dtype: torch.dtype
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, P): c_i = d - i + 1 and P_jk = sum_{i >= max(j, k)} c_i, the weight of entry
    (j, k) in the nested sum over i of c_i times the top-left i x i block."""
    c = torch.arange(d, 0, -1, device=device, dtype=dtype)
    last = torch.maximum(torch.arange(d, device=device)[:, None],
                         torch.arange(d, device=device)[None, :])
    remaining = (d - last).to(dtype)
    return c, remaining * (remaining + 1) / 2


@functools.cache
def cqp_weights(d: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """kappa M: M_jk = min(c_j, c_k), scaled so the entries sum to d^2 (cqp.py)."""
    weights = nested_penalty(d, device, dtype)
    return weights * (d * d) / weights.sum()


def pair_product(table: torch.Tensor, weights: Weights, lap_table: torch.Tensor
                 ) -> torch.Tensor:
    """S U with S = (W + W^T) / 2, from 2 L_W U = diag(row + column sums) U - (W + W^T) U
    (the graph term's product, so no second N x N product)."""
    return 0.5 * (pair_degree(weights, table)[..., None] * table - lap_table)


def gram(table: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """U^T D U."""
    return product(weighted_rows(table, states).transpose(-1, -2), table)


# --- SQP


@torch.no_grad()
def sqp_step(table: torch.Tensor, weights: Weights, barrier: torch.Tensor
             ) -> tuple[Terms, torch.Tensor]:
    """ALLO's terms and gradient with every dual zero (sqp.py: dual loss 0)."""
    d = table.shape[-1]
    zero = torch.zeros(*table.shape[:-2], d, d, device=table.device, dtype=table.dtype)
    return allo_step(table, weights, zero, barrier)


# --- CQP


def cqp_terms_from(per_vector: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor,
                   barrier: torch.Tensor) -> Terms:
    d = per_vector.shape[-1]
    weights = cqp_weights(d, per_vector.device, per_vector.dtype)
    graph = (ggdo_coefficients(d, per_vector) * per_vector).sum(dim=-1)
    penalty = (weights * g1 * g2).sum(dim=(-2, -1))
    barrier_loss = barrier * penalty
    return Terms(graph + barrier_loss, graph, torch.zeros_like(graph), barrier_loss,
                 (0.5 * (g1 + g2)).tril().detach(), (g1 * g2).sum(dim=(-2, -1)).detach(),
                 per_vector.detach())


def cqp_terms(table: torch.Tensor, weights: Weights, barrier: torch.Tensor) -> Terms:
    _, eye = triangle_and_identity(table.shape[-1], table.device, table.dtype)
    g1 = gram(table, weights.states1) - eye
    g2 = gram(table, weights.states2) - eye
    per_vector = quadratic_form(table, weights_laplacian_table(table, weights))
    return cqp_terms_from(per_vector, g1, g2, barrier)


@torch.no_grad()
def cqp_step(table: torch.Tensor, weights: Weights, barrier: torch.Tensor
             ) -> tuple[Terms, torch.Tensor]:
    """CQP's terms and d/dU = 2 L_W U diag(c) + 2 b (D1 U (kM * g') + D2 U (kM * g))."""
    d = table.shape[-1]
    _, eye = triangle_and_identity(d, table.device, table.dtype)
    lap_table = weights_laplacian_table(table, weights)
    weighted1 = weighted_rows(table, weights.states1)
    weighted2 = weighted_rows(table, weights.states2)
    g1 = product(weighted1.transpose(-1, -2), table) - eye
    g2 = product(weighted2.transpose(-1, -2), table) - eye
    terms = cqp_terms_from(quadratic_form(table, lap_table), g1, g2, barrier)
    scaled = cqp_weights(d, table.device, table.dtype) * 2.0 * barrier[..., None, None]
    gradient = lap_table * ggdo_coefficients(d, table)
    gradient = plus_product(gradient, weighted1, scaled * g2)
    return terms, plus_product(gradient, weighted2, scaled * g1)


# --- OMM and LoRA: the same nesting, two orthogonality terms


def nested_terms_from(per_vector: torch.Tensor, a: torch.Tensor, g1: torch.Tensor,
                      second: torch.Tensor) -> Terms:
    """-2 sum_j P_jj A_jj + sum P * second * G1: second is A (OMM) or G2 (LoRA)."""
    d = per_vector.shape[-1]
    _, prefix = nested_weights(d, per_vector.device, per_vector.dtype)
    _, eye = triangle_and_identity(d, per_vector.device, per_vector.dtype)
    approximation = -2.0 * (prefix * eye * a).sum(dim=(-2, -1))
    orthogonality = (prefix * second * g1).sum(dim=(-2, -1))
    zero = torch.zeros_like(approximation)
    return Terms(approximation + orthogonality, approximation, zero, orthogonality,
                 (g1 - eye).tril().detach(), zero, per_vector.detach())


def omm_terms(table: torch.Tensor, weights: Weights) -> Terms:
    """OMM as written: for each i, u_1..u_(i-1) held by stop-gradients."""
    return _nested_terms(table, weights, omm=True)


def lora_terms(table: torch.Tensor, weights: Weights) -> Terms:
    """LoRA as written: for each i, u_1..u_(i-1) held by stop-gradients."""
    return _nested_terms(table, weights, omm=False)


def _nested_terms(table: torch.Tensor, weights: Weights, omm: bool) -> Terms:
    d = table.shape[-1]
    c, _ = nested_weights(d, table.device, table.dtype)
    total: Any = 0.0  # a tensor after the first level
    for i in range(1, d + 1):  # the definition itself, one nested level at a time
        live = torch.cat([table[..., : i - 1].detach(), table[..., i - 1 : i]], dim=-1)
        lap = weights_laplacian_table(live, weights)
        a = product(live.transpose(-1, -2), pair_product(live, weights, lap))
        g1 = gram(live, weights.states1)
        second = a if omm else gram(live, weights.states2)
        eye = torch.eye(i, device=table.device, dtype=table.dtype)
        total = total + c[i - 1] * (-2.0 * (a * eye).sum(dim=(-2, -1))
                                    + (second * g1).sum(dim=(-2, -1)))
    step = omm_step if omm else lora_step
    with torch.no_grad():
        terms, _ = step(table, weights)
    terms.total = total
    return terms


class NestedParts(NamedTuple):
    """What OMM's and LoRA's closed forms share: c, Low, L_W U, S U, A and D1 U, G1."""

    c: torch.Tensor
    lower: torch.Tensor
    lap_table: torch.Tensor
    pair_table: torch.Tensor
    a: torch.Tensor
    weighted1: torch.Tensor
    g1: torch.Tensor


def nested_parts(table: torch.Tensor, weights: Weights) -> NestedParts:
    d = table.shape[-1]
    c, _ = nested_weights(d, table.device, table.dtype)
    lower, _ = triangle_and_identity(d, table.device, table.dtype)
    lap_table = weights_laplacian_table(table, weights)
    pair_table = pair_product(table, weights, lap_table)
    weighted1 = weighted_rows(table, weights.states1)
    return NestedParts(c, lower, lap_table, pair_table,
                       product(table.transpose(-1, -2), pair_table), weighted1,
                       product(weighted1.transpose(-1, -2), table))


@torch.no_grad()
def omm_step(table: torch.Tensor, weights: Weights) -> tuple[Terms, torch.Tensor]:
    """OMM's terms and d/dU = (-4 S U + 2 S U (G1 * Low)^T + 2 D1 U (A * Low)^T) diag(c)."""
    p = nested_parts(table, weights)
    terms = nested_terms_from(quadratic_form(table, p.lap_table), p.a, p.g1, p.a)
    gradient = plus_product(-4.0 * p.pair_table, p.pair_table,
                            2.0 * (p.g1 * p.lower).transpose(-1, -2))
    gradient = plus_product(gradient, p.weighted1, 2.0 * (p.a * p.lower).transpose(-1, -2))
    return terms, gradient * p.c


@torch.no_grad()
def lora_step(table: torch.Tensor, weights: Weights) -> tuple[Terms, torch.Tensor]:
    """LoRA's terms and d/dU = (-4 S U + 2 D1 U (G2 * Low)^T + 2 D2 U (G1 * Low)^T) diag(c)."""
    p = nested_parts(table, weights)
    weighted2 = weighted_rows(table, weights.states2)
    g2 = product(weighted2.transpose(-1, -2), table)
    terms = nested_terms_from(quadratic_form(table, p.lap_table), p.a, p.g1, g2)
    gradient = plus_product(-4.0 * p.pair_table, p.weighted1,
                            2.0 * (g2 * p.lower).transpose(-1, -2))
    gradient = plus_product(gradient, weighted2, 2.0 * (p.g1 * p.lower).transpose(-1, -2))
    return terms, gradient * p.c
