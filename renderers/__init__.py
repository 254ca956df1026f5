"""Renderer plugins: one registry, one renderer per output format.

A renderer is found through the `allo.renderers` entry-point group (built-ins are
registered in pyproject.toml the same way a third-party package would), so a new format
needs no change here. `available()` lists names without importing any plugin module;
`load(name)` imports one and reports a failure as one line (`RendererError`).

The protocol is small on purpose: figures arrive as format-neutral descriptions
(`renderers.figures`) and a renderer returns the file's bytes. It never opens files;
the command writes them atomically and only under RUN/plots (or --out).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from renderers.kinds import SHAPES, TABLE

if TYPE_CHECKING:
    from renderers.figures import CurveFigure, GridFigure

GROUP = "allo.renderers"


class RendererError(Exception):
    """A renderer that cannot be found or imported; the message is one line."""


@dataclass(frozen=True)
class RenderOptions:
    """Settings every renderer receives; a renderer ignores what it has no use for.

    The fields in CONTENT change what a figure shows (its description, built before any
    renderer draws it), so they count for every renderer's incremental check.
    """

    dpi: int = 200  # raster resolution (png)
    color: bool = True  # colour escapes (text); False under NO_COLOR
    width: int = 100  # text width in columns (text)
    size: str = "column"  # column (3.3 in) | page (6.8 in): figure width and fonts
    annotate: bool = False  # the run's name in the subtitle
    scale: str = "per-vector"  # eigenvector colours: per-vector | shared
    linear_cos: bool = False  # |cos| on a linear axis instead of 1 - |cos| on a log one
    x_range: tuple[float | None, float | None] = (None, None)  # steps shown
    tail: float | None = None  # only the last fraction of the steps


CONTENT = ("size", "annotate", "scale", "linear_cos", "x_range", "tail")


@runtime_checkable
class Renderer(Protocol):
    """One output format: a method per figure shape returns the complete file as bytes.

    `grid(GridFigure)` draws the eigenvector figures and `curves(CurveFigure)` the
    curves; renderers/kinds.py lists which kind has which shape. A renderer that
    cannot draw a shape raises NotImplementedError; those figures are reported as failed
    and the others are still made. (A plugin written for the older protocol, with one
    method per kind, still loads: docs/renderers.md.)
    """

    name: ClassVar[str]  # the --format value, e.g. "png"
    extension: ClassVar[str]  # with the dot, e.g. ".png"
    # Optional, not part of the check: `options_used`, a tuple of the RenderOptions fields
    # the renderer reads (CONTENT counts always); a figure drawn with other values of
    # those is drawn again by an incremental render (renderers/drawn_with.py). Without
    # it, every field counts. Also optional: `drawing_version`, an int bumped when the
    # renderer's code draws the same run and options differently, so figures drawn
    # before are drawn again once; and `prepare(kinds)`, called before workers fork.

    def __init__(self, options: RenderOptions) -> None: ...

    def grid(self, figure: GridFigure) -> bytes: ...

    def curves(self, figure: CurveFigure) -> bytes: ...


def _entry_points() -> dict[str, EntryPoint]:
    """The registered renderers by name (a seam tests patch to register extra ones)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of the registered renderers; imports no plugin module."""
    return sorted(_entry_points())


def entry_point_target(name: str) -> str:
    ep = _entry_points().get(name)
    return ep.value if ep is not None else "?"


def load(name: str) -> type[Renderer]:
    """Import one renderer class; any failure becomes a one-line RendererError."""
    found = _entry_points()
    if name not in found:
        names = ", ".join(sorted(found)) or "none installed"
        raise RendererError(f"no renderer named {name!r} (available: {names})")
    try:
        cls = found[name].load()
    except Exception as err:  # a broken plugin must not take the command down
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RendererError(f"renderer {name!r} failed to load: {reason}") from None
    missing = [attr for attr in ("name", "extension") if not hasattr(cls, attr)]
    if not all(hasattr(cls, shape) for shape in SHAPES):  # else the older, per-kind protocol
        missing += [kind.name for kind in TABLE if not hasattr(cls, kind.name)]
    if missing:
        raise RendererError(f"renderer {name!r} lacks {', '.join(missing)}")
    return cls


def load_all() -> tuple[dict[str, type[Renderer]], list[str]]:
    """Every renderer that loads, and one line per one that does not."""
    loaded, problems = {}, []
    for name in available():
        try:
            loaded[name] = load(name)
        except RendererError as err:
            problems.append(str(err))
    return loaded, problems
