"""The statistics behind the benchmark tables (the timings themselves are benchmarks, not tests)."""
import math
import random

import pytest

from hypernb.bench import median_ci


@pytest.mark.parametrize("n, ranks", [(5, None), (6, (1, 6)), (9, (2, 8)), (15, (4, 12)), (20, (6, 15))])
def test_median_interval_uses_the_order_statistics_of_the_binomial_table(n, ranks):
    """Ranks from the sign-test table: (x₍ⱼ₎, x₍ₙ₊₁₋ⱼ₎) with 2·P(Bin(n, ½) < j) ≤ 5 % and j largest."""
    xs = [10.0 * i for i in range(n, 0, -1)]  # unsorted on purpose
    med, lo, hi = median_ci(xs)
    assert med == pytest.approx(10.0 * (n + 1) / 2)
    if ranks is None:
        assert lo is None and hi is None
    else:
        assert (lo, hi) == (10.0 * ranks[0], 10.0 * ranks[1])


def test_median_interval_covers_a_skewed_distributions_median_at_least_95_percent_of_the_time():
    rng = random.Random(0)
    true_median, trials, hits = math.log(2.0), 4000, 0  # exponential(1), skewed like timings
    for _ in range(trials):
        _, lo, hi = median_ci([rng.expovariate(1.0) for _ in range(9)])
        hits += lo <= true_median <= hi
    assert hits / trials >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / trials)  # n = 9: exact coverage 96.1 %


def test_median_interval_refuses_no_values():
    with pytest.raises(ValueError, match="at least one value"):
        median_ci([])
