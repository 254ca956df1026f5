"""renderers/ticks.py against matplotlib's own locators and formatters, on many ranges."""

from __future__ import annotations

import numpy as np
import pytest

from renderers import ticks

matplotlib = pytest.importorskip("matplotlib")
from matplotlib import ticker  # noqa: E402


def ranges(count: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        centre = rng.choice([0.0, 1.0, -3.0, 250.0, 1e-4, 7e5]) * rng.uniform(0.5, 2.0)
        span = 10 ** rng.uniform(-5, 6)
        low = centre - span * rng.uniform(0, 1)
        yield low, low + span


@pytest.mark.parametrize("nbins", [1, 3, 4, 5, 6, 9])
def test_max_n_locator_is_matplotlibs(nbins):
    for low, high in ranges(150, seed=nbins):
        want = ticker.MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
        got = ticks.max_n_locator(low, high, nbins)
        assert np.allclose(got, want, rtol=1e-12, atol=1e-12 * (high - low)), (low, high)


def test_integer_steps_are_matplotlibs():
    for high in (1, 3, 7, 20, 99, 200, 1000, 5999, 20000, 60000, 123456):
        for nbins in (3, 5, 6, 9):
            want = ticker.MaxNLocator(nbins=nbins, integer=True,
                                      steps=[1, 2, 2.5, 5, 10]).tick_values(0, high)
            assert np.allclose(ticks.max_n_locator(0, high, nbins, integer=True), want)


def test_log_locator_is_matplotlibs():
    rng = np.random.default_rng(1)
    for _ in range(300):
        low = 10 ** rng.uniform(-12, 3)
        high = low * 10 ** rng.uniform(0.05, 14)
        for numticks in (3, 5, 9):
            want = ticker.LogLocator(numticks=numticks).tick_values(low, high)
            got = ticks.log_locator(low, high, numticks)
            assert np.allclose(got, want, rtol=1e-12), (low, high, numticks)
            want = ticker.LogLocator(subs=(1.0, 2.0, 5.0), numticks=numticks).tick_values(
                low, high)
            got = ticks.log_locator(low, high, numticks, subs=(1.0, 2.0, 5.0))
            assert np.allclose(got, want, rtol=1e-12), (low, high, numticks)


def test_auto_bins_is_matplotlibs_tick_space():
    from matplotlib.figure import Figure

    for width, height, size in ((3.3, 1.8, 7), (6.8, 2.5, 8), (2.0, 4.0, 10)):
        fig = Figure(figsize=(width, height), dpi=100)
        ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
        ax.tick_params(labelsize=size)
        assert ticks.auto_bins(width * 0.8 * 72, size, "x") == min(9, ax.xaxis.get_tick_space())
        assert ticks.auto_bins(height * 0.8 * 72, size, "y") == min(9, ax.yaxis.get_tick_space())


def test_drawn_axes_show_the_same_ticks():
    """An axes autoscaled by matplotlib shows what padded_range + nice_ticks give."""
    from matplotlib.figure import Figure

    rng = np.random.default_rng(2)
    for _ in range(40):
        low = rng.uniform(-5, 5)
        high = low + 10 ** rng.uniform(-2, 3)
        fig = Figure(figsize=(4, 3), dpi=100)
        ax = fig.add_axes((0.15, 0.15, 0.8, 0.8))
        ax.plot([0, 1], [low, high])
        view = ticks.padded_range(low, high)
        assert np.allclose(ax.get_ylim(), view)
        bins = ticks.auto_bins(3 * 0.8 * 72, matplotlib.rcParams["ytick.labelsize"]
                               if isinstance(matplotlib.rcParams["ytick.labelsize"], float)
                               else 10.0, "y")
        got = ticks.visible(ticks.max_n_locator(*view, bins), *view)
        shown = [t for t in ax.get_yticks() if view[0] <= t <= view[1]]
        assert np.allclose(got, shown)


def test_log_view_matches_matplotlib_autoscale():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    ax.plot([1, 2, 3], [2e-4, 3e-2, 0.5])
    ax.set_yscale("log")
    assert np.allclose(ax.get_ylim(), ticks.padded_range(2e-4, 0.5, log=True))


def test_scalar_labels_are_matplotlibs():
    formatter = ticker.ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_axes((0, 0, 1, 1))
    formatter.set_axis(ax.yaxis)
    for locs in ([0, 10000, 20000, 30000], [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], [0.1, 0.15, 0.2],
                 [-1.0, -0.5, 0.0, 0.5], [1.0, 1.25, 1.5, 1.75], [0.002, 0.004, 0.006]):
        ax.set_ylim(min(locs), max(locs))
        want = formatter.format_ticks(locs)
        assert ticks.scalar_labels(locs) == want


def test_log_labels():
    assert ticks.log_label(1e-3) == "10⁻³"
    assert ticks.log_label(2e-3) == "2×10⁻³"
    assert ticks.log_label(1.0) == "10⁰"
    assert ticks.log_label(1e-3, mathtext=True) == r"$\mathdefault{10^{-3}}$"
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    ax = fig.add_axes((0.2, 0.1, 0.7, 0.8))
    ax.set_yscale("log")
    ax.set_ylim(3e-6, 2.0)
    FigureCanvasAgg(fig).draw()
    shown = {label.get_text() for value, label in zip(ax.get_yticks(), ax.get_yticklabels(),
                                                       strict=True) if 3e-6 <= value <= 2.0}
    got = {ticks.log_label(v, mathtext=True)
           for v in ticks.log_ticks(3e-6, 2.0)}
    assert got == shown


@pytest.mark.parametrize("size", ["column", "page"])
def test_step_labels_of_a_long_run_do_not_run_into_each_other(size):
    """matplotlib's 'auto' bins count label heights: at 200000 steps (the paper preset's
    GGDO) nine six-digit labels overprinted; the step axis takes fewer bins instead."""
    from renderers import axes
    from renderers import style as styles

    st = styles.style(size)
    width = styles.curve_width(st, 1) * 72
    axis = axes.x_axis(np.array([0.0, 200000.0]), width, st.font)
    assert axes.labels_fit(axis, width, st.font), axis.labels
    assert len(axis.ticks) >= 3
    short = axes.x_axis(np.array([0.0, 8000.0]), width, st.font)  # as matplotlib has it
    assert short.ticks == ticks.nice_ticks(0.0, 8000.0, ticks.auto_bins(width, st.font, "x"),
                                           integer=True)
