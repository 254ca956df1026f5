"""What a configuration implies, checked before any work starts.

Each flag's own range sits next to its field in allo/config.py (`TrainConfig.validate`
checks them). This module checks what values imply together, where a value inside its
range still cannot be honoured here: how many seeds one process trains, threads against
the cores this process may use, and the memory the model, its activations on every free
cell, the batch, the learning-rate schedule and the data collection need. Each problem
is one line naming the option, the limit and why. Standard library only (no torch):
it runs before torch is imported.
"""

from __future__ import annotations

import os
from typing import Any

# Seeds one `allo train` trains side by side: each is a run directory and a slice of one
# batched model; a study launches more as separate jobs.
MAX_SEEDS = 256
# Bytes per transition collected (int64 source, int64 target, bool done).
TRANSITION_BYTES = 17
# Bytes per float32 parameter: the value, its gradient and Adam's two moments.
PARAMETER_BYTES = 16
# Bytes per float32 activation kept for the hand-written backward pass, and its gradient.
ACTIVATION_BYTES = 8
# Bytes per pair of a sampled batch and seed: indices and weights of three batches.
BATCH_BYTES = 48
# Bytes per gradient step: the learning-rate and dual warm-up schedules (float32 each).
SCHEDULE_BYTES = 8


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_seed_count(count: int, text: str) -> None:
    if count > MAX_SEEDS:
        raise ValueError(f"--seeds {text!r}: {count} seeds, the limit is {MAX_SEEDS} per "
                         "process (each is a run directory and a slice of one batched "
                         "model); split them over several commands or an `allo study`")


def check_threads(threads: int) -> None:
    cores = usable_cores()
    if threads > cores:
        raise ValueError(f"--threads {threads}: this process may use {cores} core"
                         f"{'s' if cores > 1 else ''}; more threads than cores only slow "
                         "training down (0: torch's default)")


def parameter_count(cfg: Any) -> int:
    """Weights and biases of the MLP from (x, y) to d outputs."""
    width, layers, d = cfg.hidden_size, cfg.hidden_layers, cfg.num_eigenvectors
    return (2 * width + width) + (layers - 1) * (width * width + width) + width * d + d


def memory_parts(cfg: Any, num_free: int, num_seeds: int) -> dict[str, tuple[str, int]]:
    """Peak bytes of each part of a run: {part: (the option that sizes it, bytes)}."""
    from allo.dataset import BASE_ENVS, CHUNK_ENVS

    steps = cfg.num_gradient_steps or 0
    envs = min(cfg.num_envs or BASE_ENVS, CHUNK_ENVS)  # collected one chunk at a time
    workers = min(num_seeds, usable_cores())
    return {
        "the model": ("--hidden-size", PARAMETER_BYTES * parameter_count(cfg) * num_seeds),
        "its activations on every cell": (
            "--hidden-size", ACTIVATION_BYTES * num_free * num_seeds
            * (cfg.hidden_size * cfg.hidden_layers + cfg.num_eigenvectors)),
        "the batch": ("--batch-size", BATCH_BYTES * (cfg.batch_size or 0) * num_seeds),
        "the learning-rate schedule": ("--steps", SCHEDULE_BYTES * steps),
        "the data collection": ("--num-steps", TRANSITION_BYTES * envs * cfg.num_steps
                                * workers),
    }


def check_memory(cfg: Any, num_free: int, num_seeds: int, memory: int | None = None) -> None:
    """Refuse a run whose model, batch, schedule and data collection exceed the share of
    this machine's memory a run may plan for (allo.capacity.MEMORY_SHARE)."""
    from allo import capacity

    memory = capacity.machine_memory() if memory is None else memory
    if memory is None:
        return
    parts = memory_parts(cfg, num_free, num_seeds)
    need, allowed = sum(size for _, size in parts.values()), int(capacity.MEMORY_SHARE * memory)
    if need <= allowed:
        return
    part, (option, size) = max(parts.items(), key=lambda item: item[1][1])
    value = getattr(cfg, option.lstrip("-").replace("-", "_"), None)
    if option == "--steps":
        value = cfg.num_gradient_steps
    raise ValueError(
        f"{option} {value}: {part} needs about {gib(size)} ({gib(need)} in all for "
        f"{num_free} cells and {num_seeds} seed{'s' if num_seeds > 1 else ''}); the limit is "
        f"{gib(allowed)} ({capacity.MEMORY_SHARE:.0%} of this machine's {gib(memory)})")


def gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**27 else f"{size / 2**20:.1f} MiB"


def flag_table() -> list[str]:
    """README's table of every numeric flag's range and why (tests keep them equal)."""
    import dataclasses

    from allo.config import TrainConfig, describe_bounds, flag

    rows = ["| flag | range | why |", "|---|---|---|"]
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("bounds"):
            rows.append(f"| `{flag(f.name)}` | {describe_bounds(f)} | {f.metadata['why']} |")
    return rows
