"""Shared test settings and fixtures: one home for the tiny training and the small layouts.

Importable helpers (the test folder is on sys.path, as for trainproc and synthetic):
  TWO_ROOMS       8x5 layout of the in-process trainings that must learn (test_train, test_seeds)
  SMALL_LAYOUT    7x5 layout (14 free cells) of process tests and synthetic runs
  TINY            the settings of a seconds-long training, TrainConfig field -> value
  tiny_config()   TINY (and changes) as a TrainConfig
  tiny_flags()    TINY (and changes) as `allo train` flags; a change to None drops a flag
  benchmark_script()  a script of benchmarks/ loaded as a module (they are not a package)
Fixtures: small_layout (TWO_ROOMS in a file), tiny_config, tiny_flags, synthetic_run.

Tests that train a model or spawn processes are marked `slow` (registered in
pyproject.toml): `pytest -m "not slow"` is the quick inner loop, plain `pytest` runs all.
"""

from __future__ import annotations

import os
import platform

# The snapshots' charts come from numbers computed through numpy's BLAS. OpenBLAS picks its
# kernels by CPU, and their last-bit differences move a dot of a chart, so every test process
# (and each process it starts) uses one x86 kernel set: the pictures match on any x86 CPU.
# Set before anything imports numpy.
if platform.machine() in ("x86_64", "AMD64"):
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import importlib.util  # noqa: E402
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TWO_ROOMS = "XXXXXXXX\nX      X\nX XX   X\nX    X X\nXXXXXXXX\n"
SMALL_LAYOUT = "XXXXXXX\nX     X\nX  X  X\nX     X\nXXXXXXX\n"

TINY: dict[str, Any] = {
    "num_envs": 100, "num_steps": 100, "max_episode_length": 100, "hidden_size": 64,
    "hidden_layers": 2, "batch_size": 2048, "learning_rate": 0.01, "num_eigenvectors": 3,
}

# The [grid] lines of a study whose runs take seconds (tests/test_study*.py).
TINY_STUDY = """num-envs = 50
num-steps = 100
hidden-size = 32
hidden-layers = 2
num-eigenvectors = 3
log-freq = 20
checkpoint-freq = 20
device = "cpu"
"""


def benchmark_script(name: str) -> ModuleType:
    """benchmarks/NAME.py as a module, loaded afresh on each call."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(layout: Path | str, run: Path | str | None = None, **changes: Any):
    """A TrainConfig of TINY on `layout` (a file), writing to `run` when given."""
    from allo.config import TrainConfig

    values = {**TINY, "env_file": str(layout), **changes}
    if run is not None:
        values["run_dir"] = str(run)
    return TrainConfig(**values)


def tiny_flags(**changes: Any) -> list[str]:
    """TINY and `changes` as `allo train` flags, in TrainConfig's spelling with dashes."""
    flags: list[str] = []
    for name, value in {**TINY, **changes}.items():
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


@pytest.fixture
def small_layout(tmp_path: Path) -> Path:
    """TWO_ROOMS written to a layout file."""
    path = tmp_path / "small.txt"
    path.write_text(TWO_ROOMS)
    return path


@pytest.fixture(name="tiny_config")
def tiny_config_fixture() -> Callable[..., Any]:
    return tiny_config


@pytest.fixture(name="tiny_flags")
def tiny_flags_fixture() -> Callable[..., list[str]]:
    return tiny_flags


@pytest.fixture
def synthetic_run(tmp_path: Path) -> Path:
    """A finished synthetic run directory (tests/synthetic.py: exact ground truth, learned
    vectors converging to it) on SMALL_LAYOUT: for readers, renderers and the TUI."""
    from synthetic import make_run

    return make_run(tmp_path / "run")
