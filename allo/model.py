"""The representation network: an MLP from normalised (x, y) to d eigenvector values."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """(N, 2) coordinates -> (N, d) representation; ReLU hidden layers."""

    def __init__(self, d: int, hidden_layers: int = 4, hidden_size: int = 256, in_dim: int = 2):
        super().__init__()
        assert d >= 1 and hidden_layers >= 1, "need at least one output and one hidden layer"
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, hidden_size), nn.ReLU()]
            width = hidden_size
        layers.append(nn.Linear(width, d))
        self.net = nn.Sequential(*layers)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.net(xy)
