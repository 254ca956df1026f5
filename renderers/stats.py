"""Across-seed statistics for `allo compare`: a centre and a Student-t 95% interval.

Three intervals, one per kind of quantity (docs/math.md, "Intervals across seeds"):

- `mean_interval`: any quantity; mean +- t(0.975, n-1) * s / sqrt(n), s with ddof = 1.
- `positive_interval`: a quantity that is positive by nature (an error, 1 - |cos|). The
  same interval is taken over log(x) and mapped back, so it is the geometric mean times
  / divided by exp(t * s_log / sqrt(n)): never negative, and symmetric on a log axis.
- `unit_interval`: a quantity in [0, 1] close to 1 (|cos|): the positive interval of
  1 - x, mapped back as 1 - it; its top never passes 1.

With fewer than two finite values there is no interval (NaN). The t quantile is
scipy's (`scipy.stats.t.ppf`), imported on first use so listing renderers stays cheap.
"""

from __future__ import annotations

import numpy as np

Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (scipy)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must lie in (0, 1)")
    from scipy.stats import t

    return float(t.ppf(p, df))


def mean_interval(values: np.ndarray, axis: int = 0, level: float = 0.95) -> Triple:
    """(mean, low, high) along `axis`, ignoring NaN; low = high = NaN where n < 2."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    count = np.sum(finite, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.sum(np.where(finite, values, 0.0), axis=axis)
        mean = np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)
        deviation = np.where(finite, values - np.expand_dims(mean, axis), 0.0)
        var = np.sum(deviation**2, axis=axis) / np.where(count > 1, count - 1, 1)
        half = np.where(count > 1, _t_factor(count, level) * np.sqrt(var / count), np.nan)
    return mean, mean - half, mean + half


def _t_factor(count: np.ndarray, level: float) -> np.ndarray:
    """t(0.5 + level/2, n - 1) for every count (NaN where n < 2)."""
    from scipy.stats import t

    count = np.asarray(count, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(count > 1, t.ppf(0.5 + level / 2.0, np.maximum(count - 1, 1)), np.nan)


def positive_interval(values: np.ndarray, axis: int = 0, level: float = 0.95) -> Triple:
    """(geometric mean, low, high) of positive values, the t-interval taken in log space.

    Zero or negative entries carry no log and are left out like NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)
    centre, low, high = mean_interval(logs, axis=axis, level=level)
    return np.exp(centre), np.exp(low), np.exp(high)


def unit_interval(values: np.ndarray, axis: int = 0, level: float = 0.95) -> Triple:
    """(centre, low, high) of values in [0, 1] near 1: 1 - positive_interval(1 - x).

    The low end is clipped at 0; the high end stays below 1 by construction.
    """
    gap = 1.0 - np.clip(np.asarray(values, dtype=np.float64), None, 1.0)
    centre, low, high = positive_interval(gap, axis=axis, level=level)
    return 1.0 - centre, np.clip(1.0 - high, 0.0, 1.0), 1.0 - low
