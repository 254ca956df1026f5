"""CLI errors: one line on stderr, exit 2, never a traceback (issue 2)."""

from __future__ import annotations

import json
import os

import pytest
from trainproc import TINY, allo_subprocess, layout_file, one_line_error, train_args, warm

from allo import rundir
from allo.cli import main
from allo.layouts import MAX_SIDE


def cli(capsys, *argv) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse exits by itself
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    layout = layout_file(folder)
    result = warm().run(*train_args(layout, folder / "run", 20))
    assert result.code == 0, result.stderr
    return folder / "run"


@pytest.fixture
def run_copy(finished_run, tmp_path):
    import shutil

    return shutil.copytree(finished_run, tmp_path / "run")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "nope"], "unknown environment 'nope'"),
        (["train", "--env-file", "/no/such/layout.txt"], "no such layout file"),
        (["train", "--gamma", "1.5"], "--gamma"),
        (["train", "--gamma", "nan"], "--gamma"),
        (["train", "--gamma", "abc"], "--gamma"),
        (["train", "--steps", "-1"], "--num-gradient-steps"),
        (["train", "--num-envs", "0"], "--num-envs"),
        (["train", "--learning-rate", "-1"], "--learning-rate"),
        (["train", "--device", "tpu"], "--device"),
        (["train", "--objective", "sgd"], "--objective"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--resume", "/no/such/run"], "no such directory"),
        (["nope"], "unknown command 'nope'"),
        (["render", "/no/such/run"], "no such directory"),
        (["render", "--bogus"], "unrecognized arguments"),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys, argv, needle):
    code, err = cli(capsys, *argv)
    assert code == 2, err
    assert one_line_error(err), err
    assert needle in err


def test_bad_layout_files(tmp_path, capsys):
    cases = {"empty.txt": "", "walls.txt": "XXX\nXXX\n", "chars.txt": "X?X\n",
             "goals.txt": "XGX\n", "tabs.txt": "X\tX\n",
             "big.txt": " " * (MAX_SIDE + 1) + "\n"}  # a row of free cells, too wide
    for name, text in cases.items():
        path = layout_file(tmp_path, text, name)
        code, err = cli(capsys, "train", "--env-file", path, "--steps", "0")
        assert code == 2 and one_line_error(err), (name, err)
        assert name[:-4] in err, err  # the message names the file
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00X")
    code, err = cli(capsys, "train", "--env-file", tmp_path / "binary.txt")
    assert code == 2 and one_line_error(err) and "binary.txt" in err and "UTF-8" in err
    code, err = cli(capsys, "train", "--env-file", tmp_path)
    assert code == 2 and one_line_error(err) and "directory" in err


def test_too_many_eigenvectors_for_the_layout(tmp_path, capsys):
    path = layout_file(tmp_path, "XXXX\nX  X\nXXXX\n")
    code, err = cli(capsys, "train", "--env-file", path, *TINY, "--num-eigenvectors", "5",
                    "--run-dir", tmp_path / "run")
    assert code == 2 and one_line_error(err) and "--num-eigenvectors 5" in err


@pytest.mark.slow
def test_new_run_into_an_existing_run_is_refused(capsys, finished_run):
    code, err = cli(capsys, "train", "--run-dir", finished_run, "--steps", "0")
    assert code == 2 and one_line_error(err) and "--resume" in err


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--seed", "0"], "--seed"),  # zero is a value too (the run used seed 3)
        (["--seed", "4"], "--seed"),
        (["--gamma", "0.5"], "--gamma"),
        (["--hidden-size", "64"], "--hidden-size"),
        (["--env-file", "other.txt"], "--env-file"),
        (["room4"], "the environment"),
    ],
)
def test_changing_a_fixed_flag_on_resume_is_refused(capsys, run_copy, flags, needle):
    before = (run_copy / "run.json").read_bytes()
    code, err = cli(capsys, "train", "--resume", run_copy, *flags)
    assert code == 2 and one_line_error(err) and needle in err, err
    assert "cannot change" in err
    assert (run_copy / "run.json").read_bytes() == before, "nothing written"


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda info: "{not json", "invalid JSON"),
        (lambda info: json.dumps([1, 2]), "expected a JSON object"),
        (lambda info: json.dumps({**info, "format_version": 99}), "upgrade allo"),
        (lambda info: json.dumps({k: v for k, v in info.items() if k != "format_version"}),
         "format_version"),
        (lambda info: json.dumps({k: v for k, v in info.items() if k != "config"}),
         "no 'config'"),
        (lambda info: json.dumps({**info, "config": {**info["config"], "num_envs": "many"}}),
         "config.num_envs"),
        (lambda info: json.dumps({**info, "config": {**info["config"], "seed": True}}),
         "config.seed"),
    ],
)
def test_resume_of_a_damaged_run_json(capsys, run_copy, damage, needle):
    info = json.loads((run_copy / "run.json").read_text())
    (run_copy / "run.json").write_text(damage(info))
    code, err = cli(capsys, "train", "--resume", run_copy)
    assert code == 2 and one_line_error(err) and needle in err, err
    assert "run.json" in err


def test_resume_of_a_folder_that_is_no_run(tmp_path, capsys):
    code, err = cli(capsys, "train", "--resume", tmp_path)
    assert code == 2 and one_line_error(err) and "not a run directory" in err


@pytest.mark.slow
def test_real_console_script_usage_error(tmp_path):
    """The genuine entry point, cold: flag errors never reach torch or a traceback."""
    result = allo_subprocess("train", "--gamma", "1.5", "--run-dir", tmp_path / "r")
    assert result.returncode == 2 and one_line_error(result.stderr), result.stderr
    assert not (tmp_path / "r").exists()
    result = allo_subprocess("train", "--resume", tmp_path / "missing")
    assert result.returncode == 2 and one_line_error(result.stderr), result.stderr


@pytest.mark.slow
def test_resume_continues_a_finished_run_with_more_steps(run_copy):
    result = warm().run("train", "--resume", run_copy, "--steps", "40")
    assert result.code == 0, result.stderr
    assert rundir.RunReader(run_copy).info().step == 40


@pytest.mark.slow
def test_a_run_that_ends_short_of_its_data_says_how_to_go_on(tmp_path):
    """20 steps leave the vectors far below their data ceiling: the note names them and
    gives the resume command, and that command runs."""
    layout = layout_file(tmp_path)
    result = warm().run(*train_args(layout, tmp_path / "run", 20))
    assert result.code == 0, result.stderr
    note = [line for line in result.stderr.splitlines() if "still turning" in line]
    assert len(note) == 1 and note[0].startswith("allo: note: vectors ")
    command = note[0].split("to go on: ")[1].split()
    assert command[:3] == ["allo", "train", "--resume"] and command[3] == str(tmp_path / "run")
    recommended = rundir.RunReader(tmp_path / "run").info().budget.recommended_steps
    assert command[4:] == ["--steps", str(max(40, recommended))]
    # the command runs (with fewer steps than it asks for, to keep the test short)
    again = warm().run(*command[1:-1], "40")
    assert again.code == 0, again.stderr
    assert rundir.RunReader(tmp_path / "run").info().step == 40


def test_render_runs_blas_single_threaded_unless_the_user_chose(monkeypatch, capsys):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert main(["render", "--list-formats"]) == 0
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    assert main(["render", "--list-formats"]) == 0
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4"
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    assert main(["envs"]) == 0  # training-side commands keep the library's default
    assert "OPENBLAS_NUM_THREADS" not in os.environ
    capsys.readouterr()
