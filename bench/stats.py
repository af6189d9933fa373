"""The benchmark's arithmetic: percentiles, rates and ratios, one definition each.

Every figure of every scenario goes through these, so that a p99 in one table
means what it means in the next. A figure that cannot be computed (no samples,
no time, nothing to divide by) is NaN, never an exception: the report shows it
as ``-`` and the JSON as ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["percent", "percentile", "percentiles", "rate", "ratio"]


def percentiles(values: Iterable[float], *qs: float) -> tuple[float, ...]:
    """The nearest-rank `qs`-th percentiles (each 0 to 100) of `values`, sorting
    them once: the smallest value with at least q% of the values at or below it,
    so a percentile is always a value that was measured. NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return tuple(math.nan for _ in qs)
    size = len(ordered)
    return tuple(ordered[max(1, math.ceil(q / 100.0 * size)) - 1] for q in qs)


def percentile(values: Iterable[float], q: float) -> float:
    """One nearest-rank percentile (`percentiles` for several of the same values)."""
    return percentiles(values, q)[0]


def rate(count: float, seconds: float) -> float:
    """`count` per second; NaN over no time."""
    return count / seconds if seconds > 0 else math.nan


def percent(used_s: float, window_s: float) -> float:
    """CPU seconds `used_s` over a wall-clock window, as a percentage of one CPU."""
    return 100.0 * rate(used_s, window_s)


def ratio(ours: float | None, theirs: float | None) -> float:
    """`ours` / `theirs`; NaN when either is missing or not finite, or `theirs` is 0."""
    if ours is None or theirs is None or not math.isfinite(ours) or not math.isfinite(theirs):
        return math.nan
    return ours / theirs if theirs else math.nan
