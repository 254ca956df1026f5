"""The CUDA path: skipped without a GPU; the CPU suite covers everything else
(tests/test_seeds.py checks the graph's warm-up undo on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from allo import rundir
from allo.config import TrainConfig
from allo.cuda_graph import GraphedStep
from allo.data import collect, empirical_pair_law, weight_source
from allo.layouts import load_builtin
from allo.learner import Learner
from allo.train import train, train_seeds

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = torch.device("cuda")


# the default (exact expectation over the data set) and sampled batches, weighing
# every cell's row or on their own cells
BATCHES = [None, 4096, 16]  # 16: the network on the batch's cells (allo/cells.py)


def learner(seeds: list[int], **changes) -> Learner:
    layout = load_builtin("room4")
    cfg = TrainConfig(num_gradient_steps=100, **changes)
    laws = [empirical_pair_law(collect(layout, 100, 100, 100, seed=s), 0.8, layout.num_free)
            for s in seeds]
    coords = torch.as_tensor(layout.coordinates(), device=CUDA)
    source = weight_source(laws, seeds, CUDA, cfg.batch_size)
    return Learner(cfg, seeds, CUDA, source, coords)


@pytest.mark.parametrize("batch_size", BATCHES)
def test_weights_on_cuda_stay_on_the_device(batch_size):
    weights = learner([0], batch_size=batch_size).sampler.weights(batch_size)
    assert weights.pairs.device.type == "cuda"
    assert float(weights.pairs.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("batch_size", BATCHES)
def test_the_eager_step_never_waits_for_the_host(batch_size):
    eager = learner([0, 1], batch_size=batch_size)
    eager.step()  # lazy initialisation may sync once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            eager.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("batch_size", BATCHES)
@pytest.mark.parametrize("objective", ["allo", "ggdo"])
def test_graphed_steps_equal_eager_steps(objective, batch_size):
    eager = learner([0, 1], objective=objective, batch_size=batch_size)
    graphed = learner([0, 1], objective=objective, batch_size=batch_size)
    replay = GraphedStep(graphed)
    for _ in range(20):
        eager.step()
        replay()
    torch.testing.assert_close(graphed.tables(), eager.tables(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(graphed.duals, eager.duals, atol=1e-4, rtol=1e-4)
    assert int(graphed.step_index) == int(eager.step_index) == 20


def test_short_cuda_training_learns(tmp_path):
    cfg = TrainConfig(env="room4", run_dir=str(tmp_path / "run"), device="cuda",
                      num_gradient_steps=3000, log_freq=500, plot_freq=1500,
                      checkpoint_freq=1500)
    outcome = train(cfg)
    assert outcome.status == "finished"
    reader = rundir.RunReader(outcome.run_dir)
    assert reader.info().device.startswith("cuda")
    assert reader.info().timings["capture"] > 0  # the graph was on by default
    rows = reader.metrics()
    assert rows[-1]["cos/mean"] > rows[0]["cos/mean"]
    assert np.isfinite(reader.final()).all()


def test_cuda_seeds_train_side_by_side(tmp_path):
    cfg = TrainConfig(env="room4", results_dir=str(tmp_path), device="cuda", seeds="0-3",
                      num_gradient_steps=400, log_freq=200, plot_freq=200,
                      checkpoint_freq=200)
    outcomes = train_seeds(cfg)
    assert [o.status for o in outcomes] == ["finished"] * 4
    finals = [rundir.RunReader(o.run_dir).final() for o in outcomes]
    assert np.abs(finals[0] - finals[1]).max() > 1e-3


def test_a_narrowed_graphed_batch_recaptures_and_continues_like_eager():
    """Seeds that have concluded leave the batch (allo/settling.py); the graph of the
    narrower batch is captured anew."""
    from allo.data import DataLawWeights
    from allo.spectrum import ground_truth
    from allo.train import Batch, Evaluator, narrowed

    layout = load_builtin("room4")
    laws = [empirical_pair_law(collect(layout, 100, 100, 100, seed=s), 0.8, layout.num_free)
            for s in (0, 1)]
    truth = ground_truth(layout, 0.8, 100, 100)
    batches = []
    for graph in (False, True):
        one = learner([0, 1])
        evaluator = Evaluator(truth, 10, "allo",
                              DataLawWeights(laws, [0, 1], CUDA).expectation)
        batches.append(Batch(one, evaluator, GraphedStep(one) if graph else one.step, [0, 1]))
    for batch in batches:
        for _ in range(5):
            batch.step()
    batches = [narrowed(b, [1], laws, truth, graphed=g)
               for b, g in zip(batches, (False, True), strict=True)]
    assert isinstance(batches[1].step, GraphedStep)
    for batch in batches:
        for _ in range(5):
            batch.step()
    torch.testing.assert_close(batches[0].learner.tables(), batches[1].learner.tables(),
                               atol=1e-5, rtol=0)


def test_a_recapture_waits_for_checkpoints_copying_from_the_device(tmp_path, monkeypatch):
    """Seed 0 stops at its budget and its last checkpoint is copied from the GPU in the
    recorder thread while seed 1 goes on and the batch narrows: the narrower graph is
    captured only after that copy (a capture fails any other thread's CUDA copy)."""
    import time

    from test_seeds import small_config
    from test_settling import small_budget

    from allo import settling
    from allo import train as train_module
    from allo.dataset import collect_law
    from allo.layouts import load_layout_file

    small_budget(monkeypatch, 60)
    cfg = small_config(tmp_path, seeds="0-1", num_gradient_steps=None, device="cuda",
                       checkpoint_freq=60)
    held = collect_law(load_layout_file(cfg.env_file), cfg, 1, cfg.num_envs)
    monkeypatch.setattr(settling, "alignment", lambda table, law, blocks, span: (
        np.zeros(table.shape[1]) if np.allclose(law.toarray(), held.toarray())
        else np.ones(table.shape[1])))
    real_save = train_module.save_checkpoint

    def slow_save(writer, state):
        deadline = time.perf_counter() + 1.0
        while time.perf_counter() < deadline:  # copying from the device for a second,
            state["duals"].cpu()  # long enough to overlap a capture that did not wait
        return real_save(writer, state)

    monkeypatch.setattr(train_module, "save_checkpoint", slow_save)
    outcomes = train_seeds(cfg)
    assert [o.status for o in outcomes] == ["finished", "finished"]
    assert [rundir.RunReader(o.run_dir).info().step for o in outcomes] == [60, 120]
    assert rundir.checkpoint_steps(outcomes[0].run_dir)[-1] == 60


def test_graphed_row_values_are_the_eager_ones_of_their_step():
    """A metrics row's values replay a graph of their own; the copy to the host is
    ordered before the next step's replay overwrites them, and nothing waits for the
    device in the training thread."""
    from allo.data import DataLawWeights
    from allo.spectrum import ground_truth
    from allo.train import Evaluator, graphed_batch

    layout = load_builtin("room4")
    laws = [empirical_pair_law(collect(layout, 100, 100, 100, seed=s), 0.8, layout.num_free)
            for s in (0, 1)]
    one = learner([0, 1])
    evaluator = Evaluator(ground_truth(layout, 0.8, 100, 100), 10, "allo",
                          DataLawWeights(laws, [0, 1], CUDA).expectation)
    batch = graphed_batch(one, evaluator, [0, 1])
    for _ in range(3):
        terms = batch.step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        ready = batch.row_values(terms)
        for _ in range(3):
            batch.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    got = ready()
    later = batch.row_values(terms)()
    # the eager values of the state after 6 steps; the graphed row above is of step 3
    eager = {k: v.cpu().numpy() for k, v in evaluator.device_values(one, terms).items()}
    assert got.keys() == eager.keys()
    for key in eager:
        np.testing.assert_allclose(later[key], eager[key], atol=1e-5, rtol=1e-5)
    assert np.abs(got["tables"] - later["tables"]).max() > 1e-4
