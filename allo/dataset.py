"""The data set a run trains on: collected in chunks and, by default, sized by what it allows.

Training on the exact expectation over the data set (allo.data.DataLawWeights) costs the
same per step whatever the data's size, so the only price of more data is its collection.
The data ceiling (allo.budget.data_ceiling) says, before training, how far the data set's
own operator turns the eigenvectors from the exact ones. Without `--num-envs`, a seed whose
ceiling is below allo.budget.CEILING_TARGET collects more, step by step, up to MAX_GROWTH
times in all, before it trains: spiral's rarely visited centre, rooms16's nearly equal
lambda_2 and lambda_3. The decision reads the exact ground truth, which this tool always
has; it only ever adds data (every chunk collected is kept) and stops at the first size
whose ceiling reaches the target, so it chooses how much data, never which.

Experience is collected in chunks of CHUNK_ENVS environments and their pair laws are
averaged, weighted by transitions (the pair law of a union of episodes is exactly that
average, docs/math.md section 3). Chunk 0 is seeded with the run's seed alone, so a run of
up to CHUNK_ENVS environments has the same data as before chunking; chunk k > 0 with
(seed, k). Memory stays that of one chunk per worker.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from allo import sparse_law
from allo.budget import CEILING_TARGET, MAX_GROWTH, ceilings, growth_factor
from allo.config import TrainConfig
from allo.data import collect, empirical_pair_law
from allo.layouts import Layout
from allo.rundir import BASE_NUM_ENVS
from allo.sparse_law import Law

BASE_ENVS = BASE_NUM_ENVS  # without --num-envs: where a data set starts
CHUNK_ENVS = 4000


@dataclass
class DataSet:
    law: Law  # (N, N) pair law of all collected transitions (sparse, allo/sparse_law.py)
    num_envs: int
    ceiling: np.ndarray  # (d,) per-vector |cos| of this data set's eigenvectors
    base_ceiling: float | None = None  # mean ceiling before it grew; None if it did not
    more_data_helps: bool = True  # False when its last growth barely moved the ceiling
    # (d,) its eigenvectors scored by cos_strict (allo.budget.strict_data_ceiling)
    strict_ceiling: np.ndarray | None = None
    # (N, W) its own top eigenvectors, W >= d completing lambda_d's block (allo.budget.ceilings)
    eigenvectors: np.ndarray | None = None


def chunk_sizes(num_envs: int) -> list[int]:
    full, rest = divmod(num_envs, CHUNK_ENVS)
    return [CHUNK_ENVS] * full + ([rest] if rest else [])


def chunk_seed(seed: int, index: int) -> int | list[int]:
    return seed if index == 0 else [seed, index]


def chunk_law(layout: Layout, cfg: TrainConfig, seed: int, index: int, envs: int
              ) -> Law:
    experience = collect(layout, envs, cfg.num_steps, cfg.max_episode_length,
                         chunk_seed(seed, index))
    return empirical_pair_law(experience, cfg.discount, layout.num_free)


class Stopped(Exception):
    """The collection was asked to stop (`stop` was set) between two chunks."""


def collect_law(layout: Layout, cfg: TrainConfig, seed: int, num_envs: int,
                workers: int = 1, first_chunk: int = 0,
                stop: threading.Event | None = None) -> Law:
    """Pair law of chunks first_chunk.. of a num_envs data set (weighted by size), summed
    in chunk order as the chunks arrive. `stop`, once set, ends it with Stopped before
    the next chunk: a large grid's data takes minutes, and Ctrl-C must not wait for it."""
    sizes = chunk_sizes(num_envs)[first_chunk:]
    jobs = [(first_chunk + i, envs) for i, envs in enumerate(sizes)]
    total = sum(sizes)
    law: Law | None = None
    parts = chunk_laws(layout, cfg, seed, jobs, workers, stop)
    for envs, part in zip(sizes, parts, strict=True):
        weighted = part * (envs / total)
        law = weighted if law is None else law + weighted
    assert law is not None
    return law


def chunk_laws(layout: Layout, cfg: TrainConfig, seed: int, jobs: list[tuple[int, int]],
               workers: int, stop: threading.Event | None = None) -> Iterator[Law]:
    """The chunks' laws in order, at most `workers` built ahead of the sum: a large
    layout's chunk law is hundreds of MB, so they are never all held at once."""

    def go_on() -> None:
        if stop is not None and stop.is_set():
            raise Stopped

    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            go_on()
            yield chunk_law(layout, cfg, seed, *job)
        return
    # numpy and scipy release the GIL in the heavy parts
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        pending: deque[Future[Law]] = deque()
        for job in jobs:
            go_on()
            pending.append(pool.submit(chunk_law, layout, cfg, seed, *job))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def build(layout: Layout, cfg: TrainConfig, seed: int, truth_values: np.ndarray,
          truth_vectors: np.ndarray, d: int, workers: int = 1,
          announce: Callable[[str], None] | None = None, max_pairs: int | None = None,
          stop: threading.Event | None = None) -> DataSet:
    """The seed's data set: --num-envs as given, or BASE_ENVS grown until its ceiling
    reaches CEILING_TARGET or the data set is MAX_GROWTH times larger, or its law would
    hold more than `max_pairs` nonzero pairs (what memory allows, allo.capacity.max_pairs).

    Each step grows by the factor the ceiling asks for (1 - |cos| falls like 1 / data where
    the data's error is small against the gaps) and keeps all data collected so far. It
    never gives up early on a comparison of two sizes: a close pair's ceiling is a single
    noisy draw that can even fall as data grows (rooms16 seed 2: 0.9965 at 16000
    environments, 0.9858 at 64000, 0.9926 at 128000), so only the target or the cap ends
    it. Whether the growth cut 1 - |cos| by a quarter is recorded for the note.
    `announce` gets a line before each growth step (they can take a minute); `stop` ends
    the collection between chunks (Stopped).
    """
    envs = first = cfg.num_envs or BASE_ENVS
    law = collect_law(layout, cfg, seed, envs, workers, stop=stop)
    ceiling, strict, own = ceilings(law, truth_values, truth_vectors, d, layout, cfg.discount)
    base = ceiling
    if cfg.num_envs is not None:
        return DataSet(law, envs, ceiling, strict_ceiling=strict, eigenvectors=own)
    cap = envs * MAX_GROWTH
    while (factor := growth_factor(ceiling)) > 1 and envs < cap:
        grown = min(cap, envs * factor)
        fits = affordable(sparse_law.as_sparse(law).nnz, envs, grown, max_pairs)
        if fits < grown:
            if announce:
                announce(f"seed {seed}: data ceiling {np.mean(ceiling):.3f} with {envs} "
                         f"environments asks for {grown}; memory allows about {fits} "
                         f"(allo/capacity.py), so {'it stays' if fits <= envs else 'it grows'}"
                         f" at {max(fits, envs)}")
            if fits <= envs:
                break
            grown = cap = fits
        if announce:
            announce(f"seed {seed}: data ceiling {np.mean(ceiling):.3f} with {envs} "
                     f"environments (target {CEILING_TARGET}); growing it to {grown}")
        extra = collect_law(layout, cfg, seed, grown, workers,
                            first_chunk=len(chunk_sizes(envs)), stop=stop)
        law = law * (envs / grown) + extra * ((grown - envs) / grown)
        envs = grown
        ceiling, strict, own = ceilings(law, truth_values, truth_vectors, d, layout,
                                        cfg.discount)
    if envs == first:
        return DataSet(law, envs, ceiling, strict_ceiling=strict, eigenvectors=own)
    helps = 1.0 - np.mean(ceiling) < 0.75 * (1.0 - np.mean(base))
    return DataSet(law, envs, ceiling, float(np.mean(base)), bool(helps), strict, own)


def affordable(pairs: int, envs: int, grown: int, max_pairs: int | None) -> int:
    """The most environments (whole chunks, at most `grown`) whose law fits `max_pairs`,
    taking nonzero pairs to grow at most in proportion to the data (each chunk adds at
    most a chunk's worth of new pairs)."""
    if max_pairs is None or pairs <= 0 or pairs * grown <= max_pairs * envs:
        return grown
    return max(envs, envs * max_pairs // pairs // CHUNK_ENVS * CHUNK_ENVS)


def exact(pair_law: Law, d: int, eigenvectors: np.ndarray) -> DataSet:
    """--data exact: the exact sampling law itself (docs/math.md (6)) as the data set, so
    a run has no estimation error, only the optimiser's; its data ceiling is 1, and its
    own eigenvectors are the exact ones (`eigenvectors`, as ceilings gives them)."""
    return DataSet(sparse_law.as_sparse(pair_law), 0, np.ones(d),
                   strict_ceiling=np.ones(d), eigenvectors=eigenvectors)
