"""The public optimizers. Each is a ``torch.optim.Optimizer``; built without parameters it is an
*unbound* hyperoptimizer for ``hyper=``, whose ``alpha`` (``lr``) is κ of the level below.

The names ``torch.optim`` users type are accepted: ``lr`` for α, ``momentum`` for μ, ``betas`` for
(β1, β2), ``eps`` for ε, ``weight_decay`` (L2 as ``torch.optim``; decoupled in :class:`AdamW`).

Common keyword options: ``sign_safe=True`` stores log α so the step size stays positive (the
COMP6258 report saw α cross zero); ``batch=K`` trains K configurations at once (parameters with a
leading dimension K; any hyperparameter may be a list of K values); ``check_every=k`` checks for
NaN/inf every k steps; ``capturable`` (default: on CUDA) keeps every buffer at a fixed address, as
a CUDA graph needs; ``cuda_graph`` (default: on CUDA) captures the optimizer's own step after two
warm-up steps and replays it, one launch instead of ~100 small kernels; ``compiled=True`` (CPU)
compiles the step with ``torch.compile`` at the second step (the first without ``hyper=``; seconds
once, then about 2× faster for Adam/SGD on a CPU).
"""
from __future__ import annotations

import math

import torch

from .base import HyperOptimizer, _nonneg, _per_member
from .engine import Segment
from .rules import AdaGradRule, AdamRule, RMSPropRule, SGDPerParamRule, SGDRule


def _pick(family: str, alpha, lr, default: float):
    """α from ``alpha`` or its torch.optim name ``lr`` (not both)."""
    if alpha is not None and lr is not None:
        raise ValueError(f"{family}: give the step size once, as alpha= or lr= (the same thing), not both")
    return default if alpha is None and lr is None else (alpha if alpha is not None else lr)


# torch.optim options that change nothing at these values (how fast torch computes, or a default
# that is already so here): accepted, so that code passing torch's defaults explicitly runs unchanged
_NO_OPS = {"foreach": "any value", "fused": (None, False), "maximize": (False,), "differentiable": (False,),
           "amsgrad": (False,)}


def _no_torch_extras(family: str, extras: dict) -> dict:
    """torch.optim options hypernb does not have: a clear error instead of a silent difference. Returns
    the options without the accepted no-ops."""
    allowed = {"batch", "check_every", "capturable", "cuda_graph", "compiled"}
    extras = {k: v for k, v in extras.items()
              if not (k in _NO_OPS and (_NO_OPS[k] == "any value" or any(v is x for x in _NO_OPS[k])))}
    unknown = sorted(set(extras) - allowed)
    if unknown:
        raise ValueError(f"{family}: unsupported option(s) {unknown}; hypernb optimizers take the step size "
                         "(alpha or lr), their hyperparameters, weight_decay, hyper=, sign_safe, batch, "
                         "check_every, capturable, cuda_graph and compiled (and torch's foreach, and "
                         "fused/maximize/differentiable/amsgrad at their defaults, which change nothing)")
    return extras


_COMMON = """
    Common arguments (every optimizer):
        params: the parameters or groups, as for ``torch.optim``; omit them to build an unbound
            hyperoptimizer for ``hyper=`` (its α is then κ of the level below).
        hyper: the unbound optimizer that learns this one's hyperparameters (e.g. ``SGD(lr=1e-5)``).
        weight_decay: L2 added to the gradient, as ``torch.optim`` (decoupled in AdamW).
        sign_safe: store log α, so that α stays positive.
        batch: K configurations trained at once (parameters with a leading dimension K; any
            hyperparameter one number or K numbers).
        check_every: check for NaN/inf every k steps (raises :class:`NonFiniteError`).
        capturable, cuda_graph: static buffers and the step's own CUDA graph (defaults: on CUDA).
        compiled: on a CPU, compile the step with ``torch.compile`` at the second step (the first
            without ``hyper=``).
"""


class SGD(HyperOptimizer):
    r"""SGD with optional momentum; learns α and (when μ₀ ≠ 0) μ.

    .. math:: b_t = μ b_{t-1} + g_t,\quad w_{t+1} = w_t - α b_t

    Args:
        alpha (or lr): step size α₀ (default 0.01).
        mu (or momentum): momentum μ₀ (default 0: no momentum buffer, and μ is not learned).
        dampening, nesterov: not supported (the paper's SGD has neither); refused if set.

    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> SGD([w], lr=0.1, hyper=SGD(lr=1e-3))
    SGD(α=0.1) / SGD(α=0.001)
    """

    def __init__(self, params=None, alpha: float | None = None, mu: float | None = None, hyper=None, *,
                 lr: float | None = None, momentum: float | None = None, weight_decay: float = 0.0,
                 sign_safe: bool = False, dampening: float = 0.0, nesterov: bool = False, **options):
        family = type(self).__name__
        if dampening or nesterov:
            raise ValueError(f"{family}: dampening and nesterov are not supported (the paper's SGD has neither)")
        if mu is not None and momentum is not None:
            raise ValueError(f"{family}: give momentum once, as mu= or momentum= (the same thing), not both")
        mu = 0.0 if mu is None and momentum is None else (mu if mu is not None else momentum)
        options = _no_torch_extras(family, options)
        K = options.get("batch") if params is not None else "any"
        group_mus = []  # momentum is on when the constructor or any group asks for it
        if params is not None and not isinstance(params, (torch.Tensor, int, float)):
            params = list(params)
            group_mus = [g[k] for g in params if isinstance(g, dict) for k in ("mu", "momentum") if k in g]
        on = any(m != 0.0 for v in [mu, *group_mus] for m in _per_member(v, K, f"{family}: momentum"))
        self._repr_hypers = ("alpha", "mu") if on else ("alpha",)
        self._aliases = {"lr": "alpha", "momentum": "mu"}
        super().__init__(params, SGDRule(momentum=on, sign_safe=sign_safe),
                         {"alpha": _pick(family, alpha, lr, 0.01), "mu": mu, "weight_decay": weight_decay},
                         hyper, **options)
        if params is None:  # (the groups of a bound one are checked as they are added)
            self._check_group(self._values, "any")

    def _check_group(self, values: dict, K) -> None:
        """μ₀ = 0 means no momentum and μ ≡ 0 (as gdtuo). With momentum on for others, such a
        configuration or group would share their buffer and its μ would be learned away from 0 by
        the level above: refused instead of computing something it would not compute alone."""
        if self.hyper is None or not self._rule.momentum:  # nothing learns μ: μ₀ = 0 stays 0 exactly
            return
        if 0.0 in _per_member(values["mu"], K, f"{type(self).__name__}: momentum"):
            raise ValueError(f"{type(self).__name__}: momentum (μ₀) is 0 for some configurations or parameter "
                             f"groups and not for others ({values['mu']!r} here), while a hyperoptimizer learns "
                             "μ: μ₀ = 0 means no momentum, which they cannot keep in one optimizer. Train them "
                             "in separate optimizers, or give every one a μ₀ > 0")


class SGDPerParam(HyperOptimizer):
    r"""SGD with one step size per parameter tensor (or, as a hyperoptimizer, one κ per
    hyperparameter of the level below).

    ``alpha`` is a number (every entry), a dict by name, or a list with one value per entry. With
    ``batch=K`` a value may be K numbers, one per configuration, as for every other optimizer, so
    there a flat list of numbers is *per configuration*; per-entry values are then a dict or a list
    whose items are numbers or lists of K (e.g. ``[[.1, .2], .3]``).

    .. math:: w^{(s)}_{t+1} = w^{(s)}_t - α_s g^{(s)}_t

    Each parameter tensor is its own parameter group (``param_groups[i]`` for tensor i).

    Args:
        alpha (or lr): the step sizes (default 0.01 each), as above.
    """

    _per_tensor = True

    def __init__(self, params=None, alpha=None, hyper=None, *, lr=None, weight_decay: float = 0.0,
                 sign_safe: bool = False, **options):
        family = type(self).__name__
        options = _no_torch_extras(family, options)
        alpha = _pick(family, alpha, lr, 0.01)
        if isinstance(alpha, tuple):
            alpha = list(alpha)
        rule = SGDPerParamRule(sign_safe=sign_safe)
        for a in _leaves(list(alpha.values()) if isinstance(alpha, dict) else alpha):
            rule.hypers()[0].check(a, family)  # its domain, and log-storable with sign_safe=True
        self._alphas = alpha
        if params is not None:
            params = self._one_group_per_tensor(params, alpha, options.get("batch"))
        super().__init__(params, rule,
                         {"alpha": alpha if not isinstance(alpha, (list, dict)) else 0.01,
                          "weight_decay": weight_decay}, hyper, **options)

    def _one_group_per_tensor(self, params, alpha, K) -> list[dict]:
        family = type(self).__name__
        params = list(params)
        if params and isinstance(params[0], dict):
            raise ValueError(f"{family} makes one parameter group per tensor itself; pass parameters, not groups")
        named = [(p if isinstance(p, tuple) else (str(i), p)) for i, p in enumerate(params)]
        names = [n for n, _ in named]
        alphas = _per_segment_values(alpha, names, family, K)
        with_names = bool(params) and isinstance(params[0], tuple)
        return [{"params": [(n, p)] if with_names else [p], "alpha": a, "name": n}
                for (n, p), a in zip(named, alphas)]

    def _segments(self, below_names: list[str]) -> list[Segment]:
        """One segment per entry of the vector below, each with its own κ."""
        alphas = _per_segment_values(self._alphas, below_names, type(self).__name__, self._batch)
        wd = _per_member(self._values.get("weight_decay", 0.0), self._batch, "weight_decay")
        return [Segment(i, i + 1, name, {"alpha": _per_member(a, self._batch, f"alpha.{name}"), "weight_decay": wd})
                for i, (name, a) in enumerate(zip(below_names, alphas))]

    def _level_repr(self) -> str:
        from .base import _fmt

        return f"{type(self).__name__}(α={_fmt(self._alphas)})"


def _leaves(x) -> list:
    """Every number of a value given as a number or (nested) lists."""
    return [v for item in x for v in _leaves(item)] if isinstance(x, (list, tuple)) else [x]


def _per_segment_values(alpha, names: list[str], family: str, K: int | None) -> list:
    """One value per entry (a number, or K numbers with batch=K) from a number, dict or list. With
    batch=K a flat list of numbers is one value per configuration for every entry, as for any
    other hyperparameter; per-entry values then come as a dict or a list with lists in it."""
    if isinstance(alpha, dict):
        unknown = sorted(set(alpha) - set(names))
        if unknown:
            raise ValueError(f"{family}: unknown names {unknown}; the level below has {names}")
        missing = sorted(set(names) - set(alpha))
        if missing:
            raise ValueError(f"{family}: no step size given for {missing}")
        return [alpha[n] for n in names]
    if not isinstance(alpha, list):
        return [alpha] * len(names)
    if K is not None and not any(isinstance(a, (list, tuple)) for a in alpha):
        if len(alpha) != K:
            raise ValueError(f"{family}: with batch={K} a list of numbers gives one alpha per configuration, got "
                             f"{len(alpha)}; for one alpha per entry of {names} give a dict by name, or a list "
                             "of lists (each a number or one value per configuration)")
        return [alpha] * len(names)
    if len(alpha) != len(names):
        raise ValueError(f"{family}: got {len(alpha)} step sizes for {len(names)} entries {names}")
    return list(alpha)


class AdaGrad(HyperOptimizer):
    r"""AdaGrad (G₀ = 0.1, ε = 1e-10 inside the square root, as gdtuo); learns α.

    .. math:: G_t = G_{t-1} + g_t^2,\quad w_{t+1} = w_t - α g_t / \sqrt{G_t + ε}

    Args:
        alpha (or lr): step size α₀ (default 0.01).
        eps: ε inside the square root (default 1e-10).
        initial_accumulator (or initial_accumulator_value): G₀ (default 0.1, as gdtuo).
    """

    def __init__(self, params=None, alpha: float | None = None, hyper=None, *, lr=None, eps: float = 1e-10,
                 initial_accumulator: float | None = None, initial_accumulator_value: float | None = None,
                 weight_decay: float = 0.0, sign_safe: bool = False, **options):
        family = type(self).__name__
        options = _no_torch_extras(family, options)
        if initial_accumulator is not None and initial_accumulator_value is not None:
            raise ValueError(f"{family}: give initial_accumulator once")
        start = 0.1 if initial_accumulator is None and initial_accumulator_value is None else (
            initial_accumulator if initial_accumulator is not None else initial_accumulator_value)
        _nonneg(eps, f"{family}: eps")
        _nonneg(start, f"{family}: initial_accumulator")
        super().__init__(params, AdaGradRule(eps, start, sign_safe),
                         {"alpha": _pick(family, alpha, lr, 0.01), "weight_decay": weight_decay}, hyper, **options)


class RMSProp(HyperOptimizer):
    r"""RMSProp (α stored as √α, γ squashed into (0, 1), ε = 1e-8 inside the square root); learns α, γ.

    .. math:: s_t = γ s_{t-1} + (1-γ) g_t^2,\quad w_{t+1} = w_t - α g_t / \sqrt{s_t + ε}

    Note: here ``alpha`` is the step size (the paper's name); ``torch.optim.RMSprop``'s ``alpha``
    is the smoothing constant, which is ``gamma`` here.

    Args:
        alpha (or lr): step size α₀ (default 0.01).
        gamma: smoothing constant γ₀ in (0, 1) (default 0.99).
        eps: ε inside the square root (default 1e-8).
    """

    _repr_hypers = ("alpha", "gamma")
    _learn_gamma = True

    def __init__(self, params=None, alpha: float | None = None, gamma: float = 0.99, hyper=None, *, lr=None,
                 eps: float = 1e-8, weight_decay: float = 0.0, sign_safe: bool = False, **options):
        family = type(self).__name__
        options = _no_torch_extras(family, options)
        if alpha is not None and lr is not None:
            raise ValueError(f"{family}: got alpha={alpha!r} and lr={lr!r}. In hypernb alpha IS the step size "
                             "(lr); torch.optim.RMSprop's alpha (the smoothing constant) is gamma= here")
        _nonneg(eps, f"{family}: eps")
        super().__init__(params, RMSPropRule(self._learn_gamma, eps, sign_safe),
                         {"alpha": _pick(family, alpha, lr, 0.01), "gamma": gamma, "weight_decay": weight_decay},
                         hyper, **options)


class RMSPropAlpha(RMSProp):
    """RMSProp that learns only α (the paper's RMSProp_α); γ stays fixed. Arguments as :class:`RMSProp`."""

    _learn_gamma = False


class Adam(HyperOptimizer):
    r"""Adam (β squashed into (0, 1), v₀ = ε, ε = 10^log_eps fixed); learns α, β1, β2.

    .. math:: w_{t+1} = w_t - α \frac{\hat m_t}{\sqrt{\hat v_t} + ε}

    Args:
        alpha (or lr): step size α₀ (default 1e-3).
        beta1, beta2 (or betas=(β1, β2)): in (0, 1) (defaults 0.9, 0.999).
        eps (or log_eps, ε = 10**log_eps): fixed ε (default 1e-8).
    """

    _repr_hypers = ("alpha", "beta1", "beta2")
    _learn_betas, _squash, _decoupled, _default_decay = True, True, False, 0.0

    def __init__(self, params=None, alpha: float | None = None, beta1: float | None = None,
                 beta2: float | None = None, log_eps: float | None = None, hyper=None, *, lr=None, betas=None,
                 eps: float | None = None, weight_decay: float | None = None, sign_safe: bool = False,
                 **options):
        family = type(self).__name__
        options = _no_torch_extras(family, options)
        if isinstance(beta1, (tuple, list)) and options.get("batch") is None:
            raise ValueError(f"{family}: beta1 must be a number, got {beta1!r}; give the pair as betas=(β1, β2) "
                             "(torch.optim.Adam's positional order is (params, lr, betas, eps, …); here it is "
                             "(params, alpha, beta1, beta2, log_eps, hyper): pass the options by name)")
        if betas is not None:
            if beta1 is not None or beta2 is not None:
                raise ValueError(f"{family}: give betas=(β1, β2) or beta1=/beta2=, not both")
            if not isinstance(betas, (tuple, list)) or len(betas) != 2:
                raise ValueError(f"{family}: betas must be a pair (β1, β2), got {betas!r}")
            beta1, beta2 = betas
        if eps is not None and log_eps is not None:
            raise ValueError(f"{family}: give eps= or log_eps= (ε = 10**log_eps), not both")
        if eps is not None:
            if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
                raise ValueError(f"{family}: eps must be a number in (0, 1), got {eps!r}")
            log_eps = math.log10(eps)
        log_eps = -8.0 if log_eps is None else log_eps
        if isinstance(log_eps, bool) or not isinstance(log_eps, (int, float)) or not -400 < log_eps < 0:
            raise ValueError(f"{family}: log_eps must be a number in (-400, 0) (ε = 10**log_eps), got {log_eps!r}")
        super().__init__(params, AdamRule(self._learn_betas, log_eps, sign_safe, self._squash, self._decoupled),
                         {"alpha": _pick(family, alpha, lr, 0.001), "beta1": 0.9 if beta1 is None else beta1,
                          "beta2": 0.999 if beta2 is None else beta2,
                          "weight_decay": self._default_decay if weight_decay is None else weight_decay},
                         hyper, **options)


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``: w ← w − αλw − α·m̂/(√v̂+ε));
    weight_decay defaults to 0.01 as in torch. Arguments as :class:`Adam`."""

    _decoupled, _default_decay = True, 0.01


class AdamBaydin(Adam):
    """Adam that learns only α (the paper's Adam_α, after Baydin et al.); β1, β2 stay fixed. Arguments as
    :class:`Adam`."""

    _learn_betas = False


class AdamUnclamped(Adam):
    """Adam with β1, β2 stored and used *raw*: the COMP6258 report's modification of the paper's
    package (it removed the tanh squashing). Kept only to demonstrate its failure: a hyperoptimizer
    can push β2 past 1, after which v < 0 and the run turns to NaN. Do not use it to train. Arguments as
    :class:`Adam`."""

    _squash = False


for _cls in (SGD, SGDPerParam, AdaGrad, RMSProp, Adam):  # (the variants below them say "arguments as …")
    if _cls.__doc__:  # (python -OO strips docstrings)
        _cls.__doc__ += _COMMON
