r"""The update rules, written once as plain arithmetic.

Each rule maps (gradient ``g``, current values ``w``, state, hyperparameters ``h``, step ``t``) to a
direction, a scalar ``scale`` and the new state; the step is Δ = scale · direction and the new
values are w + Δ (the engine adds it in one pass). Tensors are ``[K, n]``: one row per
configuration trained together (K = 1 for an ordinary optimizer); each hyperparameter is a
``[K, 1]`` column, so one rule serves every configuration at once. The same rule serves every level
of a tower: level 0 updates the model's parameters; level k updates the stored hyperparameters of
level k-1 (on a CPU with one configuration those few numbers are NumPy float64 vectors, not tensors:
a rule uses arithmetic operators and :mod:`~hypernb.optim.dual`'s sqrt, tanh, exp and ema, which
take both). Running a rule on :class:`~hypernb.optim.dual.Dual` hyperparameters yields the tangents
the hypergradient needs. README, "Your own update rule", shows how to write one.

Everything that is not a hyperparameter (old weights, gradient, old state) enters as a constant,
which is exactly where the paper detaches: ``g = p.grad.detach(); p = p.detach()``. Update rules,
state initialisation and parametrisations follow the paper's package (gdtuo) so that trajectories
match it (paper.md §1.3); weight decay follows ``torch.optim`` (L2: g + λw; decoupled: AdamW).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .dual import ema, exp, sqrt, tanh


# -- parametrisations: how a hyperparameter is stored (raw) vs used (effective) -------------------
@dataclass(frozen=True)
class Param:
    """How a hyperparameter is stored. ``to_raw`` runs once on a float; ``from_raw`` runs every
    step on a tensor or Dual, so it is what the hypergradient flows through."""

    kind: str
    to_raw: Callable[[float], float]
    from_raw: Callable


def _squash(x):  # (tanh x + 1) / 2 = sigmoid(2x): keeps β, γ inside (0, 1) (paper §1.5)
    return (tanh(x) + 1.0) / 2.0


IDENTITY = Param("identity", lambda v: v, lambda r: r)
SQRT = Param("sqrt", math.sqrt, lambda r: r * r)  # RMSProp's α is stored as √α
SQUASH = Param("squash", lambda v: math.atanh(2.0 * v - 1.0), _squash)
LOG = Param("log", math.log, exp)  # the opt-in sign-safe α: α = exp(raw) > 0


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter of a rule: its name, its Greek symbol, its storage and its domain.

    ``domain`` is an interval written as in mathematics, ``"(0, 1)"``, ``"[0, 1)"`` or ``"[0, inf)"``
    (an open end excludes its bound), or None for any finite number. A value outside it, or outside
    what the storage can hold ((0, 1) squashed, > 0 as a log, >= 0 as a square root), is refused
    when an optimizer is built or a value is written, with a message naming the interval."""

    name: str
    symbol: str
    param: Param
    trainable: bool = True
    domain: str | None = None

    def __post_init__(self):
        if self.domain is not None:
            _bounds(self.domain)  # a malformed interval fails here, where it is written

    def check(self, value, family: str, where: str = "") -> None:
        at = f" ({where})" if where else ""
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{family}: {self.name}{at} must be a finite number, got {value!r}")
        if self.domain is not None and not _inside(value, self.domain):
            why = "; a step size cannot be negative" if self.name == "alpha" else ""
            raise ValueError(f"{family}: {self.name}{'' if self.domain.endswith('inf)') else f' ({self.symbol})'}{at} "
                             f"must {_described(self.domain)}, got {value!r}{why}")
        storable = _STORAGE_DOMAIN.get(self.param.kind)
        if storable is not None and not _inside(value, storable):
            stored = ("sign_safe=True stores log α" if self.param is LOG and self.name == "alpha"
                      else f"{self.name} ({self.symbol}) is stored as its {self.param.kind}")
            raise ValueError(f"{family}: {stored}, so {self.name}{at} must {_described(storable)}, got {value!r}")


# what each storage can hold: a squashed value lies in (0, 1), a value stored as its log is > 0, …
_STORAGE_DOMAIN = {"squash": "(0, 1)", "log": "(0, inf)", "sqrt": "[0, inf)"}


def _bounds(interval: str) -> tuple[float, float]:
    """(low, high) of an interval written ``"(0, 1)"``, ``"[0, inf)"``, …; anything else is refused."""
    try:
        if not isinstance(interval, str) or len(interval) < 5 or interval[0] not in "[(" or interval[-1] not in "])":
            raise ValueError
        low, high = (float(x) for x in interval[1:-1].split(","))
        if not low < high:
            raise ValueError
    except ValueError:
        raise ValueError(f"a domain is an interval written as in mathematics, such as '(0, 1)', '[0, 1)' or "
                         f"'[0, inf)', got {interval!r}") from None
    return low, high


def _inside(value: float, interval: str) -> bool:
    low, high = _bounds(interval)
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below


def _described(interval: str) -> str:
    """'be >= 0', 'lie in [0, 1)', 'lie in the open interval (0, 1)'."""
    low, high = _bounds(interval)
    if high == math.inf:
        return f"be {'>=' if interval[0] == '[' else '>'} {low:g}"
    return "lie in " + ("the open interval " if interval[0] == "(" and interval[-1] == ")" else "") + interval


class Rule:
    """Base class of update rules. Subclasses list their hyperparameters and implement ``update``.

    ``decoupled``: weight decay is subtracted from the weights (AdamW, −αλw) instead of added to
    the gradient (L2, g + λw, as ``torch.optim``'s ``weight_decay``)."""

    family = "Rule"
    decoupled = False

    def hypers(self) -> list[Hyper]:
        raise NotImplementedError

    def init_state(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def update(self, g, w, state: dict, h: dict, t):
        """Return (direction, scale, new_state): w_{t+1} = w_t + scale · direction, with ``scale``
        one number per configuration (never full size). ``h`` maps each hyperparameter to its
        value (a [K, 1] column, or a Dual of one) and may hold ``weight_decay`` (see :func:`decayed`);
        return a new state instead of changing the old one in place."""
        raise NotImplementedError


def decayed(g, w, h, rule: Rule):
    """The gradient with L2 weight decay added (torch.optim's ``weight_decay``), if any."""
    wd = h.get("weight_decay")
    return g if wd is None or rule.decoupled else g + wd * w


def _alpha(sign_safe: bool, param: Param = IDENTITY) -> Hyper:
    return Hyper("alpha", "α", LOG if sign_safe else param, domain="[0, inf)")


class SGDRule(Rule):
    r"""SGD, with PyTorch-style momentum (no dampening) when μ₀ ≠ 0.

    .. math:: b_t = μ b_{t-1} + g_t \quad (b_0 = 0), \qquad w_{t+1} = w_t - α b_t

    As in gdtuo, momentum is switched on by the *initial* μ: with μ₀ = 0 the buffer does not exist
    and μ stays 0 (its hypergradient is identically zero).
    """

    family = "SGD"

    def __init__(self, momentum: bool, sign_safe: bool = False):
        self.momentum, self.sign_safe = momentum, sign_safe

    def hypers(self):
        return [_alpha(self.sign_safe), Hyper("mu", "μ", IDENTITY, trainable=self.momentum, domain="[0, 1)")]

    def init_state(self, w):
        return {"buf": torch.zeros_like(w)} if self.momentum else {}

    def update(self, g, w, state, h, t):
        g = decayed(g, w, h, self)
        if not self.momentum:
            return g, -h["alpha"], {}
        buf = state["buf"] * h["mu"] + g  # b_1 = g because b_0 = 0, as gdtuo's first step
        return buf, -h["alpha"], {"buf": buf}


class SGDPerParamRule(SGDRule):
    r"""SGD with one step size per segment: per parameter tensor at level 0, per hyperparameter
    one level up (the engine gives each segment its own α).

    .. math:: w^{(s)}_{t+1} = w^{(s)}_t - α_s g^{(s)}_t
    """

    family = "SGDPerParam"

    def __init__(self, sign_safe: bool = False):
        super().__init__(momentum=False, sign_safe=sign_safe)

    def hypers(self):
        return [_alpha(self.sign_safe)]


class AdaGradRule(Rule):
    r"""AdaGrad with gdtuo's initial accumulator G₀ = 0.1 and ε inside the square root.

    .. math:: G_t = G_{t-1} + g_t^2, \qquad w_{t+1} = w_t - α\, g_t / \sqrt{G_t + ε}
    """

    family = "AdaGrad"

    def __init__(self, eps: float = 1e-10, initial_accumulator: float = 0.1, sign_safe: bool = False):
        self.eps, self.initial_accumulator, self.sign_safe = eps, initial_accumulator, sign_safe

    def hypers(self):
        return [_alpha(self.sign_safe)]

    def init_state(self, w):
        return {"G": torch.full_like(w, self.initial_accumulator)}

    def update(self, g, w, state, h, t):
        g = decayed(g, w, h, self)
        G = state["G"] + g * g
        return g / sqrt(G + self.eps), -h["alpha"], {"G": G}


class RMSPropRule(Rule):
    r"""RMSProp as in gdtuo: α stored as √α, γ squashed into (0, 1), ε inside the square root.

    .. math:: s_t = γ s_{t-1} + (1-γ) g_t^2 \quad (s_0 = 0), \qquad w_{t+1} = w_t - α\, g_t / \sqrt{s_t + ε}
    """

    family = "RMSProp"

    def __init__(self, learn_gamma: bool = True, eps: float = 1e-8, sign_safe: bool = False):
        self.learn_gamma, self.eps, self.sign_safe = learn_gamma, eps, sign_safe

    def hypers(self):
        return [_alpha(self.sign_safe, SQRT), Hyper("gamma", "γ", SQUASH, trainable=self.learn_gamma, domain="(0, 1)")]

    def init_state(self, w):
        return {"s": torch.zeros_like(w)}

    def update(self, g, w, state, h, t):
        g = decayed(g, w, h, self)
        s = ema(state["s"], g, h["gamma"], square=True)
        return g / sqrt(s + self.eps), -h["alpha"], {"s": s}


class AdamRule(Rule):
    r"""Adam as in gdtuo: β₁, β₂ squashed into (0, 1), v₀ = ε, bias correction with the step t.

    .. math::
        m_t = β_1 m_{t-1} + (1-β_1) g_t, \quad v_t = β_2 v_{t-1} + (1-β_2) g_t^2, \\
        w_{t+1} = w_t - α\, \frac{m_t / (1-β_1^t)}{\sqrt{v_t / (1-β_2^t)} + ε}

    v₀ = ε (not 0) because the square root has no derivative at 0; the betas receive
    hypergradients through √v̂ (paper §1.5). ``decoupled=True`` is AdamW's weight decay.
    """

    family = "Adam"

    def __init__(self, learn_betas: bool = True, log_eps: float = -8.0, sign_safe: bool = False,
                 squash_betas: bool = True, decoupled: bool = False):
        self.learn_betas, self.eps, self.sign_safe = learn_betas, 10.0 ** log_eps, sign_safe
        self.squash_betas, self.decoupled = squash_betas, decoupled

    def hypers(self):
        beta = SQUASH if self.learn_betas and self.squash_betas else IDENTITY
        return [
            _alpha(self.sign_safe),
            Hyper("beta1", "β1", beta, trainable=self.learn_betas, domain="(0, 1)"),
            Hyper("beta2", "β2", beta, trainable=self.learn_betas, domain="(0, 1)"),
        ]

    def init_state(self, w):
        return {"m": torch.zeros_like(w), "v": torch.full_like(w, self.eps)}

    def update(self, g, w, state, h, t):
        g = decayed(g, w, h, self)
        b1, b2 = h["beta1"], h["beta2"]
        m = ema(state["m"], g, b1)
        v = ema(state["v"], g, b2, square=True)
        # m̂/(√v̂ + ε) = m/(√v + ε·c) · c/(1 − β1ᵗ) with c = √(1 − β2ᵗ): the bias corrections are
        # scalars, so they join the scale (as torch.optim.Adam folds them) and the vector work is
        # √v, + ε·c and one division
        c = sqrt(1.0 - b2 ** t)
        correction = 1.0 - b1 ** t
        direction = m / (sqrt(v) + self.eps * c)
        wd = h.get("weight_decay")
        if wd is not None and self.decoupled:  # AdamW: −α(m̂/(√v̂+ε) + λw), decay with the same α
            direction = direction + (wd * correction / c) * w
        return direction, -h["alpha"] * c / correction, {"m": m, "v": v}
