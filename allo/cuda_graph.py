"""The whole training step as one CUDA graph (and a metrics row's values as another).

An eager step launches a few hundred small kernels, and at these sizes the GPU waits on
the launches, not on the arithmetic. Capturing sampling, forward, backward, Adam and the
dual and barrier updates once and replaying them costs one launch per step.

Capture needs a few eager warm-up steps first (lazy allocations: cuBLAS workspaces, the
caching allocator's pools). Those steps would change the run, so the learner's whole
state is snapshotted before them and restored in place afterwards: the graphed run is
the same computation as an eager one from the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from allo.learner import Learner
from allo.objective import Terms
from allo.recorder import flat_to_host, pack

WARMUP_STEPS = 3


@dataclass
class Snapshot:
    params: torch.Tensor  # the learner's flat (S, P) parameters
    adam: dict[str, torch.Tensor]
    duals: torch.Tensor
    barrier: torch.Tensor
    step_index: torch.Tensor
    sampler: list[torch.Tensor]


def snapshot(learner: Learner) -> Snapshot:
    return Snapshot(
        params=learner.model.flat.clone(),
        adam={k: v.clone() for k, v in learner.optimizer.state.items()},
        duals=learner.duals.clone(),
        barrier=learner.barrier.clone(),
        step_index=learner.step_index.clone(),
        sampler=learner.sampler.get_state(),
    )


@torch.no_grad()
def restore(learner: Learner, saved: Snapshot) -> None:
    """Write the snapshot back into the same tensors (a captured graph keeps addresses)."""
    learner.model.flat.copy_(saved.params)
    learner.optimizer.load(saved.adam)
    learner.duals.copy_(saved.duals)
    learner.barrier.copy_(saved.barrier)
    learner.step_index.copy_(saved.step_index)
    learner.sampler.set_state(saved.sampler)


class GraphedStep:
    """Callable like Learner.step; replays the captured step and returns its Terms,
    whose tensors the next replay overwrites in place."""

    def __init__(self, learner: Learner):
        saved = snapshot(learner)
        side = torch.cuda.Stream(device=learner.device)
        side.wait_stream(torch.cuda.current_stream(learner.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                learner.step()
        torch.cuda.current_stream(learner.device).wait_stream(side)
        restore(learner, saved)
        self.graph = torch.cuda.CUDAGraph()
        for generator in learner.sampler.generators:
            self.graph.register_generator_state(generator)
        with torch.cuda.graph(self.graph):
            self.terms = learner.step()

    def __call__(self) -> Terms:
        self.graph.replay()
        return self.terms


class GraphedValues:
    """A metrics row's device values (`compute`, which reads the learner and the step's
    outputs and changes nothing) captured as one more CUDA graph, packed into one flat
    buffer. An eager row launches about thirty small kernels between graphed steps of a
    fraction of a millisecond; a replay and one copy to the host cost the training thread
    almost nothing. Calling it returns the waiting function of recorder.flat_to_host."""

    def __init__(self, compute: Callable[[], dict[str, torch.Tensor]], device: torch.device):
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            pack(compute())  # lazy allocations happen outside the capture
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.flat, self.shapes = pack(compute())

    def __call__(self) -> Callable[[], dict[str, np.ndarray]]:
        self.graph.replay()
        return flat_to_host(self.flat, self.shapes)
