"""Image observations: a small ConvNet per seed before the MLP (--obs pixels | grid | both).

Each conv layer is 3 x 3, stride 2, padding 1, ReLU (--conv-channels sets the layers'
output channels); the last layer's maps are flattened into the MLP's input, with the
cell's (x, y) beside them for --obs both. The S seeds' ConvNets run as one grouped
convolution (groups = S) over the same images, as the MLP's seeds run as one batched
matmul.

The encoder's parameters are views of the same flat (S, P) tensor as the MLP's (after
them, named encoder.weights.k and encoder.biases.k), so FlatAdam, per-seed clipping,
checkpoints and resume treat them like any other. Unlike the MLP, the encoder's backward
uses autograd: `activations` runs it on leaf copies of its weights with a graph, the
MLP's hand-written backward also returns its input gradient, and torch.autograd.grad
carries that into the encoder's weights (docs/math.md section 11). A forward for a table
(exports, metrics) runs without a graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from allo import observations
from allo.config import TrainConfig, parse_channels
from allo.layouts import Layout
from allo.model import MLP, uniform


@dataclass
class ImageInputs:
    """What an image-observation network reads: every free cell's image, and (x, y)
    for --obs both."""

    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    xy: torch.Tensor | None  # (N, 2), or None


def conv_output_side(side: int, layers: int) -> int:
    for _ in range(layers):
        side = (side - 1) // 2 + 1  # kernel 3, stride 2, padding 1
    return side


class ConvMLP(MLP):
    """(N, C, H, W) images -> (S, N, d): ConvNet features (+ xy) -> MLP, per seed."""

    def __init__(self, seeds: list[int], d: int, hidden_layers: int, hidden_size: int,
                 image_shape: tuple[int, int, int], channels: list[int], with_xy: bool,
                 device: torch.device | str = "cpu"):
        in_channels, height, width = image_shape
        widths = [in_channels, *channels]
        generators = [torch.Generator().manual_seed(2**31 + seed) for seed in seeds]
        extra: dict[str, torch.Tensor] = {}
        for k, (fan_c, out_c) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            # torch.nn.Conv2d's default law: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = 1.0 / math.sqrt(fan_c * 9)
            extra[f"encoder.weights.{k}"] = torch.stack(
                [uniform((out_c, fan_c * 9), bound, g).view(out_c, fan_c, 3, 3)
                 for g in generators])
            extra[f"encoder.biases.{k}"] = torch.stack(
                [uniform((1, out_c), bound, g).view(out_c) for g in generators])
        self.conv_features = (channels[-1] * conv_output_side(height, len(channels))
                              * conv_output_side(width, len(channels)))
        super().__init__(seeds, d, hidden_layers, hidden_size,
                         in_dim=self.conv_features + (2 if with_xy else 0), device=device,
                         extra=extra)
        self.conv_layers = len(channels)
        self.encoded: tuple[list[torch.Tensor], torch.Tensor] | None = None

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> None:
        """Scale each conv layer so its outputs vary across cells with unit RMS, biases 0.

        An image differs from its neighbour cell's only in the agent's few pixels, so under
        the default law the features barely vary across cells, the MLP starts almost
        constant over the grid and the orthogonality terms drive the vectors to collapse
        (dead ReLUs). Rescaled, the features vary as much as (x, y) do. Each seed's
        layer is scaled by its own RMS: a seed starts alike alone or beside others."""
        seeds, count = self.num_seeds, images.shape[0]
        hidden = images.repeat(1, seeds, 1, 1)
        for k in range(self.conv_layers):
            weight = self.extra[f"encoder.weights.{k}"]
            self.extra[f"encoder.biases.{k}"].zero_()
            out = F.conv2d(hidden, weight.reshape(-1, *weight.shape[2:]), stride=2, padding=1,
                           groups=seeds)
            per_seed = out.reshape(count, seeds, -1)
            spread = (per_seed - per_seed.mean(dim=0, keepdim=True)).square().mean(dim=(0, 2))
            scale = 1.0 / spread.sqrt().clamp(min=1e-12)  # (S,)
            weight.mul_(scale.view(seeds, 1, 1, 1, 1))
            hidden = (out.reshape(count, seeds, -1) * scale.view(1, seeds, 1)
                      ).reshape(out.shape).relu()

    def encoder_views(self, flat_views: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return [flat_views[f"encoder.{kind}.{k}"] for k in range(self.conv_layers)
                for kind in ("weights", "biases")]

    def encode(self, images: torch.Tensor, parameters: list[torch.Tensor]) -> torch.Tensor:
        """(S, N, F) features of every seed's ConvNet, as one grouped convolution."""
        seeds, count = self.num_seeds, images.shape[0]
        hidden = images.repeat(1, seeds, 1, 1)  # (N, S * C, H, W), seed-major channels
        for k in range(self.conv_layers):
            weight, bias = parameters[2 * k], parameters[2 * k + 1]
            hidden = F.conv2d(hidden, weight.reshape(-1, *weight.shape[2:]), bias.reshape(-1),
                              stride=2, padding=1, groups=seeds).relu()
        return hidden.reshape(count, seeds, -1).transpose(0, 1)

    def inputs(self, features: torch.Tensor, observed: ImageInputs) -> torch.Tensor:
        if observed.xy is None:
            return features
        xy = observed.xy.expand(self.num_seeds, *observed.xy.shape)
        return torch.cat([features, xy], dim=-1)

    def __call__(self, observed: ImageInputs) -> torch.Tensor:  # type: ignore[override]
        with torch.no_grad():
            features = self.encode(observed.images, self.encoder_views(self.extra))
            return MLP.activations(self, self.inputs(features, observed))[-1]

    def activations(self, observed: ImageInputs) -> list[torch.Tensor]:  # type: ignore[override]
        """The MLP's activations; the encoder's graph is kept for `backward`."""
        leaves = [v.detach().requires_grad_() for v in self.encoder_views(self.extra)]
        with torch.enable_grad():
            features = self.encode(observed.images, leaves)
        self.encoded = (leaves, features)
        return MLP.activations(self, self.inputs(features.detach(), observed))

    def backward(self, activations: list[torch.Tensor], grad_output: torch.Tensor,
                 input_grad: bool = False) -> torch.Tensor | None:
        """The MLP's gradients by hand, the encoder's by autograd from the MLP's input
        gradient; all written into `grad`."""
        assert self.encoded is not None, "activations() first"
        upstream = MLP.backward(self, activations, grad_output, input_grad=True)
        assert upstream is not None
        leaves, features = self.encoded
        grads = torch.autograd.grad(features, leaves,
                                    grad_outputs=upstream[..., : self.conv_features])
        for view, value in zip(self.encoder_views(self.extra_grads), grads, strict=True):
            view.copy_(value)
        self.encoded = None
        return None


def observation_inputs(cfg: TrainConfig, layout: Layout, device: torch.device
                       ) -> torch.Tensor | ImageInputs:
    """The network's input for every free cell under cfg.obs (allo/observations.py)."""
    xy = torch.as_tensor(layout.coordinates(), device=device)  # (N, 2)
    if cfg.obs == "xy":
        return xy
    images = torch.as_tensor(observations.images(layout, cfg.obs, cfg.obs_size), device=device)
    # centred on the mean image over the free cells: a fixed per-pixel offset the first
    # layer's bias could learn, but uncentred, the background every image shares dominates
    # every feature and the outputs start almost equal in all cells (tests: a small grid
    # collapses without it; docs/math.md section 15)
    images = images - images.mean(dim=0, keepdim=True)
    return ImageInputs(images, xy if cfg.obs == "both" else None)


def network(cfg: TrainConfig, seeds: list[int], device: torch.device,
            inputs: torch.Tensor | ImageInputs) -> MLP:
    """The MLP for (x, y), or the ConvNet and MLP for images."""
    d = cfg.num_eigenvectors
    if not isinstance(inputs, ImageInputs):
        return MLP(seeds, d, cfg.hidden_layers, cfg.hidden_size, device=device)
    shape = tuple(inputs.images.shape[1:])
    model = ConvMLP(seeds, d, cfg.hidden_layers, cfg.hidden_size, (shape[0], shape[1], shape[2]),
                    parse_channels(cfg.conv_channels), inputs.xy is not None, device)
    model.calibrate(inputs.images)
    return model
