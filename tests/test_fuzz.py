"""Fuzz: hostile flags, layouts and run directories against every command.

Hypothesis draws flags at and past the edges of their ranges, layouts with open borders,
and run directories damaged the ways a shared filesystem damages them (FIFOs, links to
/dev/zero or out of the run, hostile JSON, arrays of the wrong shape or dtype, swapped
or renamed checkpoints, garbage metric lines), then runs `allo train`, `--resume`,
`allo watch --once`, `allo render`, `allo compare` and `allo study` on them, and
concurrent writers. The property, for every case:

- the exit code is 0, 1 or 2; there is no traceback; a command never hangs (each is
  killed after COMMAND_TIMEOUT seconds, which fails the case);
- stderr holds at most one line per problem (notes and progress lines aside);
- a training that exits 0 trained the grid its layout file shows;
- every other run directory is byte-identical afterwards.

CI-sized by default (a few minutes on two cores; examples are derandomised, so CI sees
the same cases every time). To search longer and at random:

    ALLO_FUZZ_SCALE=20 ALLO_FUZZ_RANDOM=1 pytest tests/test_fuzz.py -s

ALLO_FUZZ_SCALE multiplies every test's number of examples; `-s` prints how many cases
each property ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainproc import SMALL_LAYOUT, TINY, layout_file, train_args, warm

from allo import rundir
from allo.config import TrainConfig
from allo.layouts import LayoutError, parse_layout

SCALE = max(1, int(os.environ.get("ALLO_FUZZ_SCALE", "1")))
COMMAND_TIMEOUT = 90.0
CASES: Counter[str] = Counter()
FINDINGS: list[str] = []


def fuzz(examples: int):
    return settings(max_examples=examples * SCALE, deadline=None, database=None,
                    derandomize=not os.environ.get("ALLO_FUZZ_RANDOM"),
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print(f"\nfuzz cases: {dict(CASES)} (total {sum(CASES.values())})")


# ----------------------------------------------------------------------- running


def run(*argv, cwd: Path | None = None):
    """One command on the warm server, killed (and failed) if it outlives the timeout."""
    proc = warm().start(*argv, cwd=cwd)
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while proc.alive():
        if time.monotonic() > deadline:
            proc.signal(signal.SIGKILL)
            proc.wait()
            pytest.fail(f"hang: allo {' '.join(map(str, argv))}")
        time.sleep(0.02)
    return proc.wait()


NOISE = ("allo: note:", "allo: warning:", "step ", "resume with:", "allo render:", "allo watch")


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if line.strip() and not line.lstrip().startswith(NOISE)]


def check(result, problems: int, what: str) -> None:
    """Exit 0/1/2, no traceback, at most one line per problem (and one to conclude)."""
    text = result.stdout + result.stderr
    what = what if len(what) < 300 else what[:300] + "..."
    assert result.code in (0, 1, 2), f"{what}: exit {result.code}\n{result.stderr[-2000:]}"
    assert "Traceback" not in text, f"{what}: traceback\n{result.stderr[-3000:]}"
    lines = problem_lines(result.stderr)
    assert len(lines) <= problems + 1, f"{what}: {len(lines)} lines for {problems}\n" + \
        "\n".join(lines)


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file's bytes (links as their targets) under `folder`."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = "-> " + os.readlink(path)
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# ----------------------------------------------------------------------- flags


def edges(f) -> list:
    low, high = f.metadata["bounds"]
    if isinstance(low, int):
        return [low, low - 1, high + 1, -(2**63), 2**64, 10**30]
    return [low, low - 1.0, high * 2 + 1, float("nan"), float("inf"), -float("inf"), 1e308]


RANGED = [f for f in TrainConfig.__dataclass_fields__.values() if f.metadata.get("bounds")]
# Values whose training is slow however small (they make a big problem): kept at low.
SLOW_AT_LOW = {"lr_warmup_steps", "num_gradient_steps"}


@st.composite
def flag_sets(draw):
    chosen = draw(st.lists(st.sampled_from(RANGED), min_size=1, max_size=3,
                           unique_by=lambda f: f.name))
    flags = []
    for f in chosen:
        value = draw(st.sampled_from(edges(f)))
        if f.name == "threads" and value == 0:
            value = 1
        flags += [f"--{f.name.replace('_', '-')}", repr(value) if isinstance(value, float)
                  else str(value)]
    flags += draw(st.sampled_from([[], ["--device", "gpu9"], ["--cuda-graph", "maybe"],
                                   ["--objective", "ggdo"], ["--seeds", "0-1"],
                                   ["--seeds", "3-1"], ["--seeds", "x"],
                                   ["--doors", "3", "--door-seed", "1"]]))
    return flags


def tiny_with(flags: list[str]) -> list[str]:
    """TINY, minus the flags the case sets itself (argparse keeps the last anyway)."""
    given_names = {flag for flag in flags if flag.startswith("--")}
    out, skip = [], False
    for token in TINY:
        if skip:
            skip = False
            continue
        if token in given_names:
            skip = True
            continue
        out.append(token)
    return out


@pytest.mark.slow
@fuzz(10)
@given(flags=flag_sets())
def test_flags_at_and_past_their_edges(tmp_path_factory, flags):
    CASES["flags"] += 1
    folder = tmp_path_factory.mktemp("flags")
    layout = layout_file(folder)
    # the case's own flags come last (argparse keeps the last of a repeated flag)
    steps = ["--steps", "20"] if "--num-gradient-steps" not in flags else []
    target = ["--run-dir", str(folder / "run{seed}" if "--seeds" in flags
                               else folder / "run")]
    result = run("train", "--env-file", layout, *target, *tiny_with(flags), *steps,
                 "--log-freq", "10", "--plot-freq", "10", "--checkpoint-freq", "10", *flags)
    check(result, 1, f"train {' '.join(flags)}")
    if result.code == 2:
        assert len(problem_lines(result.stderr)) == 1, result.stderr
    if result.code == 0:
        for line in result.stdout.splitlines()[-2:]:
            if Path(line).is_dir():
                assert_right_grid(Path(line), SMALL_LAYOUT)


def assert_right_grid(run_path: Path, text: str) -> None:
    """run.json, the ground truth and the final vectors describe the file's grid."""
    layout = parse_layout(text)
    env = rundir.RunReader(run_path).env()
    assert (env.width, env.height) == (layout.width, layout.height)
    assert env.free_cells == layout.free_cells
    values, vectors = rundir.RunReader(run_path).ground_truth()
    assert vectors.shape[0] == layout.num_free
    final = rundir.RunReader(run_path).final()
    assert final is None or final.shape[0] == layout.num_free


# ----------------------------------------------------------------------- layouts


@st.composite
def layouts(draw):
    """Small grids whose first or last rows may have no wall, with S and G sometimes."""
    height, width = draw(st.integers(2, 5)), draw(st.integers(2, 6))
    rows = [draw(st.text(alphabet="X X..#", min_size=width, max_size=width))
            for _ in range(height)]
    if draw(st.booleans()):
        rows[0] = " " * width
    if draw(st.booleans()):
        rows[-1] = "." * width
    cells = [(r, c) for r in range(height) for c in range(width)]
    for char in draw(st.sampled_from(["", "S", "G", "SG"])):
        r, c = draw(st.sampled_from(cells))
        rows[r] = rows[r][:c] + char + rows[r][c + 1:]
    around = draw(st.sampled_from(["", "\n", "\n\n"]))
    return around + "\n".join(rows) + draw(st.sampled_from(["", "\n", "\n\n"]))


@pytest.mark.slow
@fuzz(6)
@given(text=layouts())
def test_open_border_layouts_train_and_resume_their_own_grid(tmp_path_factory, text):
    CASES["layouts"] += 1
    folder = tmp_path_factory.mktemp("layout")
    path = layout_file(folder, text, "fuzzed.txt")
    result = run(*train_args(path, folder / "run", 20, "--num-eigenvectors", "2"))
    check(result, 1, f"train on {text!r}")
    try:
        parse_layout(text)
    except LayoutError:
        assert result.code == 2
        return
    if result.code != 0:
        return  # e.g. fewer reachable cells than eigenvectors: one line, checked above
    assert_right_grid(folder / "run", text)
    resumed = run("train", "--resume", folder / "run", "--steps", "40")
    check(resumed, 1, f"resume on {text!r}")
    assert resumed.code in (0, 1), resumed.stderr
    assert_right_grid(folder / "run", text)


# ----------------------------------------------------------------------- run directories


@pytest.fixture(scope="module")
def base_runs(tmp_path_factory):
    """A finished run with figures, and a sibling of another seed (never to change)."""
    folder = tmp_path_factory.mktemp("fuzzbase")
    layout = layout_file(folder)
    for name, seed in (("base", "3"), ("sibling", "4")):
        result = warm().run(*train_args(layout, folder / name, 40, "--seed", seed))
        assert result.code == 0, result.stderr
    assert warm().run("render", folder / "base", "--format", "svg", "--jobs", "1",
                      "--quiet").code == 0
    return folder / "base", folder / "sibling"


FILES = [rundir.RUN_JSON, rundir.METRICS_JSONL, rundir.GT_EIGENVALUES, rundir.GT_EIGENVECTORS,
         rundir.FINAL_LEARNED, rundir.export_name(40), "checkpoints/checkpoint_step_40.pt",
         "plots/.drawn-with.json", rundir.METRICS_HISTORY]
DEEP = "[" * 50_000 + "]" * 50_000


def hostile_json(kind: str, info: dict) -> str:
    if kind == "deep":
        return json.dumps(info)[:-1] + ', "x": ' + DEEP + "}"
    if kind == "garbage":
        return "\x00\xff{{{not json"
    if kind == "huge_int":
        return json.dumps({**info, "step": 10**5000 if False else 1}).replace(
            '"step": 1', '"step": ' + "9" * 5000)
    if kind == "nan":
        return json.dumps(info).replace('"gamma": 0.8', '"gamma": NaN')
    key, value = kind.split("=", 1)
    edited = json.loads(json.dumps(info))
    target = edited
    *parents, last = key.split(".")
    for part in parents:
        target = target[part]
    target[last] = json.loads(value)
    return json.dumps(edited)


JSON_KINDS = ["deep", "garbage", "huge_int", "nan", 'budget="lots"', "step=-5",
              'status=["running"]', "env.width=100000", "env.free_cells=[[0, 0], [99, 99]]",
              'env.layout=7', "env.free_cells=[]", 'config.hidden_size=1000000000000',
              'config.seed="0"', "config.num_eigenvectors=0", "d=10000", "resumes=5",
              'env.doors=[{"from": [0, 0], "to": "x"}]', "format_version=99",
              'ground_truth={"blocks": [[0, 99999]]}']


def bad_array(kind: str, good: np.ndarray) -> np.ndarray | bytes:
    return {"shape": np.zeros((good.shape[0] + 3, *good.shape[1:])),
            "ndim": np.zeros(5), "complex": good.astype(np.complex128),
            "string": np.array(["a"] * good.shape[0]), "float16": good.astype(np.float16),
            "nan": np.full(good.shape, np.nan), "empty": np.zeros((0, 0)),
            "truncated": b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, "
                         b"'shape': (14, 3), }" + b" " * 40 + b"\n" + b"\x00" * 8,
            "object": np.array([{"x": 1}] * 3, dtype=object)}[kind]


@st.composite
def damages(draw):
    """A list of (kind, file, detail) damages for one run directory."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["fifo", "devzero", "outside", "json", "array", "swap",
                                     "rename", "metrics", "delete", "drawn"]))
        name = draw(st.sampled_from(FILES))
        detail = {"json": st.sampled_from(JSON_KINDS),
                  "array": st.sampled_from(["shape", "ndim", "complex", "string", "float16",
                                            "nan", "empty", "truncated", "object"]),
                  "metrics": st.sampled_from(["garbage", "strings", "huge_line", "nul"])
                  }.get(kind, st.just(""))
        out.append((kind, name, draw(detail)))
    return out


def damage(run_path: Path, sibling: Path, kind: str, name: str, detail: str) -> None:
    path = run_path / name
    if kind in ("fifo", "devzero", "outside", "delete"):
        if path.exists() or path.is_symlink():
            path.unlink()
        path.parent.mkdir(exist_ok=True)
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "devzero":
            os.symlink("/dev/zero", path)
        elif kind == "outside":
            os.symlink(sibling / name, path)
    elif kind == "json":
        info = json.loads((run_path / rundir.RUN_JSON).read_text()) if (
            run_path / rundir.RUN_JSON).is_file() and not (
            run_path / rundir.RUN_JSON).is_symlink() else {}
        try:
            text = hostile_json(detail, info)
        except (KeyError, TypeError, json.JSONDecodeError):
            text = "{}"
        target = path if name.endswith(".json") else run_path / rundir.RUN_JSON
        if target.is_symlink() or not target.parent.is_dir():
            return
        target.write_text(text, errors="surrogateescape")
    elif kind == "array":
        target = path if name.endswith(".npy") else run_path / rundir.GT_EIGENVECTORS
        if target.is_symlink() or not target.parent.is_dir():
            return
        good = np.zeros((14, 3))
        value = bad_array(detail, good)
        if isinstance(value, bytes):
            target.write_bytes(value)
        else:
            with open(target, "wb") as handle:
                np.save(handle, value, allow_pickle=True)
    elif kind == "swap":
        for source in sorted((sibling / rundir.CHECKPOINTS).glob("*.pt")):
            shutil.copy(source, run_path / rundir.CHECKPOINTS / source.name)
    elif kind == "rename":
        ckpts = sorted((run_path / rundir.CHECKPOINTS).glob("checkpoint_step_*.pt"))
        if ckpts and not ckpts[0].is_symlink():
            ckpts[0].rename(run_path / rundir.CHECKPOINTS / "checkpoint_step_999.pt")
    elif kind == "metrics":
        target = run_path / rundir.METRICS_JSONL
        if target.is_symlink() or not target.is_file():
            return
        extra = {"garbage": b"{not json\n[1,2]\n", "strings": b'{"step": "40"}\n',
                 "huge_line": b'{"step": 41, "x": "' + b"a" * 3_000_000 + b'"}\n',
                 "nul": b"\x00" * 1000 + b"\n"}[detail]
        with open(target, "ab") as handle:
            handle.write(extra)
    elif kind == "drawn":
        record = run_path / rundir.PLOTS / ".drawn-with.json"
        if record.parent.is_dir() and not record.is_symlink():
            record.write_text(DEEP)


@pytest.mark.slow
@fuzz(10)
@given(plan=damages(), command=st.sampled_from(["watch", "render", "compare", "resume"]))
def test_damaged_run_directories(base_runs, tmp_path_factory, plan, command):
    CASES[f"rundir/{command}"] += 1
    base, sibling = base_runs
    before = tree_digest(sibling)
    folder = tmp_path_factory.mktemp("damaged")
    target = Path(shutil.copytree(base, folder / "run", symlinks=True))
    for kind, name, detail in plan:
        damage(target, sibling, kind, name, detail)
    argv = {"watch": ["watch", target, "--once"],
            "render": ["render", target, "--format", "text", "--jobs", "1", "--quiet"],
            "compare": ["compare", target, sibling, "--format", "svg", "--out",
                        folder / "cmp"],
            "resume": ["train", "--resume", target, "--steps", "60"]}[command]
    result = run(*argv, cwd=folder)
    # a resume may skip each of the two checkpoints in a line of its own
    check(result, len(plan) + (2 if command == "resume" else 0), f"{command} after {plan}")
    if command == "resume" and result.code == 0:
        assert_right_grid(target, SMALL_LAYOUT)
    assert tree_digest(sibling) == before, f"{command} after {plan} changed another run"


# ----------------------------------------------------------------------- concurrency


@pytest.mark.slow
@fuzz(2)
@given(writers=st.integers(2, 3))
def test_concurrent_resumes_one_writes(base_runs, tmp_path_factory, writers):
    CASES["concurrent"] += 1
    base, sibling = base_runs
    target = Path(shutil.copytree(base, tmp_path_factory.mktemp("conc") / "run"))
    procs = [warm().start("train", "--resume", target, "--steps", "400")
             for _ in range(writers)]
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while any(p.alive() for p in procs):
        if time.monotonic() > deadline:
            for p in procs:
                p.signal(signal.SIGKILL)
            pytest.fail("hang: concurrent resumes")
        time.sleep(0.02)
    results = [p.wait() for p in procs]
    codes = sorted(r.code for r in results)
    assert codes.count(0) == 1 and codes.count(2) == writers - 1, codes
    for result in results:
        check(result, 1, "concurrent resume")
    steps = [row["step"] for row in rundir.RunReader(target).metrics()]
    assert steps == sorted(set(steps)) and steps[-1] == 400


# ----------------------------------------------------------------------- studies


@pytest.mark.slow
@fuzz(5)
@given(text=st.one_of(
    st.text(max_size=200),
    st.sampled_from([
        "[study]\nname = 'x'\n" + "a = " + "[" * 5000 + "]" * 5000,
        "name = 'fz'\nlayouts = ['room4']\nseeds = 100000000\n",
        "name = 'fz'\nlayouts = ['room4']\nseeds = -3\n[options]\nsteps = 1e400\n",
        "name = '../../escape'\nlayouts = ['room4']\n",
        "name = 'fz'\nlayouts = ['/dev/zero']\n",
        "name = 'fz'\n[options]\nhidden_size = 100000000000\n",
    ])))
def test_hostile_study_files(tmp_path_factory, text):
    CASES["study"] += 1
    folder = tmp_path_factory.mktemp("study")
    path = folder / "study.toml"
    path.write_text(text, errors="surrogateescape")
    result = run("study", path, "--dry-run", "--results-dir", folder / "results", cwd=folder)
    check(result, 1, f"study {text[:60]!r}")
    escaped = [p for p in folder.parent.iterdir() if p.name == "escape"]
    assert not escaped
