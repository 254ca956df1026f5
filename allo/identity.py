"""A run's identity: what a checkpoint must match to be resumed into that run.

A checkpoint carries `identity`: the hash of the run's configuration (the flags a
resume may not change), the hash of its layout (the grid, start, goals and doors) and
its seed. A resume computes the same from run.json and the rebuilt layout and refuses
any checkpoint whose identity differs (one copied in from another seed, layout or
configuration) or whose content step is not the step in its file name.

Standard library only: hashes are SHA-256 of canonical JSON, so they are the same on
every machine and Python version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

# Fields left out of the configuration hash: what a resume may change (train_cli's
# RESUME_OVERRIDABLE) and where things live (a run directory may be moved or copied).
PLACE_FIELDS = frozenset({"run_dir", "results_dir", "env_file", "seeds"})
# What each seed of a batched model has of its own beyond its place: its seed, and its
# data set's size (grown seed by seed where --num-envs is not given, allo/dataset.py).
# num_envs stays in the hash, since a checkpoint is tied to its data; runs resumed as one
# model may differ in it (allo/training/runs.py, resumed_together).
SEED_OWN_FIELDS = frozenset({"seed", "num_envs"})


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def config_hash(cfg: Any) -> str:
    """Hash of a TrainConfig's fixed fields (floats as floats: 1 and 1.0 are one value)."""
    from allo.train_cli import RESUME_OVERRIDABLE

    left_out = PLACE_FIELDS | RESUME_OVERRIDABLE | {"seed"}
    fixed = {}
    for f in dataclasses.fields(cfg):
        if f.name in left_out:
            continue
        value = getattr(cfg, f.name)
        floating = str(f.type) in ("float", "float | None")
        if floating and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        fixed[f.name] = value
    return _digest(fixed)


def layout_hash(layout: Any) -> str:
    """Hash of the grid a run trains on: walls, start, goals, doors (not the name)."""
    return _digest({
        "walls": ["".join("X" if wall else "." for wall in row) for row in layout.walls.tolist()],
        "start": list(layout.start) if layout.start is not None else None,
        "goals": sorted(list(goal) for goal in layout.goals),
        "doors": sorted([list(a), list(b)] for a, b in layout.doors),
    })


def run_identity(cfg: Any, layout: Any) -> dict:
    """What a checkpoint of this run carries (and a resume expects)."""
    return {"config_hash": config_hash(cfg), "layout_hash": layout_hash(layout),
            "seed": int(cfg.seed)}


def mismatch(state: dict, expected: dict, step_in_name: int) -> str | None:
    """Why a loaded checkpoint does not belong here, as a phrase; None when it does."""
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step != step_in_name:
        return (f"it holds step {step!r}, not the step {step_in_name} of its name "
                "(renamed or mislabelled)")
    found = state.get("identity")
    if not isinstance(found, dict):
        return "it carries no run identity (written by an older allo, or not by allo)"
    if found.get("seed") != expected["seed"]:
        return f"it belongs to seed {found.get('seed')!r}, this run is seed {expected['seed']}"
    if found.get("layout_hash") != expected["layout_hash"]:
        return "it was trained on another layout"
    if found.get("config_hash") != expected["config_hash"]:
        return "it was trained with another configuration"
    return None


def truth_disagreement(run: Any, layout: Any, values: Any, d: int) -> str | None:
    """On resume: the ground truth on disk must be the one of the rebuilt layout (the
    grid recorded in run.json), or scores would compare against another grid. `values`:
    the top d eigenvalues computed now. None when they agree or are not written yet."""
    import numpy as np

    from allo import rundir

    reader = rundir.RunReader(run)
    if not (reader.path / rundir.GT_EIGENVALUES).exists():
        return None  # a kill came before they were written; the trainer writes them now
    try:
        on_disk, vectors = reader.ground_truth()
    except rundir.RunDirError as err:
        return str(err)
    if vectors.shape != (layout.num_free, d) or on_disk.shape != (d,):
        return (f"{rundir.GT_EIGENVECTORS} has shape {vectors.shape}, but the layout in "
                f"run.json has {layout.num_free} free cells and d is {d}")
    if not np.allclose(on_disk, values, rtol=1e-6, atol=1e-8):
        return (f"{rundir.GT_EIGENVALUES} is not the spectrum of the layout in run.json "
                "(edited or copied from another run)")
    return None
