"""Sampled cells (allo/cells.py): a step whose network runs on its batch's own cells is
the step on the whole table weighed by the same batch, and its estimates are unbiased
for the data set's exact expectation (docs/math.md section 16)."""

from __future__ import annotations

import pytest
import torch

from allo.baselines import cqp_step, lora_step, omm_step
from allo.cells import ROWS_PER_PAIR, gather, row_weights, scatter, use_cells
from allo.config import TrainConfig
from allo.data import DataLawWeights, PairSampler, collect, empirical_pair_law
from allo.layouts import load_builtin
from allo.learner import Learner
from allo.objective import Weights, allo_step, counts, ggdo_step, graph_term

SEEDS = [0, 1]
OBJECTIVES = ["allo", "ggdo", "sqp", "cqp", "omm", "lora"]


def laws_of(layout, seeds=SEEDS):
    return [empirical_pair_law(collect(layout, 50, 100, 100, seed=s), 0.8, layout.num_free)
            for s in seeds]


def learner(on_cells: bool, **changes) -> Learner:
    layout = load_builtin("room4")
    cfg = TrainConfig(hidden_size=32, hidden_layers=2, num_gradient_steps=50,
                      lr_warmup_steps=5, batch_size=16, **changes)
    sampler = PairSampler(laws_of(layout), SEEDS, torch.device("cpu"))
    return Learner(cfg, SEEDS, torch.device("cpu"), sampler,
                   torch.as_tensor(layout.coordinates()), on_cells=on_cells)


def test_cells_are_the_draws_that_weights_count():
    """From one generator state, cells() gives the very batch weights() counts."""
    layout = load_builtin("room4")
    n = layout.num_free
    one, two = (PairSampler(laws_of(layout), SEEDS, torch.device("cpu")) for _ in range(2))
    for _ in range(3):
        cells, weights = one.cells(64), two.weights(64)
        assert cells.shape == (2, ROWS_PER_PAIR, 64)
        for seed in range(2):
            unit = torch.full((64,), 1.0 / 64)
            pairs = counts(cells[seed, 0] * n + cells[seed, 1], n * n, unit).view(n, n)
            torch.testing.assert_close(pairs, weights.pairs[seed], rtol=0, atol=0)
            torch.testing.assert_close(counts(cells[seed, 2], n, unit), weights.states1[seed],
                                       rtol=0, atol=0)
            torch.testing.assert_close(counts(cells[seed, 3], n, unit), weights.states2[seed],
                                       rtol=0, atol=0)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_a_step_on_cells_is_the_step_on_the_whole_table(objective):
    """The same draws, the same arithmetic up to float rounding: parameters, duals and
    barrier after a few steps agree, for every objective."""
    on_cells, on_table = learner(True, objective=objective), learner(False, objective=objective)
    assert on_cells.rows is not None and on_table.rows is None
    start = on_cells.model.flat.clone()
    for _ in range(5):
        cell_terms, table_terms = on_cells.step(), on_table.step()
        torch.testing.assert_close(cell_terms.total, table_terms.total, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(on_cells.model.flat, on_table.model.flat, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(on_cells.duals, on_table.duals, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(on_cells.barrier, on_table.barrier, rtol=1e-4, atol=1e-5)
    assert (on_cells.model.flat - start).abs().max() > 1e-4  # the steps moved it


def test_the_row_gradient_is_the_table_gradient_of_the_batch():
    """Scattered to cells, the rows' closed-form gradient is the whole table's under the
    batch's counts (allo_step: duals, barrier and both constraint batches)."""
    layout = load_builtin("room4")
    n, d = layout.num_free, 4
    sampler = PairSampler(laws_of(layout), SEEDS, torch.device("cpu"))
    table = torch.randn(2, n, d, generator=torch.Generator().manual_seed(3))
    duals = torch.randn(2, d, d, generator=torch.Generator().manual_seed(4)).tril()
    barrier = torch.tensor([1.5, 2.5])
    cells = sampler.cells(32)
    unit = torch.full((32,), 1.0 / 32)
    weights = Weights(*[torch.stack([counts(idx, size, unit) for idx in rows]) for rows, size in
                        ((cells[:, 0] * n + cells[:, 1], n * n), (cells[:, 2], n),
                         (cells[:, 3], n))])
    weights.pairs = weights.pairs.view(2, n, n)
    rows = gather(table.transpose(0, 1).reshape(n, -1), cells)  # every seed's own rows
    rows = torch.stack([rows[s].view(-1, 2, d)[:, s] for s in range(2)])
    row_terms, row_gradient = allo_step(rows, row_weights(2, 32, torch.device("cpu")),
                                        duals, barrier)
    terms, gradient = allo_step(table, weights, duals, barrier)
    torch.testing.assert_close(row_terms.total, terms.total, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scatter(row_gradient, cells, n), gradient, rtol=1e-5,
                               atol=1e-6)


def mean_and_error(samples: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    stacked = torch.stack(samples).double()
    return stacked.mean(dim=0), stacked.std(dim=0) / len(samples) ** 0.5


@pytest.mark.parametrize("step", ["allo", "ggdo", "cqp", "omm", "lora"])
def test_batch_estimates_are_unbiased(step):
    """The mean over many batches of the row estimates (graph term per vector, the
    constraint, the barrier's h h', the gradient at each cell) is the exact expectation
    over the data set, within 5 standard errors; every value is checked."""
    layout = load_builtin("room4")
    n, d, size, draws = layout.num_free, 3, 64, 1500
    law = laws_of(layout, [0])
    sampler = PairSampler(law, [0], torch.device("cpu"))
    exact = DataLawWeights(law, [0], torch.device("cpu")).expectation
    table = torch.randn(1, n, d, generator=torch.Generator().manual_seed(5)) * 0.3
    duals = torch.randn(1, d, d, generator=torch.Generator().manual_seed(6)).tril()
    barrier = torch.tensor([2.0])
    rows_weights = row_weights(1, size, torch.device("cpu"))

    def run(t: torch.Tensor, w: Weights):
        if step == "allo":
            return allo_step(t, w, duals, barrier)
        if step == "ggdo":
            return ggdo_step(t, w, barrier)
        if step == "cqp":
            return cqp_step(t, w, barrier)
        return (omm_step if step == "omm" else lora_step)(t, w)

    samples = []
    for _ in range(draws):
        cells = sampler.cells(size)
        terms, gradient = run(gather(table[0], cells), rows_weights)
        samples.append(torch.cat([terms.graph_per_vector.flatten(),
                                  terms.barrier_signal.flatten(), terms.total.flatten(),
                                  scatter(gradient, cells, n).flatten()]))
    mean, error = mean_and_error(samples)
    terms, gradient = run(table, exact)
    if step != "omm":  # OMM's A A has no independent second factor: biased by design
        expected = torch.cat([terms.graph_per_vector.flatten(), terms.barrier_signal.flatten(),
                              terms.total.flatten(), gradient.flatten()]).double()
        assert ((mean - expected).abs() <= 5 * error + 1e-6).all()
    per_vector = graph_term(table, exact.pairs, exact.laplacian).flatten().double()
    assert ((mean[:d] - per_vector).abs() <= 5 * error[:d] + 1e-7).all()


def test_the_batch_constraint_is_unbiased():
    """h = E_c[u [[u]]^T] - I from one constraint batch, averaged: the exact h."""
    layout = load_builtin("room4")
    n, d, size = layout.num_free, 3, 64
    law = laws_of(layout, [0])
    sampler = PairSampler(law, [0], torch.device("cpu"))
    exact = DataLawWeights(law, [0], torch.device("cpu")).expectation
    table = torch.randn(1, n, d, generator=torch.Generator().manual_seed(7))
    zero, barrier = torch.zeros(1, d, d), torch.tensor([0.0])
    rows = row_weights(1, size, torch.device("cpu"))
    samples = [allo_step(gather(table[0], sampler.cells(size)), rows, zero, barrier)[0]
               .constraint.flatten() for _ in range(1500)]
    mean, error = mean_and_error(samples)
    expected = allo_step(table, exact, zero, barrier)[0].constraint.flatten().double()
    assert ((mean - expected).abs() <= 5 * error + 1e-7).all()


def test_when_the_network_runs_on_the_batch_cells():
    assert use_cells(256, 1088, "xy")
    assert not use_cells(256, 200, "xy")  # 1024 rows: every cell once is cheaper
    assert not use_cells(1024, 1088, "xy")  # --protocol paper on GridRoom-64: the table
    assert use_cells(1024, 2500, "xy")  # its N x N work outweighs 4096 rows
    assert not use_cells(None, 10**5, "xy")  # the exact expectation needs every cell
    assert not use_cells(16, 10**5, "pixels")  # images are not gathered by cell
    default = learner(False)
    assert Learner(default.cfg, SEEDS, torch.device("cpu"), default.sampler,
                   default.coords).rows is not None  # 4 x 16 < 104 cells: on cells


def cells_config(tmp_path, name: str, **changes) -> TrainConfig:
    # room4 (104 cells) with batches of 16: 4 x 16 = 64 rows < 104, so steps run on cells
    values = {"env": "room4", "run_dir": str(tmp_path / name), "batch_size": 16,
              "num_envs": 50, "hidden_size": 32, "num_gradient_steps": 120,
              "lr_final_fraction": 1.0, "lr_warmup_steps": 5, "log_freq": 10, "plot_freq": 40,
              "checkpoint_freq": 40, "device": "cpu", "threads": 1, **changes}
    return TrainConfig(**values)


@pytest.mark.slow
def test_a_run_on_sampled_cells_logs_resumes_and_batches_seeds(tmp_path):
    """allo train on the cells path: every logged row scores the table of its own step,
    a resumed run ends where an uninterrupted one does, and a seed trained beside another
    ends where it ends alone (CPU, to 1e-5)."""
    import dataclasses

    import numpy as np

    from allo import rundir
    from allo.config import from_dict
    from allo.metrics import quality_row
    from allo.train import train, train_seeds

    def final(run) -> np.ndarray:
        return np.load(run / rundir.FINAL_LEARNED)

    straight = train(cells_config(tmp_path, "straight"))
    assert straight.status == "finished"
    rows = rundir.RunReader(straight.run_dir).metrics()
    assert [r["step"] for r in rows] == list(range(10, 121, 10))
    assert all(r["cos/mean"] is not None for r in rows)
    # a row scores its own step's table, not a later step's forward: step 30 (no export
    # there) is the final table of a run of 30 steps (the same rates: constant after 5)
    short = train(cells_config(tmp_path, "short", num_gradient_steps=30))
    values = np.load(straight.run_dir / "gt_eigenvalues.npy")
    vectors = np.load(straight.run_dir / "gt_eigenvectors.npy")
    scored = quality_row(final(short.run_dir), np.zeros(10), vectors, values, 10)
    assert scored["cos/mean"] == pytest.approx(rows[2]["cos/mean"], abs=1e-6)
    half = train(cells_config(tmp_path, "half", num_gradient_steps=60))
    config = from_dict(rundir.RunReader(half.run_dir).info().config)
    resumed = train(dataclasses.replace(config, num_gradient_steps=120), resume=half.run_dir)
    assert resumed.status == "finished"
    assert np.abs(final(resumed.run_dir) - final(straight.run_dir)).max() <= 1e-5
    together = train_seeds(cells_config(tmp_path, "pair", run_dir=None, seeds="0,1",
                                        results_dir=str(tmp_path / "pair")))
    alone = train(cells_config(tmp_path, "alone", seed=1))
    assert np.abs(final(together[1].run_dir) - final(alone.run_dir)).max() <= 1e-5
