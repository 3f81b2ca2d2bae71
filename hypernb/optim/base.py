"""``HyperOptimizer``: a ``torch.optim.Optimizer`` whose hyperparameters the level above can learn.

Usage is the ordinary PyTorch loop::

    opt = Adam(model.parameters(), alpha=1e-3, hyper=SGD(alpha=1e-5))   # Adam / SGD(κ=1e-5)
    for x, y in batches:
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()

``hyper=`` takes an *unbound* optimizer (built without parameters); its ``alpha`` is this level's
κ. Nest them to build towers of any height, or use :func:`hypernb.optim.tower`.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch

from .engine import MODES, Engine
from .rules import Rule

STATE_DICT_FORMAT = "hypernb.optim/1"


class HyperOptimizer(torch.optim.Optimizer):
    """Base class; see the module docstring. Subclasses choose the update rule."""

    _repr_hypers: tuple[str, ...] = ("alpha",)

    def __init__(self, params, rule: Rule, values: dict, hyper: "HyperOptimizer | None" = None,
                 *, mode: str = "traced", check_every: int | None = None, capturable: bool | None = None,
                 cuda_graph: bool | None = None, host_scalars: bool = True):
        self._rule, self._values = rule, dict(values)
        self._level_name = "level 0"
        for h in rule.hypers():
            h.check(values[h.name] if not rule.per_segment or h.name != "alpha" else 0.0,
                    type(self).__name__, "the step size; one level up it is κ")
        if rule.per_segment:
            _check_alphas(values["alpha"], type(self).__name__)
        if hyper is not None:
            if not isinstance(hyper, HyperOptimizer):
                raise ValueError(f"hyper= must be a hypernb optimizer such as SGD(alpha=1e-5), got {hyper!r}")
            if hyper._engine is not None or hyper._owner is not None:
                raise ValueError(
                    "hyper= must be an unbound optimizer (built without parameters, e.g. SGD(alpha=1e-5)) "
                    "that is not already part of another tower"
                )
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if check_every is not None and (not isinstance(check_every, int) or check_every < 1):
            raise ValueError(f"check_every must be a positive int or None, got {check_every!r}")
        self.hyper, self._mode, self.check_every = hyper, mode, check_every
        self._engine: Engine | None = None
        self._owner = None
        self._steps_since_check = 0
        if params is None:  # unbound: a hyperoptimizer waiting for the level below
            self.defaults, self.state, self.param_groups = dict(values), {}, []
            for hooks in ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks"):
                setattr(self, hooks, OrderedDict())
            return
        if isinstance(params, (int, float)):
            raise ValueError(
                f"the first argument of {type(self).__name__} is the parameters; for an unbound "
                f"hyperoptimizer write {type(self).__name__}(alpha={params!r})"
            )
        defaults = {k: v for k, v in values.items() if not isinstance(v, (list, dict))}
        super().__init__(params, defaults)
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.requires_grad]
        if not params:
            raise ValueError(f"{type(self).__name__} got no parameters that require gradients")
        names = list(group.get("param_names") or [str(i) for i in range(len(params))])
        chain, node = [self], hyper
        while node is not None:
            node._owner = self
            chain.append(node)
            node = node.hyper
        self._engine = Engine(params, names, chain, mode, capturable, cuda_graph, host_scalars)
        for k, opt in enumerate(chain):
            opt._level_name = f"level {k}"
            opt._engine_ref = self._engine

    # -- torch.optim.Optimizer API --------------------------------------------------------------
    def _require_bound(self):
        if self._engine is None:
            if self._owner is not None:
                raise RuntimeError(f"{self!r} is a hyperoptimizer inside {self._owner!r}; step that one")
            raise RuntimeError(f"{self!r} has no parameters; pass them: {type(self).__name__}(model.parameters(), ...)")
        return self._engine

    def step(self, closure=None):
        """One step of every level: hypergradients, then hyperparameters top-down, then weights.

        Step pre/post hooks run as for any ``torch.optim.Optimizer``; the profiler label
        ``Optimizer.step#<class>.step`` is recorded only while a profiler runs (torch's own wrapper
        records it always, which costs 20–60 µs per step on a CPU, a few % of a small model's step).
        """
        hooks = _optimizer_hooks(self)
        if hooks is None and not torch._C._autograd._profiler_enabled():
            return self._step(closure)
        with torch.autograd.profiler.record_function(f"Optimizer.step#{type(self).__name__}.step"):
            args, kwargs = (self,), {"closure": closure} if closure is not None else {}
            for pre in (hooks or ([], []))[0]:
                result = pre(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(f"a step pre-hook must return None or (args, kwargs), got {result!r}")
                    args, kwargs = result
            out = self._step(*args[1:], **kwargs)
            for post in (hooks or ([], []))[1]:
                post(self, args, kwargs)
            return out

    step.hooked = True  # tells torch.optim.Optimizer not to wrap it again (see _optimizer_hooks)

    @torch.no_grad()
    def _step(self, closure=None):
        engine = self._require_bound()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        engine.step()
        if self.check_every is not None:
            self._steps_since_check += 1
            if self._steps_since_check >= self.check_every and not _capturing(engine.device):
                self._steps_since_check = 0
                engine.check_finite()
        return loss

    def add_param_group(self, param_group):
        if getattr(self, "param_groups", None):
            raise ValueError(
                "hypernb optimizers learn one set of hyperparameters for all parameters, so they take "
                "one parameter group; use SGDPerParam for one step size per parameter tensor"
            )
        super().add_param_group(param_group)

    # -- hyperparameters ---------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, torch.Tensor]:
        """Current effective values of every level, as 0-d tensors on the parameters' device.

        Keys: ``alpha``, ``mu``, ``beta1``, … for level 0, ``hyper.alpha`` (κ of level 1), and so on.
        Reading them does not synchronise with the host.
        """
        out = {}
        for k, lvl in enumerate(self._require_bound().levels):
            out.update({"hyper." * k + name: v for name, v in lvl.values().items()})
        return out

    @torch.no_grad()
    def set_hyperparameters(self, **values) -> None:
        """Overwrite current effective values, e.g. ``opt.set_hyperparameters(alpha=0.01)`` for a
        hand-made schedule, or ``**{"hyper.alpha": 1e-6}`` one level up. Runs on the device."""
        levels = self._require_bound().levels
        for key, value in values.items():
            k, name = key.count("hyper."), key.replace("hyper.", "")
            if k >= len(levels) or name not in levels[k].names:
                known = [kk for kk in self.hyperparameters() if not kk.endswith(tuple(levels[-1].fixed))]
                raise ValueError(f"no learnable hyperparameter {key!r}; choose from {known}")
            lvl = levels[k]
            j = lvl.names.index(name)
            hyper = lvl.trainable[0] if lvl.segment_ids is not None else lvl.trainable[j]
            hyper.check(float(value), type(lvl.opt).__name__, "set_hyperparameters")
            lvl.raw[j] = hyper.param.to_raw(float(value))

    def hypergradients(self) -> dict[str, torch.Tensor]:
        """The last hypergradients d loss / d (stored value) of every learned hyperparameter."""
        out = {}
        levels = self._require_bound().levels
        for k, lvl in enumerate(levels[:-1]):
            out.update({"hyper." * k + name: lvl.G[j] for j, name in enumerate(lvl.names)})
        return out

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteError` if anything became NaN/inf (one host sync)."""
        self._require_bound().check_finite()

    @property
    def steps(self) -> torch.Tensor:
        """Number of steps taken, as a device tensor."""
        return self._require_bound().t

    @property
    def height(self) -> int:
        """Number of hyperoptimizer levels above this one."""
        n, node = 0, self.hyper
        while node is not None:
            n, node = n + 1, node.hyper
        return n

    # -- checkpointing -------------------------------------------------------------------------
    def _spec(self) -> list:
        spec, node = [], self
        while node is not None:
            spec.append({"optimizer": type(node).__name__, "values": _plain(node._values),
                         "rule": {k: v for k, v in vars(node._rule).items()}})
            node = node.hyper
        return spec

    def state_dict(self) -> dict:
        """Everything needed to resume exactly: every level's stored values, state and tangents."""
        e = self._require_bound()
        return {
            "format": STATE_DICT_FORMAT,
            "tower": self._spec(),
            "step": e.t.clone(),
            "first_bad": e.first_bad.clone(),
            "levels": [
                {"raw": lvl.raw.clone(), "state": {k: v.clone() for k, v in lvl.state.items()},
                 "tangents": None if lvl.J is None else torch.stack(lvl.J),
                 "tangent_scale": None if lvl.J is None else lvl.Jc.clone(), "hypergradient": lvl.G.clone()}
                for lvl in e.levels
            ],
            "param_groups": [{"params": list(range(len(e.params))), **self.defaults}],
            "state": {},
        }

    def load_state_dict(self, state_dict: dict) -> None:
        e = self._require_bound()
        if state_dict.get("format") != STATE_DICT_FORMAT:
            raise ValueError(
                f"not a hypernb optimizer state dict (format {state_dict.get('format')!r}, "
                f"expected {STATE_DICT_FORMAT!r})"
            )
        if [s["optimizer"] for s in state_dict["tower"]] != [s["optimizer"] for s in self._spec()]:
            raise ValueError(
                f"state dict is for the tower {[s['optimizer'] for s in state_dict['tower']]}, "
                f"this optimizer is {[s['optimizer'] for s in self._spec()]}"
            )
        with torch.no_grad():
            e.t.copy_(state_dict["step"])
            e.first_bad.copy_(state_dict["first_bad"])
            for lvl, saved in zip(e.levels, state_dict["levels"]):
                _copy_checked(lvl.raw, saved["raw"], "stored hyperparameters")
                lvl.G.copy_(saved["hypergradient"])
                for k, v in lvl.state.items():
                    _copy_checked(v, saved["state"][k], f"state '{k}'")
                if lvl.J is not None:
                    rows = saved["tangents"]
                    if tuple(rows.shape) != (len(lvl.J), lvl.J[0].numel()):
                        raise ValueError(f"state dict tangents have shape {tuple(rows.shape)}, expected "
                                         f"{(len(lvl.J), lvl.J[0].numel())}")
                    for row, src in zip(lvl.J, rows):
                        row.copy_(src)
                    _copy_checked(lvl.Jc, saved["tangent_scale"], "tangent scales")

    # -- display -----------------------------------------------------------------------------
    def _level_repr(self) -> str:
        parts = []
        for name in self._repr_hypers:
            value = self._values[name]
            symbol = {"alpha": "α", "mu": "μ", "beta1": "β1", "beta2": "β2", "gamma": "γ"}[name]
            parts.append(f"{symbol}={_fmt(value)}")
        if getattr(self._rule, "sign_safe", False):
            parts.append("sign_safe")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __repr__(self) -> str:
        node, parts = self, []
        while node is not None:
            parts.append(node._level_repr())
            node = node.hyper
        return " / ".join(parts)


def _fmt(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        vals = {float(v) for v in value}
        return _fmt(vals.pop()) if len(vals) == 1 else "[" + ", ".join(_fmt(v) for v in value) + "]"
    return f"{float(value):g}"


def _plain(values: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}


def _check_alphas(alpha, family: str) -> None:
    items = alpha.values() if isinstance(alpha, dict) else (alpha if isinstance(alpha, (list, tuple)) else [alpha])
    for a in items:
        if not isinstance(a, (int, float)) or not math.isfinite(a) or a < 0:
            raise ValueError(f"{family}: every alpha must be a finite number >= 0, got {a!r}")


def _copy_checked(dst: torch.Tensor, src: torch.Tensor, what: str) -> None:
    if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"state dict {what} has shape {tuple(src.shape)}, expected {tuple(dst.shape)}")
    dst.copy_(src)


def _optimizer_hooks(opt) -> tuple[list, list] | None:
    """(pre-hooks, post-hooks) registered on ``opt`` or globally, or None when there are none."""
    from torch.optim import optimizer as torch_optimizer

    pre = [*torch_optimizer._global_optimizer_pre_hooks.values(), *opt._optimizer_step_pre_hooks.values()]
    post = [*opt._optimizer_step_post_hooks.values(), *torch_optimizer._global_optimizer_post_hooks.values()]
    return (pre, post) if pre or post else None


def _capturing(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()
