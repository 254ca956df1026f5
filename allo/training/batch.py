"""The seeds still training, as one batched learner, and how it narrows as seeds end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from allo.config import TrainConfig
from allo.data import DataLawWeights, weight_source
from allo.evaluator import Evaluator
from allo.learner import Learner
from allo.objective import Terms
from allo.recorder import to_host
from allo.spectrum import GroundTruth
from allo.training import TrainError


@dataclass
class Batch:
    """The seeds still training, as one batched learner: slot j holds runs[members[j]]."""

    learner: Learner
    evaluator: Evaluator
    step: Callable[[], Terms]
    members: list[int]
    # a row's device values as a CUDA graph (allo/cuda_graph.py), when the step is one
    graphed_values: Callable[[], Callable[[], dict[str, np.ndarray]]] | None = None

    def slots(self) -> dict[int, int]:
        """Run index -> slot, as it is now (jobs for the recorder take a copy)."""
        return {run: slot for slot, run in enumerate(self.members)}

    def row_values(self, terms: Terms) -> Callable[[], dict[str, np.ndarray]]:
        """This step's values for a metrics row, on their way to the host (to_host)."""
        if self.graphed_values is not None:  # it reads the graphed step's own Terms
            return self.graphed_values()
        return to_host(self.evaluator.device_values(self.learner, terms))


def graphed_batch(learner: Learner, evaluator: Evaluator, members: list[int]) -> Batch:
    """A batch whose step and row values replay CUDA graphs."""
    from allo.cuda_graph import GraphedStep, GraphedValues

    step = GraphedStep(learner)
    values = GraphedValues(lambda: evaluator.device_values(learner, step.terms),
                           learner.device)
    return Batch(learner, evaluator, step, members, values)


def first_batch(learner: Learner, evaluator: Evaluator, members: list[int],
                graphed: bool) -> Batch:
    return (graphed_batch(learner, evaluator, members) if graphed
            else Batch(learner, evaluator, learner.step, members))


def narrowed(batch: Batch, keep: list[int], laws: list[np.ndarray], truth: GroundTruth,
             graphed: bool) -> Batch:
    """The same learner state for the seeds in `keep` only (run indices), so seeds that
    have concluded stop costing compute while others go on past the budget. Each seed's
    arithmetic is its own, so it continues exactly as before."""
    old, slots = batch.learner, batch.slots()
    seeds = [old.seeds[slots[i]] for i in keep]
    own = [laws[i] for i in keep]
    sampler = weight_source(own, seeds, old.device, old.cfg.batch_size)
    learner = Learner(old.cfg, seeds, old.device, sampler, old.coords)
    learner.load_seed_states([old.seed_state(slots[i]) for i in keep])
    expectation = (sampler.expectation if isinstance(sampler, DataLawWeights)
                   else DataLawWeights(own, seeds, old.device).expectation)
    evaluator = Evaluator(truth, old.cfg.num_eigenvectors, old.cfg.objective, expectation)
    return first_batch(learner, evaluator, list(keep), graphed)


def use_cuda_graph(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.cuda_graph == "on" and device.type != "cuda":
        raise TrainError("--cuda-graph on needs a CUDA device (--device cuda)")
    if cfg.obs != "xy":  # the encoder's backward is autograd's: eager, not captured
        if cfg.cuda_graph == "on":
            raise TrainError(f"--cuda-graph on: --obs {cfg.obs} trains eagerly (its "
                             "ConvNet's backward runs through autograd)")
        return False
    return device.type == "cuda" and cfg.cuda_graph != "off"
