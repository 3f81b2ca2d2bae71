"""Which runs can train together, and the one optimizer that trains them.

A *member* is one (configuration, seed). Members are compatible when they train the same model on
the same data in the same way and their towers differ only in numbers (α0, κ, μ0, β, weight decay,
seed) and in height: a shorter tower is padded with κ = 0 levels, which leave the level below
exactly unchanged (x + (−0·g) = x). Compatible members train as one batched model (see
:func:`hypernb.models.batched`) with one optimizer of ``batch=K``; configuration k computes exactly
what it would compute alone (tested to 1e-10 in float64).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .config import RunConfig
from .optim.tower import FAMILIES, kappa_schedule

# fields whose values may differ inside a group (the rest must be equal)
PER_MEMBER = {"seeds", "alpha", "mu", "beta1", "beta2", "gamma", "kappa", "height", "optimizer", "schedule",
              "weight_decay", "out_dir", "quiet", "keep_checkpoint"}


@dataclass
class Member:
    config: RunConfig  # resolved (profile defaults filled in)
    seed: int
    index: int  # which of the configurations given to run()

    @property
    def tower(self) -> list[str]:
        return self.config.tower_names()

    @property
    def height(self) -> int:
        return len(self.tower) - 1

    def key(self) -> str:
        """Identity of this member's computation (for group checkpoints)."""
        from .train import semantic

        d = semantic(self.config.to_dict())
        d["seeds"] = [self.seed]
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def batches_well_on_cpu(c: RunConfig) -> bool:
    """Whether training several runs of this model as one batched model is faster than one after the
    other on a CPU, as measured by ``benchmarks/throughput.py`` (see benchmarks/RESULTS.md): the MLP's
    small matrix products gain; ResNet-20's grouped convolutions and the char-LSTM's batched recurrence
    (a Python loop over time steps, since cuDNN's fused LSTM is not available on a CPU) are slower
    than the dense per-run kernels, so on a CPU those train one run at a time unless asked otherwise."""
    return c.model_name == "mlp"


def compatibility(c: RunConfig) -> str:
    """What must be equal for two members to share a batch."""
    d = {k: v for k, v in c.to_dict().items() if k not in PER_MEMBER}
    names = c.tower_names()
    d["level0"] = names[0]
    d["momentum"] = names[0] == "sgd" and c.mu != 0.0  # SGD's momentum buffer exists or not
    d["kappa_kind"] = type(c.kappa).__name__ if isinstance(c.kappa, dict) else "numbers"
    if c.text_split == "shuffled":  # the data itself depends on the seed
        d["seed"] = list(c.seeds)
    return json.dumps(d, sort_keys=True, default=str)


def plan(members: list[Member], batch: int | None) -> list[list[Member]]:
    """Groups of compatible members, at most ``batch`` each (None: no limit), in a stable order.
    Within a compatibility class, a member joins the first group whose tallest tower its own is a
    prefix of (or that is a prefix of its own)."""
    groups: list[list[Member]] = []
    for m in members:
        if m.config.is_peer:  # a peer's step-size estimate sums over all parameters: one run per model
            groups.append([m])
            continue
        for g in groups:
            if g[0].config.is_peer or (batch is not None and len(g) >= batch):
                continue
            if compatibility(g[0].config) != compatibility(m.config):
                continue
            tall = max((x.tower for x in g), key=len)
            short, long_ = sorted((tall, m.tower), key=len)
            if long_[:len(short)] == short:
                g.append(m)
                break
        else:
            groups.append([m])
    return groups


def build_optimizer(members: list[Member], params, batched: bool, tower: list[str] | None = None):
    """The tower that trains every member: the tallest tower (or ``tower``, the one a group kept when
    members left it), κ = 0 above a member's own height, every value one per member (or a plain number
    when there is one member and no batch); or a learning-rate-free peer (one member)."""
    if members[0].config.is_peer:
        from . import peers

        c = members[0].config
        return peers.build(c.optimizer, params, c.alpha, c.d0, c.weight_decay)

    tower = tower or max((m.tower for m in members), key=len)
    height = len(tower) - 1
    K = len(members)

    def per(values):
        return list(values) if batched else values[0]

    cfgs = [m.config for m in members]
    kappas = []
    for m in members:
        c = m.config
        own = kappa_schedule(list(c.kappa) if isinstance(c.kappa, tuple) else c.kappa, c.alpha, m.height) \
            if m.height else []
        kappas.append(own + [0.0] * (height - m.height))
    kw = {name: per([getattr(c, name) for c in cfgs]) for name in sorted(cfgs[0].rule_fields())}
    if any(c.weight_decay for c in cfgs):
        kw["weight_decay"] = per([c.weight_decay for c in cfgs])
    hyper = None
    for level in range(height, 0, -1):
        values = [k[level - 1] for k in kappas]
        if isinstance(values[0], dict):  # one κ per hyperparameter below (sgdperparam)
            alpha = {name: per([v[name] for v in values]) for name in values[0]}
        else:
            alpha = per(values)
        hyper = FAMILIES[tower[level]](alpha=alpha, hyper=hyper, sign_safe=cfgs[0].sign_safe)
    params = list(params)
    opt = FAMILIES[tower[0]](params, alpha=per([c.alpha for c in cfgs]), hyper=hyper, sign_safe=cfgs[0].sign_safe,
                             batch=K if batched else None, compiled=cfgs[0].compiles_on(params), **kw)
    opt._engine.heights = [m.height for m in members]
    return opt
