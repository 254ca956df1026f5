"""Import matplotlib's Agg stack for a short-lived render process, without its idle work.

A fresh `import matplotlib.figure` + `backend_agg` costs 0.5-0.7 s of CPU here, a third
of `allo render --latest-only`. Two parts of it draw nothing (measured in fresh
interpreters, BENCHMARKS.md, "Rendering"):

- the cyclic garbage collector runs dozens of times while the modules build their
  classes, and finds nothing to free (about 0.1 s);
- every Artist subclass gets a `set()` docstring listing all its properties, built by
  `matplotlib.artist.kwdoc` (about 0.1-0.2 s); a renderer never reads a docstring.

Both are undone afterwards: the collector is back on and `kwdoc` is the real function
again (classes made later document themselves as usual). Nothing here changes a pixel.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (imports create no garbage worth it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def artist_docs_skipped() -> Iterator[None]:
    """`matplotlib.artist.kwdoc` returns "" inside the block, then is restored."""
    import matplotlib.artist as artist

    real = artist.kwdoc
    artist.kwdoc = _no_doc
    try:
        yield
    finally:
        artist.kwdoc = real


def _no_doc(_artist: Any) -> str:
    return ""


def import_agg() -> dict[str, Any]:
    """matplotlib with the Agg backend: Figure, FigureCanvasAgg and the ticker module."""
    with gc_paused():
        import matplotlib

        matplotlib.use("Agg", force=True)
        with artist_docs_skipped():
            from matplotlib import ticker
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
    return {"matplotlib": matplotlib, "Figure": Figure, "Canvas": FigureCanvasAgg, "ticker": ticker}
