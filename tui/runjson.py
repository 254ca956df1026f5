"""run.json without numpy: what `allo watch` needs before its first frame.

`allo.rundir` imports numpy (~0.2 s of CPU) at the top. The dashboard's first frame
shows only what run.json says, so the command and the overview read it through this
module and numpy loads afterwards, with the watcher. These few pieces mirror
`allo.rundir` (same names, same checks, same one-line messages);
tests/test_tui_units.py checks that the two agree.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
RUN_JSON = "run.json"
STATUSES = ("running", "finished", "failed", "interrupted")
STALL_SECONDS = 120.0


class RunJsonError(Exception):
    """A problem with a run directory or its run.json, phrased as one line."""


def is_run_dir(path: Path | str) -> bool:
    return (Path(path) / RUN_JSON).is_file()


def read_info(run: Path | str) -> dict:
    """run.json of a run directory, checked like `allo.rundir.RunReader(run).info()`."""
    run = Path(run)
    if not run.exists():
        raise RunJsonError(f"{run}: no such directory")
    if not run.is_dir():
        raise RunJsonError(f"{run}: not a directory")
    path = run / RUN_JSON
    if not path.is_file():
        raise RunJsonError(f"{run}: not a run directory (no {RUN_JSON})")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunJsonError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise RunJsonError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise RunJsonError(f"{path}: cannot read ({err.strerror})") from None
    try:
        info: Any = json.loads(text)
    except json.JSONDecodeError as err:
        raise RunJsonError(f"{path}: invalid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(info, dict):
        raise RunJsonError(f"{path}: expected a JSON object")
    version = info.get("format_version")
    if not isinstance(version, int):
        raise RunJsonError(f"{path}: missing integer 'format_version'")
    if version > FORMAT_VERSION:
        raise RunJsonError(
            f"{path}: format_version {version} is newer than this allo "
            f"reads ({FORMAT_VERSION}); upgrade allo"
        )
    return info


def effective_status(info: dict, now: float | None = None) -> str:
    """run.json's status, or "stalled" for a running run whose heartbeat stopped."""
    status = info.get("status")
    if status not in STATUSES:
        return "unknown"
    if status == "running":
        heartbeat = info.get("heartbeat")
        now = time.time() if now is None else now
        if isinstance(heartbeat, (int, float)) and now - heartbeat > STALL_SECONDS:
            return "stalled"
    return status


def find_runs(folder: Path | str) -> list[Path]:
    """Run directories at or below `folder` (two levels: results/<env>/<run>), newest first.

    Newest means the latest start time recorded in run.json, falling back to mtime.
    """
    folder = Path(folder)
    if is_run_dir(folder):
        return [folder]
    candidates: list[Path] = []
    for child in sorted(folder.iterdir()) if folder.is_dir() else []:
        if is_run_dir(child):
            candidates.append(child)
        elif child.is_dir():
            candidates.extend(c for c in sorted(child.iterdir()) if is_run_dir(c))

    def started(run: Path) -> float:
        try:
            value = json.loads((run / RUN_JSON).read_text(encoding="utf-8")).get("started")
            if isinstance(value, (int, float)):
                return float(value)
        except (OSError, ValueError, AttributeError):
            pass
        return (run / RUN_JSON).stat().st_mtime

    return sorted(candidates, key=started, reverse=True)
