"""``HyperOptimizer``: a ``torch.optim.Optimizer`` whose hyperparameters the level above can learn.

Usage is the ordinary PyTorch loop::

    opt = Adam(model.parameters(), lr=1e-3, hyper=SGD(lr=1e-5))   # Adam / SGD(κ=1e-5)
    for x, y in batches:
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()

``hyper=`` takes an *unbound* optimizer (built without parameters); its ``alpha`` (or ``lr``) is
this level's κ. Nest them to build towers of any height, or use :func:`hypernb.optim.tower`.

``batch=K`` trains K configurations at once: every parameter has a leading dimension K (see
:mod:`hypernb.models`), and every hyperparameter may be one number or a list of K numbers.

Parameter groups work as in ``torch.optim``: each group's α, μ, β, γ start from its own values
and are learned on their own; ``weight_decay`` is per group. ``group["lr"]`` is what
``torch.optim.lr_scheduler`` writes: the step uses the learned α times ``lr / initial lr``, so a
schedule multiplies what is learned instead of overwriting it. Writing a hyperparameter key of a
group (``alpha``, ``mu``, ``beta1``, ``weight_decay``, …) takes effect at the next step; writing a
key that cannot take effect raises.
"""
from __future__ import annotations

import collections
import itertools
import math
import numbers

import torch

from .engine import Engine, Segment, check_keys
from .rules import Rule

STATE_DICT_FORMAT = "hypernb.optim/2"
# torch.optim keys that have no meaning here: writing one would silently do nothing
UNSUPPORTED_KEYS = {"momentum", "betas", "eps", "dampening", "nesterov", "amsgrad", "maximize", "foreach",
                    "capturable", "differentiable", "fused", "lr_decay", "initial_accumulator_value", "centered",
                    "log_eps", "decoupled_weight_decay"}


def _per_member(value, K, what: str) -> list[float]:
    """One float per configuration from a number or (with batch=K) a list of K numbers
    (K = "any": a list of any length, for a hyperoptimizer not yet in a tower)."""
    if isinstance(value, (list, tuple)):
        if K == "any":
            return [_number(v, what) for v in value]
        if K is None:
            raise ValueError(f"{what}: a list of values needs batch=K (one value per configuration), got {value!r}")
        if len(value) != K:
            raise ValueError(f"{what}: got {len(value)} values for batch={K}")
        return [_number(v, what) for v in value]
    return [_number(value, what)] * (K if isinstance(K, int) else 1)


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):  # a tensor is not a numbers.Real either
        raise ValueError(f"{what} must be a number, got {v!r}")
    return float(v)


def _nonneg(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {v!r}")
    return float(v)


def _positive_int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{what} must be a positive int, got {v!r}")
    return v


def _check_hyper(hyper, value: float, family: str, where: str = "") -> None:
    """A hyperparameter's domain, and no value that the rule would silently ignore (SGD built
    without momentum has no buffer: a μ ≠ 0 given later could not take effect)."""
    hyper.check(value, family, where)
    if hyper.name == "mu" and not hyper.trainable and value != 0.0:
        at = f" ({where})" if where else ""
        raise ValueError(f"{family}: momentum{at} = {value!r} cannot take effect: this optimizer was built without "
                         "momentum (μ = 0 in the constructor and in every group), so it has no momentum buffer. "
                         "Give the momentum when building it (momentum=/mu=, or a group's 'momentum')")


class _Group(dict):
    """A parameter group whose hyperparameter keys reach the running optimizer when written."""

    def __setitem__(self, key, value):
        opt = self.__dict__.get("_opt")
        if opt is not None and opt._engine is not None:
            opt._write_group_key(self, key, value)
        super().__setitem__(key, value)

    def update(self, *args, **kwargs):
        """group.update(lr=…) writes through __setitem__ too, all or nothing: every key is checked
        before any is written."""
        items = dict(*args, **kwargs)
        opt = self.__dict__.get("_opt")
        if opt is not None and opt._engine is not None:
            for key, value in items.items():
                opt._write_group_key(self, key, value, write=False)
        for key, value in items.items():
            self[key] = value

    def __ior__(self, other):
        self.update(other)
        return self

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def __reduce__(self):  # pickles as a plain dict
        return (dict, (dict(self),))


class HyperOptimizer(torch.optim.Optimizer):
    """Base class; see the module docstring. Subclasses choose the update rule."""

    _repr_hypers: tuple[str, ...] | None = None  # shown by repr; None: every hyperparameter of the rule
    _aliases: dict = {"lr": "alpha"}
    _per_tensor = False  # SGDPerParam: one group per tensor, named after it

    def __init__(self, params, rule: Rule, values: dict, hyper: "HyperOptimizer | None" = None,
                 *, batch: int | None = None, check_every: int | None = None, capturable: bool | None = None,
                 cuda_graph: bool | None = None, compiled: bool = False):
        family = type(self).__name__
        if batch is not None:
            _positive_int(batch, "batch (the number of configurations)")
        self._rule, self._values, self._batch = rule, dict(values), batch
        if not isinstance(getattr(rule, "sign_safe", False), bool):
            raise ValueError(f"{family}: sign_safe must be True or False, got {rule.sign_safe!r}")
        if not isinstance(compiled, bool):
            raise ValueError(f"compiled must be True or False, got {compiled!r}")
        self._options = {"check_every": check_every, "capturable": capturable, "cuda_graph": cuda_graph,
                         "compiled": compiled}
        # an unbound hyperoptimizer learns its batch from the tower it joins (checked again there)
        self._check_values(self._values, family, batch if params is not None else "any")
        if hyper is not None:
            if not isinstance(hyper, HyperOptimizer):
                raise ValueError(f"hyper= must be a hypernb optimizer such as SGD(alpha=1e-5), got {hyper!r}; "
                                 f"torch.optim's positional arguments (lr, betas, eps, …) land elsewhere here: "
                                 f"pass the options by name")
            if hyper._engine is not None or hyper._owner is not None:
                raise ValueError(
                    "hyper= must be an unbound optimizer (built without parameters, e.g. SGD(alpha=1e-5)) "
                    "that is not already part of another tower"
                )
        if check_every is not None:
            _positive_int(check_every, "check_every")
        self.hyper, self.check_every = hyper, check_every
        self._engine: Engine | None = None
        self._owner = None
        self._steps_since_check = 0
        if params is None:  # unbound: a hyperoptimizer waiting for the level below
            self.defaults, self.state, self.param_groups = dict(values), {}, []
            _no_hooks_yet(self)
            return
        if isinstance(params, (int, float)):
            raise ValueError(f"the first argument of {family} is the parameters; for an unbound "
                             f"hyperoptimizer write {family}(alpha={params!r})")
        if isinstance(params, torch.Tensor):
            raise ValueError(f"{family}: params must be an iterable of tensors (e.g. model.parameters()), "
                             "got a single tensor; wrap it in a list")
        super().__init__(params, {**values, "lr": values["alpha"]})
        self._build()

    # -- construction ------------------------------------------------------------------------------
    def _check_values(self, values: dict, family: str, K, where: str = "") -> None:
        for h in self._rule.hypers():
            for v in _per_member(values[h.name], K, f"{family}: {h.name}"):
                _check_hyper(h, v, family, where)
        for v in _per_member(values.get("weight_decay", 0.0), K, f"{family}: weight_decay"):
            _nonneg(v, f"{family}: weight_decay{' (' + where + ')' if where else ''}")

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (torch.optim's API). Its hyperparameters start from the group's own values
        (or the optimizer's defaults) and are learned on their own; on a running optimizer the
        new parameters join the flat buffers and every existing state is kept."""
        family = type(self).__name__
        if not isinstance(param_group, dict):
            raise ValueError(f"a parameter group is a dict with 'params', got {type(param_group).__name__}")
        group = dict(param_group)
        for alias, name in self._aliases.items():
            if alias in group:
                if name in group and group[name] != group[alias]:
                    raise ValueError(f"{family}: a group gives both {alias}={group[alias]!r} and "
                                     f"{name}={group[name]!r}; give one")
                group[name] = group.pop(alias)
        bad = sorted(set(group) & UNSUPPORTED_KEYS)
        if bad:
            raise ValueError(f"{family}: group key(s) {bad} have no meaning for hypernb optimizers; "
                             f"hyperparameters here: {sorted(self._values)}")
        if "alpha" in group:
            group["lr"] = group["alpha"]
        # checked before anything changes: a refused group leaves the optimizer as it was
        values = {**self.defaults, **group}
        self._check_values(values, family, self._batch, f"group {len(self.param_groups)}")
        self._check_group(values, self._batch)
        running = getattr(self, "_engine", None) is not None
        super().add_param_group(group)  # fills defaults, checks the parameters, appends
        try:
            group = self.param_groups[-1]
            if any(p.is_sparse for p in group["params"]):
                raise ValueError(f"{family}: sparse parameters are not supported")
            if len({id(p) for p in group["params"]}) < len(group["params"]):
                raise ValueError(f"{family}: a parameter appears more than once in a group (torch.optim warns and "
                                 "updates it twice); list each parameter once")
            wrapped = _Group(group)
            wrapped._initial_lr = _per_member(group["lr"], self._batch, f"{family}: lr")
            self.param_groups[-1] = wrapped
            if running:
                self._rebuild()
        except BaseException:
            self.param_groups.pop()
            raise
        wrapped.__dict__["_opt"] = self

    def _check_group(self, values: dict, K) -> None:
        """Further checks of a group's values (defaults filled in, K configurations); see SGD."""

    def _groups(self) -> list[tuple[list, dict, str]]:
        """(params with names, values per configuration, name) of every group, for the engine."""
        out, index = [], 0
        names = {h.name for h in self._rule.hypers()} | {"weight_decay"}
        for i, group in enumerate(self.param_groups):
            params = list(group["params"])
            pnames = list(group.get("param_names") or [str(index + j) for j in range(len(params))])
            index += len(params)
            values = {k: _per_member(group.get(k, 0.0), self._batch, k) for k in names}
            lr0 = group._initial_lr
            now = _per_member(group["lr"], self._batch, "lr")
            values["lr_scale"] = _lr_scales(now, lr0)
            out.append((list(zip(params, pnames)), values, str(group.get("name", pnames[0] if self._per_tensor
                                                                               else f"group{i}"))))
        return out

    def _chain(self) -> list:
        chain, node = [self], self.hyper
        while node is not None:
            chain.append(node)
            node = node.hyper
        return chain

    def _build(self) -> None:
        """Make the engine. ``self._engine`` changes only if this succeeds."""
        family = type(self).__name__
        groups = self._groups()
        if not any(ps for ps, _, _ in groups):
            raise ValueError(f"{family} got an empty parameter list")
        groups = [g for g in groups if g[0]]
        names = [name for _, _, name in groups]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # their hyperparameters would share one key ("alpha.<name>")
            raise ValueError(f"{family}: several parameter groups are named {twice}; give each group its own "
                             "'name'")
        chain = self._chain()
        for node in chain[1:]:
            node._owner = self
            node._batch = self._batch
            node._check_values(node._values, type(node).__name__, self._batch)
        self._engine = Engine(groups, chain, self._batch, self._options["capturable"], self._options["cuda_graph"],
                              self._options.get("compiled", False))
        # group i's level-0 segment ([s]), none for a group without parameters (torch.optim allows one)
        starts = itertools.accumulate((bool(g["params"]) for g in self.param_groups), initial=0)
        self._segments_of = [[s] if g["params"] else [] for s, g in zip(starts, self.param_groups)]
        self._param_ids = _param_ids(self.param_groups)

    def _segments(self, below_names: list[str]) -> list[Segment]:
        """Segments of the vector below for an unbound hyperoptimizer: one (the whole vector)."""
        values = {k: _per_member(v, self._batch, k) for k, v in self._values.items()}
        return [Segment(0, len(below_names), "all", values)]

    # -- group keys ------------------------------------------------------------------------------
    def _write_group_key(self, group: _Group, key, value, write: bool = True) -> None:
        """What writing ``group[key]`` means on a running optimizer (see the module docstring);
        ``write=False`` only checks that it can."""
        family = type(self).__name__
        index = next(i for i, g in enumerate(self.param_groups) if g is group)
        level = self._engine.levels[0]
        seg = self._segments_of[index]
        name = self._aliases.get(key, key)
        hypers = {h.name: h for h in self._rule.hypers()}
        if key == "lr":
            now = _per_member(value, self._batch, f"{family}: lr")
            for n, a in zip(now, group._initial_lr):
                _nonneg(n, f"{family}: lr")
                if a == 0 and n != 0:
                    raise ValueError(f"{family}: this group started with lr = 0, so a schedule (a multiple of "
                                     "the initial lr) cannot change it; start from lr > 0")
            for s in seg if write else ():
                level.set_fixed("lr_scale", s, _lr_scales(now, group._initial_lr))
        elif name == "weight_decay":
            what = f"{family}: weight_decay"
            vals = [_nonneg(v, what) for v in _per_member(value, self._batch, what)]
            for s in seg if write else ():
                level.set_fixed("weight_decay", s, vals)
        elif name in hypers:
            h = hypers[name]
            vals = _per_member(value, self._batch, f"{family}: {name}")
            for v in vals:
                _check_hyper(h, v, family, f"group {index}")
            for s in seg if write else ():
                self._set_values(level, s, h, vals)
        elif key in ("params", "param_names"):
            raise ValueError(f"{family}: to add parameters use add_param_group(); a group's parameters "
                             "cannot be replaced")
        elif key in UNSUPPORTED_KEYS or key in ("alpha", "mu", "beta1", "beta2", "gamma"):
            hint = {"betas": "; write 'beta1' and 'beta2' one at a time" if "beta1" in hypers else "",
                    "momentum": "; its momentum is 'mu'" if "mu" in hypers else ""}.get(key, "")
            raise ValueError(f"{family}: writing '{key}' cannot take effect: {family} has no such "
                             f"hyperparameter (it has {sorted(hypers)}, weight_decay and lr){hint}")

    @staticmethod
    def _set_values(level, s: int, hyper, values: list[float]) -> None:
        if hyper.trainable:
            j = s * len(level.trainable) + level.trainable.index(hyper)
            level.raw[:, j].copy_(torch.tensor([hyper.param.to_raw(v) for v in values], dtype=level.raw.dtype))
        else:
            level.set_fixed(hyper.name, s, values)

    # -- torch.optim.Optimizer API --------------------------------------------------------------
    def _require_bound(self) -> Engine:
        if self._engine is None:
            if self._owner is not None:
                raise RuntimeError(f"{self!r} is a hyperoptimizer inside {self._owner!r}; step that one")
            raise RuntimeError(f"{self!r} has no parameters; pass them: {type(self).__name__}(model.parameters(), ...)")
        return self._engine

    @torch.compiler.disable  # inside a compiled training step, or torch.compile(opt.step), it runs eagerly
    @torch.no_grad()
    def step(self, closure=None):
        """One step of every level: hypergradients, then hyperparameters top-down, then weights.

        Never traced by ``torch.compile``: dynamo cannot follow the dual numbers (it failed with an internal
        error); a compiled training step breaks its graph around this call. The optimizer's own compiled
        step is ``compiled=True``."""
        engine = self._require_bound()
        if _param_ids(self.param_groups) != self._param_ids:
            raise RuntimeError(f"{type(self).__name__}: a group's 'params' list was changed after the optimizer was "
                               "built (parameters added, removed or replaced); add parameters with "
                               "add_param_group({'params': [...]}), or build the optimizer again")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        engine.step()
        if self.check_every is not None:
            self._steps_since_check += 1
            capturing = engine.device.type == "cuda" and torch.cuda.is_current_stream_capturing()
            if self._steps_since_check >= self.check_every and not capturing:
                self._steps_since_check = 0
                engine.check_finite()
        return loss

    # -- hyperparameters ---------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, torch.Tensor]:
        """Current effective values of every level, on the parameters' device (no host sync):
        0-d tensors, or [K] tensors with ``batch=K``.

        Keys: ``alpha``, ``mu``, ``beta1``, … for level 0 (``alpha.<group>`` with several groups),
        ``hyper.alpha`` (κ of level 1), and so on. α is the learned value, before any scheduler's
        multiplier (``param_groups[i]["lr"]``). Their dtype is the one they are kept in: float64 on a
        CPU with one configuration (the eager step keeps its few numbers in float64 there), else the
        state's (float32 for float32 parameters: on CUDA, with ``batch=K`` or ``compiled=True``)."""
        out = {}
        for k, lvl in enumerate(self._require_bound().levels):
            out.update({"hyper." * k + name: v for name, v in lvl.values().items()})
        return self._fresh(out)

    def _fresh(self, values: dict) -> dict[str, torch.Tensor]:
        """Copies, in one op: many values are views of buffers the next step overwrites in place,
        and a caller keeping them (a history of values) must not see them change."""
        fresh = torch.stack(list(values.values())).unbind(0)
        return {name: v if self._batch is not None else v[0] for name, v in zip(values, fresh)}

    @torch.no_grad()
    def set_hyperparameters(self, **values) -> None:
        """Overwrite current effective values, e.g. ``opt.set_hyperparameters(alpha=0.01)``, or
        ``**{"hyper.alpha": 1e-6}`` one level up (a number, K numbers with ``batch=K``, or a tensor
        as :meth:`hyperparameters` returns it). All or nothing: every value is checked first."""
        levels = self._require_bound().levels
        writes = []
        for key, value in values.items():
            k, name = key.count("hyper."), key.replace("hyper.", "")
            lvl = levels[k] if k < len(levels) else None
            if lvl is None or name not in lvl.names:
                known = ["hyper." * k + n for k, level in enumerate(levels) for n in level.names]
                raise ValueError(f"no learnable hyperparameter {key!r}; choose from {known}")
            s, j = divmod(lvl.names.index(name), len(lvl.trainable))
            hyper = lvl.trainable[j]
            vals = _per_member(value.tolist() if isinstance(value, torch.Tensor) else value, self._batch, key)
            for v in vals:
                hyper.check(v, type(lvl.opt).__name__, "set_hyperparameters")
            writes.append((lvl, s, hyper, vals))
        for lvl, s, hyper, vals in writes:
            self._set_values(lvl, s, hyper, vals)

    def hypergradients(self) -> dict[str, torch.Tensor]:
        """The last hypergradients d loss / d (stored value) of every learned hyperparameter."""
        out = {}
        for k, lvl in enumerate(self._require_bound().levels[:-1]):
            out.update({"hyper." * k + name: lvl.G[:, j] for j, name in enumerate(lvl.names)})
        return self._fresh(out) if out else out

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteError` if anything became NaN/inf (one host sync)."""
        self._require_bound().check_finite()

    def nonfinite(self) -> dict:
        """{configuration: NonFiniteError} for every configuration with a non-finite value (one host sync)."""
        return self._require_bound().nonfinite()

    @property
    def steps(self) -> torch.Tensor:
        """Number of steps taken, as a device tensor."""
        return self._require_bound().t

    @property
    def height(self) -> int:
        """Number of hyperoptimizer levels above this one."""
        return len(self._chain()) - 1

    # -- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume exactly: every level's stored values, state and tangents,
        and the groups' settings (``lr``, ``weight_decay``, …). Hooks registered with
        ``register_state_dict_pre_hook``/``_post_hook`` run as in ``torch.optim``."""
        e = self._require_bound()
        for hook in self._optimizer_state_dict_pre_hooks.values():
            hook(self)
        sd = self._state_dict(e)
        for hook in self._optimizer_state_dict_post_hooks.values():
            returned = hook(self, sd)
            sd = sd if returned is None else returned
        return sd

    def _state_dict(self, e: Engine) -> dict:
        return {
            "format": STATE_DICT_FORMAT,
            "tower": [type(n).__name__ for n in self._chain()],
            "batch": self._batch,
            "step": e.t.clone(),
            "first_bad": e.first_bad.clone(),
            "levels": [lvl.saved() for lvl in e.levels],
            "param_groups": [{k: v for k, v in g.items() if k not in ("params", "param_names")}
                             for g in self.param_groups],
            "param_sizes": [[p.numel() for p in g["params"]] for g in self.param_groups],
            "initial_lr": [list(g._initial_lr) for g in self.param_groups],  # what group["lr"] is a multiple of
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`; anything that does not fit this optimizer is refused with
        a message naming it (nothing is half-loaded). Hooks registered with
        ``register_load_state_dict_pre_hook``/``_post_hook`` run as in ``torch.optim``."""
        e = self._require_bound()
        sd = dict(state_dict) if isinstance(state_dict, dict) else state_dict  # hooks get a copy, as in torch
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            returned = hook(self, sd)
            sd = sd if returned is None else returned
        self._load_state_dict(e, sd)
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)

    def _load_state_dict(self, e: Engine, sd: dict) -> None:
        if not isinstance(sd, dict) or sd.get("format") != STATE_DICT_FORMAT:
            got = sd.get("format") if isinstance(sd, dict) else type(sd).__name__
            raise ValueError(f"not a hypernb optimizer state dict (format {got!r}, expected {STATE_DICT_FORMAT!r})")
        check_keys(sd, {"tower", "batch", "step", "first_bad", "levels", "param_groups", "param_sizes"},
                   {"format", "initial_lr"})
        tower = [type(n).__name__ for n in self._chain()]
        if sd["tower"] != tower:
            raise ValueError(f"state dict is for the tower {sd['tower']}, this optimizer is {tower}")
        if sd["batch"] != self._batch:
            raise ValueError(f"state dict is for batch={sd['batch']}, this optimizer has batch={self._batch}")
        sizes = [[p.numel() for p in g["params"]] for g in self.param_groups]
        if sd["param_sizes"] != sizes:
            raise ValueError(f"state dict is for parameter groups of sizes {sd['param_sizes']}, this optimizer "
                             f"has {sizes}")
        lr0 = sd.get("initial_lr")
        if lr0 is not None and not (isinstance(lr0, list) and len(lr0) == len(self.param_groups) and all(
                isinstance(x, list) and len(x) == len(g._initial_lr)
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                        for v in x) for x, g in zip(lr0, self.param_groups))):
            raise ValueError(f"state dict's initial_lr {lr0!r} is not one list of finite numbers >= 0 per group "
                             f"({len(self.param_groups)} group(s) here, one number per configuration); pass what this "
                             "optimizer's state_dict() returned")
        if len(sd["levels"]) != len(e.levels):
            raise ValueError(f"state dict has {len(sd['levels'])} levels, this tower has {len(e.levels)}")
        for k, (lvl, saved) in enumerate(zip(e.levels, sd["levels"])):
            lvl.check(saved, f"level {k} ({lvl.family})")
        with torch.no_grad():
            for lvl, saved in zip(e.levels, sd["levels"]):
                lvl.load(saved)
            e.t.copy_(sd["step"])
            e.first_bad.copy_(sd["first_bad"])
        e.sync_host()
        e.invalidate_graph()
        # the saved lr is a multiple of the saved initial lr (state dicts of earlier versions: this one's)
        for g, lr0 in zip(self.param_groups, sd.get("initial_lr") or [g._initial_lr for g in self.param_groups]):
            g._initial_lr = list(lr0)
        for i, (g, saved) in enumerate(zip(self.param_groups, sd["param_groups"])):
            for key, value in saved.items():
                dict.__setitem__(g, key, value)  # settings only: the values were loaded above
            now = _per_member(g["lr"], self._batch, "lr")
            for s in self._segments_of[i]:
                e.levels[0].set_fixed("lr_scale", s, _lr_scales(now, g._initial_lr))

    def _rebuild(self) -> None:
        """Rebuild the engine after ``add_param_group``: the old groups keep their learned values and
        state; tangents start again (the next hypergradient is 0, as at a first step). If the new
        engine cannot be built, the old one stays, with its parameters pointing into it again."""
        old = self._engine
        old_data = [p.data for p in old.params]
        try:
            self._build()
        except BaseException:
            for p, data in zip(old.params, old_data):
                p.data = data
            self._engine = old
            raise
        new = self._engine
        with torch.no_grad():
            new.t.copy_(old.t)
        for a, b in zip(old.levels, new.levels):
            b.adopt(a)
        new.sync_host()

    # -- pickling: rebuilt from its parts (a CUDA graph or live views cannot be pickled) ------------
    def __getstate__(self):
        """Everything but the engine (views, a CUDA graph), which is rebuilt from the state dict, and what an
        LR scheduler attached (its wrapper of ``step`` holds a weak reference to *this* optimizer: a copy would
        step the original); torch's own optimizers pickle neither."""
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("_engine", "_owner", "step", "_opt_called") and not k.startswith("_optimizer_")}
        return state if self._engine is None else {**state, "_saved": self._state_dict(self._engine)}

    def __setstate__(self, state):
        if state.get("_unpickle"):  # pickled by hypernb before 2026-12 (its parts by name)
            state = {"_rule": state["rule"], "_values": state["values"], "_batch": state["batch"],
                     "_options": state["options"], "hyper": state["hyper"], "_owner": None, "_steps_since_check": 0,
                     "check_every": state["options"]["check_every"], "_repr_hypers": state["repr"], "state": {},
                     "defaults": {**state["values"], "lr": state["values"]["alpha"]}, "param_groups": state["groups"],
                     "_saved": {**state["state"], "initial_lr": state["initial_lr"]}}
            if type(self)._per_tensor:  # SGDPerParam's step sizes, by group (that layout did not keep them)
                alphas = {g["name"]: g["alpha"] for g in state["param_groups"]}
                first = next(iter(alphas.values()))
                state["_alphas"] = first if all(a == first for a in alphas.values()) else alphas
        saved = state.pop("_saved", None)
        self.__dict__.update(state, _engine=None, _owner=None)  # (its owner, if pickled with it, binds it again)
        _no_hooks_yet(self)  # (torch pickles no hook either)
        self._patch_step_function()
        if saved is None:
            return
        self.param_groups = [_Group(g) for g in self.param_groups]  # (they pickle as plain dicts)
        for g, lr0 in zip(self.param_groups, saved["initial_lr"]):
            g._initial_lr = lr0
        self._build()
        for g in self.param_groups:
            g.__dict__["_opt"] = self
        self._load_state_dict(self._engine, saved)  # (no user hooks: torch runs none when unpickling)

    # -- display -----------------------------------------------------------------------------
    def _level_repr(self) -> str:
        symbols = {h.name: h.symbol for h in self._rule.hypers()}
        parts = [f"{symbols[name]}={self._shown(name)}" for name in self._repr_hypers or symbols]
        if any(_nonzero(v) for v in [self._values.get("weight_decay", 0.0)]
               + [g.get("weight_decay", 0.0) for g in self.param_groups]):
            parts.append(f"weight_decay={self._shown('weight_decay')}")
        if getattr(self._rule, "sign_safe", False):
            parts.append("sign_safe")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _shown(self, name: str) -> str:
        """A starting value as constructed, or per group ({name: value}) where the groups start differently."""
        # named as the engine names them (group i counts the groups without parameters too)
        groups = [(str(g.get("name", f"group{i}")), g) for i, g in enumerate(self.param_groups) if g["params"]]
        values = {label: g.get(name, self._values.get(name, 0.0)) for label, g in groups}
        if len({_fmt(v) for v in values.values()}) > 1:
            return _fmt(values)
        return _fmt(next(iter(values.values())) if values else self._values.get(name, 0.0))

    def __repr__(self) -> str:
        return " / ".join(node._level_repr() for node in self._chain())


def _param_ids(groups) -> list[int]:
    """Which parameters the groups list, in order (what the engine was built on)."""
    return [id(p) for g in groups for p in g["params"]]


def _no_hooks_yet(opt) -> None:
    """The hook tables ``torch.optim.Optimizer.__init__`` makes, for an optimizer made without it (an
    unbound hyperoptimizer, an unpickled one), so that every ``register_*_hook`` works on it."""
    for name in ("step_pre", "step_post", "state_dict_pre", "state_dict_post", "load_state_dict_pre",
                 "load_state_dict_post"):
        opt.__dict__[f"_optimizer_{name}_hooks"] = collections.OrderedDict()


def _lr_scales(lr_now: list[float], lr_initial: list[float]) -> list[float]:
    """A scheduler's multiplier on the learned α, per configuration: lr / initial lr (1 where the
    group started at lr = 0, which no schedule can change)."""
    return [n / a if a else 1.0 for n, a in zip(lr_now, lr_initial)]


def _nonzero(value) -> bool:
    """A number, or K numbers (batch=K), that is not all zeros."""
    return any(float(v) != 0.0 for v in (value if isinstance(value, (list, tuple)) else [value]))


def _fmt(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (list, tuple, dict)) for v in value):  # per configuration and per tensor (batch=K)
            return "[" + ", ".join(_fmt(v) for v in value) + "]"
        vals = {float(v) for v in value}
        return _fmt(vals.pop()) if len(vals) == 1 else "[" + ", ".join(_fmt(v) for v in value) + "]"
    return f"{float(value):g}"


def select_configurations(state_dict: dict, rows: list[int], batched: bool = True) -> dict:
    """The :meth:`HyperOptimizer.state_dict` of configurations ``rows`` of a ``batch=K`` optimizer,
    for one built on just those: ``batch=len(rows)``, or (``batched=False``, one row) an ordinary one.

    Why: configurations trained together are independent, so some can leave a batch (a sweep drops
    the ones that diverged instead of computing them on) and the rest continue exactly where they
    were. Every tensor of the state is one row per configuration, and so is a group's setting that is a
    list of K values (``lr``, ``alpha``, ``weight_decay``, …); the step count is shared."""
    K = state_dict.get("batch") if isinstance(state_dict, dict) else None
    if not isinstance(K, int):
        raise ValueError("select_configurations takes the state dict of an optimizer built with batch=K")
    rows = list(rows)
    if not rows or any(not isinstance(r, int) or not 0 <= r < K for r in rows) or len(set(rows)) != len(rows):
        raise ValueError(f"rows must be distinct configurations in 0…{K - 1}, got {rows!r}")
    if not batched and len(rows) != 1:
        raise ValueError(f"an optimizer without batch= trains one configuration; got {len(rows)} rows")
    index = torch.tensor(rows)

    def take(t):
        if t is None:
            return None
        if t.dim() == 0 or t.shape[0] != K:
            raise ValueError(f"a state tensor of shape {tuple(t.shape)} has no row per configuration (K = {K})")
        return t[index.to(t.device)].clone()

    def setting(v):
        if isinstance(v, list) and len(v) == K:
            return [v[r] for r in rows] if batched else v[rows[0]]
        return v

    levels = [{**lvl, "raw": take(lvl["raw"]), "G": take(lvl["G"]),
               "fixed": {k: take(v) for k, v in lvl["fixed"].items()},
               "state": [{k: take(v) for k, v in st.items()} for st in lvl["state"]],
               "J": None if lvl["J"] is None else [[take(b) for b in bases] for bases in lvl["J"]],
               "Jc": None if lvl["Jc"] is None else [take(c) for c in lvl["Jc"]]}
              for lvl in state_dict["levels"]]
    out = {**state_dict, "batch": len(rows) if batched else None, "first_bad": take(state_dict["first_bad"]),
           "levels": levels,
           "param_groups": [{k: setting(v) for k, v in g.items()} for g in state_dict["param_groups"]],
           "param_sizes": [[n // K * (len(rows) if batched else 1) for n in sizes]
                           for sizes in state_dict["param_sizes"]]}
    if state_dict.get("initial_lr") is not None:
        out["initial_lr"] = [[lr[r] for r in rows] for lr in state_dict["initial_lr"]]
    return out
