"""Paired comparisons over seeds: the mean difference and its 95 % interval.

Two runs with the same seed start from the same weights and see the same batches, so their
difference isolates the optimizer; the interval is Student's t over the per-seed differences
(the t quantiles are tabulated below, so no SciPy is needed).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# two-sided 95 % quantiles t_{0.975, df} for df = 1…30 (beyond: the normal 1.96 rounded up)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("a t interval needs at least 2 values")
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.5 / df  # within 0.002 of the exact quantile


@dataclass
class Interval:
    """Mean of ``values`` with its 95 % t interval; ``n`` values (lo = hi = mean when n = 1)."""

    mean: float
    lo: float
    hi: float
    n: int

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:+.3g} (n = 1, no interval)"
        return f"{self.mean:+.3g} [{self.lo:+.3g}, {self.hi:+.3g}] (n = {self.n})"

    def short(self) -> str:
        """"+0.12 [−0.03, +0.27]": mean and interval to two decimals, for a table cell."""
        return f"{self.mean:+.2f} [{self.lo:+.2f}, {self.hi:+.2f}]"


def interval(values) -> Interval:
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    m = statistics.fmean(values)
    if len(values) < 2:
        return Interval(m, m, m, len(values))
    half = t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return Interval(m, m - half, m + half, len(values))


def rate_interval(k: int, n: int) -> tuple[float, float]:
    """The exact (Clopper–Pearson) 95 % interval of a rate seen as k of n: the rates p under which k or
    more (for the lower end), or k or fewer (for the upper end), would happen with probability 2.5 %."""
    def tail(p: float, at_least: bool) -> float:
        ks = range(k, n + 1) if at_least else range(0, k + 1)
        return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in ks)

    def solve(at_least: bool) -> float:  # bisection: the tail grows with p (at least k) or falls (at most k)
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if (tail(mid, at_least) < 0.025) == at_least:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    return (0.0 if k == 0 else solve(True)), (1.0 if k == n else solve(False))


def differences(a: dict, b: dict) -> dict:
    """seed → a − b over the seeds both have (dicts seed → value), in seed order."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def paired(a: dict, b: dict) -> Interval:
    """Interval of a − b over the seeds both have (dicts seed → value)."""
    d = differences(a, b)
    if not d:
        raise ValueError("no seed in common")
    return interval(d.values())


def mean_sd(values) -> str:
    """"m ± sd (n)" — or just the value for one seed (never a misleading ± 0.00)."""
    values = [float(v) for v in values]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f} (n = 1)"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} (n = {len(values)})"
