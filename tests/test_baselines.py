"""SQP, CQP, OMM and LoRA (docs/math.md section 14): closed-form gradients against
autograd, and what each recovers on a small grid with exact expectations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_objective import random_weights

from allo.baselines import (
    cqp_step,
    cqp_terms,
    lora_step,
    lora_terms,
    nested_weights,
    omm_step,
    omm_terms,
    sqp_step,
)
from allo.layouts import parse_layout
from allo.metrics import rayleigh_eigenvalues, strict_cosines
from allo.objective import Weights, allo_terms, ggdo_step, pair_laplacian
from allo.spectrum import ground_truth

GRID5 = "\n".join(["....."] * 5)


def reference_and_step(objective: str, table: torch.Tensor, weights: Weights,
                       barrier: torch.Tensor):
    if objective == "sqp":
        zero = torch.zeros(*table.shape[:-2], table.shape[-1], table.shape[-1],
                           dtype=table.dtype)
        return allo_terms(table, weights, zero, barrier), sqp_step(table.detach(), weights,
                                                                    barrier)
    if objective == "cqp":
        return cqp_terms(table, weights, barrier), cqp_step(table.detach(), weights, barrier)
    if objective == "omm":
        return omm_terms(table, weights), omm_step(table.detach(), weights)
    return lora_terms(table, weights), lora_step(table.detach(), weights)


@pytest.mark.parametrize("objective", ["sqp", "cqp", "omm", "lora"])
@pytest.mark.parametrize("shared", [True, False], ids=["one-law", "two-batches"])
@pytest.mark.parametrize("seeds", [None, 3], ids=["unbatched", "3-seeds"])
def test_closed_form_gradient_is_autograds(objective, shared, seeds):
    """Each step's gradient with respect to the table equals autograd's gradient of the
    loss as written (the nested levels with their stop-gradients), and so does the loss."""
    generator = torch.Generator().manual_seed(5)
    shape, n, d = ((seeds,) if seeds else ()), 9, 4
    weights = random_weights(shape, n, shared, generator)
    table = torch.randn(*shape, n, d, generator=generator, dtype=torch.float64,
                        requires_grad=True)
    barrier = torch.rand(shape, generator=generator, dtype=torch.float64) + 0.5
    reference, (terms, gradient) = reference_and_step(objective, table, weights, barrier)
    expected, = torch.autograd.grad(reference.total.sum(), table)
    torch.testing.assert_close(gradient, expected, rtol=1e-11, atol=1e-11)
    assert gradient.abs().max() > 0.1  # not vacuous
    torch.testing.assert_close(terms.total, reference.total.detach())


def test_nested_weights_count_each_entry_in_every_level_that_holds_it():
    c, prefix = nested_weights(3, torch.device("cpu"), torch.float64)
    assert c.tolist() == [3, 2, 1]
    # entry (j, k) is in level i >= max(j, k): P = sum of c_i over those levels
    assert prefix.tolist() == [[6, 3, 1], [3, 3, 1], [1, 1, 1]]


def train_table(objective: str, truth, d: int, steps: int = 1500, lr: float = 0.05,
                seed: int = 0, barrier: float = 1.0) -> tuple[np.ndarray, torch.Tensor]:
    """Adam on the table itself, fed each step's closed-form gradient, exact laws."""
    pairs = torch.tensor(truth.pair_law)
    rho = torch.tensor(truth.rho)
    weights = Weights(pairs, rho, rho, pair_laplacian(pairs))
    torch.manual_seed(seed)
    table = torch.nn.Parameter(torch.randn(len(rho), d, dtype=torch.float64) * 0.1)
    optimizer = torch.optim.Adam([table], lr=lr)
    b = torch.tensor(barrier, dtype=torch.float64)
    for step in range(steps):
        optimizer.param_groups[0]["lr"] = lr * (1 - 0.95 * step / steps)
        if objective in ("sqp", "cqp"):
            step_of = sqp_step if objective == "sqp" else cqp_step
            terms, gradient = step_of(table.detach(), weights, b)
            b = torch.clamp(b + 0.1 * terms.barrier_signal.clamp(min=0), max=10.0)
        elif objective == "ggdo":  # a fixed barrier
            terms, gradient = ggdo_step(table.detach(), weights, b)
        else:
            step_of = omm_step if objective == "omm" else lora_step
            terms, gradient = step_of(table.detach(), weights)
        table.grad = gradient
        optimizer.step()
    return table.detach().numpy(), b


@pytest.fixture(scope="module")
def grid_truth():
    return ground_truth(parse_layout(GRID5), gamma=0.8, num_steps=100, max_len=100)


@pytest.fixture(scope="module")
def trained(grid_truth):
    """Each objective's table on the 5x5 grid, trained once for the tests below."""
    tables: dict[str, np.ndarray] = {}

    def get(objective: str) -> np.ndarray:
        if objective not in tables:
            tables[objective] = train_table(objective, grid_truth, 4)[0]
        return tables[objective]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["ggdo", "sqp", "cqp", "omm", "lora"])
def test_each_recovers_the_top_eigenvectors_with_exact_expectations(objective, grid_truth,
                                                                    trained):
    """With the exact laws each objective's stable point is the top-d eigenvectors of L
    (the 5x5 grid repeats lambda_2 = lambda_3 exactly: cos_strict's rotation applies)."""
    d = 4
    table = trained(objective)
    strict = strict_cosines(table, grid_truth.eigenvectors, grid_truth.eigenvalues)
    assert strict.min() >= 0.999, strict
    rayleigh = rayleigh_eigenvalues(table, grid_truth.pair_law)
    np.testing.assert_allclose(rayleigh, grid_truth.eigenvalues[:d], atol=1e-4)


@pytest.mark.slow
def test_omm_vectors_are_orthonormal_and_lora_vectors_carry_the_eigenvalues(grid_truth,
                                                                           trained):
    """OMM's minimisers are rho-orthonormal eigenvectors; LoRA's are sqrt(1 - lambda_i) e_i,
    so 1 - |u_i|^2_rho estimates lambda_i (docs/math.md section 14)."""
    d, rho = 4, grid_truth.rho
    omm = trained("omm")
    gram = omm.T @ (rho[:, None] * omm)
    np.testing.assert_allclose(gram, np.eye(d), atol=1e-4)
    lora = trained("lora")
    norms = np.einsum("s,si,si->i", rho, lora, lora)
    np.testing.assert_allclose(1.0 - norms, grid_truth.eigenvalues[:d], atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("barrier", [0.3, 0.25])
def test_ggdo_shrinks_each_vector_by_its_eigenvalue_over_twice_the_barrier(grid_truth,
                                                                           barrier):
    """docs/math.md section 7: GGDO's fixed barrier leaves |u_i|^2_rho = 1 - lambda_i / (2 b),
    and a vector with lambda_i >= 2 b collapses to zero (at b = 0.25, the fourth: 0.531 >
    0.5), its direction then set by noise (GridMaze-7's eleventh vector under the paper's
    preset)."""
    d, rho = 4, grid_truth.rho
    table, _ = train_table("ggdo", grid_truth, d, steps=3000, barrier=barrier)
    norms = np.einsum("s,si,si->i", rho, table, table)
    expected = np.clip(1.0 - grid_truth.eigenvalues[:d] / (2 * barrier), 0.0, None)
    np.testing.assert_allclose(norms, expected, atol=2e-3)


SMALL = "XXXXXXXX\nX      X\nX XX   X\nX    X X\nXXXXXXXX\n"


def small_config(tmp_path, objective: str, name: str, **changes):
    from allo.config import TrainConfig

    layout = tmp_path / "small.txt"
    layout.write_text(SMALL)
    values = dict(env_file=str(layout), run_dir=str(tmp_path / name), objective=objective,
                  num_envs=50, num_steps=100, max_episode_length=100, hidden_size=32,
                  hidden_layers=2, num_eigenvectors=3, batch_size=256,
                  num_gradient_steps=120, log_freq=30, plot_freq=60, checkpoint_freq=60,
                  lr_warmup_steps=10, lr_final_fraction=1.0)
    values.update(changes)
    return TrainConfig(**values)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["sqp", "cqp", "omm", "lora"])
def test_batched_seeds_and_resume_work_for_each_objective(tmp_path, objective):
    """A seed trains the same beside another as alone, and a run stopped at step 60 and
    resumed ends where an uninterrupted one ends (the barrier and sampler included)."""
    import dataclasses

    from allo import rundir
    from allo.config import from_dict
    from allo.train import train, train_seeds

    def final(run) -> np.ndarray:
        return np.load(run / rundir.FINAL_LEARNED)

    together = train_seeds(small_config(tmp_path, objective, "pair", run_dir=None,
                                        results_dir=str(tmp_path / "pair"), seeds="0,1"))
    alone = train(small_config(tmp_path, objective, "alone", seed=1))
    assert [o.status for o in together] == ["finished", "finished"]
    assert np.abs(final(together[1].run_dir) - final(alone.run_dir)).max() <= 1e-5
    row = rundir.RunReader(alone.run_dir).metrics()[-1]
    assert "dual/diag" not in row and len(row["eig/estimate"]) == 3
    if objective in ("sqp", "cqp"):  # the barrier grew from its initial value
        assert row["barrier/coef"] > 2.0
    straight = train(small_config(tmp_path, objective, "straight"))
    half = train(small_config(tmp_path, objective, "half", num_gradient_steps=60))
    config = from_dict(rundir.RunReader(half.run_dir).info().config)
    resumed = train(dataclasses.replace(config, num_gradient_steps=120), resume=half.run_dir)
    assert resumed.status == "finished"
    assert np.abs(final(resumed.run_dir) - final(straight.run_dir)).max() <= 1e-5
