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

if TYPE_CHECKING:
    from renderers.figures import CurveFigure, GridFigure

GROUP = "allo.renderers"
# The figure kinds, in the order `allo render` makes them; each is a renderer method.
FIGURE_KINDS = (
    "ground_truth_eigenvectors",
    "learned_eigenvectors",
    "final_comparison",
    "learning_curves",
    "dual_variable_evolution",
    "cosine_similarity",
    "comparison",
)


class RendererError(Exception):
    """A renderer that cannot be found or imported; the message is one line."""


@dataclass(frozen=True)
class RenderOptions:
    """Settings every renderer receives; a renderer ignores what it has no use for."""

    dpi: int = 100  # raster resolution (png)
    color: bool = True  # colour escapes (text); False under NO_COLOR
    width: int = 100  # text width in columns (text)


@runtime_checkable
class Renderer(Protocol):
    """One output format. Each figure method returns the complete file as bytes.

    Grid figures (`GridFigure`): ground_truth_eigenvectors, learned_eigenvectors,
    final_comparison. Curve figures (`CurveFigure`): learning_curves,
    dual_variable_evolution, cosine_similarity, comparison (from `allo compare`).
    A renderer that cannot draw a kind raises NotImplementedError; that figure is
    reported as failed and the others are still made.
    """

    name: ClassVar[str]  # the --format value, e.g. "png"
    extension: ClassVar[str]  # with the dot, e.g. ".png"
    # Optional, not part of the check: `options_used`, a tuple of the RenderOptions fields
    # the renderer reads; a figure drawn with other values of those is drawn again by an
    # incremental render (renderers/drawn_with.py). Without it, every field counts.
    # Also optional: `drawing_version`, an int bumped when the renderer's code draws the
    # same run and options differently, so figures drawn before are drawn again once.

    def __init__(self, options: RenderOptions) -> None: ...

    def ground_truth_eigenvectors(self, figure: GridFigure) -> bytes: ...

    def learned_eigenvectors(self, figure: GridFigure) -> bytes: ...

    def final_comparison(self, figure: GridFigure) -> bytes: ...

    def learning_curves(self, figure: CurveFigure) -> bytes: ...

    def dual_variable_evolution(self, figure: CurveFigure) -> bytes: ...

    def cosine_similarity(self, figure: CurveFigure) -> bytes: ...

    def comparison(self, figure: CurveFigure) -> bytes: ...


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
    missing = [attr for attr in ("name", "extension", *FIGURE_KINDS) if not hasattr(cls, attr)]
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
