"""Benchmark `allo watch`: first paint, new-row latency, idle CPU, long-run memory.

Runs the real command in a pseudo-terminal (so it takes the dashboard path, not the
summary), against synthetic runs (no torch). Not a test: prints a table and writes
benchmarks/results/watch.json.

    python benchmarks/bench_watch.py [--repeats 5]
    python benchmarks/bench_watch.py --runs 300   # a folder of many runs: the runs table

`--runs N` writes benchmarks/results/watch_runs.json: time to the runs table's first
frame listing all N runs, idle CPU of the dashboard over N quiet runs, the cost of one
poll when 0, 1, 10 or 100 runs changed (in-process, tui.tracker.FolderWatcher), and the
memory the trackers hold after loading every run's metrics.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from machine import describe as machine_facts  # noqa: E402
from synthetic import SyntheticRun  # noqa: E402

from allo import rundir  # noqa: E402

TARGET_FIRST_PAINT = 1.0  # seconds, issue 4
TARGET_ROW_LATENCY = 1.0


class Dashboard:
    """`allo watch RUN` in a pty of a given size; collects everything it draws."""

    def __init__(self, run: Path, size: tuple[int, int] = (100, 30)):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
        env.pop("NO_COLOR", None)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "allo.cli", "watch", str(run)],
            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.screen = b""

    def wait_for(self, needle: bytes, timeout: float = 10.0) -> float | None:
        """Seconds (perf_counter) when `needle` first shows up in new output."""
        start_len = len(self.screen)
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            ready, _, _ = select.select([self.master], [], [], 0.01)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    return None
                self.screen += chunk
                if needle in self.screen[max(0, start_len - len(needle)) :]:
                    return time.perf_counter()
        return None

    def drain(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:
                    return

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        os.close(self.master)


def bench_first_paint(run: Path, repeats: int) -> tuple[list[float], list[float]]:
    """(first frame, first frame showing the run's status) after starting the command."""
    frames, statuses, cpu = [], [], []
    for _ in range(repeats):
        dash = Dashboard(run)
        try:
            frame = dash.wait_for(b"allo watch", timeout=15)  # the overview's title
            status = dash.wait_for(b"RUNNING", timeout=15)
            cpu.append(dash.cpu_seconds())  # what the start cost, whatever the machine's load
            frames.append((frame - dash.started) if frame else float("nan"))
            statuses.append((status - dash.started) if status else float("nan"))
        finally:
            dash.close()
    return frames, statuses, cpu


def bench_row_latency(run: SyntheticRun, repeats: int) -> tuple[list[float], float]:
    dash = Dashboard(run.path)
    latencies = []
    try:
        dash.wait_for(b"RUNNING", timeout=15)
        dash.drain(2.0)  # let plotext load and the first frames settle
        cpu0, t0 = dash.cpu_seconds(), time.perf_counter()
        dash.drain(5.0)  # nothing changes: the app should be idle
        idle_cpu = (dash.cpu_seconds() - cpu0) / (time.perf_counter() - t0)
        for i in range(repeats):
            step = 500_000 + 1_000 * i + 7  # unique text: "step 500,007/"
            run.writer.append_metrics({"step": step, "time": 1.0, "sps": 100.0, "cos/mean": 0.5})
            appended = time.perf_counter()
            run.writer.update_info(step=step, heartbeat=time.time())
            seen = dash.wait_for(f"{step:,}/".encode(), timeout=10)
            latencies.append((seen - appended) if seen else float("nan"))
            dash.drain(0.3 + 0.17 * i % 0.5)  # land at different phases of the poll
    finally:
        dash.close()
    return latencies, idle_cpu


def bench_long_run(rows: int) -> dict:
    """Load a long metrics file the way the watcher does; report time and points kept."""
    from tui.series import MetricStore, rows_to_columns

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / rundir.METRICS_JSONL
        template = {
            "time": 1.0, "sps": 100.0, "loss/total": 1.0, "loss/graph": 0.5, "loss/dual": -0.1,
            "loss/barrier": 0.01, "orth/error": 0.1, "grad/norm": 0.3, "barrier/coef": 1.0,
            "eig/estimate": [0.1] * 10, "eig/abs_error": [0.01] * 10, "cos/per_vector": [0.9] * 10,
            "cos/mean": 0.9, "eig/mean_abs_error": 0.01, "eig/mean_rel_error": 0.1,
        }  # fmt: skip
        with open(path, "w") as handle:
            for step in range(rows):
                handle.write(json.dumps({"step": step, **template}) + "\n")
        size_mb = path.stat().st_size / 1e6
        start = time.perf_counter()
        tail = rundir.MetricsTail(path)
        found, _ = tail.read_new()
        store = MetricStore()
        for begin in range(0, len(found), 5000):
            chunk = found[begin : begin + 5000]
            steps, columns = rows_to_columns(chunk)
            store.add_columns(steps, columns)
        seconds = time.perf_counter() - start
        kept = max(len(s) for s in store.series.values())
        nbytes = sum(
            s._steps.nbytes + s._values.nbytes + s._index.nbytes for s in store.series.values()
        )
    return {"rows": rows, "file_mb": round(size_mb, 1), "load_s": round(seconds, 2),
            "points_kept_per_series": kept, "store_mb": round(nbytes / 1e6, 2)}  # fmt: skip


def first_paint_only(repeats: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        run = SyntheticRun(Path(tmp) / "room4" / "run", layout="room4", d=8, total_steps=10_000_000)
        run.advance(2000, log_freq=10, export_freq=1000)
        load = os.getloadavg()[0]
        frames, first, cpu = bench_first_paint(run.path, repeats)
    print(f"{'measure':<34}{'median':>9}{'min':>9}{'max':>9}")
    for name, values in (("first frame (s)", frames), ("first paint with run status (s)", first),
                         ("  CPU time used until then (s)", cpu)):  # fmt: skip
        print(f"{name:<34}{statistics.median(values):>9.3f}{min(values):>9.3f}{max(values):>9.3f}")
    print(f"load average before / after: {load:.1f} / {os.getloadavg()[0]:.1f}")
    return 0


def make_folder(root: Path, runs: int, rows: int) -> Path:
    """`runs` run directories (run.json and `rows` metrics rows each), written directly."""
    template = SyntheticRun(root / "template", d=4, total_steps=rows * 10)
    info = json.loads((template.path / "run.json").read_text())
    row = {"time": 0.0, "sps": 100.0, "cos/mean": 0.9, "cos_strict/mean": 0.9,
           "loss/total": 1.0, "loss/graph": 0.5, "loss/dual": -0.1, "loss/barrier": 0.01,
           "orth/error": 0.1, "grad/norm": 1.0, "barrier/coef": 0.5,
           "eig/mean_abs_error": 0.01, "eig/mean_rel_error": 0.1,
           "cos/per_vector": [0.9] * 4, "eig/estimate": [0.0, 0.1, 0.2, 0.3]}  # fmt: skip
    folder = root / "study"
    for i in range(runs):
        path = folder / f"layout{i % 2}" / f"obj{i // 2 % 2}" / f"seed{i // 4}"
        path.mkdir(parents=True)
        info["config"] = {**info["config"], "seed": i // 4, "objective": f"obj{i // 2 % 2}"}
        (path / "run.json").write_text(json.dumps({**info, "seed": i // 4}))
        with open(path / "metrics.jsonl", "w") as handle:
            for k in range(1, rows + 1):
                line = {**row, "step": 10 * k, "time": k / 10, "cos/mean": 1 - 0.5 / k}
                handle.write(json.dumps(line) + "\n")
    return folder


def bench_many_runs(runs: int, rows: int, repeats: int) -> dict:
    import gc
    import tracemalloc

    from tui.tracker import FolderWatcher

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp), runs, rows)
        firsts, idle = [], []
        for _ in range(repeats):
            dash = Dashboard(folder)
            try:
                shown = dash.wait_for(f"{runs} runs".encode(), timeout=30)
                firsts.append((shown - dash.started) if shown else float("nan"))
                settle_end = time.perf_counter() + 90  # every run's metrics read first
                while time.perf_counter() < settle_end:
                    cpu0, t0 = dash.cpu_seconds(), time.perf_counter()
                    dash.drain(2.0)
                    if (dash.cpu_seconds() - cpu0) / (time.perf_counter() - t0) < 0.3:
                        break
                cpu0, t0 = dash.cpu_seconds(), time.perf_counter()
                dash.drain(5.0)
                idle.append((dash.cpu_seconds() - cpu0) / (time.perf_counter() - t0))
            finally:
                dash.close()
        gc.collect()
        watcher = FolderWatcher(folder)
        started = time.perf_counter()
        watcher.poll()
        load_s = time.perf_counter() - started
        tracemalloc.start()  # a second read for the memory only: tracing slows it
        traced = FolderWatcher(folder)
        traced.poll()
        memory_mb = tracemalloc.get_traced_memory()[0] / 1e6
        del traced
        tracemalloc.stop()
        trackers = list(watcher.trackers.values())
        poll_ms = {}
        for changed in (0, 1, 10, 100):
            times = []
            for rep in range(5):
                for tracker in trackers[:changed]:
                    with open(tracker.path / "metrics.jsonl", "a") as handle:
                        step = 10 * (rows + 1 + rep)
                        handle.write(json.dumps({"step": step, "time": step / 100,
                                                 "cos/mean": 0.99}) + "\n")
                started = time.perf_counter()
                got = watcher.poll()
                times.append(1000 * (time.perf_counter() - started))
                assert len(got) == changed
            poll_ms[str(changed)] = round(statistics.median(times), 2)
        points = max(len(t.get("cos/mean")[0]) for t in trackers)
    return {
        "runs": runs, "rows_per_run": rows,
        "first_frame_with_all_runs_s": {"median": statistics.median(firsts), "max": max(firsts),
                                        "all": firsts},
        "idle_cpu_fraction": statistics.median(idle),
        "first_full_read_s": round(load_s, 2),
        "poll_ms_by_changed_runs": poll_ms,
        "tracker_memory_mb": round(memory_mb, 1),
        "points_kept_per_series": points,
    }  # fmt: skip


def many_runs_main(runs: int, rows: int, repeats: int) -> int:
    result = {"machine": {**machine_facts(), "platform": platform.platform()},
              **bench_many_runs(runs, rows, repeats), "load_average_1min": os.getloadavg()[0],
              "targets": {"first_frame_with_all_runs_s": TARGET_FIRST_PAINT}}
    out = REPO / "benchmarks" / "results" / "watch_runs.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    first = result["first_frame_with_all_runs_s"]
    print(f"{runs} runs x {rows} rows: runs table listing all of them after "
          f"{first['median']:.2f} s median, {first['max']:.2f} s max (target <= 1 s)")
    print(f"idle CPU {result['idle_cpu_fraction']:.3f} of a core; first full read "
          f"{result['first_full_read_s']} s; trackers hold {result['tracker_memory_mb']} MB "
          f"({result['points_kept_per_series']} points per series at most)")
    print("one poll, by runs changed: " + ", ".join(
        f"{k}: {v} ms" for k, v in result["poll_ms_by_changed_runs"].items()))
    print(f"load average {result['load_average_1min']:.1f}; wrote {out.relative_to(REPO)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--long-rows", type=int, default=200_000)
    parser.add_argument(
        "--first-paint-only",
        action="store_true",
        help="measure only the first paint (quick A/B of start-up changes); writes nothing",
    )
    parser.add_argument("--runs", type=int, default=0,
                        help="benchmark the runs table over a folder of this many runs")
    parser.add_argument("--rows", type=int, default=2000, help="metrics rows per run (--runs)")
    args = parser.parse_args()
    if args.runs:
        return many_runs_main(args.runs, args.rows, args.repeats)
    if args.first_paint_only:
        return first_paint_only(args.repeats)

    with tempfile.TemporaryDirectory() as tmp:
        run = SyntheticRun(Path(tmp) / "room4" / "run", layout="room4", d=8, total_steps=10_000_000)
        run.advance(2000, log_freq=10, export_freq=1000)
        frames, first, start_cpu = bench_first_paint(run.path, args.repeats)
        latencies, idle_cpu = bench_row_latency(run, max(5, args.repeats * 2))
    long_run = bench_long_run(args.long_rows)

    results = {
        "machine": {**machine_facts(), "platform": platform.platform()},
        "first_frame_s": {"median": statistics.median(frames), "max": max(frames), "all": frames},
        "first_paint_s": {"median": statistics.median(first), "max": max(first), "all": first},
        "first_paint_cpu_s": {"median": statistics.median(start_cpu), "max": max(start_cpu)},
        "load_average_1min": os.getloadavg()[0],
        "new_row_latency_s": {"median": statistics.median(latencies), "max": max(latencies),
                              "all": latencies},
        "idle_cpu_fraction": idle_cpu,
        "long_run": long_run,
        "targets": {"first_paint_s": TARGET_FIRST_PAINT, "new_row_latency_s": TARGET_ROW_LATENCY},
    }  # fmt: skip
    out = REPO / "benchmarks" / "results" / "watch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    def verdict(value: float, target: float) -> str:
        return "ok" if np.isfinite(value) and value <= target else "MISSED"

    print(f"{'measure':<34}{'median':>9}{'max':>9}  target")
    print(
        f"{'first frame (s)':<34}{results['first_frame_s']['median']:>9.3f}"
        f"{results['first_frame_s']['max']:>9.3f}"
    )
    print(
        f"{'first paint with run status (s)':<34}{results['first_paint_s']['median']:>9.3f}"
        f"{results['first_paint_s']['max']:>9.3f}  <= {TARGET_FIRST_PAINT} "
        f"{verdict(results['first_paint_s']['max'], TARGET_FIRST_PAINT)}"
    )
    print(
        f"{'  CPU time used until then (s)':<34}{results['first_paint_cpu_s']['median']:>9.3f}"
        f"{results['first_paint_cpu_s']['max']:>9.3f}"
    )
    print(
        f"{'new metrics row on screen (s)':<34}{results['new_row_latency_s']['median']:>9.3f}"
        f"{results['new_row_latency_s']['max']:>9.3f}  <= {TARGET_ROW_LATENCY} "
        f"{verdict(results['new_row_latency_s']['max'], TARGET_ROW_LATENCY)}"
    )
    print(f"{'idle CPU (fraction of one core)':<34}{idle_cpu:>9.3f}")
    print(
        f"long run: {long_run['rows']:,} rows ({long_run['file_mb']} MB) loaded in "
        f"{long_run['load_s']} s; {long_run['points_kept_per_series']} points kept per series "
        f"({long_run['store_mb']} MB)"
    )
    print(
        f"load average during the run: {results['load_average_1min']:.1f} "
        f"on {os.cpu_count()} CPUs (wall times grow with it)"
    )
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
