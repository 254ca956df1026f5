"""Find run directories at any depth below a folder (results/, a study, a copy of one).

A run directory is one with a run.json; nothing below it is searched (checkpoints/ and
plots/ hold no runs). Hidden folders are skipped. A study folder's study.json, when
there is one, only names runs; the folder of runs works without it.
"""

from __future__ import annotations

import os
from pathlib import Path

from allo import rundir, safeio

MAX_DEPTH = 8  # results/studies/<name>/runs/<config>/<seed> is 5 deep
STUDY_JSON = "study.json"  # allo.study.state.STUDY_JSON, read here without that package


def find_run_dirs(folder: Path) -> list[Path]:
    """Run directories at or below `folder`, sorted by path."""
    folder = Path(folder)
    if rundir.is_run_dir(folder):
        return [folder]
    found: list[Path] = []
    base = len(folder.parts)
    for root, dirs, files in os.walk(folder):
        if rundir.RUN_JSON in files and root != str(folder):
            found.append(Path(root))
            dirs[:] = []
            continue
        if len(Path(root).parts) - base >= MAX_DEPTH:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def study_names(folder: Path) -> dict[Path, str]:
    """Resolved run directory -> the study's name for it, from study.json if present."""
    path = Path(folder) / STUDY_JSON
    try:  # allo.safeio: a FIFO, a huge or deeply nested study.json is no hang, no crash
        data = safeio.read_json(path)
    except safeio.ReadError:
        return {}
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, dict):
        return {}
    names = {}
    for name, entry in runs.items():
        where = entry.get("run_dir") if isinstance(entry, dict) else None
        if isinstance(where, str):
            target = Path(where) if os.path.isabs(where) else Path(folder) / where
            try:
                names[target.resolve()] = str(name)
            except OSError:
                continue
    return names
