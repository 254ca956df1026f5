"""The minibatch weights are the per-sample estimator, computed without gathering rows."""

from __future__ import annotations

import pytest
import torch

from allo.objective import Weights, allo_terms, batch_weights, pair_laplacian


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
    from allo.objective import ggdo_terms

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


def random_weights(shape: tuple[int, ...], n: int, shared: bool,
                   generator: torch.Generator) -> Weights:
    def law(*size):
        raw = torch.rand(*shape, *size, generator=generator, dtype=torch.float64)
        return raw / raw.sum(dim=tuple(range(-len(size), 0)), keepdim=True)

    pairs, states1 = law(n, n), law(n)
    states2 = states1 if shared else law(n)
    # the trainer's exact expectation passes a prebuilt Laplacian; sampled batches do not
    return Weights(pairs, states1, states2, pair_laplacian(pairs) if shared else None)


@pytest.mark.parametrize("objective", ["allo", "ggdo"])
@pytest.mark.parametrize("shared", [True, False], ids=["one-law", "two-batches"])
@pytest.mark.parametrize("seeds", [None, 3], ids=["unbatched", "3-seeds"])
def test_closed_form_gradient_is_autograds(objective, shared, seeds):
    """docs/math.md (15), (16): the step's gradient with respect to the table, without
    autograd, equals autograd's gradient of the loss as written (stop-gradients and all),
    and the terms are the same numbers."""
    from allo.objective import allo_step, ggdo_step, ggdo_terms

    generator = torch.Generator().manual_seed(3)
    shape, n, d = ((seeds,) if seeds else ()), 9, 4
    weights = random_weights(shape, n, shared, generator)
    table = torch.randn(*shape, n, d, generator=generator, dtype=torch.float64,
                        requires_grad=True)
    duals = torch.randn(*shape, d, d, generator=generator, dtype=torch.float64).tril()
    barrier = torch.rand(shape, generator=generator, dtype=torch.float64) + 0.5
    if objective == "allo":
        reference = allo_terms(table, weights, duals, barrier)
        terms, gradient = allo_step(table.detach(), weights, duals, barrier)
    else:
        reference = ggdo_terms(table, weights, barrier)
        terms, gradient = ggdo_step(table.detach(), weights, barrier)
    expected, = torch.autograd.grad(reference.total.sum(), table)
    torch.testing.assert_close(gradient, expected, rtol=1e-12, atol=1e-12)
    assert gradient.abs().max() > 0.1  # not vacuous
    for name in ("total", "graph", "dual", "barrier", "constraint", "barrier_signal",
                 "graph_per_vector"):
        torch.testing.assert_close(getattr(terms, name), getattr(reference, name).detach())
