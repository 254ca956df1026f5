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


def test_one_law_for_both_constraint_batches_is_computed_once_and_changes_nothing():
    """The exact expectation passes the same rho twice: h' = h is reused, not recomputed;
    the loss and its gradient are those of two equal, separately computed batches."""
    from allo.objective import Weights, ggdo_terms

    torch.manual_seed(0)
    n, d = 12, 4
    pairs = torch.rand(n, n)
    pairs /= pairs.sum()
    rho = 0.5 * (pairs.sum(0) + pairs.sum(1))
    duals, barrier = torch.randn(d, d).tril(), torch.tensor(2.0)
    for terms_of in (lambda t, w: allo_terms(t, w, duals, barrier),
                     lambda t, w: ggdo_terms(t, w, barrier)):
        results = []
        for weights in (Weights(pairs, rho, rho), Weights(pairs, rho, rho.clone())):
            table = torch.randn(n, d, generator=torch.Generator().manual_seed(1),
                                requires_grad=True)
            terms = terms_of(table, weights)
            terms.total.backward()
            results.append((terms.total.detach(), terms.barrier_signal, table.grad))
        for shared, separate in zip(*results, strict=True):
            torch.testing.assert_close(shared, separate)
