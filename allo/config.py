"""TrainConfig: the only home of training defaults, CLI flags and run.json's config.

Each field's `help` becomes its `--help` line; flags are the field names with dashes.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from allo.layouts import MAX_FREE_CELLS

# The training objectives (allo/objective.py, allo/baselines.py; docs/math.md 5, 7, 14).
OBJECTIVES = ("allo", "ggdo", "sqp", "cqp", "omm", "lora")
# Objectives with dual variables (only ALLO) and with a growing barrier (ALLO, SQP, CQP).
DUAL_OBJECTIVES = ("allo",)
GROWING_BARRIER = ("allo", "sqp", "cqp")
DATA_SOURCES = ("collected", "exact")
# What the network sees of a cell (allo/observations.py; docs/math.md section 15).
OBSERVATIONS = ("xy", "pixels", "grid", "both")
PROTOCOLS = ("allo", "paper")


# Seeds are 32-bit: numpy's and torch's generators and every tool reading run.json take them.
MAX_SEED = 2**32 - 1
BIG = 10**9  # counts that only name things (experiment numbers, episode cut-offs)
# The offset law's discount where --gamma is not given and the layout does not ask for a
# larger one (allo/discount.py).
DEFAULT_GAMMA = 0.8
# Steps between eigenvector exports where --plot-freq is not given and the run's exports
# fit allo.training.outputs.EXPORTS_BYTES.
EXPORT_EVERY = 1000


def arg(default: Any, help: str, *aliases: str, choices: tuple | None = None,
        bounds: tuple[float, float] | None = None, why: str = "",
        exclusive: bool = False) -> Any:
    """A field with its --help line and, for numbers, its documented range: `bounds`
    (inclusive, or open at both ends with `exclusive`) and `why` the limit is there."""
    return field(default=default, metadata={"help": help, "aliases": aliases, "choices": choices,
                                            "bounds": bounds, "why": why,
                                            "exclusive": exclusive})


@dataclass
class TrainConfig:
    # experiment
    env: str = arg("room4", "built-in layout name (see `allo envs`)")
    env_file: str | None = arg(None, "layout text file instead of a built-in (X wall, space free)")
    exp_number: int = arg(0, "experiment number, part of the run directory name",
                          bounds=(0, BIG), why="it is part of the run directory name")
    seed: int = arg(0, "random seed (data, network, sampler)", bounds=(0, MAX_SEED),
                    why="seeds are 32-bit")
    seeds: str | None = arg(None, "several seeds in one process as one batched model, e.g. "
                                  "0-7 or 1,5,9; one run directory per seed (overrides --seed)")
    results_dir: str = arg("results", "runs go to RESULTS_DIR/<env>/<run name>")
    run_dir: str | None = arg(None, "exact run directory (overrides the default name); with "
                                    "--seeds, {seed} in it is replaced by each seed")
    device: str = arg("auto", "auto | cpu | cuda (auto picks CUDA when present)")
    cuda_graph: str = arg("auto", "auto | on | off: replay the whole training step as one CUDA "
                                  "graph (auto: on when training on CUDA)",
                          choices=("auto", "on", "off"))
    threads: int = arg(1, "CPU threads for torch (0: torch's default); one leaves the other "
                          "cores to exports and other runs, 2 train about 1.25x faster "
                          "for 1.5x the CPU time", bounds=(0, 1024),
                  why="at most the cores this process may use (checked too)")
    # environment and data
    doors: int = arg(0, "number of reversible moves made one-way (irreversible doors)",
                     bounds=(0, 2 * MAX_FREE_CELLS), why="at most the layout's reversible moves "
                     "(checked against the layout)")
    door_seed: int = arg(0, "seed choosing the doors", bounds=(0, MAX_SEED),
                         why="seeds are 32-bit")
    num_envs: int | None = arg(None, "parallel environments collecting experience (default: "
                                     "4000, i.e. 4e6 transitions, grown up to 32x where the "
                                     "data set's own operator would limit mean |cos|: its data "
                                     "ceiling, see allo/dataset.py)", bounds=(1, 10**7),
                                 why="the data set is collected and summed in memory "
                                     "(memory checked too)")
    num_steps: int = arg(1000, "random-policy steps per environment", bounds=(1, 10**7),
                         why="each environment's transitions are held in memory while "
                             "collected (memory checked too)")
    max_episode_length: int = arg(1000, "steps before an episode is cut and restarted",
                                  bounds=(1, BIG), why="a step count")
    gamma: float | None = arg(None, "discount of the offset law: k ~ Geometric(1 - gamma), "
                                    "k >= 1 (default: 0.8, or up to 0.99 where the layout's "
                                    "close top eigenvalues would need more than 8000 steps at "
                                    "0.8: the eigenvectors stay the same; allo/discount.py)",
                              bounds=(0.0, 1.0), exclusive=True,
                              why="a discount lies strictly between 0 and 1")
    data: str = arg("collected", "collected | exact: train on a collected data set, or on "
                                 "the exact sampling law itself (no estimation error: what "
                                 "is left is the optimiser's; not with --batch-size)",
                    choices=DATA_SOURCES)
    protocol: str = arg("allo", "allo | paper: allo's defaults, or the official ALLO code's "
                                "settings (d 11, episodes of 50, gamma 0.9, minibatches of "
                                "1024, 3 x 256 MLP, lr 1e-3, its barrier and dual step sizes; "
                                "docs/math.md section 13); flags given beside it still win",
                        choices=PROTOCOLS)
    # algorithm
    objective: str = arg("allo", "allo | ggdo | sqp | cqp | omm | lora: ALLO, or a "
                                 "baseline (docs/math.md sections 7 and 14)",
                         choices=OBJECTIVES)
    obs: str = arg("xy", "xy | pixels | grid | both: what the network sees of a cell: its "
                         "(x, y); an RGB image of the grid with the agent drawn in its cell "
                         "(--obs-size); one pixel per cell; or (x, y) beside the image "
                         "(docs/math.md section 15)", choices=OBSERVATIONS)
    obs_size: int | None = arg(None, "side in pixels of the --obs pixels / both image (default: "
                                     "2 per cell along the grid's larger side; at least 1)")
    conv_channels: str = arg("16,16", "output channels of the ConvNet's 3x3, stride-2 layers "
                                      "that image observations pass before the MLP")
    num_eigenvectors: int = arg(10, "d, the number of eigenvectors learned", bounds=(1, 1024),
                                why="d x d duals and constraints per seed; at most the "
                                    "cells the data reach (checked too)")
    hidden_layers: int = arg(4, "hidden layers of the MLP", bounds=(1, 64),
                             why="a deeper MLP is not what ALLO needs (memory checked too)")
    hidden_size: int = arg(256, "units per hidden layer", bounds=(1, 16384),
                           why="the model and its activations on every cell must fit "
                               "memory (checked too)")
    num_gradient_steps: int | None = arg(None, "gradient steps (default: from the layout's exact "
                                               "spectrum, 8000 to 60000: allo/budget.py)",
                                         "--steps", bounds=(0, 10**8),
                                         why="the learning-rate schedule holds a value per "
                                             "step on the device")
    batch_size: int | None = arg(None, "pairs sampled from the data set per step (and states "
                                       "per constraint batch), as in the paper; default: the "
                                       "exact expectation over the whole data set each step "
                                       "(no sampling noise; the network runs on every cell "
                                       "anyway, so it costs no more); on a large grid a "
                                       "batch's step runs the network on its own cells only "
                                       "(docs/math.md section 16)", bounds=(1, 10**7),
                                   why="three batches of pairs per seed and step on the "
                                       "device (memory checked too)")
    learning_rate: float = arg(3e-3, "Adam learning rate of the network at step 0",
                               bounds=(0.0, 1e6), why="Adam's step size (far above 1 the float32 "
                                                       "network overflows at once)")
    lr_warmup_steps: int = arg(500, "the learning rate rises linearly from 0 over these steps "
                                    "(large early steps can kill the ReLUs)",
                               bounds=(0, 10**8), why="a step count")
    lr_final_fraction: float = arg(0.3, "the learning rate then decays linearly to this "
                                        "fraction of --learning-rate at the last step",
                                   bounds=(0.0, 1.0), why="a fraction")
    max_grad_norm: float = arg(1.0, "clip each seed's gradient to this L2 norm before Adam "
                                    "(0: no clipping); early gradients reach norms of 100+ "
                                    "and without it about 1 seed in 16 kills its ReLUs",
                                bounds=(0.0, 1e6), why="a gradient norm")
    lr_duals: float = arg(0.1, "step size of gradient ascent on the dual variables",
                          bounds=(0.0, 1e3), why="a step size")
    barrier_initial: float = arg(2.0, "initial barrier coefficient b", bounds=(0.0, 1e6),
                                 why="a coefficient of the loss")
    lr_barrier: float = arg(0.1, "growth rate of b per unit of squared constraint error",
                            bounds=(0.0, 1e6), why="a growth rate")
    barrier_max: float = arg(3.0, "cap on the barrier coefficient", bounds=(0.0, 1e6),
                             why="a coefficient of the loss")
    # logging, exports, checkpoints
    log_freq: int = arg(100, "steps between metric rows in metrics.jsonl", bounds=(1, 10**8),
                        why="a step count")
    plot_freq: int | None = arg(None, "steps between eigenvector exports "
                                      "(learned_eigenvectors_step_S; default: 1000, or more "
                                      "where the run's exports would pass 64 MB: a large "
                                      "grid's export is MBs)",
                                bounds=(1, 10**8), why="a step count")
    checkpoint_freq: int = arg(1000, "steps between checkpoints (one is always written at the end)",
                               bounds=(1, 10**8), why="a step count")
    plot_during_training: bool = arg(False, "render PNGs of each export in a separate process")

    @property
    def discount(self) -> float:
        """gamma, or DEFAULT_GAMMA where it is not given (`allo.train` may choose a larger
        one for the layout before it collects any data: allo/discount.py)."""
        return DEFAULT_GAMMA if self.gamma is None else self.gamma

    @property
    def export_every(self) -> int:
        """plot_freq, or EXPORT_EVERY where it is not given (`allo.train` may space a large
        grid's exports further: allo/training/outputs.py)."""
        return EXPORT_EVERY if self.plot_freq is None else self.plot_freq

    def validate(self) -> None:
        """Raise ValueError with one line for the first value outside its documented
        range (the field's `bounds`), naming the option, the limit and why; then what
        the values imply together (allo/bounds.py: seeds, threads against cores)."""
        from allo import bounds

        for f in dataclasses.fields(self):
            value, limits = getattr(self, f.name), f.metadata.get("bounds")
            if limits is None or value is None:
                continue
            if problem := range_problem(f, value):
                raise ValueError(problem)
        if self.seeds is not None:
            parse_seeds(self.seeds)  # ValueError with one line
        for name, allowed in (("objective", OBJECTIVES), ("data", DATA_SOURCES),
                              ("protocol", PROTOCOLS), ("obs", OBSERVATIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} {getattr(self, name)!r}: choose from "
                                 f"{', '.join(allowed)}")
        if self.obs_size is not None and self.obs_size < 1:
            raise ValueError("--obs-size must be at least 1")
        parse_channels(self.conv_channels)  # ValueError with one line
        if self.data == "exact" and self.batch_size is not None:
            raise ValueError("--data exact trains on the exact law itself, so there is "
                             "nothing to sample: drop --batch-size")
        if self.threads > 0:
            bounds.check_threads(self.threads)
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError("--device must be auto, cpu, cuda or cuda:N")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def describe_bounds(f: dataclasses.Field) -> str:
    """A field's range as the README and --help write it: '[1, 64]' or '(0, 1)'."""
    low, high = f.metadata["bounds"]
    if f.metadata.get("exclusive"):
        return f"({low:g}, {high:g})"
    return f"[{low:g}, {high:g}]" if isinstance(low, float) else f"[{low}, {high}]"


def range_problem(f: dataclasses.Field, value: Any) -> str | None:
    """One line when `value` lies outside the field's range (NaN and inf never inside)."""
    low, high = f.metadata["bounds"]
    inside = low < value < high if f.metadata.get("exclusive") else low <= value <= high
    if inside:
        return None
    why = f.metadata.get("why")
    return (f"{flag(f.name)} {value!r}: outside its range {describe_bounds(f)}"
            + (f"; {why}" if why else ""))


def parse_channels(text: str) -> list[int]:
    """--conv-channels '16,16' -> [16, 16]; ValueError in one line otherwise."""
    try:
        channels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--conv-channels {text!r}: expected numbers like 16,16") from None
    if not channels or any(c < 1 for c in channels):
        raise ValueError(f"--conv-channels {text!r}: at least one layer, each with at "
                         "least one channel")
    return channels


def parse_seeds(text: str) -> list[int]:
    """'0-7' or '1,5,9' (or a mix: '0-3,8') -> distinct seeds in the order given; at most
    allo.bounds.MAX_SEEDS of them, each a 32-bit seed (checked before any is listed)."""
    from allo.bounds import check_seed_count

    seeds: dict[int, None] = {}  # ordered and distinct
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            first, last = (int(low), int(high)) if dash else (int(part), int(part))
        except ValueError:
            raise ValueError(f"--seeds {text!r}: expected numbers like 0-7 or 1,5,9") from None
        if last < first:
            raise ValueError(f"--seeds {text!r}: the range {part} is empty")
        if first < 0 or last > MAX_SEED:
            raise ValueError(f"--seeds {text!r}: seeds lie in [0, {MAX_SEED}] (32-bit)")
        check_seed_count(last - first + 1, text)  # before listing a range of millions
        seeds.update(dict.fromkeys(range(first, last + 1)))
        check_seed_count(len(seeds), text)
    return list(seeds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; defaults are shown in --help."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == "env":
            continue
        flags = [f"--{f.name.replace('_', '-')}", *f.metadata["aliases"]]
        kind: Any = {"int": int, "float": float, "str": str, "str | None": str,
                     "int | None": int, "float | None": float}.get(str(f.type))
        if f.type in ("bool", bool):
            parser.add_argument(*flags, dest=f.name, action="store_true", help=f.metadata["help"])
            continue
        default = f" (default: {f.default})" if f.default is not None else ""
        limits = f" (range {describe_bounds(f)})" if f.metadata.get("bounds") else ""
        help_text = f.metadata["help"] + limits + default
        parser.add_argument(*flags, dest=f.name, type=kind, default=None,
                            choices=f.metadata["choices"], help=help_text)


# The official code's settings (tarod13/laplacian_dual_dynamics, src/hyperparam/al.yaml,
# sqp.yaml, cqp.yaml and generalized_gdo.yaml at commit 207dfea), in allo's
# parameterisation; docs/math.md section 13 cites and converts each value.
PAPER_COMMON = {
    "num_eigenvectors": 11, "gamma": 0.9, "max_episode_length": 50, "num_steps": 50,
    "batch_size": 1024, "hidden_layers": 3, "hidden_size": 256, "learning_rate": 1e-3,
    "lr_warmup_steps": 0, "lr_final_fraction": 1.0, "max_grad_norm": 0.0,
    "num_envs": 4000, "num_gradient_steps": 50000, "data": "collected",
}
PAPER_BY_OBJECTIVE = {
    # the official graph loss is E[(u(s) - u(s'))^2], twice allo's: halving the official
    # loss (Adam does not see the scale) halves the duals, the barrier and its step sizes
    "allo": {"lr_duals": 0.5e-4, "barrier_initial": 0.5, "barrier_max": 5000.0},
    "sqp": {"barrier_initial": 0.5, "barrier_max": 5000.0},
    "cqp": {"barrier_initial": 0.5, "barrier_max": 5000.0},
    "ggdo": {"barrier_initial": 0.5, "num_envs": 2000, "num_gradient_steps": 200000},
}


def paper_settings(objective: str, d: int = 11) -> dict[str, Any]:
    """--protocol paper's values for this objective (docs/math.md section 13).

    The official barrier grows by lr_barrier_coefs (1.0) times the mean over the d x d
    entries of the clipped h * h'; allo's by lr_barrier times the clipped sum, so
    lr_barrier = 1.0 / (2 d^2) (the 2 is the loss's halving)."""
    values = {**PAPER_COMMON, **PAPER_BY_OBJECTIVE.get(objective, {})}
    if objective in GROWING_BARRIER:
        values["lr_barrier"] = 1.0 / (2 * d * d)
    return values


def apply_protocol(config: TrainConfig, given: set[str]) -> TrainConfig:
    """config with its protocol's values, except the fields in `given` (flags a user set).

    Raises ValueError for a flag the protocol cannot honour."""
    if config.protocol != "paper":
        return config
    if "data" in given and config.data == "exact":
        raise ValueError("--protocol paper samples minibatches of 1024 from collected "
                         "data; --data exact cannot be honoured with it (use --protocol allo)")
    d = config.num_eigenvectors if "num_eigenvectors" in given else 11
    values = {k: v for k, v in paper_settings(config.objective, d).items() if k not in given}
    return dataclasses.replace(config, **values)


def preset(protocol: str = "allo", **fields: Any) -> TrainConfig:
    """A config as `allo train --protocol PROTOCOL --FIELD VALUE ...` would build it."""
    return apply_protocol(TrainConfig(protocol=protocol, **fields), set(fields))


def given_flags(ns: argparse.Namespace) -> set[str]:
    """The names of the options given on the command line: argparse leaves the others
    None (or False, for a switch)."""
    # identity, not equality: 0 == False, and `--lr-barrier 0` is a value a user gave
    return {name for name, value in vars(ns).items()
            if value is not None and value is not False}


def from_namespace(ns: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """Fields given on the command line override `base` (or the defaults); a --protocol
    given here fills in its values first."""
    config = dataclasses.replace(base) if base else TrainConfig()
    given = given_flags(ns) & {f.name for f in dataclasses.fields(TrainConfig)}
    for name in given:
        setattr(config, name, getattr(ns, name))
    if "protocol" in given:
        config = apply_protocol(config, given - {"protocol"})
    return config


# The JSON types a recorded value of each declared field type may have.
_JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,),
               "str | None": (str, type(None)), "int | None": (int, type(None)),
               "float | None": (int, float, type(None)), "bool": (bool,)}


def from_dict(data: object, source: object = "run.json") -> TrainConfig:
    """Rebuild a config from run.json's "config", ignoring keys this version does not
    know; a value of the wrong type is refused in one line (ValueError naming `source`)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: no 'config' object; cannot resume this run")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name not in data:
            continue
        value, allowed = data[f.name], _JSON_TYPES.get(str(f.type), (object,))
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ValueError(f"{source}: config.{f.name} is {value!r}, not of type {f.type}")
        values[f.name] = value
    return TrainConfig(**values)
