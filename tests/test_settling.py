"""Runs of the default length go on while a seed's vectors still turn (allo/settling.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_seeds import resume_from, small_config

from allo import budget as budget_module
from allo import rundir, settling
from allo.config import TrainConfig
from allo.data import DataLawWeights, collect, empirical_pair_law, weight_source
from allo.dataset import collect_law
from allo.layouts import load_builtin, load_layout_file
from allo.learner import Learner
from allo.metrics import block_complete_width, eigenspace_blocks
from allo.spectrum import ground_truth, operator_spectrum, pair_law
from allo.train import Batch, Evaluator, narrowed, train, train_seeds


def law_and_vectors(name: str, d: int) -> tuple[np.ndarray, np.ndarray, list[range]]:
    layout = load_builtin(name)
    law = pair_law(layout, 0.9, 200, 200)
    spectrum = operator_spectrum(law)
    values, vectors = spectrum.top(d)
    blocks = [range(b.start, min(b.stop, d)) for b in eigenspace_blocks(spectrum.eigenvalues)
              if b.start < d]
    return law, vectors, blocks


@pytest.mark.slow
def test_eigenvectors_of_the_data_are_settled_whatever_their_length():
    law, vectors, blocks = law_and_vectors("room4", 6)
    scaled = vectors * np.array([0.5, 1.0, 3.0, 1.0, 0.2, 7.0])
    np.testing.assert_allclose(settling.ritz_alignment(scaled, law, blocks), 1.0, atol=1e-9)
    assert settling.turning(settling.ritz_alignment(scaled, law, blocks)) == []


@pytest.mark.parametrize("angle", [0.1, 0.4, 0.8, np.pi / 2])
def test_a_pair_turned_within_its_span_has_alignment_cos_of_the_angle(angle):
    law, vectors, blocks = law_and_vectors("room4", 6)
    assert all(len(b) == 1 for b in blocks[1:4])  # lambda_2..lambda_4 distinct
    turned = vectors.copy()
    c, s = np.cos(angle), np.sin(angle)
    turned[:, 2], turned[:, 3] = c * vectors[:, 2] + s * vectors[:, 3], \
        -s * vectors[:, 2] + c * vectors[:, 3]
    alignment = settling.ritz_alignment(turned, law, blocks)
    np.testing.assert_allclose(alignment[[2, 3]], abs(c), atol=1e-9)
    np.testing.assert_allclose(np.delete(alignment, [2, 3]), 1.0, atol=1e-9)
    assert settling.turning(alignment) == ([] if abs(c) >= settling.SETTLED_ALIGNMENT
                                           else [2, 3])


def test_turning_inside_a_repeated_eigenspace_is_settled():
    law, vectors, blocks = law_and_vectors("empty", 5)
    block = next(b for b in blocks if len(b) > 1)
    i, j = block.start, block.start + 1
    turned = vectors.copy()
    turned[:, i], turned[:, j] = (vectors[:, i] + vectors[:, j]) / np.sqrt(2), \
        (vectors[:, i] - vectors[:, j]) / np.sqrt(2)
    np.testing.assert_allclose(settling.ritz_alignment(turned, law, blocks), 1.0, atol=1e-6)


def spectrum_of(name: str, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[range]]:
    """The exact law of a built-in layout, its eigenvalues and eigenvectors, and the
    blocks among the first d, as the trainer makes them."""
    layout = load_builtin(name)
    law = pair_law(layout, 0.9, 200, 200)
    spectrum = operator_spectrum(law)
    blocks = [range(b.start, min(b.stop, d)) for b in eigenspace_blocks(spectrum.eigenvalues)
              if b.start < d]
    return law, spectrum.eigenvalues, spectrum.eigenvectors, blocks


@pytest.mark.parametrize("angle", [0.05, 0.3, 0.7, 1.2])
def test_the_last_vector_turned_out_of_the_span_has_share_cos_of_the_angle(angle):
    """u_d = cos a e_d + sin a e_(d+1) is its own Ritz vector (alignment 1 within the
    learned span); its share inside the data's top-d eigenspace is cos a, and so is the
    alignment that decides whether the run goes on (GridMaze-9 seed 2 under the
    defaults ended at 8000 steps with |cos| 0.85 on e10 and every Ritz alignment 1)."""
    d = 6
    law, values, vectors, blocks = spectrum_of("room4", d)
    assert values[d - 1] < values[d] * (1 - 5e-3)  # e_(d+1) lies outside lambda_d's block
    learned = vectors[:, :d] * np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0])  # any lengths
    learned[:, d - 1] = np.cos(angle) * vectors[:, d - 1] + np.sin(angle) * vectors[:, d]
    np.testing.assert_allclose(settling.ritz_alignment(learned, law, blocks), 1.0, atol=1e-9)
    share = settling.span_share(learned, law, vectors[:, :d])
    np.testing.assert_allclose(share[: d - 1], 1.0, atol=1e-9)
    np.testing.assert_allclose(share[d - 1], np.cos(angle), atol=1e-9)
    decided = settling.alignment(learned, law, blocks, vectors[:, :d])
    np.testing.assert_allclose(decided[d - 1], np.cos(angle), atol=1e-9)
    assert settling.turning(decided) == ([] if np.cos(angle) >= settling.SETTLED_ALIGNMENT
                                         else [d - 1])


def test_mixing_across_d_inside_a_repeated_eigenspace_is_settled():
    """Where lambda_d and lambda_(d+1) are one eigenvalue, the span is the whole block
    (as the data set hands it over, allo.budget.ceilings): a mixture is an eigenvector."""
    law, values, vectors, blocks = spectrum_of("empty", 5)
    d = next(b.stop - 1 for b in eigenspace_blocks(values) if len(b) > 1)  # cuts a block
    blocks = [range(b.start, min(b.stop, d)) for b in eigenspace_blocks(values) if b.start < d]
    learned = vectors[:, :d].copy()
    learned[:, d - 1] = (vectors[:, d - 1] + vectors[:, d]) / np.sqrt(2)
    width = block_complete_width(values, d)
    assert width > d
    np.testing.assert_allclose(settling.alignment(learned, law, blocks, vectors[:, :width]),
                               1.0, atol=1e-9)


def test_the_data_set_hands_over_its_eigenvectors_through_lambda_ds_block():
    """allo.budget.ceilings: the data's own top eigenvectors, as many as the truth's
    columns (d, or through lambda_d's block), rho-orthonormal for the data's rho."""
    layout = load_builtin("room4")
    law = pair_law(layout, 0.9, 200, 200)
    truth = operator_spectrum(law)
    data = collect_law(layout, TrainConfig(gamma=0.9), 0, 2000)
    ceiling, _, own = budget_module.ceilings(data, truth.eigenvalues[:7],
                                             truth.eigenvectors[:, :7], 6)
    assert ceiling.shape == (6,) and own.shape == (layout.num_free, 7)
    rho = np.asarray(data.sum(axis=0)).ravel() * 0.5 + np.asarray(data.sum(axis=1)).ravel() * 0.5
    np.testing.assert_allclose(own.T @ (rho[:, None] * own), np.eye(7), atol=1e-8)


def test_vectors_that_are_not_independent_have_no_ritz_basis():
    law, vectors, blocks = law_and_vectors("room4", 4)
    vectors[:, 3] = vectors[:, 2]
    assert settling.ritz_alignment(vectors, law, blocks).tolist() == [0.0] * 4


def small_budget(monkeypatch, steps: int) -> None:
    """The budget of a real layout is thousands of steps; the mechanism is the same."""
    fake = budget_module.Budget(steps=steps, needed=steps, gap=1e-3, pair=(2, 3))
    monkeypatch.setattr("allo.train.recommend", lambda *args, **kwargs: fake)
    monkeypatch.setattr(settling, "CHECK_EVERY", 30)


def record_alignments(monkeypatch) -> list[np.ndarray]:
    seen: list[np.ndarray] = []
    real = settling.alignment

    def spy(*args):
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(settling, "alignment", spy)
    return seen


def test_a_default_run_goes_on_until_its_vectors_settle(tmp_path, monkeypatch, capsys):
    small_budget(monkeypatch, 60)
    seen = record_alignments(monkeypatch)
    totals: dict[int, int] = {}
    outcome = train(small_config(tmp_path, num_gradient_steps=None, learning_rate=3e-3),
                    progress=lambda step, total, row: totals.setdefault(step, total))
    assert outcome.status == "finished"
    # the progress bar's total: the budget, then the most it may run
    assert totals[50] == 60 and totals[70] == 120
    # one look every 30 steps from step 60; it ends at the first settled look, or at the
    # limit without another look
    turning = [bool(settling.turning(a)) for a in seen]
    looks = [60 + 30 * k for k in range(len(seen))]
    assert turning[0], "the test needs vectors still turning at the budget"
    assert all(turning[:-1])
    end = looks[-1] + 30 if turning[-1] else looks[-1]
    if turning[-1]:
        assert end == settling.extension_limit(60)
    reader = rundir.RunReader(outcome.run_dir)
    info = reader.info()
    assert info.step == info.total_steps == end > 60
    assert info.budget.extension_limit == 120
    assert info.config["num_gradient_steps"] == 60  # the schedule's length: the budget
    assert reader.metrics()[-1]["step"] == end
    np.testing.assert_array_equal(reader.final(), reader.learned(end))
    # a checkpoint every 30 steps while it goes on, the last at its end
    assert rundir.checkpoint_steps(outcome.run_dir)[-2:] == [end - 30, end]
    err = capsys.readouterr().err
    assert err.count("still turning at step 60") == 1 and "at most to step 120" in err


def test_given_steps_and_ggdo_never_go_on(tmp_path, monkeypatch):
    small_budget(monkeypatch, 60)
    seen = record_alignments(monkeypatch)
    given = train(small_config(tmp_path / "a", num_gradient_steps=60, learning_rate=3e-3))
    ggdo = train(small_config(tmp_path / "b", num_gradient_steps=None, objective="ggdo",
                              learning_rate=3e-3))
    assert seen == []
    for outcome in (given, ggdo):
        info = rundir.RunReader(outcome.run_dir).info()
        assert info.step == info.total_steps == 60
        assert info.budget.extension_limit is None


@pytest.mark.slow
def test_batched_seeds_go_on_each_as_it_would_alone(tmp_path, monkeypatch):
    small_budget(monkeypatch, 60)
    together = train_seeds(small_config(tmp_path / "b", seeds="0-1", num_gradient_steps=None,
                                        learning_rate=3e-3))
    for seed, outcome in zip((0, 1), together, strict=True):
        alone = train(small_config(tmp_path / f"s{seed}", seed=seed, num_gradient_steps=None,
                                   learning_rate=3e-3))
        batched, single = rundir.RunReader(outcome.run_dir), rundir.RunReader(alone.run_dir)
        assert batched.info().step == single.info().step > 60
        np.testing.assert_allclose(batched.final(), single.final(), atol=1e-5)
        assert [r["step"] for r in batched.metrics()] == [r["step"] for r in single.metrics()]


def test_a_resume_goes_on_where_the_run_left_off(tmp_path, monkeypatch):
    small_budget(monkeypatch, 60)
    outcome = train(small_config(tmp_path, num_gradient_steps=None, learning_rate=3e-3))
    run = outcome.run_dir
    end = rundir.RunReader(run).info().step
    assert end > 90, "the test needs a run that went on past step 90"
    full = rundir.RunReader(run).final()
    resumed = resume_from(run, 90)
    assert resumed.status == "finished"
    assert rundir.RunReader(run).info().step == end
    np.testing.assert_allclose(rundir.RunReader(run).final(), full, atol=1e-5)



@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [None, 512])
def test_a_narrowed_batch_continues_its_seeds_exactly(batch_size):
    layout = load_builtin("room4")
    laws = [empirical_pair_law(collect(layout, 50, 100, 100, seed=s), 0.8, layout.num_free)
            for s in (0, 1, 2)]
    cfg = TrainConfig(hidden_size=32, hidden_layers=2, batch_size=batch_size,
                      num_gradient_steps=20, num_eigenvectors=4)
    coords = torch.as_tensor(layout.coordinates())
    truth = ground_truth(layout, 0.8, 100, 100)

    def batch() -> Batch:
        learner = Learner(cfg, [0, 1, 2], torch.device("cpu"),
                          weight_source(laws, [0, 1, 2], "cpu", batch_size), coords)
        expectation = DataLawWeights(laws, [0, 1, 2], "cpu").expectation
        return Batch(learner, Evaluator(truth, 4, "allo", expectation), learner.step,
                     [0, 1, 2])

    whole, narrow = batch(), batch()
    for _ in range(5):
        whole.step(), narrow.step()
    narrow = narrowed(narrow, [2, 0], laws, truth, graphed=False)
    assert narrow.members == [2, 0] and narrow.learner.seeds == [2, 0]
    for _ in range(5):
        whole.step(), narrow.step()
    tables_whole, tables_narrow = whole.learner.tables(), narrow.learner.tables()
    torch.testing.assert_close(tables_narrow[0], tables_whole[2], atol=1e-6, rtol=0)
    torch.testing.assert_close(tables_narrow[1], tables_whole[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(narrow.learner.duals[0], whole.learner.duals[2],
                               atol=1e-6, rtol=0)
    assert int(narrow.learner.step_index) == 10


@pytest.mark.slow
def test_seeds_that_end_apart_each_match_their_lone_run(tmp_path, monkeypatch):
    """Seed 1 is held turning to the limit, seed 0 stops at its budget; the batch narrows
    to seed 1 and both runs are what they are alone."""
    small_budget(monkeypatch, 60)
    cfg = small_config(tmp_path / "b", seeds="0-1", num_gradient_steps=None)
    layout = load_layout_file(cfg.env_file)
    held = collect_law(layout, cfg, 1, cfg.num_envs)

    def alignment(table, law, blocks, span):
        same = np.allclose(law.toarray(), held.toarray())
        return np.zeros(table.shape[1]) if same else np.ones(table.shape[1])

    monkeypatch.setattr(settling, "alignment", alignment)
    kept = []
    real_narrowed = narrowed

    def spy(batch, keep, *args, **kwargs):
        kept.append(list(keep))
        return real_narrowed(batch, keep, *args, **kwargs)

    monkeypatch.setattr("allo.train.narrowed", spy)
    together = train_seeds(cfg)
    ends = [rundir.RunReader(o.run_dir).info().step for o in together]
    assert ends == [60, 120]
    assert kept == [[1]]  # seed 0 stopped costing compute at step 60
    for seed, outcome in zip((0, 1), together, strict=True):
        alone = train(small_config(tmp_path / f"s{seed}", seed=seed, num_gradient_steps=None))
        batched, single = rundir.RunReader(outcome.run_dir), rundir.RunReader(alone.run_dir)
        assert batched.info().step == single.info().step == ends[seed]
        np.testing.assert_allclose(batched.final(), single.final(), atol=1e-5)
        assert [r["step"] for r in batched.metrics()] == [r["step"] for r in single.metrics()]
        assert batched.metrics()[-1]["cos/mean"] == pytest.approx(
            single.metrics()[-1]["cos/mean"], abs=1e-5)
