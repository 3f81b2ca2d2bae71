"""The study's statistics and decision rules: intervals that are right, verdicts only as declared."""
import math
import statistics

import pytest

from hypernb.study import claims as C
from hypernb.study import sources as S
from hypernb.study.stats import Interval, interval, mean_sd, paired, t975


def test_t_quantiles_are_students():
    assert t975(1) == 12.706 and t975(4) == 2.776 and t975(30) == 2.042
    assert abs(t975(60) - 2.000) < 0.003 and abs(t975(120) - 1.980) < 0.003
    with pytest.raises(ValueError):
        t975(0)


def test_interval_is_mean_plus_minus_t_times_standard_error():
    values = [1.0, 2.0, 4.0, 3.0, 5.0]
    iv = interval(values)
    half = 2.776 * statistics.stdev(values) / math.sqrt(5)
    assert iv.mean == 3.0 and iv.lo == pytest.approx(3 - half) and iv.hi == pytest.approx(3 + half) and iv.n == 5
    assert interval([2.5]) == Interval(2.5, 2.5, 2.5, 1)


def test_paired_uses_only_common_seeds_and_subtracts_per_seed():
    a, b = {0: 5.0, 1: 6.0, 2: 7.0, 9: 100.0}, {0: 4.0, 1: 4.5, 2: 6.0}
    iv = paired(a, b)
    assert iv.n == 3 and iv.mean == pytest.approx((1 + 1.5 + 1) / 3)
    with pytest.raises(ValueError, match="no seed in common"):
        paired({0: 1.0}, {1: 1.0})


def test_one_seed_never_shows_a_zero_spread():
    assert mean_sd([2.1]) == "2.10 (n = 1)" and "±" in mean_sd([2.1, 2.3])


LOWER = C.BY_ID["mnist-sgd-sgd-beats-sgd"]  # δ = 0.1 pp, 5 seeds


@pytest.mark.parametrize("lo, hi, verdict", [
    (-0.9, -0.2, "reproduced"),     # clearly below 0
    (-0.05, 0.3, "refuted"),        # cannot reach an improvement of δ
    (-0.5, 0.2, "inconclusive"),    # includes 0 and reaches below −δ
    (0.1, 0.4, "refuted"),          # clearly worse
])
def test_lower_rule(lo, hi, verdict):
    v = C.judge(LOWER, Interval((lo + hi) / 2, lo, hi, 5), "full")
    assert v.verdict == verdict, v.reason


def test_within_rule():
    claim = C.BY_ID["towers-level-cost"]  # within +2 %
    assert C.judge(claim, Interval(1.0, 0.5, 1.5, 9), "full").verdict == "reproduced"
    assert C.judge(claim, Interval(3.0, 2.5, 3.5, 9), "full").verdict == "refuted"
    assert C.judge(claim, Interval(2.0, 1.5, 2.5, 9), "full").verdict == "inconclusive"


def test_verdicts_need_the_full_protocol_and_enough_seeds():
    clear = Interval(-1.0, -1.5, -0.5, 5)
    assert C.judge(LOWER, clear, "demo").verdict == C.INDICATIVE
    assert C.judge(LOWER, Interval(-1.0, -1.5, -0.5, 3), "full").verdict == "inconclusive"
    assert "n = 3 < 5" in C.judge(LOWER, Interval(-1.0, -1.5, -0.5, 3), "full").reason
    assert C.judge(LOWER, None, "full", missing="needs a GPU").reason == "needs a GPU"


def test_rate_rule():
    claim = C.BY_ID["report-adam-adam-fails"]
    assert C.judge(claim, None, "full", failures=(5, 5)).verdict == "reproduced"
    assert C.judge(claim, None, "full", failures=(0, 5)).verdict == "refuted"
    assert C.judge(claim, None, "full", failures=(2, 5)).verdict == "inconclusive"


def test_every_claim_is_declared_completely_and_once():
    ids = [c.id for c in C.CLAIMS]
    assert len(ids) == len(set(ids))
    for c in C.CLAIMS:
        assert c.kind in C.RULES and c.min_n >= 1 and c.statement and c.metric and c.comparison, c.id
        assert c.claimant.split(" (")[0] in ("paper", "COMP6258 report", "our question", "Mishchenko & Defazio 2024",
                                             "Defazio et al. 2024"), c.id


def test_every_first_declaration_belongs_to_a_claim_that_says_it_was_amended():
    """A changed declaration keeps its first form (judged beside it in the notebook) and says what changed."""
    for first_id, first in C.FIRST_DECLARED.items():
        now = [c for c in C.CLAIMS if c.id == first_id or c.id.startswith(first_id + "-")]
        assert now and all(c.amended for c in now), first_id
        assert first.kind in C.RULES and not first.amended and first.notebook == now[0].notebook
    assert all(len(c.amended) > 40 for c in C.CLAIMS if c.amended)  # a reason, not a flag


def test_no_number_is_labelled_paper_unless_it_is():
    """Every cited number names its exact source; none claims to be the NeurIPS paper's (not retrieved)."""
    numbers = [*S.HUANG_MNIST_ERROR.values(), *S.REPORT_MNIST_ERROR.values(), *S.V1_MNIST_ACC.values(),
               *S.REPORT_CNN_KAPPA0_ACC.values(), *S.REPORT_CNN_HYPER_ACC.values(), S.HE_RESNET20_ACC,
               S.REPORT_RNN_LOSS]
    assert all(n.source is not S.NEURIPS for n in numbers)
    assert S.HUANG_MNIST_ERROR[("sgd", "sgd")].cite() == "4.9 % (30 epochs, κ = 0.01) — Huang et al. (official code)"
    assert S.REPORT_MNIST_ERROR[("adam", "adam")].value == 90.2  # the report's 9.80 % accuracy
