"""The CUDA path: skipped without a GPU; the CPU suite covers everything else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from allo import rundir
from allo.config import TrainConfig
from allo.data import PairSampler, collect
from allo.layouts import load_builtin
from allo.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_sampler_on_cuda_stays_on_the_device():
    layout = load_builtin("room4")
    data = collect(layout, 100, 100, 100, seed=0)
    sampler = PairSampler(data, 0.8, torch.device("cuda"), seed=0)
    batch = sampler.batch(4096)
    assert batch.device.type == "cuda" and batch.shape == (4, 4096)
    assert int(batch.min()) >= 0 and int(batch.max()) < layout.num_free


def test_short_cuda_training_learns(tmp_path):
    cfg = TrainConfig(env="room4", run_dir=str(tmp_path / "run"), device="cuda",
                      num_gradient_steps=3000, log_freq=500, plot_freq=1500,
                      checkpoint_freq=1500)
    outcome = train(cfg)
    assert outcome.status == "finished"
    reader = rundir.RunReader(outcome.run_dir)
    assert reader.info()["device"].startswith("cuda")
    rows = reader.metrics()
    assert rows[-1]["cos/mean"] > rows[0]["cos/mean"]
    assert np.isfinite(reader.final()).all()
