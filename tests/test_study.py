"""`allo study`: the study file, its expansion, bad input, and real (tiny) local studies:
skip finished runs, resume killed ones, refuse a changed config under an old name."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SMALL_LAYOUT, TINY_STUDY

from allo import rundir
from allo.study import cli, state
from allo.study.jobs import JobRunner, JobSpec
from allo.study.spec import StudyError, load_study

SMALL = SMALL_LAYOUT
TINY = TINY_STUDY


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def study_file(tmp_path: Path, body: str, name: str = "t") -> Path:
    write(tmp_path / "grids" / "small.txt", SMALL)
    write(tmp_path / "grids" / "other.txt", SMALL.replace("X  X  X", "X     X"))
    return write(tmp_path / f"{name}.toml", body)


# ------------------------------------------------------------------------ expansion
def test_cross_product_exclude_include_and_seeds(tmp_path):
    path = study_file(tmp_path, """
layouts = ["room4", "grids/*.txt"]
seeds = 3
[grid]
objective = ["allo", "ggdo"]
gamma = [0.8, 0.9]
steps = 100
[[exclude]]
layout = "small"
objective = "ggdo"
[[include]]
layout = "maze"
lr-duals = [0.01, 0.2]
gamma = 0.5
seeds = [7, 9]
""")
    study = load_study(path)
    assert study.name == "t"
    combos = [(j.layout.name, j.options["objective"], j.options["gamma"]) for j in study.jobs]
    # 3 layouts x 2 objectives x 2 gammas - small's 2 ggdo + maze's 2 objectives x 2 lr-duals
    assert len(study.jobs) == 3 * 2 * 2 - 2 + 4
    assert ("small", "ggdo", 0.8) not in combos and ("other", "ggdo", 0.8) in combos
    maze = [j for j in study.jobs if j.layout.name == "maze"]
    assert {j.options["lr_duals"] for j in maze} == {0.01, 0.2}
    assert all(j.seeds == [7, 9] and j.options["gamma"] == 0.5 for j in maze)
    assert all(j.seeds == [0, 1, 2] for j in study.jobs if j.layout.name != "maze")
    assert all(j.options["num_gradient_steps"] == 100 for j in study.jobs)  # alias "steps"
    assert len({j.key for j in study.jobs}) == len(study.jobs)
    assert len(study.runs) == 10 * 3 + 4 * 2


def test_seed_list_override_and_stable_names(tmp_path):
    path = study_file(tmp_path, 'layouts = ["room4"]\nseeds = [4, 2]\n[grid]\ngamma = 0.9\n')
    assert load_study(path).jobs[0].seeds == [4, 2]
    assert load_study(path, "3").jobs[0].seeds == [0, 1, 2]
    assert load_study(path, "1,5").jobs[0].seeds == [1, 5]
    # the name comes from the configuration: the same options spelled differently (or a
    # default written out) name the same runs; another value names other runs
    same = study_file(tmp_path, 'layouts = ["room4"]\n[grid]\n"num_eigenvectors" = 10\n'
                      'gamma = 0.9\n', "u")
    other = study_file(tmp_path, 'layouts = ["room4"]\n[grid]\ngamma = 0.95\n', "v")
    key = load_study(path).jobs[0].key
    assert key.startswith("room4__allo__")
    assert load_study(same).jobs[0].key != key  # num_eigenvectors given is part of it
    assert load_study(other).jobs[0].key != key
    assert load_study(path).jobs[0].key == key


def test_an_edited_layout_file_is_a_new_configuration(tmp_path):
    path = study_file(tmp_path, 'layouts = ["grids/small.txt"]\n')
    key = load_study(path).jobs[0].key
    write(tmp_path / "grids" / "small.txt", SMALL.replace("X  X  X", "XX X  X"))
    assert load_study(path).jobs[0].key != key


@pytest.mark.parametrize("body, words", [
    ('layouts = ["room4"]\ncolour = 1\n', ["'colour'", "unknown key"]),
    ('layouts = ["room4"]\n[grid]\nlearning-rat = 0.1\n', ["grid.learning-rat", "unknown"]),
    ('layouts = ["room4"]\n[grid]\ngamma = "high"\n', ["grid.gamma", "float"]),
    ('layouts = ["room4"]\n[grid]\nnum-eigenvectors = 2.5\n', ["num-eigenvectors", "int"]),
    ('layouts = ["room4"]\nseeds = "many"\n', ["seeds", "count"]),
    ('layouts = ["nowhere"]\n', ["layouts", "unknown layout 'nowhere'"]),
    ('layouts = ["grids/*.nope"]\n', ["layouts", "matches no layout file"]),
    ('layouts = ["room4"]\n[grid]\nobjective = "sgd"\n', ["grid.objective", "allo, ggdo"]),
    ('layouts = ["room4"]\n[grid]\ngamma = 1.5\n', ["gamma", "strictly between 0 and 1"]),
    ('layouts = ["room4"]\n[grid]\nseed = 3\n', ["grid.seed", "set by the study"]),
    ('layouts = ["room4"]\n[grid]\nprotocol = "paper"\ndata = "exact"\n',
     ["protocol", "cannot be honoured"]),
    ('layouts = ["room4"]\n[[exclude]]\nlayout = "room4"\n', ["expands to no runs"]),
    ('layouts = ["room4"]\n[grid]\ngamma = []\n', ["grid.gamma", "empty list"]),
    ('layouts = ["room4"\n', ["not valid TOML"]),
])
def test_bad_study_file_is_one_line_and_launches_nothing(tmp_path, capsys, body, words):
    path = study_file(tmp_path, body)
    results = tmp_path / "results"
    code = cli.main([str(path), "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert str(path) in err and all(w in err for w in words), err
    assert not results.exists()


def test_bad_command_line(tmp_path, capsys):
    path = study_file(tmp_path, 'layouts = ["room4"]\n')
    assert cli.main([str(path), "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "missing.toml")]) == 2
    assert "no such study file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main([str(path), "--executor", "cloud"])
    assert exit_.value.code == 2


def test_dry_run_prints_runs_and_jobs(tmp_path, capsys):
    path = study_file(tmp_path, 'layouts = ["room4", "maze"]\nseeds = 4\n'
                      '[grid]\nobjective = ["allo", "ggdo"]\n')
    assert cli.main([str(path), "--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "16 runs in 4 jobs" in out
    assert out.count("   allo train ") == 4 and "seeds 0,1,2,3" in out
    assert "room4 --objective ggdo" in out
    assert not (tmp_path / "r").exists()


def test_study_json_updates_are_atomic_and_merge(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    state.update_study_json(folder, {"a": {"status": "missing", "seed": 0}})
    state.update_study_json(folder, {"a": {"status": "finished"}, "b": {"status": "failed"}})
    data = json.loads((folder / "study.json").read_text())
    assert data["runs"]["a"] == {"status": "finished", "seed": 0}
    assert data["runs"]["b"]["status"] == "failed" and data["format_version"] == 1
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_concurrent_writers_lose_no_update(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    code = ("import sys; from pathlib import Path; from allo.study import state\n"
            "for i in range(25):\n"
            "    state.update_study_json(Path(sys.argv[1]), {f'{sys.argv[2]}{i}': {'i': i}})\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(folder), w]) for w in "abc"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    runs = json.loads((folder / "study.json").read_text())["runs"]
    assert len(runs) == 75


def test_run_lock_is_exclusive_and_inherited(tmp_path):
    (tmp_path / "locks").mkdir()
    lock = state.RunLock(tmp_path, "r")
    assert lock.acquire()
    assert state.is_held(tmp_path, "r")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             pass_fds=[lock.fd])
    try:
        lock.release()  # the child still holds the open file description
        assert state.is_held(tmp_path, "r")
    finally:
        child.kill()
        child.wait()
    assert not state.is_held(tmp_path, "r")


# ------------------------------------------------------------------- real local studies
def run_study(path: Path, results: Path, *extra: str, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "allo.cli", "study", str(path),
                           "--results-dir", str(results), *extra],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})


def metric_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if line.strip()]


@pytest.mark.slow
def test_study_runs_skips_finished_and_records_failures(tmp_path):
    path = study_file(tmp_path, f"""
layouts = ["grids/small.txt", "grids/other.txt"]
seeds = 2
[grid]
steps = 40
{TINY}
[[include]]
layout = "grids/small.txt"
num-eigenvectors = 40
seeds = 1
""")
    results = tmp_path / "results"
    first = run_study(path, results)
    assert first.returncode == 1, first.stderr  # the d = 40 run cannot run on 14 cells
    folder = results / "studies" / "t"
    data = json.loads((folder / "study.json").read_text())
    statuses = {name: run["status"] for name, run in data["runs"].items()}
    assert sorted(statuses.values()) == ["failed"] + ["finished"] * 4
    failed = next(run for run in data["runs"].values() if run["status"] == "failed")
    assert "eigenvectors" in failed["error"] or "free cells" in failed["error"], failed
    assert "failed" in first.stderr and failed["error"] in first.stderr
    for name, run in data["runs"].items():
        assert run["run_dir"] == f"runs/{name}" and len(run["config_hash"]) == 12
        if run["status"] == "finished":
            assert metric_steps(folder / run["run_dir"])[-1] == 40
    assert (folder / "study.toml").read_text() == path.read_text()
    stamps = {n: (folder / "runs" / n / "run.json").stat().st_mtime_ns for n in statuses
              if statuses[n] == "finished"}
    again = run_study(path, results)
    assert again.returncode == 1
    assert "4 finished" in again.stderr and "1 failed" in again.stderr
    assert stamps == {n: (folder / "runs" / n / "run.json").stat().st_mtime_ns for n in stamps}
    status = run_study(path, results, "--status")
    assert status.returncode == 0 and "failed" in status.stdout and failed["error"] in status.stdout


class RecordingRunner(JobRunner):
    """A JobRunner whose `allo train` is a stand-in: it records each command, and
    refuses a group resume as the trainer does when checkpoints disagree."""

    def __init__(self, spec: JobSpec):
        super().__init__(spec)
        self.commands: list[list[str]] = []

    def train(self, args: list[str], locks: list) -> int:
        self.commands.append(args)
        grouped = args[0] == "--resume" and len(args) > 2
        line = "allo train: the runs would go on from different checkpoints (...); resume " \
               "them one at a time" if grouped and "__s2" in " ".join(args) else "done"
        with open(self.folder / "logs" / f"{self.spec.key}.log", "a") as log:
            log.write(line + "\n")
        return 2 if line != "done" else 0


def test_interrupted_seeds_resume_together_by_checkpoint_step(tmp_path):
    """Seeds stopped at one checkpoint step go on as one model; one whose newest
    checkpoint is at another step goes on alone; a group the trainer refuses (an unusable
    newest checkpoint) is retried one run at a time."""
    folder = tmp_path / "study"
    for sub in ("runs", "logs", "locks"):
        (folder / sub).mkdir(parents=True)
    spec = JobSpec(str(folder), "key", ["--steps", "100"], [0, 1, 2, 3, 4])
    at = {0: 200, 1: 200, 2: 400, 3: 400, 4: 100}
    for seed, step in at.items():
        run = folder / "runs" / spec.run_name(seed)
        (run / rundir.CHECKPOINTS).mkdir(parents=True)
        (run / rundir.CHECKPOINTS / rundir.checkpoint_name(step)).write_bytes(b"")
        rundir.atomic_write_json(run / rundir.RUN_JSON, {"format_version": rundir.FORMAT_VERSION,
                                                       "status": "interrupted"})
    runner = RecordingRunner(spec)
    runner.run()
    resumed = [[Path(a).name[-1] for a in args[1:]] for args in runner.commands]
    assert resumed == [["0", "1"], ["2", "3"], ["2"], ["3"], ["4"]], runner.commands


def study_at_first_checkpoints(tmp_path: Path, total: int, extra: str = ""
                               ) -> tuple[subprocess.Popen, Path, Path]:
    """A two-seed study of `total` steps launched in its own session, returned (process,
    study file, results folder) once both runs have their first checkpoint (step 200), so
    the runs are still training on any machine."""
    settings = TINY.replace("checkpoint-freq = 20", "checkpoint-freq = 200")
    path = study_file(tmp_path, f"""
layouts = ["grids/small.txt"]
seeds = 2
[grid]
steps = {total}
{extra}{settings}
""")
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "allo.cli", "study", str(path),
                             "--results-dir", str(results)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    runs = results / "studies" / "t" / "runs"
    while time.monotonic() < deadline:
        started = list(runs.iterdir()) if runs.exists() else []
        if len(started) == 2 and all(list(run.glob("checkpoints/checkpoint_step_*.pt"))
                                     for run in started):
            break
        time.sleep(0.05)
    return proc, path, results


@pytest.mark.slow
def test_killed_study_resumes_without_loss_or_duplicates(tmp_path):
    # the few checkpoints (every 200 of 3000 steps) keep the resume short under load
    total = 3000
    proc, path, results = study_at_first_checkpoints(tmp_path, total, "lr-final-fraction = 1.0\n")
    folder = results / "studies" / "t"
    runs = folder / "runs"
    os.killpg(proc.pid, signal.SIGKILL)  # the study and its trainer, without warning
    proc.wait()
    names = sorted(p.name for p in runs.iterdir())
    assert len(names) == 2
    killed_at = {n: metric_steps(runs / n)[-1] for n in names}
    assert all(step < total for step in killed_at.values()), killed_at
    status = run_study(path, results, "--status")
    assert "interrupted" in status.stdout, status.stdout
    again = run_study(path, results)
    assert again.returncode == 0, again.stderr
    for name in names:
        steps = metric_steps(runs / name)
        assert steps == sorted(set(steps)) and steps[-1] == total  # nothing twice, nothing lost
        assert steps == list(range(0, total + 1, 20)) or steps[0] in (0, 20)
        info = json.loads((runs / name / "run.json").read_text())
        assert info["status"] == "finished" and info["resumes"], info.get("resumes")
    # stopped together at one checkpoint, the two seeds went on as one batched model
    log = next((folder / "logs").glob("*.log")).read_text()
    resumed = [line for line in log.splitlines() if line.startswith("$ allo train --resume")]
    assert len(resumed) == 1 and all(name in resumed[0] for name in names), resumed
    data = json.loads((folder / "study.json").read_text())
    assert {run["status"] for run in data["runs"].values()} == {"finished"}


@pytest.mark.slow
def test_sigterm_to_the_study_alone_stops_its_trainers_at_a_checkpoint(tmp_path):
    """`kill STUDY` (or `timeout`, or a scheduler) reaches the study only, not its process
    group as a Ctrl-C does: it passes SIGTERM on, each trainer checkpoints, the runs end
    interrupted and the study exits 143 (before, the trainers went on unsupervised)."""
    total = 100000
    proc, _, results = study_at_first_checkpoints(tmp_path, total)
    runs = results / "studies" / "t" / "runs"
    try:
        proc.send_signal(signal.SIGTERM)  # the study's pid only
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 143 and "allo: terminated" in err, err
        for run in runs.iterdir():
            info = json.loads((run / "run.json").read_text())
            assert info["status"] == "interrupted", info["status"]
            assert info["step"] < total
        with pytest.raises(ProcessLookupError):  # no trainer left in the study's group
            os.killpg(proc.pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_changed_config_under_an_existing_name_is_refused(tmp_path, capsys):
    path = study_file(tmp_path, f'layouts = ["grids/small.txt"]\n[grid]\nsteps = 20\n{TINY}')
    results = tmp_path / "results"
    assert run_study(path, results).returncode == 0
    folder = results / "studies" / "t"
    (run,) = (folder / "runs").iterdir()
    info = json.loads((run / "run.json").read_text())
    info["config"]["hidden_size"] = 64  # as if this allo's defaults or the run had changed
    (run / "run.json").write_text(json.dumps(info))
    code = cli.main([str(path), "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "hidden_size=64" in err and "changed under an existing name" in err


def test_status_of_a_study_directory(tmp_path, capsys):
    folder = tmp_path / "s"
    with pytest.raises(StudyError):
        state.read_study_json(write(folder / "study.json", "[]").parent)
    assert cli.main([str(folder), "--status"]) == 2
    assert "study.json" in capsys.readouterr().err


# ------------------------------------------------------------------- shipped studies
STUDIES = Path(__file__).resolve().parents[1] / "benchmarks" / "studies"


def test_shipped_barrier_ablation_expands(capsys):
    study = load_study(STUDIES / "barrier-ablation.toml")
    assert len(study.jobs) == 2 * (3 * 3 * 2 - 2) and len(study.runs) == 5 * len(study.jobs)
    fixed = [j for j in study.jobs if j.options["barrier_initial"] == 8.0
             and j.options["barrier_max"] == 3.0]
    assert {j.options["lr_barrier"] for j in fixed} == {0.01}


def test_shipped_paper_table1_from_the_repository_root(monkeypatch):
    root = STUDIES.parents[1]
    if not (root.parent / "shared" / "reference-layouts").is_dir():
        pytest.skip("../shared/reference-layouts is not beside this checkout")
    monkeypatch.chdir(root)
    study = load_study(STUDIES / "paper-table1.toml", "3")
    assert len({j.layout.name for j in study.jobs}) == 15
    assert {j.options["objective"] for j in study.jobs} == {"allo", "ggdo"}
    assert len(study.runs) == 15 * 2 * 3
    assert len(load_study(STUDIES / "paper-table1.toml").runs) == 15 * 2 * 60


def test_relative_layouts_fall_back_to_the_current_directory(tmp_path, monkeypatch):
    write(tmp_path / "work" / "grids" / "g.txt", SMALL)
    path = write(tmp_path / "files" / "s.toml", 'layouts = ["grids/*.txt"]\n')
    monkeypatch.chdir(tmp_path / "work")
    assert [j.layout.name for j in load_study(path).jobs] == ["g"]
    write(tmp_path / "files" / "grids" / "h.txt", SMALL)  # beside the file wins
    assert [j.layout.name for j in load_study(path).jobs] == ["h"]


@pytest.mark.slow
def test_a_run_folder_without_run_json_is_started_afresh(tmp_path):
    path = study_file(tmp_path, f'layouts = ["grids/small.txt"]\n[grid]\nsteps = 20\n{TINY}')
    results = tmp_path / "results"
    study = load_study(path)
    folder = results / "studies" / "t"
    half = folder / "runs" / study.jobs[0].run_name(0)  # a trainer killed before run.json
    (half / "checkpoints").mkdir(parents=True)
    (half / ".writer.lock").write_text("")
    done = run_study(path, results)
    assert done.returncode == 0, done.stderr
    assert json.loads((half / "run.json").read_text())["status"] == "finished"


def test_status_lines_keep_the_status_apart_from_the_run_name(tmp_path, capsys):
    """Every status, "interrupted" the longest, is followed by a space before the run."""
    entries = {
        "maze__allo__ab__s0": {"job": "maze__allo__ab", "status": state.INTERRUPTED,
                               "step": 300, "total_steps": 1000},
        "maze__allo__ab__s1": {"job": "maze__allo__ab", "status": state.RUNNING,
                               "step": 400, "total_steps": 1000},
        "maze__allo__ab__s2": {"job": "maze__allo__ab", "status": state.FAILED,
                               "error": "NaN loss"},
    }
    cli.print_status("t", tmp_path, entries)
    lines = capsys.readouterr().out.splitlines()
    assert "    interrupted maze__allo__ab__s0 step 300/1000" in lines
    assert "    running     maze__allo__ab__s1 step 400/1000" in lines
    assert "    failed      maze__allo__ab__s2: NaN loss" in lines


# ---------------------------------------------------------------------- following
def test_progress_reads_a_finished_runs_json_once_and_a_running_ones_each_time(tmp_path):
    from synthetic import SyntheticRun

    from allo.study import local

    runs = tmp_path / state.RUNS
    going = SyntheticRun(runs / "going", total_steps=40)
    going.advance(20, log_freq=10, export_freq=40)
    done = SyntheticRun(runs / "done", total_steps=40)
    done.advance(40, log_freq=10, export_freq=40)
    done.finish()
    finished: dict[str, tuple[int, int]] = {}
    assert local.run_progress(tmp_path, "going", finished) == (20, 40)
    assert local.run_progress(tmp_path, "done", finished) == (40, 40)
    assert local.run_progress(tmp_path, "missing", finished) is None
    assert finished == {"done": (40, 40)}
    going.advance(10, log_freq=10, export_freq=40)
    (runs / "done" / rundir.RUN_JSON).unlink()  # not read again
    assert local.run_progress(tmp_path, "going", finished) == (30, 40)
    assert local.run_progress(tmp_path, "done", finished) == (40, 40)


def test_following_without_a_terminal_reads_no_run(tmp_path, monkeypatch):
    """The study's output to a log file (nohup, sbatch): no bar, so nothing is polled."""
    from concurrent.futures import ThreadPoolExecutor

    from allo.study import local

    def read(*args):
        raise AssertionError("run.json polled with no bar to draw")

    monkeypatch.setattr(local, "run_progress", read)
    spec = JobSpec(study=str(tmp_path), key="k", option_args=[], seeds=[0, 1])
    with ThreadPoolExecutor(1) as pool:
        futures = [pool.submit(time.sleep, 0.6)]
        local.follow(tmp_path, [spec], futures, show=True)  # pytest's stderr: no terminal
        assert all(f.done() for f in futures)
