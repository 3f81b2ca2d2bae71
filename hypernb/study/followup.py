"""Follow-ups: a claim left inconclusive on full-protocol evidence gets a new, larger run of the same
comparison, sized before it runs by how likely it is to reach a verdict.

Why a separate run and not more seeds added to the first: adding seeds *because* an interval was
inconclusive and judging the pool would mix a sample whose size depended on its own outcome into one
interval, which then no longer has its 95 % coverage. A follow-up is instead its own experiment,
declared after the first verdict and before its own runs (``claims.FOLLOW_UPS``), on fresh seeds only,
judged alone by the claim's unchanged rule; the first verdict stands beside it. Its interval keeps
its coverage. It is still a second look taken because the first was inconclusive: a claim that got
one had two chances at a wrong definitive verdict, so its error rate is up to about twice a single
run's (at most about 5 % per direction instead of 2.5 %), which is why a claim gets one follow-up and
no more.

Its size comes from the first run: :func:`decision_probability` is the probability that an n-seed run
ends reproduced or refuted *if* the first run's mean difference and per-seed sd were the truth (exact
for the t interval over normal per-seed differences). That is a plug-in estimate, only as good as a
first run of 3–9 seeds: it sizes a run, it does not promise its outcome. The follow-up takes the
smallest n ≤ ``MAX_N`` (and no smaller than the claim's own minimum) reaching ``POWER``; a claim with
none gets no follow-up, because a run that most likely ends inconclusive again is not worth its cost.
Two cases have no per-seed sd to plug in (see ``claims.judge``): a first run whose seeds all gave the
same difference asks for ``claims.SIGN_N`` seeds, the fewest at which such a run can decide at all
(:func:`plan`), and a rate asks for the n whose exact interval clears 50 % with probability ``POWER``
if the first run's rate were the truth (:func:`plan_rate`).
"""
from __future__ import annotations

import math

from .stats import Interval, t975

MAX_N = 30  # seeds (or timing repetitions) a follow-up may take: about an hour of CPU for the MNIST ones
POWER = 0.8  # the probability of a verdict a follow-up must reach at its size


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def per_seed_sd(effect: Interval) -> float:
    """The per-seed sd behind a t interval: half-width · √n / t_{0.975, n−1}."""
    if effect.n < 2:
        raise ValueError("an interval from one value has no sd")
    return (effect.hi - effect.mean) * math.sqrt(effect.n) / t975(effect.n - 1)


def undecided_band(kind: str, delta: float, half_width: float) -> tuple[float, float]:
    """The sample means that leave a claim inconclusive, given the interval's half-width (``claims.judge``'s
    rules solved for the mean)."""
    if kind == "lower":  # reproduced: mean + hw < 0; refuted: mean − hw > −δ
        return -half_width, half_width - delta
    if kind == "higher":  # reproduced: mean − hw > 0; refuted: mean + hw < δ
        return delta - half_width, half_width
    if kind == "within":  # reproduced: mean + hw < δ; refuted: mean − hw > δ
        return delta - half_width, delta + half_width
    raise ValueError(f"no follow-up for a claim of kind {kind!r} (a rate is decided by counting runs)")


def decision_probability(mean: float, sd: float, n: int, kind: str, delta: float) -> float:
    """P(an n-seed run is reproduced or refuted) if the per-seed differences are normal with this mean and sd.

    Exact for the t interval: given the run's sample sd s, the verdict depends only on where the sample
    mean falls (:func:`undecided_band` at half-width t·s/√n), and the sample mean is independent of s;
    so the probability is averaged over s, whose (n−1)s²/sd² is χ² with n−1 degrees of freedom
    (Simpson's rule over √χ², 2,000 intervals: a plan is read to two digits)."""
    if n < 2:
        raise ValueError("a t interval needs at least 2 seeds")
    undecided_band(kind, delta, 1.0)  # refuse a rate before integrating
    se = sd / math.sqrt(n)
    k = n - 1
    t = t975(k)

    def decided_given(u: float) -> float:  # u = √(n−1)·s/sd
        lo, hi = undecided_band(kind, delta, t * se * u / math.sqrt(k))
        if hi <= lo:
            return 1.0
        if se == 0:
            return 0.0 if lo <= mean <= hi else 1.0
        return 1.0 - (_phi((hi - mean) / se) - _phi((lo - mean) / se))

    # u² is χ²(k): u has density 2·u^(k−1)·e^(−u²/2) / (2^(k/2)·Γ(k/2)), finite at 0 for every k
    log_norm = math.log(2.0) - (k / 2) * math.log(2.0) - math.lgamma(k / 2)
    steps = 2000
    h = (math.sqrt(k) + 12.0) / steps  # beyond √k + 12 the density is below 1e-30
    total = 0.0
    for i in range(1, steps + 1):  # the i = 0 term is 0 for k > 1; for k = 1 its density, 0.80, is added below
        u = i * h
        density = math.exp(log_norm + (k - 1) * math.log(u) - u * u / 2)
        total += (1 if i == steps else 4 if i % 2 else 2) * density * decided_given(u)
    if k == 1:
        total += math.exp(log_norm) * decided_given(0.0)
    return min(1.0, total * h / 3)


def plan(effect: Interval, kind: str, delta: float, min_n: int = 2, median: bool = False) -> tuple[int | None, float]:
    """(smallest n from ``min_n`` (the claim's own minimum) to MAX_N whose decision probability reaches POWER,
    that probability), or (None, the probability at MAX_N) when none does. A claim judged on the median
    (``median``, or a first run whose seeds all gave one value, which leaves no sd to plug in): the fewest
    seeds that can decide at all, ``claims.SIGN_N``, if its median lies outside the undecided band, with
    the chance NaN (not estimable from such a run); else None."""
    from .claims import SIGN_N

    if median or effect.lo is None or (effect.n >= 2 and effect.lo == effect.hi):
        lo, hi = undecided_band(kind, delta, 0.0)
        return (max(SIGN_N, min_n) if not lo <= effect.mean <= hi else None), math.nan
    sd = per_seed_sd(effect)
    p = 0.0
    for n in range(max(2, min_n), MAX_N + 1):
        p = decision_probability(effect.mean, sd, n, kind, delta)
        if p >= POWER:
            return n, p
    return None, p


def plan_rate(failed: int, n: int, min_n: int = 2) -> tuple[int | None, float]:
    """(smallest n from ``min_n`` to MAX_N at which a rate claim is decided (its exact 95 % interval clears
    50 %) with probability POWER if the first run's rate ``failed / n`` were the truth, that probability), or
    (None, the probability at MAX_N)."""
    from .claims import RATE_LINE
    from .stats import rate_interval

    if n < 1:
        raise ValueError("a rate's follow-up is planned from a first run of at least one")
    rate, p = failed / n, 0.0
    for m in range(max(2, min_n), MAX_N + 1):
        p = 0.0
        for k in range(m + 1):
            lo, hi = rate_interval(k, m)
            if lo > RATE_LINE or hi < RATE_LINE:
                p += math.comb(m, k) * rate ** k * (1 - rate) ** (m - k)
        if p >= POWER:  # (p is not monotone in m: the interval's steps make it saw-tooth, 80 % at 20 of 0.8, 73 % at 22)
            # a first rate of 0 or 1 makes the plug-in certain: the fewest that can decide, its chance not estimable
            return m, (p if 0 < failed < n else math.nan)
    return None, p


def plan_table(verdicts: list, declared: dict):
    """One row per full-protocol inconclusive verdict: the first run, the size its plan asks for, and the
    follow-up declared for it (``declared``: claim id → follow-up Claim)."""
    import pandas as pd

    rows = []
    for v in verdicts:
        if v.verdict != "inconclusive" or v.effect is None or v.effect.n < 2:
            continue
        rate = v.claim.kind == "rate"
        n, p = (plan_rate(round(v.effect.mean * v.effect.n), v.effect.n, v.claim.min_n) if rate
                else plan(v.effect, v.claim.kind, v.claim.delta, v.claim.min_n, v.claim.median))
        follow = declared.get(v.claim.id)
        size = (f"n for a {100 * POWER:.0f} % chance of a verdict (if the first run's mean and sd, or rate, were the "
                "truth)")
        rows.append({"claim": v.claim.statement, "first run: n, effect [95 % interval]":
                     f"{v.effect.n}, {v.row()['effect']} {v.row()['95 % interval']}",
                     "per-seed sd": "– (a rate)" if rate else "– (judged on the median)" if v.claim.median or
                     v.effect.lo is None or v.effect.lo == v.effect.hi else f"{per_seed_sd(v.effect):.3g}",
                     size: (f"none ≤ {MAX_N}" + ("" if p != p else f" ({100 * p:.0f} % at {MAX_N})")) if n is None
                     else f"{n} (the fewest that can decide; its chance is not estimable from this run)" if p != p
                     else f"{n} ({100 * p:.0f} %)",
                     "follow-up": "–" if follow is None else f"{follow.min_n}: {follow.comparison}"})
    return pd.DataFrame(rows)


def fresh_seeds(seeds, used, name: str, used_name: str) -> list:
    """``seeds`` as a list, refused where one of them was already used by the first run: a follow-up whose
    seeds are not fresh is the first run again, not a new experiment."""
    seeds = list(seeds or [])
    again = sorted(set(seeds) & set(used or []))
    if again:
        start = max([*seeds, *(used or [])]) + 1
        raise ValueError(f"{name} must be fresh seeds, but {again} also appear in {used_name}: choose seeds the first "
                         f"run did not use, e.g. {name} = {list(range(start, start + len(seeds)))} (a follow-up is "
                         "judged on new seeds only)")
    return seeds


def judge(s, follow: dict) -> list:
    """Each follow-up's verdict by its claim's rule, on its own runs only: ``follow`` maps a follow-up's id to
    its per-seed (or per-repetition) differences."""
    from . import claims as C
    from .stats import interval

    def rate(claim, d):  # a rate's follow-up: seed → 1.0 where the failure happened, else 0.0
        return (int(sum(d.values())), len(d)) if claim.kind == "rate" and d else None

    return [C.judge(C.FOLLOW_UP_BY_ID[i], interval(d.values()) if d else None, s.profile,
                    failures=rate(C.FOLLOW_UP_BY_ID[i], d), values=list(d.values()),
                    missing="" if d else "no paired values (no seed has a result in both arms)",
                    evidence="figures/follow_ups.png",
                    detail=("per seed (or repetition): " + ", ".join(f"{k}: {v:+.4g}" for k, v in d.items())) if d else "")
            for i, d in follow.items()]


def _spread_out(x: float, values: list) -> list:
    """x positions for a strip of dots: equal values side by side instead of on top of one another."""
    count = {v: values.count(v) for v in set(values)}
    seen: dict = {}
    out = []
    for v in values:
        k = seen[v] = seen.get(v, -1) + 1
        step = min(0.04, 0.3 / max(1, count[v] - 1))  # m equal values across at most ±0.15, centred on x
        out.append(x + (k - (count[v] - 1) / 2) * step)
    return out


def figure(s, follow: dict, first: dict):
    """Per follow-up: every per-seed difference of the first run and of the follow-up (each dot one seed, or
    one timing repetition; equal values side by side), their means with 95 % intervals (a median with its
    distribution-free interval for a claim judged on the median; a rate with its exact one), 0 and the claim's
    δ. Linear axes: every value is drawn, nothing is cut."""
    import textwrap

    import matplotlib.pyplot as plt

    from . import claims as C
    from .common import save_figure
    from .stats import interval

    ids = list(follow)
    if not ids:  # no follow-up with these parameters: nothing to draw
        return None
    fig, axes = plt.subplots(1, len(ids), figsize=(4.6 * len(ids), 4.0), squeeze=False)
    for ax, i in zip(axes[0], ids):
        claim = C.FOLLOW_UP_BY_ID[i]
        for x, (label, d) in enumerate((("first run", first.get(i, {})), ("follow-up", follow[i]))):
            values = list(d.values())
            ax.scatter(_spread_out(x, values), values, s=12, color=f"C{x}", alpha=0.7,
                       label=f"{label} (n = {len(values)})")
            if len(values) >= 2:
                e = interval(values)
                if claim.kind == "rate":  # the rate with its exact interval, as judged
                    from .stats import rate_interval

                    e = Interval(e.mean, *rate_interval(round(sum(values)), len(values)), len(values))
                elif claim.median or e.lo == e.hi:  # judged on the median: its distribution-free interval
                    from ..bench import median_ci

                    e = Interval(*median_ci(values), len(values))
                if e.lo is None:  # (fewer than 6 values: no such interval; the median alone)
                    ax.plot([x + 0.2], [e.mean], "D", color="k", ms=5)
                else:
                    ax.errorbar([x + 0.2], [e.mean], yerr=[[e.mean - e.lo], [e.hi - e.mean]], fmt="o", color="k",
                                capsize=4)
        ax.axhline(0.0, color="k", lw=0.8)
        if claim.kind == "rate":  # each dot a seed: 1 failed, 0 did not; the line the rule's interval must clear
            ax.axhline(C.RATE_LINE, color="C3", lw=0.8, ls="--", label="50 % (the rate rule's line)")
        else:
            bound = -claim.delta if claim.kind == "lower" else claim.delta
            ax.axhline(bound, color="C3", lw=0.8, ls="--", label=f"δ boundary ({bound:+g}{claim.unit})")
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["first run", "follow-up"])
        ax.set_xlim(-0.5, 1.6)
        unit = claim.unit.strip()
        ax.set_ylabel("failed (1) or not (0), per seed" if claim.kind == "rate" else
                      "extra time per level, % of the step" if unit == "%" else
                      f"difference ({unit})" if unit else "difference")
        ax.set_title("\n".join(textwrap.wrap(claim.statement, 46)), fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(s, fig, "follow_ups")
    return fig
