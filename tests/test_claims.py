"""The study's statistics and decision rules: intervals that are right, verdicts only as declared."""
import math
import statistics
from dataclasses import replace

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


def test_an_interval_between_minus_delta_and_zero_is_reproduced_and_says_it_is_smaller_than_delta():
    v = C.judge(LOWER, Interval(-0.05, -0.08, -0.02, 5), "full")  # below 0 and above −δ: both conditions hold
    assert v.verdict == "reproduced" and "smaller than δ" in v.reason, v.reason
    assert "smaller than δ" not in C.judge(LOWER, Interval(-0.9, -1.2, -0.6, 5), "full").reason
    higher = C.BY_ID["report-towers-hurt-good-alpha"]  # higher, δ = 0.1 pp
    v = C.judge(higher, Interval(0.05, 0.02, 0.08, 3), "full")
    assert v.verdict == "reproduced" and "smaller than δ" in v.reason, v.reason


def test_one_value_has_no_interval_in_its_reason():
    claim = C.BY_ID["report-towers-memory"]  # n = 1: one exact measurement
    v = C.judge(claim, Interval(0.004, 0.004, 0.004, 1), "full")
    assert v.verdict == "reproduced" and "no interval" in v.reason and "[" not in v.reason, v.reason
    assert v.row()["95 % interval"] == "–"



def test_a_claim_on_a_measure_with_ties_is_judged_on_the_median_from_six_seeds():
    """A count of decades (or runs that end identically) is judged by the distribution-free interval of the
    median: 3 seeds cannot decide, whether they all gave +4 (a t interval of no width) or +4, +4, +3 (a t
    interval that would say reproduced); 6 can. As first declared, the t interval decided."""
    claim = C.BY_ID["peers-adam-sgd-less-sensitive"]  # higher, δ = 1 decade, min n 3, median
    assert claim.median and "n ≥ 6" in claim.rule and "n ≥ 6" not in replace(claim, first_rules=True).rule
    same = C.judge(claim, Interval(4.0, 4.0, 4.0, 3), "full")
    assert same.verdict == "inconclusive" and "no distribution-free 95 % interval below n = 6" in same.reason
    assert "0.25" in same.reason and same.row()["95 % interval"] == "none below n = 6", same.reason
    assert same.reason.endswith("by the rules before their amendment (RULES_AMENDED): reproduced")  # computed beside
    near = C.judge(claim, interval([4, 4, 3]), "full", values=[4, 4, 3])
    assert near.verdict == "inconclusive" and near.effect.mean == 4.0, near.reason
    six = C.judge(claim, interval([4] * 6), "full", values=[4] * 6)
    assert six.verdict == "reproduced" and "distribution-free 95 % interval [+4, +4]" in six.reason, six.reason
    nine = C.judge(claim, interval([4, 4, 3, 5, 4, 2, 4, 6, 0]), "full", values=[4, 4, 3, 5, 4, 2, 4, 6, 0])
    assert nine.verdict == "reproduced" and (nine.effect.lo, nine.effect.hi) == (2, 5)  # x(2), x(8) of 9
    assert C.judge(claim, interval([0.0] * 6), "full", values=[0.0] * 6).verdict == "refuted"  # no difference
    first = C.judge(replace(claim, first_rules=True), Interval(4.0, 4.0, 4.0, 3), "full")
    assert first.verdict == "reproduced" and "no width" in first.reason  # the rule before RULES_AMENDED
    # any other claim: the t interval, unless every seed gives the same difference
    lower = C.BY_ID["towers-less-sensitive"]
    assert not lower.median and C.judge(lower, Interval(-5.0, -8.0, -2.0, 3), "full").verdict == "reproduced"
    tie = C.judge(lower, Interval(-5.0, -5.0, -5.0, 3), "full")
    assert tie.verdict == "inconclusive" and "every seed gives the same difference" in tie.reason

def test_a_cifar_subset_never_decides_the_papers_claim(tmp_path):
    """Full CIFAR-10 is the claim's data: on the 4,000-image subset even the full protocol is indicative,
    and the statement every table shows names the subset."""
    from types import SimpleNamespace

    from hypernb.study import cifar
    from hypernb.study.common import Setup

    def result(errors):
        return SimpleNamespace(seeds=[SimpleNamespace(seed=i, status="ok", final={"test_acc": 1 - e / 100})
                                      for i, e in enumerate(errors)])

    runs = {("hyperoptimized", 0.1, 0.9): result([10.0, 10.2, 9.9]),
            ("He et al. recipe", 0.1, 0.9): result([10.1, 10.0, 10.0])}
    for dataset, expected in (("subset", C.INDICATIVE), ("full", "reproduced")):
        s = Setup(cifar.NAME, "full", {"DATASET": dataset}, tmp_path, tmp_path)
        (v,) = cifar.verdicts(s, runs)
        assert v.verdict == expected, v.reason
        assert ("SUBSET" in v.claim.statement) == (dataset == "subset")
    assert "cannot decide" in cifar.verdicts(Setup(cifar.NAME, "full", {"DATASET": "subset"}, tmp_path,
                                                   tmp_path), runs)[0].reason


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


def test_rate_interval_is_the_exact_clopper_pearson_one():
    from hypernb.study.stats import rate_interval

    for (k, n), (lo, hi) in {(4, 5): (0.2836, 0.9949), (0, 5): (0.0, 0.5218), (1, 10): (0.0025, 0.4450),
                             (24, 24): (0.8575, 1.0)}.items():  # published Clopper–Pearson tables
        assert rate_interval(k, n) == pytest.approx((lo, hi), abs=1e-4)
    row = C.judge(C.BY_ID["report-adam-adam-fails"], None, "full", failures=(4, 5)).row()
    assert row["effect"] == "4 of 5 runs failed" and row["95 % interval"] == "[28 %, 99 %] of runs fail"
    seeds = C.judge(C.BY_ID["towers-fail-above-100"], None, "full", failures=(3, 3))
    assert seeds.row()["effect"] == "3 of 3 seeds failed" and seeds.reason.startswith("3 of 3 seeds failed")


def test_rate_rule():
    """The exact 95 % interval of the failure rate against 50 %: 5 of 5 (47.8–100 %) cannot decide, 6 of 6 can;
    as first declared, the point estimate decided (≥ 80 % of runs, or none)."""
    claim = C.BY_ID["report-adam-adam-fails"]
    verdict = {k: C.judge(claim, None, "full", failures=k).verdict for k in [(5, 5), (6, 6), (4, 5), (16, 20),
                                                                            (0, 5), (0, 6), (2, 5), (3, 20)]}
    assert verdict == {(5, 5): "inconclusive", (6, 6): "reproduced", (4, 5): "inconclusive", (16, 20): "reproduced",
                       (0, 5): "inconclusive", (0, 6): "refuted", (2, 5): "inconclusive", (3, 20): "refuted"}
    assert "28–99 %" in C.judge(claim, None, "full", failures=(4, 5)).reason
    assert C.judge(claim, None, "full", failures=(4, 5)).reason.endswith("amendment (RULES_AMENDED): reproduced")
    assert "before their amendment" not in C.judge(claim, None, "full", failures=(6, 6)).reason  # the same verdict
    first = replace(claim, first_rules=True)
    assert [C.judge(first, None, "full", failures=k).verdict for k in [(4, 5), (0, 5), (2, 5)]] == [
        "reproduced", "refuted", "inconclusive"]
    assert first.rule == C.FIRST_RATE_RULE and "50 %" in claim.rule


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


# -- follow-ups: sized before they run, by the probability of a verdict ---------------------------------------
from hypernb.study import followup as F  # noqa: E402


@pytest.mark.parametrize("kind,delta,mean,sd,n", [("lower", 0.1, 0.7, 0.74, 10), ("lower", 1.0, -7.4, 3.8, 5),
                                                   ("within", 0.1, 0.21, 0.2, 20), ("higher", 0.5, 0.3, 1.0, 8),
                                                   ("within", 2.0, 1.64, 0.59, 30), ("lower", 0.1, 0.0, 1.0, 2)])
def test_decision_probability_matches_the_rule_applied_to_simulated_runs(kind, delta, mean, sd, n):
    """The integral against claims.judge itself on 4,000 simulated n-seed runs (normal per-seed differences):
    equal within the simulation's noise (its sd is at most 0.008)."""
    import random

    claim = C.Claim("x", "nb", "c", "s", "src", "m", "cmp", kind, delta, "", n)
    rng = random.Random(0)
    decided = sum(C.judge(claim, interval([rng.gauss(mean, sd) for _ in range(n)]), "full").verdict != "inconclusive"
                  for _ in range(4000))
    assert F.decision_probability(mean, sd, n, kind, delta) == pytest.approx(decided / 4000, abs=0.025)


def test_per_seed_sd_inverts_the_t_interval():
    values = [0.3, -0.2, 1.1, 0.8, 0.05]
    assert F.per_seed_sd(interval(values)) == pytest.approx(statistics.stdev(values))
    with pytest.raises(ValueError):
        F.per_seed_sd(interval([1.0]))


def test_a_claim_far_from_its_boundaries_needs_few_seeds_and_one_at_delta_none():
    assert F.plan(Interval(-5.0, -6.0, -4.0, 5), "lower", 0.1)[0] <= 3  # already clear: a tiny run decides
    n, p = F.plan(Interval(0.25, 0.2, 0.3, 5), "within", 0.25)  # the mean sits on δ: never likely to decide
    assert n is None and p < 0.5
    assert F.plan(Interval(-5.0, -6.0, -4.0, 5), "lower", 0.1, min_n=7)[0] == 7  # never below the claim's own minimum
    with pytest.raises(ValueError, match="rate"):
        F.decision_probability(0.5, 0.1, 5, "rate", 0.0)


def _committed_verdicts():
    import json
    from pathlib import Path

    out = {}
    for path in sorted((Path(__file__).parents[1] / "evidence" / "full").glob("*/verdicts.json")):
        for v in json.loads(path.read_text())["verdicts"]:
            out[v["claim"]["id"]] = v
    return out


def test_every_follow_up_has_the_size_its_plan_asks_for_and_every_sizable_claim_has_one():
    """The declared n of each follow-up is what followup.plan computes from the committed first run; a claim left
    inconclusive whose plan finds an n ≤ MAX_N has a follow-up, one whose plan finds none has not."""
    verdicts = _committed_verdicts()
    inconclusive = {i: v for i, v in verdicts.items() if v["verdict"] == "inconclusive" and v["effect"]}
    assert inconclusive, "the committed evidence has no inconclusive verdict: nothing to follow up"

    def size(v):
        e, c = Interval(**v["effect"]), v["claim"]
        if c["kind"] == "rate":
            return F.plan_rate(round(e.mean * e.n), e.n, c["min_n"])[0]
        return F.plan(e, c["kind"], c["delta"], c["min_n"], c.get("median", False))[0]

    planned = {i: size(v) for i, v in inconclusive.items()}
    declared = {c.follows: c for c in C.FOLLOW_UPS}
    assert set(declared) == {i for i, n in planned.items() if n is not None}
    for i, c in declared.items():
        first = C.BY_ID[i]
        assert c.min_n == planned[i], i
        assert (c.id, c.kind, c.delta, c.metric, c.statement) == (f"{i}-follow-up", first.kind, first.delta,
                                                                     first.metric, first.statement)
        assert c.amended == "" and c.id not in C.BY_ID  # not one of the 35: listed apart


def test_the_notebooks_run_each_follow_up_on_as_many_fresh_seeds_as_declared():
    from hypernb.study import lrfree, mnist, towers

    full01, full04, full06 = mnist.DEFAULTS["full"], towers.DEFAULTS["full"], lrfree.DEFAULTS["full"]
    sizes = {"mnist-adagrad-learned-beats-initial": (full01["FOLLOW_UP_SEEDS"], full01["SEEDS"]),
             "mnist-rmsprop-sgd-matches-tuned-rmsprop": (full01["FOLLOW_UP_FRESH_SEEDS"],
                                                          full01["FRESH_SEEDS"] + full01["SEEDS"] + full01["TUNE_SEEDS"]),
             "towers-less-sensitive": (full04["FOLLOW_UP_SEEDS"], full04["SEEDS"]),
             "report-adam-adam-fails": (full01["FOLLOW_UP_ADAM_ADAM_SEEDS"], full01["SEEDS"]),
             "towers-fail-above-100": (full04["FOLLOW_UP_FAIL_SEEDS"], full04["SEEDS"] + full04["FOLLOW_UP_SEEDS"]),
             "report-towers-saturate": (full04["FOLLOW_UP_SATURATE_SEEDS"], full04["SEEDS"]),
             "peers-adam-sgd-less-sensitive": (full06["FOLLOW_UP_SEEDS"], full06["TUNE_SEEDS"]),
             "peers-adam-sgd-spares-choosing-alpha0": (full06["FOLLOW_UP_SEEDS"], full06["TUNE_SEEDS"])}
    assert set(sizes) == {c.follows for c in C.FOLLOW_UPS if c.follows != "towers-level-cost"}
    for first_id, (seeds, used) in sizes.items():
        c = C.FOLLOW_UP_BY_ID[f"{first_id}-follow-up"]
        assert len(set(seeds)) == len(seeds) == c.min_n and not set(seeds) & set(used), first_id
        assert f"{min(seeds)}–{max(seeds)}" in c.comparison
    assert full04["FOLLOW_UP_COST_REPS"] == C.FOLLOW_UP_BY_ID["towers-level-cost-follow-up"].min_n


def test_plans_for_a_zero_width_first_run_and_for_a_rate():
    """A first run whose seeds all gave one value asks for SIGN_N seeds (certain to decide if they give it again,
    never if that value is undecided even at zero width); a rate asks for the n whose exact interval clears 50 %
    with probability 0.8 at the first run's rate, checked here by summing the binomial by hand."""
    from math import comb

    from hypernb.study.stats import rate_interval

    n, p = F.plan(Interval(4.0, 4.0, 4.0, 3), "higher", 1.0)
    assert n == C.SIGN_N and math.isnan(p)  # the fewest that can decide; its chance not estimable
    assert F.plan(Interval(0.0, None, None, 3), "within", 1.0, min_n=3, median=True)[0] == C.SIGN_N
    assert F.plan(Interval(2.0, 1.0, 3.0, 3), "higher", 1.0, median=True)[0] == C.SIGN_N
    assert F.plan(Interval(1.0, 1.0, 1.0, 3), "within", 1.0)[0] is None  # on δ: a zero-width run never decides
    n, p = F.plan_rate(3, 3)
    assert n == 6 and math.isnan(p)  # 6 of 6: 54–100 %; 5 of 5 reaches down to 47.8 %
    with pytest.raises(ValueError, match="at least one"):
        F.plan_rate(0, 0)
    n, p = F.plan_rate(4, 5, min_n=5)

    def decided(m):
        return sum(comb(m, k) * 0.8 ** k * 0.2 ** (m - k) for k in range(m + 1)
                   if rate_interval(k, m)[0] > 0.5 or rate_interval(k, m)[1] < 0.5)

    assert n == 20 and p == pytest.approx(decided(20)) and p >= 0.8 > decided(19)


def test_tower_failures_count_one_outcome_per_seed():
    """A seed fails the claim 'all towers perform poorly' only if every one of its tower runs failed."""
    import pandas as pd

    from hypernb.study.towers import _failed_seeds

    top = pd.DataFrame({"alpha0": [1e3] * 6, "seed": [0, 0, 0, 1, 1, 1], "height": [1, 2, 5] * 2,
                        "status": ["diverged", "ok", "ok", "ok", "ok", "ok"],
                        "test_error": [90.0, 71.1, 71.1, 64.3, 64.3, 20.0]})
    assert _failed_seeds(top) == {0: 1.0, 1: 0.0}


def test_a_failure_count_says_how_many_distinct_outcomes_it_rests_on():
    """Tower runs of one seed that end at the same error at every height are one outcome, not several; and
    plain SGD failing at the same α0 says the failure is not the towers'."""
    import pandas as pd

    from hypernb.study.towers import _failure_context

    top = pd.DataFrame({"alpha0": [1e3] * 6, "seed": [0, 0, 0, 1, 1, 1], "height": [1, 2, 5] * 2,
                        "status": ["ok"] * 6, "test_error": [71.1, 71.1, 71.1, 64.3, 64.3, 60.0]})
    plain = pd.DataFrame({"alpha0": [1e3] * 2, "seed": [0, 1], "height": [0, 0], "status": ["ok", "diverged"],
                          "test_error": [40.0, 90.0]})
    text = _failure_context(top, plain)
    assert "3 distinct outcomes" in text and "fails in 1 of 2" in text, text
    assert "plain SGD" not in _failure_context(top, plain.iloc[0:0])
