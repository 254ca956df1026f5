"""The representation network: an MLP from normalised (x, y) to d eigenvector values.

One MLP object holds S independent networks, one per seed, as stacked weights (S, in, out):
a forward pass is a chain of batched matmuls, so eight seeds cost one launch per layer
instead of eight. Seed s's slice is initialised from a generator seeded with s alone,
so a seed starts from the same weights whether it trains alone or beside others.

Training does not use autograd: `activations` keeps each layer's output and `backward`
writes the gradients from the gradient at the output, one batched matmul per weight and
input gradient. For an MLP that is the whole chain rule, at a third of the operations
autograd records and replays for it (docs/math.md section 11).

Every parameter is a view of one (S, P) tensor `flat`, seed by seed, and every gradient
a view of `grad`, laid out alike: Adam updates one tensor and a seed's gradient norm is
one reduction over its row. Checkpoints still name the parameters (weights.0, biases.0,
...) as they did when this was a torch module, so older runs resume.
"""

from __future__ import annotations

import math

import torch


class MLP:
    """(N, 2) coordinates -> (S, N, d) representations; ReLU hidden layers."""

    def __init__(self, seeds: list[int], d: int, hidden_layers: int = 4,
                 hidden_size: int = 256, in_dim: int = 2,
                 device: torch.device | str = "cpu",
                 extra: dict[str, torch.Tensor] | None = None):
        """`extra`: more per-seed parameters, (S, *shape) each, kept after the MLP's in the
        same flat tensor (an image encoder's, allo/encoder.py); views in `self.extra`."""
        if d < 1 or hidden_layers < 1 or not seeds:
            raise ValueError("need at least one seed, one output and one hidden layer")
        widths = [in_dim] + [hidden_size] * hidden_layers + [d]
        self.num_seeds = count = len(seeds)
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        weights, biases = [], []
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            # torch.nn.Linear's default law: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both
            bound = 1.0 / math.sqrt(fan_in)
            weights.append(torch.stack([uniform((fan_in, fan_out), bound, g)
                                        for g in generators]))
            biases.append(torch.stack([uniform((1, fan_out), bound, g) for g in generators]))
        extra = extra or {}
        initial = weights + biases + list(extra.values())
        self.names = ([f"weights.{i}" for i in range(len(weights))]
                      + [f"biases.{i}" for i in range(len(biases))] + list(extra))
        self.shapes = [tuple(t.shape[1:]) for t in initial]
        self.flat = torch.cat([t.reshape(count, -1) for t in initial], dim=1).to(device)
        self.grad = torch.zeros_like(self.flat)
        layers = len(weights)
        views, grads = self.split(self.flat), self.split(self.grad)
        self.weights, self.biases = views[:layers], views[layers:2 * layers]
        self.weight_grads, self.bias_grads = grads[:layers], grads[layers:2 * layers]
        self.extra = dict(zip(extra, views[2 * layers:], strict=True))
        self.extra_grads = dict(zip(extra, grads[2 * layers:], strict=True))

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of an (S, P) tensor laid out like `flat`, one per parameter, in order."""
        views, offset = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            views.append(flat[:, offset:offset + size].view(flat.shape[0], *shape))
            offset += size
        return views

    def __call__(self, xy: torch.Tensor) -> torch.Tensor:
        return self.activations(xy)[-1]

    @torch.no_grad()
    def activations(self, xy: torch.Tensor) -> list[torch.Tensor]:
        """The input (expanded over seeds) and each layer's output, the last one (S, N, d)."""
        hidden = xy.expand(self.num_seeds, *xy.shape[-2:])
        outputs = [hidden]
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if layer < last:
                hidden = hidden.relu_()
            outputs.append(hidden)
        return outputs

    @torch.no_grad()
    def backward(self, activations: list[torch.Tensor], grad_output: torch.Tensor,
                 input_grad: bool = False) -> torch.Tensor | None:
        """Overwrite `grad` from d(loss)/d(output) (S, N, d), backwards through the layers;
        `activations` is what `activations` returned for the same input. With
        `input_grad`, also return d(loss)/d(input) (S, N, in_dim), for an encoder."""
        grad = grad_output
        for layer in range(len(self.weights) - 1, -1, -1):
            inputs = activations[layer]
            torch.bmm(inputs.transpose(-1, -2), grad, out=self.weight_grads[layer])
            torch.sum(grad, dim=-2, keepdim=True, out=self.bias_grads[layer])
            if layer > 0 or input_grad:
                grad = torch.bmm(grad, self.weights[layer].transpose(-1, -2))
            if layer > 0:
                # ReLU's derivative: 1 where its output was positive (autograd's own op)
                grad = torch.ops.aten.threshold_backward(grad, inputs, 0.0)
        return grad if input_grad else None

    def named(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """An (S, P) tensor laid out like `flat` as named per-parameter views."""
        return dict(zip(self.names, self.split(flat), strict=True))

    def seed_state(self, index: int) -> dict[str, torch.Tensor]:
        """The parameters of seed number `index` alone (a single-seed checkpoint)."""
        return {name: value[index].clone() for name, value in self.named(self.flat).items()}

    @torch.no_grad()
    def load_seed_states(self, states: list[dict[str, torch.Tensor]]) -> None:
        """Stack single-seed parameter sets, one per seed, into this network."""
        if len(states) != self.num_seeds:
            raise ValueError(f"{len(states)} seed states for {self.num_seeds} seeds")
        for name, view in self.named(self.flat).items():
            view.copy_(torch.stack([state[name] for state in states]))


def uniform(shape: tuple[int, int], bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound
