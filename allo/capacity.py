"""Whether a training run fits this machine's memory, decided before any work starts.

The exact ground truth is matrix-free (allo/sparse_spectrum.py) and fits any layout within
allo.layouts' limits. Training is not yet: each seed's data-set pair law is an N x N table
(allo/data.py builds it in float64, one chunk at a time, and trains on float32 copies of it
and of its Laplacian), so its memory grows like N^2 times the seeds. A run that would not
fit is refused with one line naming the limit and by how much, rather than swapping or
being killed an hour in.
"""

from __future__ import annotations

import os

# Bytes per N^2 and seed: the float64 law of the data set plus the chunk being added and
# their weighted sum while it grows (3 x 8), the float64 stack handed to the device and
# the float32 pair table and Laplacian trained on (8 + 4 + 4).
DENSE_BYTES_PER_CELL_PAIR = 40
# Bytes per N and environment of one chunk: its rows of the target law (float64).
CHUNK_BYTES_PER_CELL = 8
# Share of the machine's memory a run may plan to use.
MEMORY_SHARE = 0.8


def machine_memory() -> int | None:
    """Physical memory in bytes, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def training_bytes(num_free: int, num_seeds: int, chunk_envs: int) -> int:
    """The peak memory a run of `num_seeds` seeds plans for (see the constants)."""
    dense = DENSE_BYTES_PER_CELL_PAIR * num_free * num_free * num_seeds
    workers = min(num_seeds, os.cpu_count() or 1)  # seeds build their data in parallel
    return dense + CHUNK_BYTES_PER_CELL * num_free * chunk_envs * workers


def fits(num_free: int, num_seeds: int, chunk_envs: int, memory: int | None = None
         ) -> str | None:
    """None if the run fits; else one line saying which limit and by how much."""
    memory = machine_memory() if memory is None else memory
    if memory is None:
        return None
    need, allowed = training_bytes(num_free, num_seeds, chunk_envs), int(MEMORY_SHARE * memory)
    if need <= allowed:
        return None
    seeds = f"{num_seeds} seed{'s' if num_seeds > 1 else ''}"
    return (f"training on {num_free} free cells with {seeds} needs about {_gib(need)} of "
            f"memory (the data law is N x N per seed); the limit is {_gib(allowed)} "
            f"({MEMORY_SHARE:.0%} of this machine's {_gib(memory)}), {_gib(need - allowed)} "
            "over: use fewer --seeds or a smaller layout")


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"
