"""One seed's training state on disk: written atomically, loaded with weights_only=True.

A checkpoint holds one seed, so a seed trained beside others (--seeds) resumes alone
or beside them again.
docs/run-format.md, "checkpoints/", lists what it holds.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import torch

from allo import identity, rundir, safeio
from allo.training import TrainError

CHECKPOINTS_KEPT = 2
CHECKPOINT_KEYS = ("step", "elapsed", "model", "adam", "duals", "barrier", "sampler",
                   "step_index")


def save_checkpoint(writer: rundir.RunWriter, state: dict) -> None:
    """Serialised in memory first, then written atomically: a full disk is then an
    OSError naming the file (ENOSPC), not torch's writer error around it."""
    target = writer.checkpoint_dir / rundir.checkpoint_name(state["step"])
    buffer = io.BytesIO()
    torch.save(state, buffer)
    rundir.atomic_write_bytes(target, buffer.getbuffer())
    writer.prune_checkpoints(CHECKPOINTS_KEPT)


def load_checkpoint(run: Path, device: torch.device, expected: dict) -> dict | None:
    """Newest usable checkpoint by step number; never unpickles (weights_only=True).
    Usable means this run's own: its identity (allo/identity.py) is `expected` and its
    content step is the step in its name.

    None when there is no checkpoint at all; TrainError when there are some but none is
    usable, so a resume never silently starts over (and drops the logged metrics).
    """
    steps = rundir.checkpoint_steps(run)
    for step in reversed(steps):
        path = run / rundir.CHECKPOINTS / rundir.checkpoint_name(step)
        try:  # through allo.safeio: a FIFO, a device or a link out of the run never loads
            buffer = io.BytesIO(safeio.read_bytes(path, safeio.MAX_NPY_BYTES, root=run))
            state = torch.load(buffer, map_location=device, weights_only=True)
        except safeio.ReadError as err:
            print(f"allo: skipping {err}", file=sys.stderr)
            continue
        except Exception as err:  # a torn or foreign file: say so, try the previous one
            if "Weights only load failed" in str(err):
                why = "refused: it holds Python objects, not only tensors (never unpickled)"
            else:
                why = (str(err).splitlines() or [type(err).__name__])[0]
            print(f"allo: skipping {path}: {why}", file=sys.stderr)
            continue
        if not isinstance(state, dict) or any(key not in state for key in CHECKPOINT_KEYS):
            print(f"allo: skipping {path}: not a checkpoint of this allo version",
                  file=sys.stderr)
            continue
        foreign = identity.mismatch(state, expected, step)
        if foreign is not None:
            print(f"allo: skipping {path}: refused, {foreign}", file=sys.stderr)
            continue
        return state
    if steps:
        raise TrainError(f"{run / rundir.CHECKPOINTS}: none of {len(steps)} checkpoint(s) "
                         "is usable; nothing resumed")
    return None
