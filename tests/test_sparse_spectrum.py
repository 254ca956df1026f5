"""The matrix-free ground truth equals the dense one (allo/pair_operator.py,
allo/sparse_spectrum.py against allo/spectrum.py), on every built-in and reference layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from allo import spectrum
from allo.capacity import (
    EXACT_MAX_CELLS,
    PAIRS_PER_CELL,
    check_pairs,
    expected_pairs,
    fits,
    training_bytes,
)
from allo.layouts import (
    MAX_FREE_CELLS,
    LayoutError,
    add_random_doors,
    builtin_names,
    load_builtin,
    load_layout_file,
    parse_layout,
)
from allo.metrics import eigenspace_blocks
from allo.pair_operator import PairLawOperator, transitions_csr
from allo.sparse_spectrum import sparse_ground_truth

REFERENCE = Path("/work/shared/reference-layouts")
BENCHMARK_LAYOUTS = Path(__file__).resolve().parent.parent / "benchmarks" / "layouts"
TOLERANCE = 1e-10
# exact repeats (symmetric layouts): compare the eigenspace, not the vectors
REPEATED = 1e-8


def reference_files() -> list[Path]:
    return sorted(REFERENCE.glob("*.txt")) if REFERENCE.is_dir() else []


def with_doors(name: str, count: int) -> object:
    return add_random_doors(load_builtin(name), count, seed=3)


def test_transitions_csr_is_the_dense_matrix_with_goals_absorbing():
    layout = with_doors("maze", 6)  # maze has a start and a goal
    dense = spectrum.absorbing_transitions(layout)
    np.testing.assert_array_equal(transitions_csr(layout).toarray(), dense)
    np.testing.assert_array_equal(transitions_csr(layout, absorbing=False).toarray(),
                                  layout.transition_matrix())


@pytest.mark.parametrize("name", ["room4", "maze", "spiral", "obstacles", "empty"])
@pytest.mark.parametrize("gamma,num_steps,max_len",
                         [(0.8, 1000, 1000), (0.95, 300, 1000), (0.8, 300, 50), (0.5, 40, 6)])
@pytest.mark.slow
def test_pair_operator_is_the_dense_pair_law(name, gamma, num_steps, max_len):
    layout = with_doors(name, 5) if name in ("room4", "spiral") else load_builtin(name)
    dense = spectrum.pair_law(layout, gamma, num_steps, max_len)
    law = PairLawOperator(layout, gamma, num_steps, max_len)
    np.testing.assert_allclose(law.dense(), dense, rtol=0, atol=1e-15)
    x = np.random.default_rng(0).standard_normal((layout.num_free, 3))
    np.testing.assert_allclose(law.apply_transpose(x), dense.T @ x, rtol=0, atol=1e-14)
    sym = 0.5 * (dense + dense.T)
    np.testing.assert_allclose(law.state_law(), sym.sum(axis=1), rtol=0, atol=1e-15)


def layouts_to_compare() -> list[tuple[str, object]]:
    cases = [(f"builtin:{name}", name) for name in builtin_names()]
    cases += [("doors:room4", "room4+doors"), ("doors:maze", "maze+doors")]
    cases += [(f"bench:{p.stem}", p) for p in sorted(BENCHMARK_LAYOUTS.glob("*.txt"))]
    cases += [(f"reference:{p.stem}", p) for p in reference_files()]
    return cases


def load_case(case: object):
    if isinstance(case, Path):
        return load_layout_file(case)
    if case.endswith("+doors"):
        return with_doors(case.split("+")[0], 8)
    return load_builtin(case)


def projector(vectors: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """The orthogonal projector onto R^1/2 span(vectors): rho-orthonormal u -> R^1/2 u."""
    scaled = np.sqrt(rho)[:, None] * vectors
    return scaled @ scaled.T


@pytest.mark.parametrize("case", [c for _, c in layouts_to_compare()],
                         ids=[i for i, _ in layouts_to_compare()])
@pytest.mark.slow
def test_sparse_ground_truth_equals_the_dense_one(case):
    layout = load_case(case)
    count = 11  # d = 10 and lambda_(d+1), as allo train asks
    dense = spectrum.ground_truth(layout, 0.8, 1000, 1000)
    sparse = sparse_ground_truth(layout, 0.8, 1000, 1000, count)
    k = len(sparse.eigenvalues)
    assert k >= min(count, layout.num_free)  # tiny layouts (GridMaze-7: 11 cells) go dense
    np.testing.assert_allclose(sparse.rho, dense.rho, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(sparse.support, dense.support)
    np.testing.assert_allclose(sparse.eigenvalues, dense.eigenvalues[:k], rtol=0, atol=TOLERANCE)
    # every eigenspace that ends inside the sparse result, at least the top `count`
    whole = k == layout.num_free
    blocks = [b for b in eigenspace_blocks(dense.eigenvalues[: k + 1], REPEATED)
              if b.stop < k or whole]
    assert blocks[-1].stop >= min(count, layout.num_free)
    for block in blocks:
        cols = slice(block.start, block.stop)
        difference = (projector(sparse.eigenvectors[:, cols], sparse.rho)
                      - projector(dense.eigenvectors[:, cols], dense.rho))
        assert np.abs(difference).max() <= TOLERANCE, (block, np.abs(difference).max())
        if len(block) == 1:  # single vectors: the same, sign included
            np.testing.assert_allclose(sparse.eigenvectors[:, cols], dense.eigenvectors[:, cols],
                                       rtol=0, atol=TOLERANCE * np.abs(dense.eigenvectors).max())


def test_reference_layouts_are_present_or_skipped():
    if not reference_files():
        pytest.skip(f"{REFERENCE} is absent: the reference layouts are not compared")
    assert len(reference_files()) >= 10


@pytest.mark.slow
def test_ground_truth_uses_the_sparse_path_above_the_dense_limit(monkeypatch):
    layout = load_builtin("room4")
    dense = spectrum.ground_truth(layout, 0.8, 1000, 1000, count=11)
    assert dense.pair_law is not None  # small: the dense path
    monkeypatch.setattr(spectrum, "DENSE_MAX_CELLS", 50)
    sparse = spectrum.ground_truth(layout, 0.8, 1000, 1000, count=11)
    assert sparse.pair_law is None and len(sparse.eigenvalues) < layout.num_free
    np.testing.assert_allclose(sparse.eigenvalues, dense.eigenvalues[: len(sparse.eigenvalues)],
                               atol=TOLERANCE)


def test_the_last_eigenspace_is_completed():
    # an open square: lambda_2 = lambda_3 and more pairs; ask for 2 and get the pair whole
    layout = parse_layout("\n".join(["." * 9] * 9), "open9")
    truth = sparse_ground_truth(layout, 0.8, 1000, 1000, count=2)
    blocks = eigenspace_blocks(truth.eigenvalues, REPEATED)
    assert blocks[1] == range(1, 3) and len(truth.eigenvalues) >= 3


def test_the_largest_layout_within_the_limits_parses_and_one_more_cell_does_not():
    side = int(np.sqrt(MAX_FREE_CELLS))
    assert parse_layout("\n".join(["." * side] * side)).num_free == MAX_FREE_CELLS
    with pytest.raises(LayoutError, match=r"limit is 256x256 cells \(MAX_SIDE\), 1 over"):
        parse_layout("\n".join(["." * (side + 1)] * 2))


def test_free_cell_limit_says_by_how_much(monkeypatch):
    import allo.layouts as layouts

    monkeypatch.setattr(layouts, "MAX_FREE_CELLS", 10)
    with pytest.raises(LayoutError, match=r"12 free cells; the limit is 10 .*, 2 over"):
        parse_layout("." * 12)


def test_a_run_that_would_not_fit_in_memory_is_refused_with_the_excess():
    memory = 24 * 2**30
    assert fits(1088, 5, 4000, memory) is None
    # memory is linear in N and the data's nonzero pairs: 256 x 256 trains on 24 GB
    pairs = expected_pairs(65536, 4000 * 1000, 0.8)
    assert pairs == 65536 * PAIRS_PER_CELL
    assert fits(65536, 1, 4000, memory, pairs=pairs) is None
    assert training_bytes(65536, 1, 4000, pairs) < 2 * training_bytes(32768, 1, 4000, pairs // 2)
    line = fits(65536, 4, 4000, memory, pairs=pairs)
    assert line is not None and "\n" not in line
    need = training_bytes(65536, 4, 4000, pairs)
    assert f"{(need - 0.8 * memory) / 2**30:.1f} GiB over" in line
    assert "65536 free cells" in line and "98 million nonzero pairs" in line
    # once built, the data's real count decides
    assert check_pairs(65536, 1, 4000, 40_000_000, memory) is None
    assert "over" in (check_pairs(65536, 1, 4000, 400_000_000, memory) or "")
    assert check_pairs(1000, 1, 4000, 10**12, memory) is None  # dense: sized by N^2


def test_exact_data_has_its_own_limit():
    line = fits(EXACT_MAX_CELLS + 5, 1, 4000, 2**40, exact=True)
    assert line is not None and "\n" not in line
    assert f"at most {EXACT_MAX_CELLS} free cells (EXACT_MAX_CELLS)" in line and "5 over" in line
    assert fits(EXACT_MAX_CELLS, 1, 4000, 2**40, exact=True) is None


def test_train_refuses_exact_data_over_its_limit_before_any_work(tmp_path, monkeypatch):
    from allo import capacity
    from allo.config import TrainConfig
    from allo.training import TrainError
    from allo.training.runs import plan_runs

    monkeypatch.setattr(capacity, "EXACT_MAX_CELLS", 50)
    layout = tmp_path / "open.txt"
    layout.write_text("\n".join(["." * 10] * 6))
    cfg = TrainConfig(env_file=str(layout), data="exact", run_dir=str(tmp_path / "run"))
    with pytest.raises(TrainError, match=r"at most 50 free cells .*, 10 over"):
        plan_runs(cfg)
    assert not (tmp_path / "run").exists()


def test_data_ceiling_of_a_large_law_comes_from_the_same_solver(monkeypatch):
    """Above DENSE_MAX_CELLS the data ceiling reads the top of the data law's spectrum
    from allo/sparse_spectrum.py; it equals the dense eigh's."""
    from allo import budget
    from allo.data import collect, empirical_pair_law

    layout = load_builtin("obstacles")
    truth = spectrum.ground_truth(layout, 0.8, 1000, 1000)
    law = empirical_pair_law(collect(layout, 50, 200, 200, seed=1), 0.8, layout.num_free)
    values, vectors = truth.eigenvalues[:11], truth.eigenvectors[:, :11]
    dense = budget.data_ceiling(law, values, vectors, 10, layout, 0.8)
    monkeypatch.setattr(budget, "DENSE_MAX_CELLS", 50)
    sparse = budget.data_ceiling(law, values, vectors, 10, layout, 0.8)
    assert dense.min() < 0.999  # a small data set: the ceiling is not trivially 1
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=1e-9)


def test_the_dense_path_is_kept_where_its_series_costs_no_more_than_at_the_reference():
    """600 cells at gamma 0.8 (146 dense products) is the measured crossover; at 0.99 the
    series runs 1000 products (the 1000-step episodes cut it), so about 320 cells."""
    assert spectrum.dense_is_cheaper(600, 0.8, 1000)
    assert not spectrum.dense_is_cheaper(601, 0.8, 1000)
    assert spectrum.series_terms(0.99, 1000) == 1000 and spectrum.series_terms(0.8, 1000) == 146
    assert spectrum.dense_is_cheaper(310, 0.99, 1000)
    assert not spectrum.dense_is_cheaper(544, 0.99, 1000)  # GridRoom-32
    assert spectrum.dense_is_cheaper(544, 0.99, 50)  # short episodes: few terms
