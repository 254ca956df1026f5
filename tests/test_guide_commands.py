"""The older script's commands as its users type them (issue 23, item 6).

Every command of the separated-plotting guide, in allo's spelling: `python
exp_alcl/allo.py FLAGS` is `allo train FLAGS` (underscore flags, --env_type as the
layout) and `python generate_plots.py RUN FLAGS` is `allo render RUN FLAGS`. Where the
guide itself is at hand (the shared context folder), the test also checks that it holds
no command missing from the list below.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from synthetic import SyntheticRun
from trainproc import TINY, layout_file, warm

from allo import config as config_module
from allo.cliparse import dashed, did_you_mean
from allo.train_cli import build_parser, resolve_config
from renderers import command

GUIDE = Path(__file__).resolve().parents[2] / "shared" / "context" / (
    "separated-plotting-guide.md")
GUIDE_ALT = Path("/work/shared/context/separated-plotting-guide.md")

TRAIN_COMMANDS = [
    "--env_type room4 --num_gradient_steps 20000",
    "--env_type room4",
    "--env_type room4 --plot_during_training",
    "--env_type room4 --plot_freq 5000",
    "--env_type room4 --num_gradient_steps 5000",
    "--env_type room4 --num_gradient_steps 20000 --plot_freq 1000",
    "--plot_freq 100",  # from the prose: "Lower `plot_freq` (e.g., `--plot_freq 100`)"
]
RENDER_FLAGS = [
    "",
    "--skip-learned",
    "--latest-only",
    "--skip-metrics",
    "--skip-ground-truth --skip-learned --skip-metrics",
]


def guide_commands() -> tuple[set[str], set[str]]:
    """(train flags, render flags) of every command in the guide's code blocks."""
    text = next(p for p in (GUIDE, GUIDE_ALT) if p.exists()).read_text()
    text = text.replace("\\\n", " ")
    train, render = set(), set()
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("python exp_alcl/allo.py"):
            train.add(" ".join(shlex.split(line)[2:]))
        elif line.startswith("python generate_plots.py") and "<results_dir>" not in line:
            words = shlex.split(line)[3:]
            render.add(" ".join(w for w in words if w.startswith("--")))
    return train, render


@pytest.mark.skipif(not (GUIDE.exists() or GUIDE_ALT.exists()), reason="guide not at hand")
def test_every_guide_command_is_in_the_list():
    train, render = guide_commands()
    assert train <= set(TRAIN_COMMANDS), train - set(TRAIN_COMMANDS)
    assert render <= set(RENDER_FLAGS), render - set(RENDER_FLAGS)


@pytest.mark.parametrize("flags", TRAIN_COMMANDS)
def test_train_commands_parse_as_typed(flags):
    args = build_parser().parse_args(shlex.split(flags))
    cfg, resume = resolve_config(args)
    assert resume == []
    words = shlex.split(flags)
    expected = config_module.TrainConfig()
    for name, value in zip(words, [*words[1:], ""], strict=True):
        if name == "--env_type":
            expected.env = value
        elif name == "--plot_during_training":
            expected.plot_during_training = True
        elif name.startswith("--"):
            setattr(expected, name[2:], int(value))
    assert cfg == expected


def test_underscore_and_dash_spellings_agree():
    parser = build_parser()
    for action in parser._actions:
        for option in action.option_strings:
            if option.count("-") < 3 or option.startswith("--env-type"):
                continue  # no inner dash: no underscore spelling
            under = "--" + option[2:].replace("-", "_")
            value = [] if action.nargs == 0 else ["1"]
            if action.choices:
                value = [next(iter(action.choices))]
            got = parser.parse_args([under, *value])
            want = parser.parse_args([option, *value])
            assert vars(got) == vars(want), option


def test_layout_given_twice_differently_is_refused():
    args = build_parser().parse_args(["room4", "--env_type", "maze"])
    with pytest.raises(ValueError, match="layout given twice"):
        resolve_config(args)
    args = build_parser().parse_args(["room4", "--env_type", "room4"])
    assert resolve_config(args)[0].env == "room4"


def test_dashed_leaves_values_and_unknown_names_alone():
    known = {"--plot-freq", "--run-dir"}
    argv = ["--plot_freq=5", "--run_dir", "--my_dir", "--unknown_flag", "--", "--plot_freq"]
    assert dashed(argv, known) == ["--plot-freq=5", "--run-dir", "--my_dir", "--unknown_flag",
                                   "--", "--plot_freq"]


@pytest.mark.parametrize(
    "typed, closest",
    [("--num_gradiant_steps", "--num-gradient-steps"), ("--plotfreq", "--plot-freq"),
     ("--learning-rat", "--learning-rate"), ("--plot", "--plot-freq")],
)
def test_unknown_option_gets_the_closest(capsys, typed, closest):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([typed, "3"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"did you mean {closest}?" in err and len(err.strip().splitlines()) == 1


def test_no_hint_for_something_far_from_every_option():
    assert did_you_mean("unrecognized arguments: --zzzzqqq", ["--plot-freq"]) == ""


@pytest.mark.slow
@pytest.mark.parametrize("flags", RENDER_FLAGS)
def test_render_commands_of_the_guide(tmp_path, capsys, flags):
    run = SyntheticRun(tmp_path / "run", d=3, total_steps=200)
    run.advance(200, log_freq=20, export_freq=100)
    run.finish()
    code = command.main([str(run.path), *shlex.split(flags), "--dpi", "30"])
    assert code == 0, capsys.readouterr()
    assert any((run.path / "plots").glob("*.png"))


@pytest.mark.slow
def test_a_real_training_in_the_older_spelling(tmp_path):
    """The guide's development command, shortened, trains and exports as typed."""
    layout = layout_file(tmp_path)
    tiny = ["--" + flag[2:].replace("-", "_") if flag.startswith("--") else flag
            for flag in TINY]
    result = warm().run("train", "--env_file", str(layout), "--run_dir", str(tmp_path / "run"),
                        *tiny, "--num_gradient_steps", "40", "--plot_freq", "20")
    assert result.code == 0, result.stderr
    exports = sorted(p.name for p in (tmp_path / "run").glob("learned_eigenvectors_step_*"))
    assert exports == ["learned_eigenvectors_step_20.npy", "learned_eigenvectors_step_40.npy"]
