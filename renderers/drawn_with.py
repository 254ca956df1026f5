"""What each output file was drawn with, so an incremental render sees changed options.

A figure newer than its inputs is skipped (renderers/plan.py). Newer is not enough when
the picture depends on options: after `allo render RUN --eigenvectors 1,2,3` a plain
`allo render RUN` must draw all d eigenvectors again, not report three-panel figures as
up to date. Each output folder keeps one small JSON record, file name -> options; a
figure is current only if its record matches the options asked for now. A missing or
unreadable record means "draw again", never an error. Two renders writing the same
folder at once can drop each other's entries: those figures are drawn once more.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path

from allo import rundir
from renderers import CONTENT, RenderOptions

RECORD = ".drawn-with.json"


def signature(options: RenderOptions, eigenvectors: list[int] | None,
              used: tuple[str, ...] | None = None, drawing: int | None = None) -> dict:
    """Everything a render is told that can change its pictures, as plain JSON values.

    `used` names the RenderOptions fields the renderer reads (its optional class
    attribute `options_used`); None, for a renderer that does not say, keeps them all.
    Leaving out what a format ignores keeps, say, $COLUMNS from redrawing PNGs.
    `drawing` is the renderer's optional `drawing_version`: figures recorded with another
    (or none, from before it existed) are drawn again once after an upgrade.
    """
    fields = asdict(options)
    if used is not None:  # what changes a figure's content counts for every renderer
        fields = {name: value for name, value in fields.items()
                  if name in used or name in CONTENT}
    fields = {name: list(value) if isinstance(value, tuple) else value
              for name, value in fields.items()}
    found = {**fields, "eigenvectors": list(eigenvectors) if eigenvectors else None}
    return found if drawing is None else {**found, "drawing": drawing}


def read(record: Path) -> dict[str, dict]:
    try:
        entries = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {name: value for name, value in entries.items() if isinstance(value, dict)}


def remember(record: Path, made: dict[str, dict]) -> None:
    """Add the figures just made to the record (read again first: another render may
    have written it meanwhile). A folder we cannot write only costs a redraw later."""
    if not made:
        return
    entries = {**read(record), **made}
    with contextlib.suppress(OSError):
        rundir.atomic_write_text(record, json.dumps(entries, indent=1, sort_keys=True) + "\n")
