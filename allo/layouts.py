"""Gridworld layouts: parsing, built-ins, dynamics of the four-action random walk.

Text format, one row per line: `X` or `#` wall, space or `.` free, `S` start, `G` goal.
Ragged rows are padded with free cells. A move into a wall or off the grid stays put.
Only truly empty lines before the first and after the last row are dropped: a line of
spaces is a row of free cells, so a layout whose border rows have no wall trains on the
grid its file shows. run.json records free cells as `.` so the text it holds rebuilds
exactly the same grid (`Layout.from_record` checks it against the recorded cells).
Irreversible doors turn a reversible move a<->b into a one-way move a->b; b->a stays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

WALL_CHARS = frozenset("X#")
FREE_CHARS = frozenset(" .")
START, GOAL = "S", "G"
# Limits: the matrix-free ground truth (allo/sparse_spectrum.py) keeps time and memory about
# linear in the free cells, so these limits fit a workstation (BENCHMARKS.md, "Large grids").
MAX_SIDE = 256
MAX_FREE_CELLS = 65536
MAX_FILE_BYTES = 1_000_000
# (row, col) offsets of the four actions, in action order.
ACTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1))
ACTION_NAMES = ("up", "down", "left", "right")


class LayoutError(ValueError):
    """A layout that cannot be used; the message is one line for the user."""


@dataclass
class Layout:
    name: str
    text: str
    walls: np.ndarray  # (H, W) bool
    start: tuple[int, int] | None = None
    goals: list[tuple[int, int]] = field(default_factory=list)
    # One-way doors: move from -> to allowed, to -> from blocked.
    doors: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.walls.shape[0])

    @property
    def width(self) -> int:
        return int(self.walls.shape[1])

    @property
    def free_cells(self) -> list[tuple[int, int]]:
        """Free cells in row-major order: the index order of every eigenvector array."""
        rows, cols = np.nonzero(~self.walls)
        return list(zip(rows.tolist(), cols.tolist(), strict=False))

    @property
    def num_free(self) -> int:
        return int((~self.walls).sum())

    def cell_index(self) -> dict[tuple[int, int], int]:
        return {cell: i for i, cell in enumerate(self.free_cells)}

    def coordinates(self) -> np.ndarray:
        """(N, 2) network inputs: (x, y) = (col, row) scaled to [-1, 1] by the larger side."""
        cells = np.asarray(self.free_cells, dtype=np.float64).reshape(-1, 2)
        scale = max(self.height, self.width) - 1 or 1
        xy = cells[:, ::-1] / scale
        return (2.0 * xy - 1.0).astype(np.float32)

    def next_state_table(self) -> np.ndarray:
        """(N, 4) index of the cell each action leads to (itself when blocked)."""
        index = self.cell_index()
        blocked = {(to, frm) for frm, to in self.doors}
        table = np.empty((self.num_free, len(ACTIONS)), dtype=np.int64)
        for i, (row, col) in enumerate(self.free_cells):
            for a, (dr, dc) in enumerate(ACTIONS):
                target = (row + dr, col + dc)
                if target in index and ((row, col), target) not in blocked:
                    table[i, a] = index[target]
                else:
                    table[i, a] = i
        return table

    def transition_matrix(self) -> np.ndarray:
        """(N, N) uniform-random-policy transitions, before goals end episodes."""
        table = self.next_state_table()
        n = self.num_free
        matrix = np.zeros((n, n))
        np.add.at(matrix, (np.repeat(np.arange(n), len(ACTIONS)), table.ravel()), 1.0)
        return matrix / len(ACTIONS)

    def goal_mask(self) -> np.ndarray:
        mask = np.zeros(self.num_free, dtype=bool)
        index = self.cell_index()
        for goal in self.goals:
            mask[index[goal]] = True
        return mask

    def start_distribution(self) -> np.ndarray:
        """Start at S if present, else uniform over free non-goal cells."""
        dist = np.zeros(self.num_free)
        if self.start is not None:
            dist[self.cell_index()[self.start]] = 1.0
        else:
            dist[~self.goal_mask()] = 1.0
        return dist / dist.sum()

    def components(self) -> int:
        """Number of connected free regions (moves in either direction)."""
        table = self.next_state_table()
        parent = list(range(self.num_free))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in range(self.num_free):
            for j in table[i]:
                parent[find(i)] = find(int(j))
        return len({find(i) for i in range(self.num_free)})

    def record(self) -> dict:
        """The layout as run.json's "env" object (docs/run-format.md)."""
        return {
            "name": self.name,
            "layout": self.render_text(free="."),
            "width": self.width,
            "height": self.height,
            "free_cells": [list(cell) for cell in self.free_cells],
            "coordinates": self.coordinates().tolist(),
            "start": list(self.start) if self.start else None,
            "goals": [list(goal) for goal in self.goals],
            "doors": [{"from": list(a), "to": list(b)} for a, b in self.doors],
            "num_free": self.num_free,
        }

    @classmethod
    def from_record(cls, env: dict) -> Layout:
        """Rebuild a layout from run.json's "env" (raises LayoutError, KeyError, TypeError).

        The text is read row for row (nothing stripped: older runs wrote free cells as
        spaces), and the grid it gives must be the one recorded beside it."""
        name = str(env.get("name", "custom"))
        layout = parse_layout(env["layout"], name, exact=True)
        layout.doors = [(_pair(door["from"]), _pair(door["to"])) for door in env.get("doors", [])]
        recorded = {"width": env["width"], "height": env["height"],
                    "free_cells": [list(c) for c in env["free_cells"]],
                    "start": list(env["start"]) if env.get("start") is not None else None,
                    "goals": [list(g) for g in env.get("goals", [])]}
        record = layout.record()
        rebuilt = {key: record[key] for key in recorded}
        for key, value in recorded.items():
            if rebuilt[key] != value:
                raise LayoutError(f"run.json: env.layout and env.{key} disagree (edited?); "
                                  "the recorded layout cannot be trusted")
        index = layout.cell_index()
        if any(a not in index or b not in index for a, b in layout.doors):
            raise LayoutError("run.json: env.doors names a cell that is not free")
        return layout

    def render_text(self, free: str = " ") -> str:
        """The layout as text, doors not shown (they are listed in run.json); run.json
        writes free cells as `.` so that a row of free cells is not a blank line."""
        grid = [["X" if w else free for w in row] for row in self.walls]
        if self.start is not None:
            grid[self.start[0]][self.start[1]] = START
        for row, col in self.goals:
            grid[row][col] = GOAL
        return "\n".join("".join(row) for row in grid)


def _pair(value: object) -> tuple[int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise LayoutError("run.json: env.doors holds a cell that is not a [row, col] pair")
    return int(value[0]), int(value[1])


def parse_layout(text: str, name: str = "custom", exact: bool = False) -> Layout:
    """Parse layout text; every problem is a LayoutError with one line of explanation.

    Only truly empty lines before and after the rows are dropped (`exact`: none, for
    run.json's text, whose every line is a row)."""
    if not isinstance(text, str):
        raise LayoutError(f"layout {name!r} is not text")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not exact and lines[-1] == "":
        lines.pop()
    while lines and not exact and lines[0] == "":
        lines.pop(0)
    if lines == [""]:
        lines = []
    if not lines:
        raise LayoutError(f"layout {name!r} is empty")
    height, width = len(lines), max(len(line) for line in lines)
    if height > MAX_SIDE or width > MAX_SIDE:
        over = max(height, width) - MAX_SIDE
        raise LayoutError(
            f"layout {name!r} is {width}x{height}; the limit is {MAX_SIDE}x{MAX_SIDE} cells "
            f"(MAX_SIDE), {over} over"
        )
    walls = np.zeros((height, width), dtype=bool)
    start: tuple[int, int] | None = None
    goals: list[tuple[int, int]] = []
    for r, line in enumerate(lines):
        for c, char in enumerate(line):
            if char in WALL_CHARS:
                walls[r, c] = True
            elif char == START:
                if start is not None:
                    raise LayoutError(f"layout {name!r} has more than one start 'S' (line {r + 1})")
                start = (r, c)
            elif char == GOAL:
                goals.append((r, c))
            elif char not in FREE_CHARS:
                raise LayoutError(
                    f"layout {name!r}: unknown character {char!r} at line {r + 1}, column "
                    f"{c + 1} (use X or # for walls, space or . for free, S start, G goal)"
                )
    layout = Layout(name=name, text="\n".join(lines), walls=walls, start=start, goals=goals)
    free = layout.num_free
    if free == 0:
        raise LayoutError(f"layout {name!r} has no free cell")
    if free > MAX_FREE_CELLS:
        raise LayoutError(f"layout {name!r} has {free} free cells; the limit is {MAX_FREE_CELLS} "
                          f"(MAX_FREE_CELLS), {free - MAX_FREE_CELLS} over")
    if len(goals) == free:
        raise LayoutError(f"layout {name!r} has no free cell that is not a goal")
    return layout


def builtin_names() -> list[str]:
    folder = resources.files("allo").joinpath("builtin_layouts")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))


def load_builtin(name: str) -> Layout:
    if name not in builtin_names():
        known = ", ".join(builtin_names())
        raise LayoutError(f"unknown environment {name!r}; built-ins are: {known} (or --env-file)")
    text = resources.files("allo").joinpath("builtin_layouts").joinpath(f"{name}.txt").read_text()
    return parse_layout(text, name)


def load_layout_file(path: Path | str) -> Layout:
    from allo import safeio  # a FIFO or /dev/zero is refused, never read (no hang)

    path = Path(path)
    try:
        if path.is_dir():
            raise LayoutError(f"{path}: is a directory, not a layout file")
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            raise LayoutError(f"{path}: larger than {MAX_FILE_BYTES} bytes; not a layout")
        if not os.path.lexists(path):
            raise LayoutError(f"{path}: no such layout file")
        data = safeio.read_bytes(path, MAX_FILE_BYTES)
    except safeio.ReadError as err:
        raise LayoutError(str(err)) from None
    except OSError as err:
        raise LayoutError(f"{path}: cannot read ({err.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LayoutError(f"{path}: not a UTF-8 text file") from None
    return parse_layout(text, path.stem)


def add_random_doors(layout: Layout, count: int, seed: int) -> Layout:
    """Make `count` reversible moves one-way, chosen uniformly with `seed`."""
    if count <= 0:
        return layout
    index = layout.cell_index()
    pairs = []
    for row, col in layout.free_cells:
        for dr, dc in ((1, 0), (0, 1)):
            if (row + dr, col + dc) in index:
                pairs.append(((row, col), (row + dr, col + dc)))
    if count > len(pairs):
        raise LayoutError(
            f"--doors {count}: layout {layout.name!r} has only {len(pairs)} reversible moves"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(pairs), size=count, replace=False)
    flips = rng.random(count) < 0.5
    doors = []
    for k, flip in zip(sorted(chosen.tolist()), flips.tolist(), strict=False):
        a, b = pairs[k]
        doors.append((b, a) if flip else (a, b))
    layout.doors = doors
    return layout
