"""`allo study --executor slurm` against a real one-node SLURM cluster with accounting.

tests/slurm/start-cluster.sh starts it (.ci/run calls it first; the fixture calls it
again, which leaves a running cluster alone). Where it cannot start (not root, no apt,
no daemons) these tests skip with its reason; everything else runs without it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SMALL_LAYOUT, TINY_STUDY

from allo.study import cli

ROOT = Path(__file__).resolve().parents[1]
SMALL = SMALL_LAYOUT
TINY = TINY_STUDY + "lr-final-fraction = 1.0\n"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def cluster() -> None:
    script = ROOT / "tests" / "slurm" / "start-cluster.sh"
    try:
        out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("SLURM test cluster: start-cluster.sh took over 300 s")
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines()
        pytest.skip(f"SLURM test cluster cannot start: {lines[-1] if lines else out.returncode}")


def study(tmp_path: Path, steps: int, seeds: int = 2) -> Path:
    (tmp_path / "grids").mkdir(exist_ok=True)
    (tmp_path / "grids" / "small.txt").write_text(SMALL)
    (tmp_path / "grids" / "open.txt").write_text(SMALL.replace("X  X  X", "X     X"))
    path = tmp_path / "t.toml"
    path.write_text(f'layouts = ["grids/small.txt", "grids/open.txt"]\nseeds = {seeds}\n'
                    f"[grid]\nsteps = {steps}\n{TINY}")
    return path


def allo_study(*args: str, wait: bool = True, timeout: float = 400):
    command = [sys.executable, "-m", "allo.cli", "study", *args]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=ENV)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=ENV)


def table(folder: Path) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "allo.cli", "compare", str(folder), "--format",
                          "csv", "--out", str(folder.parent / f"{folder.name}-table")],
                         capture_output=True, text=True, timeout=120, env=ENV, check=True)
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    for row in rows:  # training seconds differ from machine to machine; all else must not
        for key in [k for k in row if k.startswith("seconds_to")]:
            del row[key]
    return rows


def metric_steps(run: Path) -> list[int]:
    """Logged steps; none for a run whose trainer was stopped before its first row."""
    metrics = run / "metrics.jsonl"
    if not metrics.exists():
        return []
    return [json.loads(line)["step"] for line in metrics.read_text().splitlines()
            if line.strip()]


def slurm_jobs(folder: Path) -> list[str]:
    return json.loads((folder / "study.json").read_text()).get("slurm_jobs", [])


def wait_for_checkpoints(runs: Path, count: int, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if runs.exists() and len(list(runs.glob("*/checkpoints/checkpoint_step_*.pt"))) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"no {count} checkpoints under {runs} within {seconds} s")


@pytest.mark.slow
def test_slurm_study_gives_the_local_runs_and_table(cluster, tmp_path):
    path = study(tmp_path, steps=60)
    local = allo_study(str(path), "--results-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    slurm = allo_study(str(path), "--results-dir", str(tmp_path / "slurm"), "--executor",
                       "slurm", "--time", "10")
    assert slurm.returncode == 0, slurm.stderr
    a, b = (tmp_path / where / "studies" / "t" for where in ("local", "slurm"))
    assert sorted(p.name for p in (a / "runs").iterdir()) == sorted(
        p.name for p in (b / "runs").iterdir())
    assert len(list((a / "runs").iterdir())) == 4
    assert slurm_jobs(b) and (b / "logs" / "slurm").is_dir()
    assert not list((b / "runs").rglob("*.pkl"))  # submitit's pickles stay in logs/slurm
    assert table(a) == table(b)
    sacct = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j",
                            ",".join(j.split("_")[0] for j in slurm_jobs(b))],
                           capture_output=True, text=True, timeout=30)
    assert set(sacct.stdout.split()) == {"COMPLETED"}, sacct.stdout
    status = allo_study(str(path), "--results-dir", str(tmp_path / "slurm"), "--status")
    assert "4 runs: 4 finished" in status.stdout and "completed (array tasks)" in status.stdout


@pytest.mark.slow
def test_scancel_then_rerun_finishes_without_loss(cluster, tmp_path):
    path = study(tmp_path, steps=3000, seeds=1)
    results = tmp_path / "r"
    submit = allo_study(str(path), "--results-dir", str(results), "--executor", "slurm",
                        "--no-wait")
    assert submit.returncode == 0, submit.stderr
    folder = results / "studies" / "t"
    wait_for_checkpoints(folder / "runs", 2)
    jobs = slurm_jobs(folder)
    subprocess.run(["scancel", *{j.split("_")[0] for j in jobs}], check=True, timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and subprocess.run(
            ["squeue", "-h", "-j", ",".join(jobs)], capture_output=True, text=True).stdout.strip():
        time.sleep(0.5)
    runs = sorted((folder / "runs").iterdir())
    # a task that started its trainer as the cancel came has a run without a logged step
    before = {run.name: (metric_steps(run) or [0])[-1] for run in runs}
    assert any(step < 3000 for step in before.values()), before
    again = allo_study(str(path), "--results-dir", str(results), "--executor", "slurm")
    assert again.returncode == 0, again.stderr
    for run in runs:
        steps = metric_steps(run)
        assert steps == sorted(set(steps)) and steps[-1] == 3000, run.name
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "finished"
        if 0 < before[run.name] < 3000:
            assert info["resumes"], run.name


@pytest.mark.slow
def test_requeued_task_continues_from_its_checkpoint(cluster, tmp_path):
    path = study(tmp_path, steps=3000, seeds=1)
    results = tmp_path / "r"
    proc = allo_study(str(path), "--results-dir", str(results), "--executor", "slurm",
                      wait=False)
    folder = results / "studies" / "t"
    try:
        wait_for_checkpoints(folder / "runs", 4)
        (job,) = {j.split("_")[0] for j in slurm_jobs(folder)}
        # what SLURM does to a preempted task (submitit's own Job._interrupt): SIGTERM,
        # then the warning signal that makes submitit checkpoint and requeue it
        subprocess.run(["scancel", job, "--signal", "SIGTERM"], check=True, timeout=30)
        subprocess.run(["scancel", job, "--signal", "USR2"], check=True, timeout=30)
        release_requeued(job)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    log = "".join(p.read_text() for p in (folder / "logs" / "slurm").glob("*_log.out"))
    assert "Requeued job" in log
    resumed = 0
    for run in (folder / "runs").iterdir():
        steps = metric_steps(run)
        assert steps == sorted(set(steps)) and steps[-1] == 3000
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "finished"
        resumed += bool(info["resumes"]) and info["resumes"][0]["step"] > 0
    assert resumed >= 1  # continued from a checkpoint, not from step 0


def release_requeued(job: str, seconds: float = 120) -> None:
    """SLURM holds a requeued job back for a while (reason BeginTime); the test cluster
    lets it start at once."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True,
                             text=True, timeout=30).stdout
        if "BeginTime" in out:
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"],
                           timeout=30, check=False)
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job} was not requeued within {seconds} s")


def test_slurm_unreachable_is_one_line(tmp_path, capsys, monkeypatch):
    path = study(tmp_path, steps=20)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    code = cli.main([str(path), "--executor", "slurm", "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no SLURM cluster reachable" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_bad_slurm_option_is_one_line(cluster, tmp_path, capsys):
    path = study(tmp_path, steps=20)
    code = cli.main([str(path), "--executor", "slurm", "--slurm-option", "account",
                     "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "KEY=VALUE" in err and len(err.strip().splitlines()) == 1
