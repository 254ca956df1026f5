"""Whether a training run fits this machine's memory, decided before any work starts.

The exact ground truth is matrix-free (allo/sparse_spectrum.py): memory linear in N. Each
seed's data law is sparse above allo.sparse_law.DENSE_MAX_CELLS (its nonzero pairs grow
like N: a cell's pairs are the cells a walk of MAX_OFFSET steps reaches), and dense, with
its N x N tables, only below. So a run's memory is linear in N and in the pairs its data
holds; no N^2 term is left above the dense limit. Before any work the pairs are estimated
(PAIRS_PER_CELL); once a data set is built its real count is checked again
(`check_pairs`). A run that would not fit is refused with one line naming the limit and by
how much, rather than swapping or being killed an hour in. `--data exact` trains on the
exact law, which is dense in general: it has its own limit, EXACT_MAX_CELLS.
"""

from __future__ import annotations

import os

from allo.sparse_law import DENSE_MAX_CELLS
from allo.spectrum import offset_terms

# Bytes per N^2 and seed below the dense limit: the float64 law of the data set plus the
# chunk being added and their weighted sum while it grows (3 x 8), the float64 stack handed
# to the device and the float32 pair table and Laplacian trained on (8 + 4 + 4).
DENSE_BYTES_PER_CELL_PAIR = 40
# Bytes per N and environment of one chunk of the dense builder: its rows (float64).
CHUNK_BYTES_PER_CELL = 8
# Bytes per nonzero pair and seed above it: the CSR law (12) and, while chunks are added or
# the law is symmetrised, two more (24); the sampler's cumulative table and cell indices
# (16); the sparse W and 2 L_W of the exact expectation (12 + 2 x 12), and their scipy
# forms while built (36).
BYTES_PER_PAIR = 124
# Nonzero pairs per cell the estimate assumes before the data exists: above the most that
# open rooms and mazes hold with the default data and gamma (BENCHMARKS.md, "Large
# grids"), with a margin for more data or more reach. The real count is checked once the
# data is built.
PAIRS_PER_CELL = 1500
# Bytes per cell of the ground truth (the K x N power coefficients, the solver's blocks).
TRUTH_BYTES_PER_CELL = 4096
# Scratch of the pair-enumerating builder per worker (allo/sparse_law.py's blocks).
BUILDER_BYTES = 400 * 2**20
# --data exact builds the exact law as a dense N x N table: at most this many cells.
EXACT_MAX_CELLS = DENSE_MAX_CELLS
# Share of the machine's memory a run may plan to use.
MEMORY_SHARE = 0.8


def machine_memory() -> int | None:
    """Physical memory in bytes, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def expected_pairs(num_free: int, transitions: int, gamma: float) -> int:
    """Nonzero pairs of a data set before it exists: at most N^2, at most MAX_OFFSET per
    transition, and PAIRS_PER_CELL per cell (the measured reach, with a margin)."""
    return min(num_free * num_free, transitions * offset_terms(gamma), num_free * PAIRS_PER_CELL)


def training_bytes(num_free: int, num_seeds: int, chunk_envs: int, pairs: int | None = None
                   ) -> int:
    """The peak memory a run of `num_seeds` seeds plans for (see the constants); `pairs`:
    nonzero pairs per seed's data (sparse laws only; expected_pairs before the data)."""
    workers = min(num_seeds, os.cpu_count() or 1)  # seeds build their data in parallel
    if num_free <= DENSE_MAX_CELLS:
        dense = DENSE_BYTES_PER_CELL_PAIR * num_free * num_free * num_seeds
        return dense + CHUNK_BYTES_PER_CELL * num_free * chunk_envs * workers
    pairs = num_free * PAIRS_PER_CELL if pairs is None else pairs
    return (BYTES_PER_PAIR * pairs * num_seeds + TRUTH_BYTES_PER_CELL * num_free
            + BUILDER_BYTES * workers)


def fits(num_free: int, num_seeds: int, chunk_envs: int, memory: int | None = None,
         pairs: int | None = None, exact: bool = False) -> str | None:
    """None if the run fits; else one line saying which limit and by how much."""
    if exact and num_free > EXACT_MAX_CELLS:
        return (f"--data exact trains on the exact pair law, a dense N x N table: at most "
                f"{EXACT_MAX_CELLS} free cells (EXACT_MAX_CELLS); this layout has {num_free}, "
                f"{num_free - EXACT_MAX_CELLS} over: use collected data (the default)")
    memory = machine_memory() if memory is None else memory
    if memory is None:
        return None
    need = training_bytes(num_free, num_seeds, chunk_envs, pairs)
    allowed = int(MEMORY_SHARE * memory)
    if need <= allowed:
        return None
    seeds = f"{num_seeds} seed{'s' if num_seeds > 1 else ''}"
    what = ("the data law is N x N per seed" if num_free <= DENSE_MAX_CELLS else
            f"the data laws hold about {_pairs(pairs or num_free * PAIRS_PER_CELL)} "
            "nonzero pairs per seed")
    return (f"training on {num_free} free cells with {seeds} needs about {_gib(need)} of "
            f"memory ({what}); the limit is {_gib(allowed)} "
            f"({MEMORY_SHARE:.0%} of this machine's {_gib(memory)}), {_gib(need - allowed)} "
            "over: use fewer --seeds, a smaller layout or less data (--num-envs)")


def max_pairs(num_free: int, num_seeds: int, chunk_envs: int, memory: int | None = None
              ) -> int | None:
    """The most nonzero pairs per seed's law that fit (a data set grows no further);
    None below the dense limit or where the machine's memory is unknown."""
    memory = machine_memory() if memory is None else memory
    if memory is None or num_free <= DENSE_MAX_CELLS:
        return None
    room = int(MEMORY_SHARE * memory) - training_bytes(num_free, num_seeds, chunk_envs, pairs=0)
    return max(0, room // (BYTES_PER_PAIR * num_seeds))


def check_pairs(num_free: int, num_seeds: int, chunk_envs: int, pairs: int,
                memory: int | None = None) -> str | None:
    """fits(), with a built data set's real count of nonzero pairs (the largest seed's)."""
    if num_free <= DENSE_MAX_CELLS:
        return None
    return fits(num_free, num_seeds, chunk_envs, memory, pairs=pairs)


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def _pairs(count: int) -> str:
    return f"{count / 1e6:.0f} million" if count >= 10**6 else str(count)
