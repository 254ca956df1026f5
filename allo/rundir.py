"""The run directory: the one contract between trainer, renderers and TUI.

Only the standard library is imported here (numpy loads inside the functions that
handle arrays), so `allo watch` can paint its first frame from run.json alone, and
`allo render --format text` start fast over SSH. docs/run-format.md documents every
file; this module is its executable form.

Rules kept here: every file but metrics.jsonl is written to a temporary name and renamed
into place; metrics.jsonl is appended and flushed one complete line at a time; nothing is
ever unpickled; checkpoints and exports are ordered by step number, never by file name.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from stat import S_ISREG
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypedDict, cast

from allo import runlock, safeio

if TYPE_CHECKING:
    import numpy as np


FORMAT_VERSION = 1
RUN_JSON = "run.json"
METRICS_JSONL = "metrics.jsonl"
METRICS_HISTORY = "metrics_history.json"
GT_EIGENVALUES = "gt_eigenvalues.npy"
GT_EIGENVECTORS = "gt_eigenvectors.npy"
# Only where the eigenspace of lambda_d continues past d: its remaining eigenpairs, so a
# learned vector of that eigenspace is scored against all of it (allo.metrics).
GT_COMPLETION_VALUES = "gt_completion_eigenvalues.npy"
GT_COMPLETION_VECTORS = "gt_completion_eigenvectors.npy"
FINAL_LEARNED = "final_learned_eigenvectors.npy"
CHECKPOINTS = "checkpoints"
PLOTS = "plots"
# Without --num-envs a seed's data set starts at this many environments and may grow
# (allo/dataset.py); budget.data_ceiling_before_growth is the ceiling at this size, and
# config.num_envs the grown size (so a resume collects the same data).
BASE_NUM_ENVS = 4000
# A running run whose heartbeat is older than this many seconds is shown as stalled.
STALL_SECONDS = 120.0


class Status(str, enum.Enum):
    """A run's status: the first four are what run.json holds; readers derive the last two.

    A str, so JSON and comparisons with plain strings ("running") stay as they were."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    STALLED = "stalled"  # derived: running, but the heartbeat is older than STALL_SECONDS
    UNKNOWN = "unknown"  # derived: run.json's status is none of the written ones

    def __str__(self) -> str:
        return self.value


STATUSES = (Status.RUNNING, Status.FINISHED, Status.FAILED, Status.INTERRUPTED)


class Metric:
    """Keys of a metrics.jsonl row (docs/run-format.md, "metrics.jsonl")."""

    STEP = "step"
    TIME = "time"
    SPS = "sps"
    LOSS_TOTAL = "loss/total"
    LOSS_GRAPH = "loss/graph"
    LOSS_DUAL = "loss/dual"
    LOSS_BARRIER = "loss/barrier"
    ORTH_ERROR = "orth/error"
    GRAD_NORM = "grad/norm"
    BARRIER_COEF = "barrier/coef"
    DUAL_DIAG = "dual/diag"
    EIG_ESTIMATE = "eig/estimate"
    EIG_ABS_ERROR = "eig/abs_error"
    EIG_MEAN_ABS_ERROR = "eig/mean_abs_error"
    EIG_MEAN_REL_ERROR = "eig/mean_rel_error"
    EIG_RAYLEIGH = "eig/rayleigh"
    EIG_RAYLEIGH_MEAN_REL_ERROR = "eig/rayleigh_mean_rel_error"
    COS_PER_VECTOR = "cos/per_vector"
    COS_MEAN = "cos/mean"
    COS_STRICT_PER_VECTOR = "cos_strict/per_vector"
    COS_STRICT_MEAN = "cos_strict/mean"


# One metrics.jsonl row. Keys hold slashes, hence the functional form; every key but
# "step" may be missing (GGDO has no duals) and any float may be null (non-finite).
MetricsRow = TypedDict("MetricsRow", {
    "step": int, "time": float, "sps": float,
    "loss/total": float | None, "loss/graph": float | None, "loss/dual": float | None,
    "loss/barrier": float | None, "orth/error": float | None, "grad/norm": float | None,
    "barrier/coef": float | None, "dual/diag": list[float | None],
    "eig/estimate": list[float | None], "eig/abs_error": list[float | None],
    "eig/mean_abs_error": float | None, "eig/mean_rel_error": float | None,
    "eig/rayleigh": list[float | None], "eig/rayleigh_mean_rel_error": float | None,
    "cos/per_vector": list[float | None], "cos/mean": float | None,
    "cos_strict/per_vector": list[float | None], "cos_strict/mean": float | None,
}, total=False)

_umask = os.umask(0)
os.umask(_umask)
_FILE_MODE = 0o666 & ~_umask
_EXPORT_RE = re.compile(r"^learned_eigenvectors_step_(\d+)\.npy$")
_CHECKPOINT_RE = re.compile(r"^checkpoint_step_(\d+)\.pt$")
# What atomic_write's mkstemp names look like for a file the writer itself writes: a
# writer's cleanup removes only these, never a `.something.tmp` of anyone else's.
_WRITER_NAMES = (r"run\.json|metrics\.jsonl|metrics_history\.json|gt_[a-z_]+\.npy"
                 r"|final_learned_eigenvectors\.npy|learned_eigenvectors_step_\d+\.npy"
                 r"|checkpoint_step_\d+\.pt")
_TEMPORARY_RE = re.compile(rf"^\.(?:{_WRITER_NAMES})\.[a-z0-9_]{{8}}\.tmp$")


class RunDirError(safeio.ReadError):
    """A problem with a run directory, phrased as one line that names the file."""


class NotARunError(RunDirError):
    """The path is missing or holds no run.json."""


class RunLockedError(RunDirError):
    """Another process is writing this run (runlock); one line naming it."""


# --------------------------------------------------------------------------- writing


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file in the same folder, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; others on a shared box may read runs
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # name the file (disk full)
            raise OSError(err.errno, err.strerror or str(err), str(path)) from None
        raise


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def to_json_safe(value: Any) -> Any:
    """Strict JSON: non-finite floats become null, numpy scalars and arrays become Python."""
    np = sys.modules.get("numpy")  # numpy values can only exist once numpy is loaded
    if isinstance(value, dict):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v) for v in value]
    if np is not None and isinstance(value, np.ndarray):
        return to_json_safe(value.tolist())
    if np is not None and isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(obj: Any, indent: int | None = None) -> str:
    try:  # metric rows are plain finite floats: json's C encoder alone, no conversion
        return json.dumps(obj, indent=indent, allow_nan=False)
    except (TypeError, ValueError):  # numpy values, paths, NaN or inf somewhere
        return json.dumps(to_json_safe(obj), indent=indent, allow_nan=False)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj, indent=2) + "\n")


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    import numpy as np
    array = np.asarray(array)
    if array.dtype == object:
        raise ValueError(f"{Path(path).name}: refusing to save an object array")
    atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))


def export_name(step: int) -> str:
    return f"learned_eigenvectors_step_{int(step)}.npy"


def checkpoint_name(step: int) -> str:
    return f"checkpoint_step_{int(step)}.pt"


def check_new_run_dir(path: Path) -> None:
    """A new run goes into a missing or empty folder only: never among a user's files
    (its cleanup and metrics.jsonl appends would touch them) or over another run."""
    path = Path(path)
    if is_run_dir(path):
        raise RunDirError(f"{path}: already holds a run; use --resume {path} or another "
                          "--run-dir")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a folder; choose a new --run-dir")
    try:
        names = set(os.listdir(path)) if path.is_dir() else set()
    except OSError as err:
        raise RunDirError(f"{path}: cannot list ({err.strerror})") from None
    # a start that was stopped before run.json leaves the lock and an empty checkpoints/
    names.discard(runlock.LOCK_NAME)
    if CHECKPOINTS in names and not any(os.scandir(path / CHECKPOINTS)):
        names.discard(CHECKPOINTS)
    if names:
        raise RunDirError(f"{path}: not empty and not a run directory ({len(names)} "
                          "entries); choose a new or empty --run-dir")


# --------------------------------------------------------------------------- run.json


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _typed(value: Any, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """`value` if it has the type run.json promises (bools are not numbers), else `default`:
    readers of a hand-edited or older run.json see a missing field, never a wrong one."""
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        return default
    if kind is float:
        return float(value) if _is_number(value) else default
    return value if isinstance(value, kind) else default


class _Record:
    """A run.json object as a dataclass: `from_json` reads leniently (a field of the wrong
    type reads as missing), `to_json` writes the fields in declaration order, then any key
    this version does not know (`extra`, kept so a newer writer's keys survive a resume)."""

    extra: dict[str, Any]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Any:
        known = {f.name: f for f in fields(cls) if f.name != "extra"}  # type: ignore[arg-type]
        values: dict[str, Any] = {}
        for name, spec in known.items():
            if name in obj:
                values[name] = cls._read(name, obj[name], spec.type)
        extra = {k: v for k, v in obj.items() if k not in known}
        return cls(**values, extra=extra)  # type: ignore[call-arg]  # a dataclass

    @classmethod
    def _read(cls, name: str, value: Any, annotation: Any) -> Any:
        return _read_annotated(value, str(annotation))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for spec in fields(self):  # type: ignore[arg-type]
            value = getattr(self, spec.name)
            if spec.name == "extra" or (value is None and spec.metadata.get("omit_none")):
                continue
            out[spec.name] = value.to_json() if isinstance(value, _Record) else value
        out.update(self.extra)
        return out


_SCALARS: dict[str, type | tuple[type, ...]] = {
    "str": str, "int": int, "float": float, "bool": bool,
    "dict[str, Any]": dict, "dict[str, float]": dict, "dict[str, str]": dict,
    "list[int]": list, "list[float]": list, "list[dict[str, Any]]": list,
    "list[list[int]]": list,
}


def _read_annotated(value: Any, annotation: str) -> Any:
    """Read `value` as the annotation (a string under `from __future__ import annotations`)
    says: `X | None` allows null; a wrong type reads as None."""
    kind = annotation.replace(" | None", "")
    if kind == "Status":
        return Status(value) if value in {s.value for s in STATUSES} else None
    if kind in _RECORDS:
        return _RECORDS[kind].from_json(value) if isinstance(value, dict) else None
    return _typed(value, _SCALARS.get(kind, object))


@dataclass
class BudgetInfo(_Record):
    """run.json's "budget": the steps the spectrum asks for and what the data allows
    (allo/budget.py, allo/dataset.py), written before training."""

    recommended_steps: int | None = None
    needed_steps: int | None = None
    closest_pair: list[int] | None = None  # 1-based
    gap: float | None = None
    data_ceiling: float | None = None
    data_ceiling_per_vector: list[float] | None = None
    data_ceiling_strict: float | None = None  # the same eigenvectors scored by cos_strict
    data_ceiling_strict_per_vector: list[float] | None = None
    num_envs: int | None = None
    data_ceiling_before_growth: float | None = None
    extension_limit: int | None = None  # the last step a seed still turning may reach
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TruthInfo(_Record):
    """run.json's "ground_truth": the repeated-eigenvalue blocks among the first d."""

    blocks: list[list[int]] | None = None  # [start, stop) index ranges
    eigenvalues_next: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunInfo(_Record):
    """run.json (docs/run-format.md, "run.json"; tests/test_contract.py holds the two
    together). Read leniently: a field of the wrong type reads as None."""

    format_version: int | None = None
    name: str | None = None
    status: Status | None = None  # None: missing or not a status run.json holds
    message: str | None = None
    step: int | None = None
    total_steps: int | None = None
    started: float | None = None
    heartbeat: float | None = None
    finished: float | None = None
    elapsed: float | None = None
    device: str | None = None
    versions: dict[str, str] | None = None
    config: dict[str, Any] | None = None
    d: int | None = None
    gamma: float | None = None
    objective: str | None = None
    seed: int | None = None
    trained_with_seeds: list[int] | None = None
    eigenvalue_convention: str | None = None
    env: dict[str, Any] | None = None  # the layout record; `parse_env` checks it
    ground_truth: TruthInfo | None = None
    timings: dict[str, float] | None = field(default=None, metadata={"omit_none": True})
    budget: BudgetInfo | None = field(default=None, metadata={"omit_none": True})
    resumes: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def env_name(self) -> str | None:
        name = (self.env or {}).get("name")
        return name if isinstance(name, str) else None


_RECORDS: dict[str, type[_Record]] = {"BudgetInfo": BudgetInfo, "TruthInfo": TruthInfo}


def as_info(info: RunInfo | Mapping[str, Any]) -> RunInfo:
    """A RunInfo from either form (functions that tools call with a plain JSON dict)."""
    return info if isinstance(info, RunInfo) else RunInfo.from_json(info)


class RunWriter:
    """The trainer's side of the contract. Holds no state a crash could lose.

    Constructing one takes the run's writer lock (allo/runlock.py) for its lifetime;
    `new=True` then checks that the folder holds no run and nothing else either.
    """

    def __init__(self, path: Path, new: bool = False):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.lock = runlock.RunLock(self.path)
        except runlock.RunLockedError as err:
            raise RunLockedError(str(err)) from None
        except OSError as err:
            raise RunDirError(f"{self.path}: cannot take the writer lock ({err.strerror})"
                              ) from None
        if new:
            try:
                check_new_run_dir(self.path)
            except RunDirError:
                self.lock.release()
                raise
        (self.path / CHECKPOINTS).mkdir(exist_ok=True)
        self._metrics: IO[str] | None = None
        self.info: RunInfo | None = None

    def release(self) -> None:
        """Close the metrics file and give up the writer lock (the end of the run)."""
        self.close()
        self.lock.release()

    # run.json: one method per event of the run's life --------------------------------
    # The writer keeps run.json in memory and rewrites the whole file at each event; only
    # the trainer writes it (the recorder thread after the first step).
    def start(self, info: RunInfo) -> None:
        """A new run: run.json as known before the first step (status running)."""
        self.info = info
        self._write_info()

    def reopen(self) -> RunInfo:
        """An existing run (a resume): its run.json, read once."""
        self.info = RunReader(self.path).info()
        return self.info

    def plan(self, config: dict[str, Any], budget: BudgetInfo) -> None:
        """The config as trained and the budget, once the data set is built."""
        self._update(config=config, budget=budget)

    def resume(self, step: int, total_steps: int, config: dict[str, Any], device: str) -> None:
        now = time.time()
        resumes = [*(self._info().resumes or []), {"step": step, "time": now}]
        self._update(status=Status.RUNNING, message=None, step=step, total_steps=total_steps,
                     heartbeat=now, finished=None, config=config, device=device,
                     resumes=resumes)

    def heartbeat(self, step: int, elapsed: float) -> None:
        """At log steps (at most once a second) and at every export."""
        self._update(step=step, heartbeat=time.time(), elapsed=elapsed)

    def going_on(self, total_steps: int) -> None:
        """The run goes on past its budget, at most to `total_steps` (allo/settling.py)."""
        self._update(total_steps=total_steps)

    def finish(self, step: int, elapsed: float, timings: dict[str, float] | None = None
               ) -> None:
        """The run took `step` steps; `timings` once everything is written."""
        self._end(Status.FINISHED, None, step, elapsed, timings, total_steps=step)

    def fail(self, message: str, step: int, elapsed: float,
             timings: dict[str, float] | None = None) -> None:
        self._end(Status.FAILED, message, step, elapsed, timings)

    def interrupt(self, message: str, step: int, elapsed: float,
                  timings: dict[str, float] | None = None) -> None:
        self._end(Status.INTERRUPTED, message, step, elapsed, timings)

    def _end(self, status: Status, message: str | None, step: int, elapsed: float,
             timings: dict[str, float] | None, **more: Any) -> None:
        now = time.time()
        if timings is not None:
            more["timings"] = {k: round(v, 3) for k, v in timings.items()}
        self._update(status=status, message=message, step=step, heartbeat=now, finished=now,
                     elapsed=elapsed, **more)

    def _info(self) -> RunInfo:
        if self.info is None:
            raise RunDirError(f"{self.path / RUN_JSON}: written before start() or reopen()")
        return self.info

    def _update(self, **changes: Any) -> None:
        info = self._info()
        for name, value in changes.items():
            if not hasattr(info, name):
                raise AttributeError(f"run.json has no field {name!r}")
            setattr(info, name, value)
        self._write_info()

    def _write_info(self) -> None:
        info = self._info()
        info.format_version = FORMAT_VERSION
        atomic_write_json(self.path / RUN_JSON, info.to_json())

    # Raw run.json, for tools and tests that write synthetic runs; the trainer uses the
    # events above.
    def write_info(self, info: dict) -> None:
        info = dict(info)
        info["format_version"] = FORMAT_VERSION
        atomic_write_json(self.path / RUN_JSON, info)

    def update_info(self, **fields: Any) -> dict:
        info = read_json(self.path / RUN_JSON)
        info.update(fields)
        self.write_info(info)
        return info

    # arrays -------------------------------------------------------------------------
    def write_ground_truth(self, eigenvalues: np.ndarray, eigenvectors: np.ndarray,
                           completion: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """The top d eigenpairs; `completion`, the eigenpairs past d that complete the
        eigenspace of lambda_d, is written first, so whoever sees the gt files sees it."""
        import numpy as np
        if completion is not None and len(completion[0]):
            atomic_save_npy(self.path / GT_COMPLETION_VALUES,
                            np.asarray(completion[0], dtype=np.float64))
            atomic_save_npy(self.path / GT_COMPLETION_VECTORS,
                            np.asarray(completion[1], dtype=np.float64))
        atomic_save_npy(self.path / GT_EIGENVALUES, np.asarray(eigenvalues, dtype=np.float64))
        atomic_save_npy(self.path / GT_EIGENVECTORS, np.asarray(eigenvectors, dtype=np.float64))

    def export_learned(self, step: int, vectors: np.ndarray) -> Path:
        import numpy as np
        target = self.path / export_name(step)
        atomic_save_npy(target, np.asarray(vectors, dtype=np.float32))
        return target

    def export_final(self, vectors: np.ndarray) -> Path:
        import numpy as np
        target = self.path / FINAL_LEARNED
        atomic_save_npy(target, np.asarray(vectors, dtype=np.float32))
        return target

    # metrics ------------------------------------------------------------------------
    def append_metrics(self, row: dict) -> None:
        """One complete line per write, flushed, so a reader never sees half a row."""
        if self._metrics is None:
            self._metrics = open(self.path / METRICS_JSONL, "a", encoding="utf-8")  # noqa: SIM115 (held open for appends)
        self._metrics.write(dumps(row) + "\n")
        self._metrics.flush()

    def write_metrics_history(self) -> None:
        """metrics.jsonl's rows as one JSON array, a row a line, in the rows' own text:
        re-encoding every row with an indent would be pure-Python json, rewritten at every
        export (BENCHMARKS.md, "Training")."""
        try:
            data = (self.path / METRICS_JSONL).read_bytes()
        except FileNotFoundError:
            data = b""
        lines = [raw.strip() for raw, _, problem in metric_lines(data) if problem is None]
        text = b"[\n" + b",\n".join(lines) + b"\n]\n" if lines else b"[]\n"
        atomic_write_bytes(self.path / METRICS_HISTORY, text)

    def truncate_metrics_after(self, step: int) -> int:
        """Drop rows logged after `step` (a resume replays them). Returns rows kept.

        The one time metrics.jsonl is rewritten: atomically, so tailing readers see a
        replaced file and start over.
        """
        self.close()
        path = self.path / METRICS_JSONL
        rows, _ = read_metrics_file(path)
        kept = [row for row in rows if int(row.get("step", -1)) <= step]
        atomic_write_text(path, "".join(dumps(row) + "\n" for row in kept))
        return len(kept)

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None

    def drop_exports_after(self, step: int) -> None:
        """On resume: exports past the checkpoint (and the final one) will be rewritten."""
        for export_step, path in step_files(self.path, _EXPORT_RE):
            if export_step > step:
                path.unlink(missing_ok=True)
        (self.path / FINAL_LEARNED).unlink(missing_ok=True)

    # checkpoints --------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS

    def remove_temporaries(self) -> list[str]:
        """Delete `.<name>.<random>.tmp` files that a killed write left behind.

        Only the lock holder writes in the run folder and checkpoints/, so none of them
        can be in use; only temporaries of names the writer itself writes are removed.
        plots/ is left alone: a renderer may be writing there.
        """
        removed = []
        for folder in (self.path, self.checkpoint_dir):
            for name in os.listdir(folder) if folder.is_dir() else []:
                if _TEMPORARY_RE.match(name):
                    with contextlib.suppress(FileNotFoundError):
                        (folder / name).unlink()
                        removed.append(name)
        return removed

    def prune_checkpoints(self, keep: int) -> None:
        """Keep the newest `keep` checkpoints by step number."""
        steps = checkpoint_steps(self.path)
        for step in steps[:-keep] if keep > 0 else steps:
            with contextlib.suppress(FileNotFoundError):
                (self.checkpoint_dir / checkpoint_name(step)).unlink()


# --------------------------------------------------------------------------- reading


def read_json(path: Path, root: Path | None = None) -> Any:
    """A JSON file through allo.safeio: a regular file (inside `root` if given), within
    its size cap and nesting depth; any problem is one RunDirError line."""
    return safeio.read_json(path, root=root, error=RunDirError)


def load_npy(
    path: Path,
    *,
    ndim: int | None = None,
    shape: tuple[int | None, ...] | None = None,
    root: Path | None = None,
) -> np.ndarray:
    """Load a numeric .npy safely (allo.safeio): never unpickles, checks the header's
    dtype and size before reading, then the dimensions and shape asked for."""
    import numpy as np

    path = Path(path)
    array = safeio.load_npy(path, root=root, error=RunDirError)
    if ndim is not None and array.ndim != ndim:
        raise RunDirError(f"{path}: expected {ndim} dimensions, found shape {array.shape}")
    if shape is not None:
        for want, got in zip(shape, array.shape, strict=False):
            if want is not None and want != got:
                raise RunDirError(f"{path}: expected shape {shape}, found {array.shape}")
    return array.astype(np.float64, copy=False)


def parse_metrics_lines(data: bytes) -> tuple[list[MetricsRow], list[str], int]:
    """Parse complete lines of metrics.jsonl.

    Returns (rows, problems, consumed): `consumed` counts bytes up to the last newline,
    so an unfinished last line is left for the next read.
    """
    rows: list[MetricsRow] = []
    problems: list[str] = []
    for _, row, problem in metric_lines(data):
        if problem is not None:
            problems.append(problem)
        else:
            rows.append(row)
    return rows, problems, data.rfind(b"\n") + 1


def metric_lines(data: bytes) -> Iterator[tuple[bytes, MetricsRow, str | None]]:
    """(line, row, problem) of each complete, non-blank line of metrics.jsonl; a line
    with a problem (not a JSON object with an integer 'step') comes with an empty row."""
    end = data.rfind(b"\n")
    for number, raw in enumerate(data[: end + 1].split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            yield raw, {}, f"line {number}: not a JSON object"
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            yield raw, {}, f"line {number}: row without an integer 'step'"
            continue
        yield raw, cast("MetricsRow", row), None


def read_metrics_file(path: Path, root: Path | None = None
                      ) -> tuple[list[MetricsRow], list[str]]:
    """All complete rows of metrics.jsonl; a missing file is an empty history, one that
    cannot be read safely (allo.safeio) a RunDirError."""
    if not os.path.lexists(path):
        return [], []
    data = safeio.read_bytes(path, safeio.MAX_METRICS_BYTES, root=root, error=RunDirError)
    rows, problems, _ = parse_metrics_lines(data)
    return rows, problems


class MetricsTail:
    """Reads only the new bytes of metrics.jsonl on each call.

    If the file was replaced or shrank (a resume truncates it), `reset` is set on the
    returned batch and reading starts over from the first byte.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._offset = 0
        self._inode: int | None = None
        self.problems: list[str] = []

    def _problem(self, line: str) -> None:
        if line not in self.problems:  # said once, however often it is polled
            self.problems.append(line)

    def read_new(self) -> tuple[list[MetricsRow], bool]:
        """Returns (new rows, reset): reset means earlier rows must be discarded."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return [], False
        reset = False
        if not S_ISREG(stat.st_mode):  # a FIFO or device in its place: never read it
            self._problem(f"{self.path}: refused, not a regular file")
            return [], False
        if self._inode is not None and (stat.st_ino != self._inode or stat.st_size < self._offset):
            self._offset = 0
            reset = True
        self._inode = stat.st_ino
        if stat.st_size == self._offset:
            return [], reset
        try:  # a FIFO or device in its place, a link out, no permission: one problem
            data = safeio.read_bytes(self.path, safeio.MAX_METRICS_BYTES,
                                     offset=self._offset, error=RunDirError)
        except RunDirError as err:
            self._problem(str(err))
            return [], reset
        rows, problems, consumed = parse_metrics_lines(data)
        self._offset += consumed
        self.problems.extend(problems)
        return rows, reset


def step_files(folder: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    """(step, path) pairs sorted by step number (999 < 1000 < 10000), not by name."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        match = pattern.match(name)
        if match:
            found.append((int(match.group(1)), Path(folder) / name))
    return sorted(found)


def checkpoint_steps(run: Path) -> list[int]:
    return [step for step, _ in step_files(Path(run) / CHECKPOINTS, _CHECKPOINT_RE)]


@dataclass
class EnvInfo:
    """The layout as the renderers and the TUI need it (from run.json's "env")."""

    name: str
    layout: str
    width: int
    height: int
    free_cells: list[tuple[int, int]]
    doors: list[dict] = field(default_factory=list)
    start: tuple[int, int] | None = None
    goals: list[tuple[int, int]] = field(default_factory=list)

    def grid(self, values: np.ndarray) -> np.ndarray:
        """Scatter one value per free cell onto a (height, width) grid; walls are NaN."""
        import numpy as np
        grid = np.full((self.height, self.width), np.nan)
        rows, cols = np.asarray(self.free_cells, dtype=int).reshape(-1, 2).T
        grid[rows, cols] = values
        return grid

    def wall_mask(self) -> np.ndarray:
        import numpy as np
        mask = np.ones((self.height, self.width), dtype=bool)
        for row, col in self.free_cells:
            mask[row, col] = False
        return mask


def _cell(value: Any, what: str) -> tuple[int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise RunDirError(f"run.json: {what} must be a [row, col] pair of integers")
    return int(value[0]), int(value[1])


def parse_env(info: RunInfo | Mapping[str, Any]) -> EnvInfo:
    env = as_info(info).env
    if not isinstance(env, dict):
        raise RunDirError("run.json: missing the 'env' object")
    from allo.layouts import MAX_FREE_CELLS, MAX_SIDE  # the trainer's own limits

    safeio.check_types(env, {"width": (int,), "height": (int,), "free_cells": (list,),
                             "layout": (str,), "name": (str,)}, "run.json: env",
                       error=RunDirError)
    try:
        width, height = int(env["width"]), int(env["height"])
        if not isinstance(env["free_cells"], list) or len(env["free_cells"]) > MAX_FREE_CELLS:
            raise ValueError(f"more than {MAX_FREE_CELLS} free cells")
        cells = [_cell(c, "a free cell") for c in env["free_cells"]]
    except (KeyError, TypeError, ValueError) as err:
        raise RunDirError(f"run.json: bad 'env' ({err})") from None
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise RunDirError(f"run.json: bad grid size {width}x{height} (the limit is "
                          f"{MAX_SIDE}x{MAX_SIDE})")
    for row, col in cells:
        if not (0 <= row < height and 0 <= col < width):
            raise RunDirError(f"run.json: free cell {[row, col]} lies outside the grid")
    for key in ("goals", "doors"):
        if not isinstance(env.get(key) or [], list):
            raise RunDirError(f"run.json: env.{key} must be a list")
    start = env.get("start")
    return EnvInfo(
        name=str(env.get("name", "?")),
        layout=str(env.get("layout", "")),
        width=width,
        height=height,
        free_cells=cells,
        doors=[d for d in env.get("doors") or [] if isinstance(d, dict)],
        start=_cell(start, "start") if start is not None else None,
        goals=[_cell(g, "a goal") for g in env.get("goals") or []],
    )


def effective_status(info: RunInfo | Mapping[str, Any], now: float | None = None) -> Status:
    """run.json's status, or STALLED for a running run whose heartbeat stopped."""
    info = as_info(info)
    if info.status is None:
        return Status.UNKNOWN
    if info.status is Status.RUNNING and info.heartbeat is not None:
        now = time.time() if now is None else now
        if now - info.heartbeat > STALL_SECONDS:
            return Status.STALLED
    return info.status


_NUMBER = (int, float)
# The JSON types of the run.json keys readers rely on (docs/run-format.md); a key of
# another type is one line naming it, not a traceback further on.
RUN_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "format_version": (int,), "name": (str,), "status": (str,),
    "message": (str, type(None)), "step": (int,), "total_steps": (int, type(None)),
    "started": _NUMBER, "heartbeat": (*_NUMBER, type(None)),
    "finished": (*_NUMBER, type(None)), "elapsed": _NUMBER, "device": (str,),
    "versions": (dict,), "config": (dict,), "d": (int,), "gamma": _NUMBER,
    "objective": (str,), "seed": (int,), "trained_with_seeds": (list,),
    "eigenvalue_convention": (str,), "env": (dict,), "ground_truth": (dict,),
    "timings": (dict,), "budget": (dict, type(None)), "resumes": (list,),
}


class RunReader:
    """Read-only view of a run directory. Never writes anything."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.exists():
            raise NotARunError(f"{self.path}: no such directory")
        if not self.path.is_dir():
            raise NotARunError(f"{self.path}: not a directory")
        if not (self.path / RUN_JSON).is_file():
            raise NotARunError(f"{self.path}: not a run directory (no {RUN_JSON})")

    # run.json -----------------------------------------------------------------------
    def info(self) -> RunInfo:
        """run.json, typed; every format_version up to FORMAT_VERSION reads the same."""
        raw = read_json(self.path / RUN_JSON, root=self.path)
        if not isinstance(raw, dict):
            raise RunDirError(f"{self.path / RUN_JSON}: expected a JSON object")
        safeio.check_types(raw, RUN_JSON_TYPES, self.path / RUN_JSON, error=RunDirError)
        info = RunInfo.from_json(raw)
        version = info.format_version
        if version is None:
            raise RunDirError(f"{self.path / RUN_JSON}: missing integer 'format_version'")
        if version > FORMAT_VERSION:
            raise RunDirError(
                f"{self.path / RUN_JSON}: format_version {version} is newer than this allo "
                f"reads ({FORMAT_VERSION}); upgrade allo"
            )
        return info

    def env(self) -> EnvInfo:
        return parse_env(self.info())

    def num_eigenvectors(self) -> int:
        d = self.info().d
        if d is None or d < 1:
            raise RunDirError(f"{self.path / RUN_JSON}: missing positive integer 'd'")
        return d

    # arrays -------------------------------------------------------------------------
    def ground_truth(self) -> tuple[np.ndarray, np.ndarray]:
        values = load_npy(self.path / GT_EIGENVALUES, ndim=1, root=self.path)
        vectors = load_npy(self.path / GT_EIGENVECTORS, ndim=2, shape=(None, values.shape[0]),
                           root=self.path)
        return values, vectors

    def scoring_truth(self, top: tuple[np.ndarray, np.ndarray] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The ground truth to score learned vectors against: the top d plus, where the
        eigenspace of lambda_d continues past d, the eigenpairs that complete it.
        `top`: ground_truth() when the caller has already read it."""
        import numpy as np
        values, vectors = top if top is not None else self.ground_truth()
        extra = self.path / GT_COMPLETION_VALUES
        if not extra.exists():
            return values, vectors
        more_values = load_npy(extra, ndim=1, root=self.path)
        more_vectors = load_npy(self.path / GT_COMPLETION_VECTORS, ndim=2,
                                shape=(vectors.shape[0], more_values.shape[0]), root=self.path)
        return (np.concatenate([values, more_values]),
                np.concatenate([vectors, more_vectors], axis=1))

    def export_steps(self) -> list[int]:
        return [step for step, _ in step_files(self.path, _EXPORT_RE)]

    def export_path(self, step: int) -> Path:
        return self.path / export_name(step)

    def learned(self, step: int) -> np.ndarray:
        return load_npy(self.export_path(step), ndim=2, root=self.path)

    def final_path(self) -> Path:
        return self.path / FINAL_LEARNED

    def final(self) -> np.ndarray | None:
        path = self.final_path()
        return load_npy(path, ndim=2, root=self.path) if os.path.lexists(path) else None

    def latest_learned(self) -> tuple[int | str, np.ndarray] | None:
        """The final export if present, else the highest-step export, else None."""
        final = self.final()
        if final is not None:
            return "final", final
        steps = self.export_steps()
        if not steps:
            return None
        return steps[-1], self.learned(steps[-1])

    # metrics ------------------------------------------------------------------------
    def metrics(self) -> list[MetricsRow]:
        rows, _ = read_metrics_file(self.path / METRICS_JSONL, root=self.path)
        return rows

    def metrics_with_problems(self) -> tuple[list[MetricsRow], list[str]]:
        return read_metrics_file(self.path / METRICS_JSONL, root=self.path)

    def tail(self) -> MetricsTail:
        return MetricsTail(self.path / METRICS_JSONL)

    def checkpoint_steps(self) -> list[int]:
        return checkpoint_steps(self.path)

    @property
    def plots_dir(self) -> Path:
        return self.path / PLOTS


def series(rows: Iterable[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a scalar metric; rows without it or with null are skipped."""
    import numpy as np
    steps, values = [], []
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            steps.append(row["step"])
            values.append(float(value))
    return np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)


def vector_series(rows: Iterable[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values[T, d]) of a per-eigenvector metric; null entries become NaN."""
    import numpy as np
    steps, values = [], []
    width = None
    for row in rows:
        value = row.get(key)
        if not isinstance(value, list):
            continue
        if width is None:
            width = len(value)
        if len(value) != width:
            continue
        steps.append(row["step"])
        values.append([float(v) if isinstance(v, (int, float)) else np.nan for v in value])
    return (
        np.asarray(steps, dtype=np.int64),
        np.asarray(values, dtype=np.float64).reshape(len(values), width or 0),
    )


def is_run_dir(path: Path) -> bool:
    try:
        return (Path(path) / RUN_JSON).is_file()
    except OSError:  # e.g. a name too long, a folder without search permission
        return False


def find_runs(folder: Path | str) -> list[Path]:
    """Run directories at or below `folder` (two levels: results/<env>/<run>), newest first.

    Newest means the latest start time recorded in run.json, falling back to mtime. A
    folder that cannot be listed or a run.json that cannot be read only moves that run
    to the end; it never stops the scan of the others.
    """
    folder = Path(folder)
    if is_run_dir(folder):
        return [folder]
    candidates: list[Path] = []
    for child in _children(folder):
        if is_run_dir(child):
            candidates.append(child)
        elif child.is_dir():
            candidates.extend(c for c in _children(child) if is_run_dir(c))
    return sorted(candidates, key=_started, reverse=True)


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:  # unreadable: the scan goes on without it
        return []


def _started(run: Path) -> float:
    try:
        value = read_json(run / RUN_JSON, root=run).get("started")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    except (RunDirError, AttributeError):
        pass
    try:
        return (run / RUN_JSON).stat().st_mtime
    except OSError:
        return 0.0


def safe_plot_path(run: Path, name: str) -> Path:
    """A path under RUN/plots for a figure name; refuses anything that escapes it."""
    plots = (Path(run) / PLOTS).resolve()
    if plots.parent != Path(run).resolve():
        raise RunDirError(f"refusing {Path(run) / PLOTS}: it points outside the run directory")
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise RunDirError(f"refusing figure name {name!r}: it would leave {plots}")
    target = (plots / name).resolve()
    if target.parent != plots:
        raise RunDirError(f"refusing figure name {name!r}: it would leave {plots}")
    return target
