"""Build towers from a string: ``tower("adam/sgd/sgd", model.parameters(), alpha=1e-3, kappa=1e-5)``.

The string lists the levels left to right as the paper writes them: the leftmost optimizer trains
the model, each one to its right learns the hyperparameters of its left neighbour, and the
rightmost one's hyperparameters are fixed. ``name*N`` repeats a level (``"sgd/sgd*20"``).
"""
from __future__ import annotations

import numbers

from .base import _nonneg
from .optimizers import SGD, AdaGrad, Adam, AdamBaydin, AdamUnclamped, AdamW, RMSProp, RMSPropAlpha, SGDPerParam

FAMILIES = {
    "sgd": SGD,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "rmspropalpha": RMSPropAlpha,
    "adam": Adam,
    "adamw": AdamW,
    "adambaydin": AdamBaydin,
    "sgdperparam": SGDPerParam,
    "adamunclamped": AdamUnclamped,  # the report's broken Adam, for demonstrations only
}
ALIASES = {"rmsprop_alpha": "rmspropalpha", "adam_alpha": "adambaydin", "sgd_per_param": "sgdperparam"}
# the learning-rate-free peers hypernb.peers runs (alone, never in a tower), named so that an error can point there
PEERS = ("prodigy", "dadapt_adam", "schedulefree_adamw", "dog")


def _paper(alpha0: float, height: int) -> list[float]:
    """V1 §4.3 (the paper's tower protocol): every level starts from the same α0."""
    return [alpha0] * height


def _report(alpha0: float, height: int) -> list[float]:
    """COMP6258 report §3.4: the level-ℓ step size is α0 / (100·(1 + ℓ)), ℓ = 1…height."""
    return [alpha0 / (100.0 * (1 + level)) for level in range(1, height + 1)]


KAPPA_RULES = {"paper": _paper, "report": _report}


MAX_LEVELS = 10_000  # hyper levels in one tower: far beyond any study (the paper's reach 50), short of exhausting memory


def parse_tower(spec: str) -> list[str]:
    """``"Adam / SGD*2"`` → ``["adam", "sgd", "sgd"]``, with a clear error for unknown names."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a tower is a string such as 'adam/sgd', got {spec!r}")
    names = []
    for part in spec.split("/"):
        name, star, count = part.strip().lower().partition("*")
        name = ALIASES.get(name.strip(), name.strip())
        if name not in FAMILIES:
            if name in PEERS and "/" not in spec and not star and spec != name:  # a peer alone, written otherwise
                raise ValueError(f"a learning-rate-free peer's name is written exactly, in lower case: "
                                 f"optimizer={name!r}, not {spec!r}")
            if name in PEERS:
                raise ValueError(f"{name!r} (in {spec!r}) is a learning-rate-free peer (hypernb.peers), not a hypernb "
                                 f"optimizer: it trains alone, as run(optimizer={name!r}), never in a tower; a tower "
                                 f"is built from {sorted(FAMILIES)} (aliases: {sorted(ALIASES)})")
            raise ValueError(
                f"unknown optimizer {part.strip()!r} in tower {spec!r}; choose from "
                f"{sorted(FAMILIES)} (aliases: {sorted(ALIASES)}), or a learning-rate-free peer alone: "
                + ", ".join(PEERS)
            )
        n = 1
        if star:
            if not count.strip().isdigit() or int(count) < 1:
                raise ValueError(f"repeat count in {part.strip()!r} must be a positive integer")
            n = int(count)
            if n > MAX_LEVELS:
                raise ValueError(f"repeat count in {part.strip()!r} must be at most {MAX_LEVELS}")
        names += [name] * n
    return names


def kappa_schedule(kappa, alpha0, height: int) -> list:
    """Hyper-step sizes κ_1…κ_height from a number, a list (one entry per level), or a named rule
    (see KAPPA_RULES). With several configurations (``alpha0`` a list), a rule gives each level
    one κ per configuration, and a level's entry may itself be a list of per-configuration values.
    A dict (one κ per hyperparameter below) is passed to an SGDPerParam level 1 as is."""
    if isinstance(kappa, dict):
        if height != 1:
            raise ValueError("a dict of κ per hyperparameter needs a tower of height 1 ending in sgdperparam")
        for k in kappa.values():
            _check_kappa(k)
        return [dict(kappa)]
    if isinstance(kappa, str):
        if kappa not in KAPPA_RULES:
            raise ValueError(f"unknown κ rule {kappa!r}; choose from {sorted(KAPPA_RULES)} or give numbers")
        if isinstance(alpha0, (list, tuple)):
            per = [KAPPA_RULES[kappa](float(a), height) for a in alpha0]
            values = [[p[level] for p in per] for level in range(height)]
        else:
            values = KAPPA_RULES[kappa](float(alpha0), height)
    elif isinstance(kappa, numbers.Real) and not isinstance(kappa, bool):
        values = [float(kappa)] * height
    elif not isinstance(kappa, (list, tuple)):
        raise ValueError(f"kappa must be a number, a list (one value per hyper level), a dict or a rule "
                         f"{sorted(KAPPA_RULES)}, got {kappa!r}")
    else:
        values = list(kappa)
        if len(values) != height:
            raise ValueError(f"kappa lists one value per hyper level: got {len(values)} for a tower of height {height}")
    for k in values:
        _check_kappa(k)
    return values


def _check_kappa(k) -> None:
    for v in (k if isinstance(k, (list, tuple)) else [k]):
        _nonneg(v, "κ")


def tower(spec: str, params, alpha=None, kappa=1e-5, *, hyper_options: list[dict] | None = None,
          sign_safe: bool = False, batch: int | None = None, check_every: int | None = None,
          capturable: bool | None = None, cuda_graph: bool | None = None, compiled: bool = False,
          lr=None, **level0):
    """Build a tower: level 0 gets ``params``, ``alpha`` (or ``lr``) and ``level0`` keyword
    arguments (``mu``, ``beta1``, ``weight_decay``…); level ℓ ≥ 1 gets α = κ_ℓ from ``kappa`` and
    ``hyper_options[ℓ-1]``. With ``batch=K`` any value may be a list of K values.

    >>> import torch
    >>> tower("sgd/sgd*2", [torch.nn.Parameter(torch.ones(2))], alpha=0.1, kappa="report")
    SGD(α=0.1) / SGD(α=0.0005) / SGD(α=0.000333333)
    """
    names = parse_tower(spec)
    height = len(names) - 1
    base_cls = FAMILIES[names[0]]
    if alpha is not None and lr is not None:
        raise ValueError("give the step size once, as alpha= or lr= (the same thing), not both")
    alpha = lr if alpha is None else alpha
    if alpha is None:
        alpha = 0.001 if issubclass(base_cls, Adam) else 0.01
    # SGDPerParam's α per tensor (a dict; a list without batch=; a list of lists with it) has no single α0
    per_tensor = isinstance(alpha, dict) or (issubclass(base_cls, SGDPerParam) and isinstance(alpha, (list, tuple))
                                             and (batch is None or any(isinstance(a, (list, tuple, dict))
                                                                       for a in alpha)))
    if per_tensor and isinstance(kappa, str):
        raise ValueError(f"kappa={kappa!r} is a rule that starts from one α0, but {names[0]}'s α is given per tensor "
                         f"({alpha!r}); give kappa as a number or a list (one value per hyper level)")
    kappas = kappa_schedule(kappa, 1.0 if per_tensor else alpha, height)
    if isinstance(kappa, dict) and names[-1] != "sgdperparam":
        raise ValueError("a dict of κ per hyperparameter needs an sgdperparam hyperoptimizer, e.g. 'sgd/sgdperparam'")
    hyper_options = _hyper_options(hyper_options, height)
    hyper = None
    for level in range(height, 0, -1):
        cls = FAMILIES[names[level]]
        hyper = cls(alpha=kappas[level - 1], hyper=hyper, sign_safe=sign_safe, **hyper_options[level - 1])
    return base_cls(params, alpha=alpha, hyper=hyper, sign_safe=sign_safe, batch=batch, check_every=check_every,
                    capturable=capturable, cuda_graph=cuda_graph, compiled=compiled, **level0)


# what tower() gives every hyper level itself: a hyper_options entry must not give it again
_FROM_TOWER = {"alpha": "kappa=", "lr": "kappa=", "hyper": "the tower string", "sign_safe": "sign_safe=",
               "batch": "batch=", "check_every": "check_every=", "capturable": "capturable=",
               "cuda_graph": "cuda_graph=", "compiled": "compiled="}


def _hyper_options(options, height: int) -> list[dict]:
    """``hyper_options`` checked: a list with one dict of keyword arguments per hyper level."""
    if options is None:
        return [{}] * height
    if not isinstance(options, (list, tuple)):
        raise ValueError(f"hyper_options must be a list with one dict per hyper level ({height}), got "
                         f"{type(options).__name__}")
    if len(options) != height:
        raise ValueError(f"hyper_options needs one dict per hyper level ({height}), got {len(options)}")
    for level, opts in enumerate(options, start=1):
        if not isinstance(opts, dict):
            raise ValueError(f"hyper_options[{level - 1}] (level {level}) must be a dict of keyword arguments, "
                             f"got {opts!r}")
        given = sorted(set(opts) & set(_FROM_TOWER))
        if given:
            raise ValueError(f"hyper_options[{level - 1}] gives {given}, which tower() sets itself; use "
                             + ", ".join(sorted({_FROM_TOWER[k] for k in given})) + " instead")
    return list(options)
