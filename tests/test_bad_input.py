"""Garbage in: every bad file is one line naming it, never a traceback (issue 6, item 4).

Property-based (hypothesis) against the readers and the CLI. Readers raise RunDirError
or LayoutError with one line; `allo train --env-file` and a bad run.json at `allo render`
exit 2; a bad data file costs `allo render` only the figures drawn from it (exit 1, the
renderer's documented contract) while the good files beside it are still drawn.
"""

from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic import make_run
from trainproc import one_line_error

from allo import rundir
from allo.layouts import MAX_FILE_BYTES, MAX_SIDE, LayoutError, load_layout_file
from renderers import command

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=int(os.environ.get("ALLO_HYPOTHESIS_SLOW", "12")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def render(capsys, run, *args) -> tuple[int, str, str]:
    code = command.main([str(run), "--format", "text", "--jobs", "1", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("good") / "run", d=3, total_steps=100, exports=3)


@pytest.fixture
def run(good_run, tmp_path):
    return shutil.copytree(good_run, tmp_path / "run", dirs_exist_ok=True)


# --------------------------------------------------------------------------- layouts

layout_text = st.text(alphabet=st.sampled_from(list("X# .SG\t\r\n?é\x00")), max_size=300)


@FAST
@given(data=st.one_of(st.binary(max_size=400), layout_text.map(str.encode)))
def test_layout_file_parses_or_says_why_in_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("layout") / "mine.txt"
    path.write_bytes(data)
    try:
        layout = load_layout_file(path)
    except LayoutError as err:
        message = str(err)
        assert "\n" not in message and "mine" in message
        return
    assert layout.num_free >= 1 and layout.free_cells


def test_layout_limits(tmp_path):
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    with pytest.raises(LayoutError, match="larger than"):
        load_layout_file(huge)
    wide = tmp_path / "wide.txt"
    wide.write_text("X" * (MAX_SIDE + 3) + "\n X\n")
    with pytest.raises(LayoutError, match=f"limit is {MAX_SIDE}x{MAX_SIDE} cells .*, 3 over"):
        load_layout_file(wide)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("XXXX\nX\nX  X\n")
    assert load_layout_file(ragged).width == 4  # padded with free cells


@SLOW
@given(data=st.binary(max_size=200))
def test_train_env_file_garbage_is_exit_2_or_trains(tmp_path_factory, capsys, data):
    from allo import train_cli

    folder = tmp_path_factory.mktemp("cli")
    path = folder / "garbage.txt"
    path.write_bytes(data)
    code = train_cli.main(["--env-file", str(path), "--run-dir", str(folder / "run"),
                           "--steps", "0", "--num-envs", "4", "--num-steps", "10",
                           "--num-eigenvectors", "1", "--hidden-size", "4",
                           "--hidden-layers", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code != 0:
        assert code == 2 and one_line_error(err) and "garbage" in err, err


# --------------------------------------------------------------------------- metrics.jsonl

metric_lines = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b'{"step": 1, "loss/total": NaN}', b'{"step": 2, "cos/mean": Infinity}',
                         b'{"step": "3"}', b"[1, 2]", b'{"step": 4, "cos/per_vector": [1e999]}',
                         b'{"step": 5, "eig/estimate": "x"}', b"\xff\xfe", b'{"step": 6,',
                         b'{"step": 7, "cos/per_vector": [null, 0.5, "a"]}']),
    ),
    max_size=8,
)


@FAST
@given(lines=metric_lines, tail=st.binary(max_size=20))
def test_metrics_reader_never_raises(tmp_path_factory, lines, tail):
    path = tmp_path_factory.mktemp("m") / rundir.METRICS_JSONL
    path.write_bytes(b"\n".join(lines) + b"\n" + tail)
    rows, problems = rundir.read_metrics_file(path)
    assert all(isinstance(r["step"], int) for r in rows)
    assert all("\n" not in p for p in problems)
    tail_rows, _ = rundir.MetricsTail(path).read_new()
    assert tail_rows == rows
    for key in ("loss/total", "cos/mean"):
        rundir.series(rows, key)
    rundir.vector_series(rows, "cos/per_vector")


@pytest.mark.slow
@SLOW
@given(lines=metric_lines)
def test_render_survives_garbage_metrics(capsys, run, lines):
    good = (run / rundir.METRICS_JSONL).read_bytes()
    (run / rundir.METRICS_JSONL).write_bytes(good + b"\n".join(lines) + b"\n")
    code, out, err = render(capsys, run, "--skip-learned", "--skip-ground-truth",
                            "--skip-comparison")
    assert code in (0, 1) and "Traceback" not in err, err
    lines_err = [line for line in err.splitlines() if "warning" in line]
    assert len(lines_err) <= 1


# --------------------------------------------------------------------------- run.json

def _mutations(info: dict):
    keys = sorted(info)
    return st.one_of(
        st.sampled_from(keys).map(lambda k: {x: v for x, v in info.items() if x != k}),
        st.tuples(st.sampled_from(keys), st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                                   st.lists(st.integers(), max_size=3),
                                                   st.floats(allow_nan=False)))
        .map(lambda kv: {**info, kv[0]: kv[1]}),
        st.integers(min_value=2, max_value=10**6).map(lambda v: {**info, "format_version": v}),
        st.sampled_from(["env"]).flatmap(
            lambda _: st.sampled_from(sorted(info["env"])).flatmap(
                lambda k: st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=3),
                                    st.lists(st.lists(st.integers(-3, 20), max_size=3),
                                             max_size=3))
                .map(lambda v: {**info, "env": {**info["env"], k: v}}))),
    )


@pytest.fixture(scope="module")
def good_info(good_run):
    return json.loads((good_run / rundir.RUN_JSON).read_text())


@SLOW
@given(data=st.data())
def test_render_bad_run_json_is_exit_2_one_line_or_draws(capsys, run, good_info, data):
    info = data.draw(_mutations(good_info))
    (run / rundir.RUN_JSON).write_text(json.dumps(info))
    code, out, err = render(capsys, run, "--latest-only")
    assert "Traceback" not in err, err
    if code == 2:
        assert one_line_error(err) and "run.json" in err, err
    else:
        assert code in (0, 1), err
        assert all(line.startswith("allo render:") for line in err.splitlines()), err


@pytest.mark.parametrize("text", ["", "{", "\xff", "null", "[]", '{"format_version": "1"}',
                                  '{"format_version": 2}', '{"format_version": 1}'])
def test_run_json_reader(tmp_path, text):
    (tmp_path / rundir.RUN_JSON).write_bytes(text.encode("utf-8", "surrogateescape")
                                             if text != "\xff" else b"\xff")
    with pytest.raises(rundir.RunDirError) as caught:
        rundir.RunReader(tmp_path).env()
    assert "\n" not in str(caught.value) and "run.json" in str(caught.value)


# --------------------------------------------------------------------------- .npy

def _npy_bytes(array, pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=pickle)
    return buffer.getvalue()


npy_payloads = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=120).map(lambda b: b"\x93NUMPY\x01\x00" + b),  # a mangled header
    st.builds(lambda b, n: _npy_bytes(np.zeros((14, 3)))[: max(n, 0)] + b,
              st.binary(max_size=10), st.integers(0, 300)),
    st.sampled_from([
        _npy_bytes(np.zeros((14,))),
        _npy_bytes(np.zeros((14, 3, 2))),
        _npy_bytes(np.array(["a", "b"])),
        _npy_bytes(np.zeros((14, 3), dtype=complex)),
        _npy_bytes(np.array([{"a": 1}], dtype=object), pickle=True),
        _npy_bytes(np.zeros((2, 3))),
        _npy_bytes(np.zeros(3, dtype=[("x", "f4")])),
    ]),
)


@FAST
@given(payload=npy_payloads)
def test_load_npy_refuses_in_one_line(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("npy") / "learned_eigenvectors_step_5.npy"
    path.write_bytes(payload)
    try:
        array = rundir.load_npy(path, ndim=2)
    except rundir.RunDirError as err:
        assert "\n" not in str(err) and "learned_eigenvectors_step_5.npy" in str(err)
        return
    assert array.ndim == 2 and array.dtype == np.float64


@SLOW
@given(payload=npy_payloads)
def test_render_bad_export_fails_only_its_figure(capsys, run, payload):
    steps = rundir.RunReader(run).export_steps()
    bad = run / rundir.export_name(steps[-1])
    bad.write_bytes(payload)
    code, out, err = render(capsys, run, "--steps", ",".join(map(str, steps)),
                            "--skip-metrics", "--skip-comparison", "--quiet")
    assert "Traceback" not in err, err
    good_figures = [f"step {s}" for s in steps[:-1]]
    assert all(name in out for name in good_figures) or not good_figures
    if code == 1:
        assert one_line_error(err) and bad.name in err, err
    else:
        assert code == 0


def test_pickled_npy_is_refused_by_name(tmp_path):
    path = tmp_path / rundir.GT_EIGENVALUES
    path.write_bytes(_npy_bytes(np.array([{"a": 1}], dtype=object), pickle=True))
    with pytest.raises(rundir.RunDirError, match="pickled objects; refused"):
        rundir.load_npy(path)
