"""The minibatch weights are the per-sample estimator, computed without gathering rows."""

from __future__ import annotations

import torch

from allo.objective import allo_terms, batch_weights


def test_weighted_terms_equal_per_sample_gather():
    torch.manual_seed(0)
    n, d, size = 12, 3, 500
    table = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    batch = torch.randint(0, n, (4, size))
    duals = torch.randn(d, d, dtype=torch.float64).tril()
    barrier = torch.tensor(1.5, dtype=torch.float64)
    weights = batch_weights(batch, n)
    weights.pairs, weights.states1, weights.states2 = (
        w.double() for w in (weights.pairs, weights.states1, weights.states2))
    terms = allo_terms(table, weights, duals, barrier)
    # the same loss written per sample, as the paper states it
    u_s, u_next, u_c1, u_c2 = table[batch]
    lower, eye = torch.ones(d, d).tril().double(), torch.eye(d).double()
    h1 = (u_c1.T @ u_c1.detach() / size - eye) * lower
    h2 = (u_c2.T @ u_c2.detach() / size - eye) * lower
    graph = 0.5 * (u_s - u_next).pow(2).sum(1).mean()
    total = graph + 0.5 * (duals * (h1 + h2)).sum() + barrier * (h1 * h2).sum()
    assert torch.allclose(terms.total, total)
    grad_weighted, = torch.autograd.grad(terms.total, table)
    grad_sampled, = torch.autograd.grad(total, table)
    assert torch.allclose(grad_weighted, grad_sampled)
    # weights are float32 counts / B: agreement to float32 precision
    assert (terms.constraint - 0.5 * (h1 + h2).detach()).abs().max() < 1e-6
