"""The statistics behind the benchmark tables, and a smoke run of the scripts (the timings themselves
are benchmarks, not tests)."""
import json
import math
import os
import random
import subprocess
import sys

import pytest

from conftest import require_cxx
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


def test_the_benchmark_scripts_run_and_write_their_records(tmp_path):
    """A smoke run of both benchmark scripts (--quick), so that a lent GPU's minutes are not spent on a
    broken script: every kind of row, the comparison with gdtuo, the cost per level and the records."""
    require_cxx()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = ("hypernb Adam/SGD,hypernb Adam/SGD (compiled=True),hypernb SGD tower h=1,hypernb SGD tower h=2,"
            "hypernb Adam/SGD (tensors only)")
    try:
        import gradient_descent_the_ultimate_optimizer  # noqa: F401
        rows += ",gdtuo Adam/SGD,gdtuo SGD tower h=1,gdtuo SGD tower h=2"
        gdtuo = True
    except ImportError:
        gdtuo = False
    env = {**os.environ, "PYTHONPATH": root}
    subprocess.run([sys.executable, "benchmarks/step_overhead.py", "--quick", "--models", "mlp", "--only", rows,
                    "--json", str(tmp_path / "step.json")], cwd=root, env=env, check=True, capture_output=True)
    step = json.loads((tmp_path / "step.json").read_text())
    mlp = step["models"]["mlp"]
    assert set(rows.split(",")) < set(mlp["rows"]) and mlp["rows"]["hypernb Adam/SGD (compiled=True)"]["ms"] > 0
    assert step["machine"]["commit"] and step["machine"]["cpu"]
    assert mlp["rows"]["hypernb Adam/SGD (tensors only)"]["baseline"] == "hypernb Adam/SGD"  # the ablation
    assert "hypernb" in mlp["per_level"] and len(mlp["per_level"]["hypernb"]["percent_all"]) == 2
    if gdtuo:
        assert set(mlp["vs_gdtuo"]) == {"hypernb Adam/SGD", "hypernb Adam/SGD (compiled=True)"}
    subprocess.run([sys.executable, "benchmarks/throughput.py", "--quick", "--tasks", "mnist-mlp", "--compiled",
                    "--json", str(tmp_path / "throughput.json")], cwd=root, env=env, check=True, capture_output=True)
    tp = json.loads((tmp_path / "throughput.json").read_text())
    row, = tp["rows"]
    assert row["task"] == "mnist-mlp" and row["compiled"] and row["batched"]["config_steps_per_s"] > 0
