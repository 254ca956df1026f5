"""The figure options `allo render` and `allo compare` share, and their checks.

Paper defaults: PNG at 200 dpi, one column wide, each eigenvector on its own colour
scale, no run name on the figure, convergence as 1 - |cos| on a log axis.
"""

from __future__ import annotations

import argparse
import math

from renderers import RenderOptions
from renderers.style import SIZES

SCALES = ("per-vector", "shared")


def step_range(text: str) -> tuple[float | None, float | None]:
    """'A:B', 'A:' or ':B' -> the steps shown (either end open)."""
    low, colon, high = text.partition(":")
    try:
        ends = tuple(float(v) if v.strip() else None for v in (low, high))
    except ValueError:
        ends = None
    if not colon or ends is None or all(v is None for v in ends):
        raise argparse.ArgumentTypeError(f"expected START:END steps, e.g. 1000:20000, got {text!r}")
    if ends[0] is not None and ends[1] is not None and ends[1] <= ends[0]:
        raise argparse.ArgumentTypeError(f"{text!r}: the end must come after the start")
    return ends  # type: ignore[return-value]


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def dpi(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 10 <= value <= 1200:
        raise argparse.ArgumentTypeError(f"{text!r}: choose 10..1200")
    return value


def add_figure_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dpi", type=dpi, default=200, help="PNG resolution (default 200)")
    p.add_argument("--size", choices=SIZES, default="column",
                   help="figure width and fonts: one column (3.3 in, default) or the page "
                        "(6.8 in)")
    p.add_argument("--scale", choices=SCALES, default="per-vector",
                   help="eigenvector colours: each vector on its own scale (default; ground "
                        "truth and learned share it) or one scale for all")
    p.add_argument("--annotate", action="store_true",
                   help="put the run's name on the figures (off: ready for a paper)")
    p.add_argument("--linear-cos", action="store_true",
                   help="|cos| on a linear axis instead of 1 - |cos| on a log axis")
    p.add_argument("--x-range", type=step_range, metavar="START:END",
                   help="curves over these steps only, e.g. 2000: or 1000:20000")
    p.add_argument("--tail", type=fraction, metavar="F",
                   help="curves over the last fraction F of the steps, e.g. 0.5")


def render_options(args: argparse.Namespace, color: bool, width: int) -> RenderOptions:
    return RenderOptions(
        dpi=args.dpi, color=color, width=width, size=args.size, annotate=args.annotate,
        scale=args.scale, linear_cos=args.linear_cos,
        x_range=args.x_range or (None, None), tail=args.tail,
    )
