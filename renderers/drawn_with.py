"""What each output file was drawn with, so an incremental render sees changed options.

A figure newer than its inputs is skipped (renderers/plan.py). Newer is not enough when
the picture depends on options: after `allo render RUN --eigenvectors 1,2,3` a plain
`allo render RUN` must draw all d eigenvectors again, not report three-panel figures as
up to date. Each output folder keeps one small JSON record, file name -> options; a
figure is current only if its record matches the options asked for now. A missing or
unreadable record means "draw again", never an error. Two renders writing the same
folder at once can drop each other's entries: those figures are drawn once more.

The record also holds each figure's inputs as they were when the render read them
(`stamp`: modification time, size and inode, taken before reading): a figure is current
while its inputs are still exactly those, so a figure drawn from a metrics.jsonl that
gained rows between the read and the save is drawn again, where comparing the figure's
own mtime with its inputs' would call it up to date.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from allo import rundir, safeio
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


INPUTS = "inputs"  # the record entry's key for its inputs' stamps


def stamp(run: Path, names: tuple[str, ...] | list[str]) -> dict[str, list[int]] | None:
    """[mtime_ns, size, inode] of each input, or None when one is missing."""
    found = {}
    for name in names:
        try:
            info = os.stat(Path(run) / name)
        except OSError:
            return None
        found[name] = [info.st_mtime_ns, info.st_size, info.st_ino]
    return found


def is_current(entry: dict | None, wanted: dict, inputs: dict[str, list[int]] | None) -> bool:
    """A figure's record entry says it was drawn with these options from exactly these
    inputs (`stamp` now)."""
    if entry is None or inputs is None:
        return False
    options = {key: value for key, value in entry.items() if key != INPUTS}
    return options == wanted and entry.get(INPUTS) == inputs


def read(record: Path) -> dict[str, dict]:
    try:
        entries = safeio.read_json(record, cap=safeio.MAX_JSON_BYTES)
    except safeio.ReadError:
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
