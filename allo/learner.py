"""Network, optimiser, duals and barrier of S seeds, and the one training step.

The step (`Learner.step`) reads and writes only device tensors: the learning rate comes
from a schedule tensor indexed by a step counter on the device, the duals and the
barrier are updated in place. It therefore never waits for the host, and the same code
runs eagerly on a CPU or is captured once into a CUDA graph (allo/cuda_graph.py).
"""

from __future__ import annotations

import torch

from allo.adam import MOMENTS, FlatAdam
from allo.baselines import cqp_step, lora_step, omm_step, sqp_step
from allo.cells import gather, row_weights, use_cells
from allo.config import DUAL_OBJECTIVES, GROWING_BARRIER, TrainConfig
from allo.data import DataLawWeights, PairSampler
from allo.encoder import ImageInputs, network
from allo.objective import Terms, Weights, allo_step, ggdo_step


def warmup_fraction(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over lr_warmup_steps, then 1."""
    return min(1.0, (step + 1) / max(1, cfg.lr_warmup_steps))


def learning_rate_fraction(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then linear decay to lr_final_fraction at the last step."""
    progress = step / max(1, cfg.num_gradient_steps or 0)
    return (1.0 - (1.0 - cfg.lr_final_fraction) * progress) * warmup_fraction(cfg, step)


def schedules(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(learning_rate_fraction, warmup_fraction) of every step as float32 tensors, computed
    as those functions do (in float64) but without a Python list as long as the run."""
    steps = torch.arange(cfg.num_gradient_steps or 0, dtype=torch.float64)
    if not len(steps):
        return torch.ones(1), torch.ones(1)
    warmup = ((steps + 1) / max(1, cfg.lr_warmup_steps)).clamp(max=1.0)
    progress = steps / max(1, cfg.num_gradient_steps or 0)
    fractions = (1.0 - (1.0 - cfg.lr_final_fraction) * progress) * warmup
    return fractions.float(), warmup.float()


class Learner:
    """Everything a checkpoint must hold, for S seeds trained side by side."""

    def __init__(self, cfg: TrainConfig, seeds: list[int], device: torch.device,
                 sampler: PairSampler | DataLawWeights,
                 coords: torch.Tensor | ImageInputs, on_cells: bool | None = None):
        """`on_cells`: run the network on each batch's own cells (allo/cells.py); None
        decides by the batch's size against the grid's (cells.use_cells)."""
        self.cfg, self.device, self.seeds = cfg, device, list(seeds)
        self.sampler, self.coords = sampler, coords
        d, count = cfg.num_eigenvectors, len(seeds)
        steps = cfg.num_gradient_steps
        assert steps is not None, "the trainer sets the steps before it builds a learner"
        self.model = network(cfg, self.seeds, device, coords)  # an MLP, or ConvNet + MLP
        self.lr = torch.tensor(cfg.learning_rate, device=device)
        self.optimizer = FlatAdam(self.model.flat, self.model.grad, self.lr)
        self.duals = torch.zeros(count, d, d, device=device)  # lower triangle used
        self.barrier = torch.full((count,), cfg.barrier_initial, device=device)
        fractions, warmup = schedules(cfg)
        self.schedule = fractions.to(device) * cfg.learning_rate
        # the duals warm up with the network: at full speed from step 0 they pile up
        # while the network still barely moves, and that wind-up kills ReLUs
        self.dual_warmup = warmup.to(device)
        self.dual_scale = torch.ones((), device=device)
        self.step_index = torch.zeros((), dtype=torch.long, device=device)
        self.grad_norm: torch.Tensor | None = None  # (S,) before clipping, when clipping
        # (S, N, d): the last step's forward pass, i.e. the table before that step's
        # update; the table of step k is the forward of step k + 1 (a metrics row uses it)
        # (stays None on sampled cells: a metrics row then runs its own forward)
        self.forward_table: torch.Tensor | None = None
        if on_cells is None:
            on_cells = (isinstance(sampler, PairSampler)
                        and use_cells(cfg.batch_size, sampler.num_cells, cfg.obs))
        self.rows: Weights | None = None  # the batch's row weights, on sampled cells
        if on_cells:
            assert isinstance(sampler, PairSampler) and cfg.batch_size
            self.rows = row_weights(count, cfg.batch_size, device)
            self.cell_sampler, self.cell_batch = sampler, cfg.batch_size

    def terms_and_gradient(self, table: torch.Tensor, weights: Weights
                           ) -> tuple[Terms, torch.Tensor]:
        """The loss terms and d(total)/d(table) of each seed (seeds are independent)."""
        objective = self.cfg.objective
        if objective == "allo":
            return allo_step(table, weights, self.duals, self.barrier)
        if objective == "ggdo":
            return ggdo_step(table, weights, self.barrier)
        if objective in ("sqp", "cqp"):  # a growing barrier, no duals (allo/baselines.py)
            return (sqp_step if objective == "sqp" else cqp_step)(table, weights, self.barrier)
        return (omm_step if objective == "omm" else lora_step)(table, weights)

    @torch.no_grad()
    def step(self) -> Terms:
        """One gradient step of every seed; no host synchronisation."""
        # index_select, not [], so reading the counter never syncs with the host
        now = self.step_index.clamp(max=len(self.schedule) - 1).view(1)
        self.lr.copy_(self.schedule.index_select(0, now).view(()))
        self.dual_scale.copy_(self.dual_warmup.index_select(0, now).view(()))
        if self.rows is not None:  # the network sees the batch's cells alone
            cells = self.cell_sampler.cells(self.cell_batch)
            activations = self.model.activations(gather(self.coords, cells))  # type: ignore[arg-type]
            weights = self.rows
        else:  # forward every free cell once; the batch weighs rows of this table
            activations = self.model.activations(self.coords)  # type: ignore[arg-type]  # (S, N, d) last; ConvMLP takes images
            self.forward_table = activations[-1]
            weights = self.sampler.weights(self.cfg.batch_size)
        terms, table_gradient = self.terms_and_gradient(activations[-1], weights)
        # the chain rule by hand (allo/model.py): it overwrites the gradient, no zeroing
        self.model.backward(activations, table_gradient)
        if self.cfg.max_grad_norm > 0:
            self.clip_gradients(self.cfg.max_grad_norm)
        self.optimizer.step()
        self.ascend(terms)
        self.step_index += 1
        return terms

    @torch.no_grad()
    def clip_gradients(self, max_norm: float) -> None:
        """Scale each seed's gradient to at most max_norm (its own norm, so seeds stay
        independent; on the device, so the step still never syncs)."""
        grad = self.model.grad  # (S, P): a seed's whole gradient is its row
        self.grad_norm = torch.linalg.vector_norm(grad, dim=1)  # logged: before clipping
        grad.mul_((max_norm / (self.grad_norm + 1e-6)).clamp(max=1.0)[:, None])

    @torch.no_grad()
    def ascend(self, terms: Terms) -> None:
        """Gradient ascent on the duals, monotone growth of the barrier (in place)."""
        if self.cfg.objective not in GROWING_BARRIER:  # GGDO's b is fixed; OMM, LoRA have none
            return
        if self.cfg.objective in DUAL_OBJECTIVES:
            self.duals.add_(terms.constraint * self.dual_scale, alpha=self.cfg.lr_duals)
        growth = self.cfg.lr_barrier * self.dual_scale
        grown = self.barrier + growth * terms.barrier_signal.clamp(min=0.0)
        self.barrier.copy_(grown.clamp(max=self.cfg.barrier_max))

    @torch.no_grad()
    def tables(self) -> torch.Tensor:
        """(S, N, d) representation of every free cell, for metrics and exports."""
        return self.model(self.coords)  # type: ignore[arg-type]  # ConvMLP takes images

    # --- checkpoints: one single-seed state per seed, so any seed resumes alone

    def seed_state(self, index: int) -> dict:
        """Seed number `index`'s parameters, Adam moments, duals, barrier and sampler."""
        # Adam's moments per named parameter, as torch.optim.Adam kept them
        state = self.optimizer.state
        moments = {key: self.model.split(state[key]) for key in MOMENTS}
        adam = [{"step": state["step"].clone(),
                 **{key: views[number][index].clone() for key, views in moments.items()}}
                for number in range(len(self.model.names))]
        return {
            "model": self.model.seed_state(index),
            "adam": adam,
            "duals": self.duals[index].clone(),
            "barrier": self.barrier[index].clone(),
            "sampler": self.sampler.get_state()[index],
            "step_index": self.step_index.clone(),
        }

    def load_seed_states(self, states: list[dict]) -> None:
        """The inverse of seed_state for every seed, in seed order."""
        self.model.load_seed_states([s["model"] for s in states])
        first = states[0]["adam"]
        if not first[0]:  # saved before Adam's first step (torch.optim.Adam's empty state)
            self.optimizer.reset()
        else:
            self.optimizer.load({"step": first[0]["step"], **{
                key: torch.cat([torch.stack([s["adam"][number][key] for s in states]).flatten(1)
                                for number in range(len(first))], dim=1)
                for key in MOMENTS}})
        self.duals.copy_(torch.stack([s["duals"] for s in states]))
        self.barrier.copy_(torch.stack([s["barrier"] for s in states]))
        self.sampler.set_state([s["sampler"].cpu() for s in states])
        self.step_index.copy_(states[0]["step_index"])
