"""The representation network: an MLP from normalised (x, y) to d eigenvector values.

One module holds S independent networks, one per seed, as stacked weights (S, in, out):
a forward pass is a chain of batched matmuls, so eight seeds cost one launch per layer
instead of eight. Seed s's slice is initialised from a generator seeded with s alone,
so a seed starts from the same weights whether it trains alone or beside others.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """(N, 2) coordinates -> (S, N, d) representations; ReLU hidden layers."""

    def __init__(self, seeds: list[int], d: int, hidden_layers: int = 4,
                 hidden_size: int = 256, in_dim: int = 2):
        super().__init__()
        if d < 1 or hidden_layers < 1 or not seeds:
            raise ValueError("need at least one seed, one output and one hidden layer")
        widths = [in_dim] + [hidden_size] * hidden_layers + [d]
        self.num_seeds = len(seeds)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            # torch.nn.Linear's default law: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both
            bound = 1.0 / math.sqrt(fan_in)
            weight = torch.stack([uniform((fan_in, fan_out), bound, g) for g in generators])
            bias = torch.stack([uniform((1, fan_out), bound, g) for g in generators])
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(bias))

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        hidden = xy.expand(self.num_seeds, *xy.shape[-2:])
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if layer < last:
                hidden = hidden.relu()
        return hidden

    def seed_state(self, index: int) -> dict[str, torch.Tensor]:
        """The parameters of seed number `index` alone (a single-seed checkpoint)."""
        return {name: value[index].detach().clone() for name, value in self.state_dict().items()}

    def load_seed_states(self, states: list[dict[str, torch.Tensor]]) -> None:
        """Stack single-seed parameter sets, one per seed, into this module."""
        stacked = {name: torch.stack([state[name] for state in states])
                   for name in self.state_dict()}
        self.load_state_dict(stacked)


def uniform(shape: tuple[int, int], bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound
