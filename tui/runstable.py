"""The runs table's content: one row per run, its settings, filter, sort, and groups.

Pure functions of trackers (tui.tracker) and the clock, shared by the live table and
the `--once` text. Groups are the runs of one configuration (renderers.grouping's
`setting`: the config without seeds and bookkeeping), summarised with the same mean and
95% interval as `allo compare` (renderers.stats.mean_interval).
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
import time
from dataclasses import dataclass

from allo.rate import eta_seconds
from allo.rundir import RunInfo
from tui.chart import format_number
from tui.runinfo import duration, run_status
from tui.tracker import RunTracker

STATUS_ORDER = ("unreadable", "deleted", "failed", "stalled", "interrupted", "running",
                "unknown", "finished")
GONE = {"run directory deleted": "deleted", "run.json missing": "deleted"}
COLUMNS = ("run", "layout", "objective", "settings", "seed", "status", "step", "steps/s",
           "|cos|", "strict", "eig err", "→0.99", "ETA")  # fmt: skip
NUMERIC = frozenset({"seed", "step", "steps/s", "|cos|", "strict", "eig err", "→0.99", "ETA"})
STRICT_COS = "cos_strict/mean"  # the strict score (rotation not allowed), where logged


@dataclass
class RunRow:
    """What the table shows for one run; `sort` holds the sortable value per column."""

    path: str
    name: str
    layout: str
    objective: str
    settings: str
    seed: str
    status: str
    step: int
    total: int | None
    sps: float | None
    cos: float | None
    strict: float | None
    eig_error: float | None
    converged_at: int | None
    eta: float | None
    problem: str | None
    config: dict
    group: str

    def cells(self) -> dict[str, str]:
        total = f"{self.total:,}" if self.total else "?"
        return {
            "run": self.name,
            "layout": self.layout,
            "objective": self.objective,
            "settings": self.settings,
            "seed": self.seed,
            "status": (f"{self.status}: {self.problem}"
                       if self.problem and self.status != "deleted" else self.status),
            "step": f"{self.step:,}/{total}",
            "steps/s": "—" if self.sps is None else f"{self.sps:,.0f}",
            "|cos|": "—" if self.cos is None else f"{self.cos:.4f}",
            "strict": "—" if self.strict is None else f"{self.strict:.4f}",
            "eig err": format_number(self.eig_error),
            "→0.99": "—" if self.converged_at is None else f"{self.converged_at:,}",
            "ETA": duration(self.eta) if self.eta is not None else "—",
        }

    def sort_value(self, column: str):
        """A key that sorts numbers as numbers, unknowns last."""
        value = {
            "seed": _number(self.seed), "step": self.step, "steps/s": self.sps,
            "|cos|": self.cos, "strict": self.strict,
            "eig err": self.eig_error, "→0.99": self.converged_at, "ETA": self.eta,
            "status": STATUS_ORDER.index(self.status) if self.status in STATUS_ORDER else 9,
        }.get(column, self.cells().get(column, ""))  # fmt: skip
        if column in NUMERIC or column == "status":
            return (value is None, value if value is not None else 0)
        return (False, str(value).lower())

    def haystack(self) -> list[str]:
        """What a filter matches against: names, status, and key=value of the config."""
        words = [self.name, self.path, self.layout, self.objective, self.status, self.seed]
        words += [f"{k}={_plain(v)}" for k, v in self.config.items()]
        words += [_plain(v) for v in self.config.values()]
        return words


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def run_config(info: RunInfo | None) -> dict:
    """The configuration that defines a run's setting (renderers.grouping.setting)."""
    from renderers.grouping import setting

    return setting(info) if info is not None else {}


def differing_keys(configs: list[dict]) -> list[str]:
    """Config keys whose values differ between runs of one objective and protocol (the
    table's 'settings' column). The layout (a name or a file) and objective have columns
    of their own, and a key that only follows them (a preset's learning rate or barrier
    for each objective under --protocol paper) would repeat the objective column."""
    keys = sorted({k for c in configs for k in c} - {"env", "env_file", "objective"})

    def varies(key: str, runs: list[dict]) -> bool:
        return len({json.dumps(c.get(key), sort_keys=True) for c in runs}) > 1

    groups: dict[tuple[str, str], list[dict]] = {}
    for config in configs:
        kind = (str(config.get("objective")), str(config.get("protocol")))
        groups.setdefault(kind, []).append(config)
    return [k for k in keys if varies(k, configs)
            and (k == "protocol" or any(varies(k, runs) for runs in groups.values()))]


def build_row(tracker: RunTracker, differing: list[str], now: float | None = None) -> RunRow:
    now = time.time() if now is None else now
    info = tracker.info
    config = run_config(info)
    latest = tracker.latest
    state = run_status(info, latest, now, tracker.rates.rate()) if info is not None else None
    status = state.status if state is not None else "unreadable"
    if tracker.problem in GONE:
        status = GONE[tracker.problem]
    elif tracker.problem and tracker.info is None:
        status = "unreadable"
    layout = str((info.env_name if info else None) or config.get("env") or "?")
    objective = str((info.objective if info else None) or config.get("objective") or "?")
    settings = " ".join(f"{k}={_plain(config.get(k))}" for k in differing)
    seed = None if info is None else (
        info.seed if info.seed is not None else (info.config or {}).get("seed"))
    cos = _finite((latest or {}).get("cos/mean"))
    eig = _finite((latest or {}).get("eig/mean_abs_error"))
    eta = None
    if state is not None and state.status == "running":
        eta = eta_seconds(state.sps, state.step, state.total)
    group = json.dumps(config, sort_keys=True, default=str)
    return RunRow(
        path=str(tracker.path), name=tracker.name, layout=layout, objective=objective,
        settings=settings, seed="" if seed is None else str(seed), status=status,
        step=state.step if state else 0, total=state.total if state else None,
        sps=state.sps if state else None,
        cos=cos, strict=_finite((latest or {}).get(STRICT_COS)), eig_error=eig,
        converged_at=tracker.steps_to_converged, eta=eta,
        problem=tracker.problem, config=config, group=group,
    )  # fmt: skip


def _finite(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# ---------------------------------------------------------------------------- filter
class FilterError(ValueError):
    """A filter that cannot be read (a bad regular expression); one line."""


def compile_filter(text: str):
    """A predicate over rows. Space-separated terms must all match one of a row's words:
    `/regex/` or `re:regex` is a regular expression (searched, case-insensitive), a term
    with * ? or [ a glob over a whole word, anything else a case-insensitive substring;
    `-term` excludes. `key=value` terms match config entries (globs allowed)."""
    tests = []
    for term in text.split():
        negate = term.startswith("-") and len(term) > 1
        term = term[1:] if negate else term
        tests.append((negate, _term_matcher(term)))

    def predicate(row: RunRow) -> bool:
        words = row.haystack()
        return all(any(match(w) for w in words) != negate for negate, match in tests)

    return predicate


def _term_matcher(term: str):
    pattern = None
    if len(term) >= 2 and term.startswith("/") and term.endswith("/"):
        pattern = term[1:-1]
    elif term.startswith("re:"):
        pattern = term[3:]
    if pattern is not None:
        try:
            regex = re.compile(pattern, re.IGNORECASE)
        except re.error as err:
            raise FilterError(f"bad regular expression {pattern!r}: {err}") from None
        return lambda word: regex.search(word) is not None
    if any(c in term for c in "*?["):
        lowered = term.lower()
        return lambda word: fnmatch.fnmatchcase(word.lower(), lowered)
    lowered = term.lower()
    return lambda word: lowered in word.lower()


def sorted_rows(rows: list[RunRow], column: str, reverse: bool = False) -> list[RunRow]:
    """Sorted by one column; unknown values last either way, then by name."""
    known = [r for r in rows if not r.sort_value(column)[0]]
    unknown = [r for r in rows if r.sort_value(column)[0]]
    known.sort(key=lambda r: (r.sort_value(column), r.name), reverse=reverse)
    unknown.sort(key=lambda r: r.name)
    return known + unknown
