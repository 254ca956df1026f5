"""--obs pixels | grid | both: the images, the ConvNet's gradient, and whole runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from trainproc import allo_subprocess

from allo import observations, rundir
from allo.config import TrainConfig, from_dict
from allo.encoder import ConvMLP, ImageInputs, network, observation_inputs
from allo.layouts import load_builtin, parse_layout
from allo.train import train, train_seeds

SMALL = "XXXXXXXX\nX      X\nX XX   X\nX    X X\nXXXXXXXX\n"


def test_pixels_draw_the_walls_and_the_agent_in_its_own_cell():
    layout = load_builtin("room4")
    size = 2 * 13 + 5  # not a multiple of the grid: cells of unequal pixel counts
    images = observations.pixel_images(layout, size)
    assert images.shape == (layout.num_free, size, size, 3)
    centres = (np.arange(size) + 0.5) * 13 / size
    cell = centres.astype(int)
    walls = np.ones((13, 13), dtype=bool)
    for r, c in layout.free_cells:
        walls[r, c] = False
    for n, (r, c) in enumerate(layout.free_cells):
        blue = np.all(images[n] == observations.AGENT, axis=-1)
        rows, cols = np.nonzero(blue)
        assert len(rows) > 0, "every cell draws its agent"
        assert set(cell[rows]) == {r} and set(cell[cols]) == {c}
        grey = np.all(images[n] == observations.WALL, axis=-1)
        assert np.array_equal(grey, walls[cell[:, None], cell[None, :]])
    # two different cells never give the same picture
    flat = images.reshape(len(images), -1)
    assert len({row.tobytes() for row in flat}) == len(images)


def test_larger_images_draw_a_disc_with_white_corners():
    layout = parse_layout("...\n...\n...")
    images = observations.pixel_images(layout, 3 * 8)  # 8 px per cell
    blue = np.all(images[4] == observations.AGENT, axis=-1)  # the centre cell
    block = blue[8:16, 8:16]
    assert block[3:5, 3:5].all() and not block[0, 0] and not block[-1, -1]
    assert blue.sum() == block.sum()


def test_grid_images_have_one_pixel_per_cell():
    layout = load_builtin("room4")
    images = observations.grid_images(layout)
    assert images.shape == (layout.num_free, 13, 13, 3)
    blue = np.all(images == observations.AGENT, axis=-1)
    assert (blue.sum(axis=(1, 2)) == 1).all()
    for n, (r, c) in enumerate(layout.free_cells):
        assert blue[n, r, c]
    scaled = observations.images(layout, "grid", None)
    assert scaled.shape == (layout.num_free, 3, 13, 13)
    assert scaled.dtype == np.float32 and scaled.max() == 1.0 and scaled.min() == 0.0


def test_the_image_size_is_checked_against_the_grid():
    layout = load_builtin("room4")
    with pytest.raises(ValueError, match="too small for the 13 x 13 grid"):
        observations.check("pixels", 12, layout)
    observations.check("pixels", 13, layout)
    with pytest.raises(ValueError, match="--obs-size sets the image"):
        observations.check("grid", 40, layout)
    assert observations.obs_size(layout, None) == 2 * 13


@pytest.mark.slow
@pytest.mark.parametrize("flags, words", [
    (["room4", "--obs", "pixels", "--obs-size", "8"], "too small"),
    (["room4", "--obs", "grid", "--obs-size", "30"], "--obs-size sets the image"),
    (["room4", "--obs", "camera"], "invalid choice"),
    (["room4", "--obs", "pixels", "--conv-channels", "16,x"], "--conv-channels"),
    (["room4", "--obs", "pixels", "--cuda-graph", "on"], "--cuda-graph on"),
])
def test_bad_observation_flags_are_one_line_exit_2(tmp_path, flags, words):
    done = allo_subprocess("train", "--results-dir", str(tmp_path), *flags)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
    assert not any(tmp_path.rglob("run.json"))


def reference_gradient(model: ConvMLP, observed: ImageInputs, grad_output: torch.Tensor
                       ) -> torch.Tensor:
    """autograd through the whole network, on a copy of the flat parameters."""
    flat = model.flat.detach().clone().requires_grad_()
    views = dict(zip(model.names, model.split(flat), strict=True))
    layers = len(model.weights)
    features = model.encode(observed.images, model.encoder_views(views))
    hidden = model.inputs(features, observed)
    for layer in range(layers):
        hidden = torch.baddbmm(views[f"biases.{layer}"], hidden, views[f"weights.{layer}"])
        if layer < layers - 1:
            hidden = hidden.relu()
    grad, = torch.autograd.grad((hidden * grad_output).sum(), flat)
    return grad


@pytest.mark.parametrize("with_xy", [False, True], ids=["pixels", "both"])
def test_the_convnets_gradient_is_autograds(with_xy):
    """The MLP's hand-written backward, its input gradient and the encoder's autograd
    backward together give autograd's gradient of the whole network, seed by seed."""
    layout = parse_layout(SMALL.replace("X", "#"))
    images = torch.as_tensor(observations.images(layout, "pixels", 17))
    xy = torch.as_tensor(layout.coordinates()) if with_xy else None
    observed = ImageInputs(images, xy)
    model = ConvMLP([3, 5], 4, 2, 16, tuple(images.shape[1:]), [4, 6], with_xy)
    activations = model.activations(observed)
    grad_output = torch.randn(2, layout.num_free, 4, generator=torch.Generator().manual_seed(0))
    model.backward(activations, grad_output)
    expected = reference_gradient(model, observed, grad_output)
    torch.testing.assert_close(model.grad, expected, rtol=1e-4, atol=1e-5)
    encoder = model.split(model.grad)[-1]
    assert encoder.abs().max() > 0  # the encoder's part is not vacuous
    # a seed's network is its own: seed 5 alone gives the same outputs
    alone = ConvMLP([5], 4, 2, 16, tuple(images.shape[1:]), [4, 6], with_xy)
    torch.testing.assert_close(alone(observed)[0], model(observed)[1])


def output_spread(outputs: torch.Tensor) -> torch.Tensor:
    """Per seed, the RMS over cells and outputs of an (S, N, d) table minus its cell mean."""
    return (outputs - outputs.mean(dim=1, keepdim=True)).square().mean(dim=(1, 2)).sqrt()


def test_calibrated_convnet_starts_as_varied_over_cells_as_the_xy_network():
    """Under the default law alone the image network starts almost constant over the grid
    (the agent is a few pixels of each image), which collapsed pixel runs; calibrated,
    its outputs vary across cells about as much as the (x, y) network's."""
    layout, cpu, seeds = load_builtin("room4"), torch.device("cpu"), [0, 1, 2]
    pixels = observation_inputs(TrainConfig(obs="pixels"), layout, cpu)
    xy = observation_inputs(TrainConfig(), layout, cpu)
    assert isinstance(pixels, ImageInputs)
    calibrated = network(TrainConfig(obs="pixels"), seeds, cpu, pixels)
    reference = output_spread(network(TrainConfig(), seeds, cpu, xy)(xy))
    ratio = output_spread(calibrated(pixels)) / reference
    assert torch.all((ratio > 0.3) & (ratio < 3.0)), ratio
    raw = ConvMLP(seeds, 10, 4, 256, tuple(pixels.images.shape[1:]), [16, 16], False)
    assert torch.all(output_spread(raw(pixels)) / reference < 0.1)  # what calibration fixes
    # each seed is calibrated on its own: seed 2 alone starts where it does beside others
    alone = network(TrainConfig(obs="pixels"), [2], cpu, pixels)
    torch.testing.assert_close(alone(pixels)[0], calibrated(pixels)[2])


def small_config(tmp_path, name: str, **changes) -> TrainConfig:
    layout = tmp_path / "small.txt"
    layout.write_text(SMALL)
    values = dict(env_file=str(layout), run_dir=str(tmp_path / name), obs="pixels",
                  num_envs=50, num_steps=100, max_episode_length=100, hidden_size=32,
                  hidden_layers=2, num_eigenvectors=3, conv_channels="4,8",
                  num_gradient_steps=60, log_freq=20, plot_freq=30, checkpoint_freq=30,
                  lr_warmup_steps=5, lr_final_fraction=1.0)
    values.update(changes)
    return TrainConfig(**values)


@pytest.mark.slow
@pytest.mark.parametrize("obs", ["pixels", "grid", "both"])
def test_image_runs_batch_seeds_resume_and_export(tmp_path, obs):
    def final(run) -> np.ndarray:
        return np.load(run / rundir.FINAL_LEARNED)

    together = train_seeds(small_config(tmp_path, "pair", obs=obs, run_dir=None,
                                        results_dir=str(tmp_path / "pair"), seeds="0,1"))
    alone = train(small_config(tmp_path, "alone", obs=obs, seed=1))
    assert [o.status for o in together] == ["finished", "finished"]
    assert np.abs(final(together[1].run_dir) - final(alone.run_dir)).max() <= 1e-5
    reader = rundir.RunReader(alone.run_dir)
    config = reader.info().config
    assert config["obs"] == obs
    assert config["obs_size"] == (None if obs == "grid" else 2 * 8)
    assert final(alone.run_dir).shape == (parse_layout(SMALL).num_free, 3)
    assert reader.metrics()[-1]["step"] == 60
    half = train(small_config(tmp_path, "half", obs=obs, num_gradient_steps=30))
    resumed_config = from_dict(rundir.RunReader(half.run_dir).info().config)
    resumed = train(dataclasses.replace(resumed_config, num_gradient_steps=60),
                    resume=half.run_dir)
    straight = train(small_config(tmp_path, "straight", obs=obs))
    assert resumed.status == "finished"
    assert np.abs(final(resumed.run_dir) - final(straight.run_dir)).max() <= 1e-5


@pytest.mark.slow
def test_a_pixel_run_learns(tmp_path):
    """Pixels in, eigenvectors out: a small grid's top 3 from its images alone."""
    outcome = train(small_config(tmp_path, "learn", num_gradient_steps=1500, log_freq=500,
                                 plot_freq=1500, checkpoint_freq=1500, data="exact",
                                 learning_rate=3e-3, lr_warmup_steps=100,
                                 lr_final_fraction=0.3, hidden_size=64,
                                 conv_channels="8,16"))
    row = rundir.RunReader(outcome.run_dir).metrics()[-1]
    assert row["cos/mean"] >= 0.95, row["cos/per_vector"]
