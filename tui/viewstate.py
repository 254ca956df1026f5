"""The x range, axis and cursor of the curves: pure state changed by keys.

Shared by the single-run curves and the runs overlay, so both answer the same keys
the same way (x: step / time; z: last N%; + -: zoom; < >: pan; c , .: cursor).
"""

from __future__ import annotations

from dataclasses import replace

from tui.chart import View

# `z` steps through these visible fractions of the run: the whole run, then its end.
LAST_FRACTIONS = (1.0, 0.5, 0.2, 0.05)
MIN_WINDOW = 0.01  # zooming stops at 1% of the x extent
CURSOR_STEP = 0.02  # of the visible range, per key press


class ViewState:
    """Holds a `View` and changes it; `version` bumps on every change (redraw key)."""

    def __init__(self) -> None:
        self.view = View()
        self.version = 0

    def _set(self, **changes) -> None:
        self.view = replace(self.view, **changes)
        self.version += 1

    def toggle_log(self) -> None:
        self._set(log_y=not self.view.log_y)

    def toggle_smooth(self) -> None:
        self._set(smooth=not self.view.smooth)

    def toggle_axis(self) -> None:
        self._set(time_axis=not self.view.time_axis)

    def cycle_last(self) -> None:
        """All of the run, then its last 50%, 20%, 5%, then all again."""
        width = self.view.x_window[1] - self.view.x_window[0]
        at_end = self.view.x_window[1] >= 1.0 - 1e-9
        following = [f for f in LAST_FRACTIONS if f < width - 1e-9] if at_end else []
        fraction = following[0] if following else LAST_FRACTIONS[0]
        self._set(x_window=(1.0 - fraction, 1.0))

    def zoom(self, factor: float) -> None:
        """factor < 1 zooms in about the window's centre (the right edge stays pinned
        when the window ends at the newest data, so it keeps following the run)."""
        lo, hi = self.view.x_window
        width = min(1.0, max(MIN_WINDOW, (hi - lo) * factor))
        if hi >= 1.0 - 1e-9:
            self._set(x_window=(max(0.0, 1.0 - width), 1.0))
            return
        centre = (lo + hi) / 2
        lo = min(max(0.0, centre - width / 2), 1.0 - width)
        self._set(x_window=(lo, lo + width))

    def pan(self, direction: int) -> None:
        """Move the window by a quarter of its width, inside the run."""
        lo, hi = self.view.x_window
        width = hi - lo
        lo = min(max(0.0, lo + direction * width / 4), 1.0 - width)
        self._set(x_window=(lo, lo + width))

    def reset_range(self) -> None:
        self._set(x_window=(0.0, 1.0))

    def toggle_cursor(self) -> None:
        self._set(cursor=None if self.view.cursor is not None else 1.0)

    def move_cursor(self, direction: int) -> None:
        if self.view.cursor is None:
            self._set(cursor=1.0)
            return
        self._set(cursor=min(1.0, max(0.0, self.view.cursor + direction * CURSOR_STEP)))

    def flags(self) -> str:
        """What is on, for the panel's subtitle: 'log-y EMA time last 20% cursor'."""
        view = self.view
        parts = []
        if view.log_y:
            parts.append("log-y")
        if view.smooth:
            parts.append("EMA")
        if view.time_axis:
            parts.append("x=time")
        lo, hi = view.x_window
        if (lo, hi) != (0.0, 1.0):
            parts.append(f"last {hi - lo:.0%}" if hi >= 1.0 - 1e-9 else f"{lo:.0%}–{hi:.0%}")
        if view.cursor is not None:
            parts.append("cursor")
        return " ".join(parts)
