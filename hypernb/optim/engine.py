"""The machinery behind every hyperoptimizer: flat buffers, the tower's levels, and one plain step.

Why a flat buffer: the model's parameters become views into one ``[K, P]`` matrix (one row per
configuration trained together; K = 1 for an ordinary optimizer), so each arithmetic op of an
update rule is one kernel over all parameters of all configurations, and a hypergradient is one
dot product per row. The parameters stay ordinary leaf ``nn.Parameter``s.

Why plain: a step runs the rules of :mod:`rules` on :class:`~hypernb.optim.dual.Dual` numbers,
eagerly, every time. On a device every value stays there, so a step never synchronises with the
host, and on CUDA the whole tower step is captured once in a CUDA graph and replayed (one launch
instead of ~100 small kernels). On a CPU with one configuration (*host mode*) the few numbers of
the step (every level's hyperparameters, the levels above the first entirely) are NumPy float64
numbers instead of small tensors: 0.1 µs per op instead of 2–5 µs, rounded exactly as the tensor
step rounds (tested bit for bit in float64). With ``compiled=True`` (CPU) the step is traced once
into a graph of tensor ops and compiled by ``torch.compile``, which fuses its full-size passes
into a few loops and drops the Python of the Duals: about 2× faster than the eager step
(Adam/SGD on the MNIST MLP, one thread; benchmarks/RESULTS.md).

One step, for a tower of levels 0..n (level 0 trains the model, level k learns level k−1):

1. hypergradients bottom-up: level k's hypergradient is its tangents ∂(vector below)/∂(its raw
   values) from the previous step, dotted with the gradient of the vector below (for level 0 the
   model's gradient, for level k the hypergradient of level k−1): the paper's
   ∂f(w_t)/∂h = ∇f(w_t) · ∂w_t/∂h;
2. updates top-down: level n's (fixed) hyperparameters update level n−1's, …, level 1's new values
   update level 0's, and level 0's new values update the weights (the paper updates α first);
3. every rule runs on Duals seeded at its level's raw values, which yields the tangents of this
   update for the next step's hypergradients, kept lazily as Σ coefficient × base vector;
4. a record of the first step at which anything of configuration k stopped being finite (on the
   device; read only when asked).

To follow one step of Adam/SGD: ``HyperOptimizer.step`` (base.py) → :meth:`Engine.step` (the
gradient as one [K, P] matrix; the CUDA graph or the compiled step, if any, replays what follows)
→ :meth:`Engine._step` → :meth:`Engine._compute` → :meth:`Level.hypergradient` (1) and
:meth:`Level.apply` (2, 3), which calls ``AdamRule.update`` (rules.py) on Duals (dual.py) →
:meth:`Engine._move_weights` → :meth:`Engine._commit`.
"""
from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from .dual import Dual, scaled, value_of
from .errors import NonFiniteError

# the few-number part of a one-configuration CPU step in NumPy (see Level); off only for the ablation rows of
# benchmarks/step_overhead.py, which measure what it buys
HOST_MODE = True
# every live engine (weakly: it keeps none alive), to tell an older optimizer whose parameters a newer
# one took over from one whose parameters were moved
_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()


@dataclass
class Segment:
    """A contiguous range of the vector below that has hyperparameter values of its own: a
    parameter group at level 0 (or one tensor, for SGDPerParam), the whole vector or one entry
    above. ``values`` maps each hyperparameter (and ``weight_decay``) to one float per
    configuration."""

    start: int
    stop: int
    name: str
    values: dict


class Tangents(NamedTuple):
    """One segment's tangents ∂Δ/∂(its learned values), kept as the lazy sums the Duals produced:
    the tangent with respect to the j-th value is Σ coefs[e]·bases[i] over the terms e = (j, i) of
    ``entries``. No tangent is ever materialised: the next hypergradient takes one dot product per
    base, and a base shared by several values (Adam's direction, for α and the β's) counts once."""

    bases: list  # distinct vectors: [K, n] tensors, or [n] NumPy vectors above level 0 in host mode
    entries: list  # (j, index into bases) per term
    coefs: object  # one coefficient per term: [K, terms] (a NumPy vector in host mode)


class Update(NamedTuple):
    """What one level's rules computed for the vector below, per segment; nothing is written yet."""

    steps: list  # (direction, scale): Δ = scale · direction
    states: list  # the rule's new state
    tangents: list  # Tangents, when a level above learns this one; else empty


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of [K, n] matrices ([K]): a BLAS dot per row on a CPU (no temporary;
    each configuration rounds exactly as it would alone), one batched product on a GPU."""
    if a.shape[0] == 1:
        return torch.dot(a[0], b[0]).unsqueeze(0)
    if a.device.type == "cpu":
        return torch.stack([torch.dot(x, y) for x, y in zip(a, b)])
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


class Level:
    """Runtime state of one level.

    * ``raw`` [K, S·H]: stored hyperparameters, segment-major (S segments, H learned values each);
      ``G``: their last hypergradients; ``fixed``: values that are not learned ([K, S] each);
    * ``state[s]``: the rule's state for segment s (NumPy vectors in host mode above level 0);
    * ``tangents[s]``: segment s's :class:`Tangents` of the last update, when a level above
      learns this one (None before the first step).
    """

    def __init__(self, opt, index: int, segments: list[Segment], below: torch.Tensor, hdtype, host: bool):
        self.opt, self.index, self.rule = opt, index, opt._rule
        self.segments, self.host = segments, host
        self.small = host and index > 0  # vectors are NumPy here
        K, device = below.shape[0], below.device
        hypers = self.rule.hypers()
        self.trainable = [h for h in hypers if h.trainable]
        self.fixed_names = [h.name for h in hypers if not h.trainable] + ["weight_decay"]
        if index == 0:
            self.fixed_names.append("lr_scale")  # schedulers multiply the learned α (see base.py)
        H = len(self.trainable)
        one = len(segments) == 1
        self.names = [h.name if one else f"{h.name}.{seg.name}" for seg in segments for h in self.trainable]
        raw = [[h.param.to_raw(seg.values[h.name][k]) for seg in segments for h in self.trainable] for k in range(K)]
        # few-number buffers: float64 in host mode (exact, and free there), else as the state
        sdtype = torch.float64 if host else hdtype
        self.raw = torch.tensor(raw, dtype=sdtype, device=device).reshape(K, len(segments) * H)
        self.G = torch.zeros_like(self.raw)  # last d loss / d raw
        # fixed values; a Python copy decides which ops run (no decay op where λ = 0 everywhere)
        self.fixed_host = {name: [[float(seg.values.get(name, [1.0 if name == "lr_scale" else 0.0] * K)[k])
                                   for seg in segments] for k in range(K)] for name in self.fixed_names}
        self.fixed = {name: torch.tensor(v, dtype=sdtype, device=device) for name, v in self.fixed_host.items()}
        self.vdtype = hdtype if index == 0 else sdtype  # the vector below, its state and tangents
        self.state = [self.rule.init_state(below[:, seg.start:seg.stop].to(self.vdtype)) for seg in segments]
        if self.small:
            self.state = [{k: v.numpy()[0].copy() for k, v in st.items()} for st in self.state]
        self.learned = False  # set when a level above learns this one: then tangents are kept
        self.tangents: list[Tangents] | None = None  # filled by the first step
        # host mode: NumPy views of the few-number buffers (the step reads and writes through them)
        self.host_views = {"raw": self.raw.numpy()[0], "G": self.G.numpy()[0],
                           "fixed": {k: v.numpy()[0] for k, v in self.fixed.items()}} if host else None

    @property
    def family(self) -> str:
        return type(self.opt).__name__

    def decays(self, s: int) -> bool:
        return any(row[s] != 0.0 for row in self.fixed_host["weight_decay"])

    # -- the two halves of a step ------------------------------------------------------------------
    def _part(self, x, seg: Segment):
        """Segment ``seg`` of a vector below ([K, n], or [n] in NumPy); the vector itself if it is
        the only segment."""
        if len(self.segments) == 1:
            return x
        return x[seg.start:seg.stop] if self.small else x[:, seg.start:seg.stop]

    def hypergradient(self, g_below):
        """d loss / d raw = Σ_i g_i ∂w_i/∂raw from the tangents of the previous update: [K, S·H]
        (a NumPy vector in host mode)."""
        if self.tangents is None:  # the first step: the weights did not depend on the hyperparameters yet
            return np.zeros(self.raw.shape[1]) if self.host else torch.zeros_like(self.raw)
        H, out = len(self.trainable), []
        for seg, tan in zip(self.segments, self.tangents):
            g = self._part(g_below, seg)
            if self.small:
                dots = [(b * g).sum() for b in tan.bases]
            else:
                dots = [_dot(b, g) for b in tan.bases]
                if self.host:
                    dots = [d.item() for d in dots]
            total = [0.0] * H
            for e, (j, i) in enumerate(tan.entries):
                c = tan.coefs[e] if self.host else tan.coefs[:, e]
                total[j] = total[j] + c * dots[i]
            out += total
        if self.host:
            return np.array(out, dtype=np.float64)
        return torch.stack([x if isinstance(x, torch.Tensor) else torch.zeros_like(self.raw[:, 0]) for x in out],
                           dim=1)

    def apply(self, g, w, raw, t, keep=None) -> Update:
        """This level's update of the vector below (``w``, gradient ``g``) with the stored values
        ``raw``. ``keep`` (optional, per segment) masks entries that get no update (parameters
        whose grad is None)."""
        H, keep_tangents = len(self.trainable), self.learned
        steps, states, tangents = [], [], []
        for s, seg in enumerate(self.segments):
            gs, ws = self._part(g, seg), self._part(w, seg)
            h = {}
            for j, hyper in enumerate(self.trainable):
                x = raw[s * H + j] if self.host else raw[:, s * H + j:s * H + j + 1]
                h[hyper.name] = hyper.param.from_raw(Dual.seed(x, j) if keep_tangents else x)
            for name in self.fixed_names:
                if name != "weight_decay" or self.decays(s):
                    h[name] = self.host_views["fixed"][name][s] if self.host else self.fixed[name][:, s:s + 1]
            if "lr_scale" in h:
                h["alpha"] = h["alpha"] * h.pop("lr_scale")
            direction, scale, state = self.rule.update(gs, ws, self.state[s], h, t)
            state = {k: value_of(v) for k, v in state.items()}
            mask = None if keep is None else keep[s]
            d = value_of(direction)
            if mask is not None:
                state = {k: torch.where(mask, v, self.state[s][k]) for k, v in state.items()}
                d = torch.where(mask, d, 0.0)
            steps.append((d, value_of(scale)))
            states.append(state)
            if keep_tangents:
                tangents.append(self._tangents(scaled(scale, direction), gs, ws, mask, raw))
        return Update(steps, states, tangents)

    def keep(self, tangents: list[Tangents], copies: bool = False) -> None:
        """Keep the tangents of an update for the next hypergradient; ``copies``: as buffers of their
        own (the capturable layout's first step)."""
        own = (lambda x: x.clone()) if copies else (lambda x: x)
        self.tangents = [Tangents([own(b) for b in tan.bases], tan.entries, own(tan.coefs)) for tan in tangents]

    def delta(self, steps):
        """Δ = scale · direction of a level above the first, as one vector (few numbers)."""
        parts = [d * c for d, c in steps]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if self.small else torch.cat(parts, dim=1)

    def _tangents(self, tangents: dict, like, w, mask, raw) -> Tangents:
        """The lazy tangents of one segment's Δ, from the Duals' {j: [(coefficient, base), …]}."""
        bases, where, entries, coefs = [], {}, [], []
        for j in range(len(self.trainable)):
            for coef, base in tangents.get(j, ()):
                key = id(base)
                if key not in where:
                    where[key] = len(bases)
                    if base is None:  # a scalar tangent: a vector of ones
                        base = np.ones_like(like) if self.small else torch.ones_like(like)
                    elif self.small:
                        if np.shape(base) != like.shape or base is w:  # a number, or values changed in place
                            base = np.array(np.broadcast_to(base, like.shape))
                    else:
                        if base is w:
                            base = base.clone()  # the weights themselves change in place below
                        if base.dtype != like.dtype:
                            base = base.to(like.dtype)
                    if mask is not None:  # (level 0 only: never NumPy) entries that did not move
                        base = torch.where(mask, base, 0.0)
                    bases.append(base)
                entries.append((j, where[key]))
                coefs.append(coef)
        if self.host:
            return Tangents(bases, entries, np.array([np.asarray(c, dtype=np.float64).reshape(-1)[0] for c in coefs]))
        K = raw.shape[0]
        return Tangents(bases, entries, torch.cat([c.expand(K, 1) if isinstance(c, torch.Tensor)
                                                   else torch.full((K, 1), c, dtype=raw.dtype, device=raw.device)
                                                   for c in coefs], dim=1) if coefs else raw.new_zeros(K, 0))

    # -- reading and writing values outside the step ------------------------------------------------
    def values(self) -> dict[str, torch.Tensor]:
        """Effective values [K] on the device (no host sync): the learned ones, then the rule's fixed
        hyperparameters (such as μ of an SGD without momentum); weight decay and a scheduler's
        multiplier are the groups' settings, not listed here."""
        out = {}
        H = len(self.trainable)
        for s, seg in enumerate(self.segments):
            for j, hyper in enumerate(self.trainable):
                out[self.names[s * H + j]] = hyper.param.from_raw(self.raw[:, s * H + j])
        for h in self.rule.hypers():
            if not h.trainable:
                for s, seg in enumerate(self.segments):
                    out[h.name if len(self.segments) == 1 else f"{h.name}.{seg.name}"] = self.fixed[h.name][:, s]
        return out

    def set_fixed(self, name: str, segment: int, values: list[float]) -> None:
        """Overwrite a fixed value (weight decay, a scheduler's multiplier) of one segment, per configuration."""
        for k, v in enumerate(values):
            self.fixed_host[name][k][segment] = float(v)
        self.fixed[name][:, segment].copy_(torch.tensor(values, dtype=self.raw.dtype))

    # -- checkpoints ------------------------------------------------------------------------------
    def saved(self) -> dict:
        """Everything of this level as tensors (for state_dict)."""
        def t(x):
            return torch.from_numpy(np.array(x)).unsqueeze(0) if isinstance(x, np.ndarray) else x.clone()

        tangents = self.tangents
        return {"names": list(self.names), "stored": self.stored(), "raw": self.raw.clone(), "G": self.G.clone(),
                "fixed": {k: v.clone() for k, v in self.fixed.items()},
                "state": [{k: t(v) for k, v in st.items()} for st in self.state],
                # the tangents' bases, entries and coefficients (as the format has always named them)
                "J": None if tangents is None else [[t(b) for b in tan.bases] for tan in tangents],
                "Jmap": None if tangents is None else [[list(e) for e in tan.entries] for tan in tangents],
                "Jc": None if tangents is None else [t(tan.coefs) for tan in tangents]}

    def stored(self) -> list[str]:
        """How each learned value is stored (``log`` for α with sign_safe=True, …): a saved raw value
        means something else under another parametrisation."""
        return [h.param.kind for h in self.trainable]

    def check(self, saved: dict, where: str) -> None:
        """Refuse (naming what) a saved level that does not fit this one."""
        check_keys(saved, {"names", "raw", "G", "fixed", "state", "J", "Jmap", "Jc"}, {"stored"}, f" {where}")
        if saved["names"] != self.names:
            raise ValueError(f"state dict {where} has hyperparameters {saved['names']}, expected {self.names}")
        if "stored" in saved and saved["stored"] != self.stored():  # (older state dicts lack it: not checked)
            theirs, ours = (", ".join(f"{h.name} as {kind}" for h, kind in zip(self.trainable, kinds))
                            for kinds in (saved["stored"], self.stored()))
            raise ValueError(f"state dict {where} stores {theirs}, this optimizer stores {ours}; build it with the "
                             "same sign_safe= as the one that saved it")
        extra, lack = sorted(set(saved["fixed"]) - set(self.fixed)), sorted(set(self.fixed) - set(saved["fixed"]))
        if extra or lack:
            raise ValueError(f"state dict {where}: fixed values" + (f" extra {extra}" if extra else "")
                             + (f" missing {lack}" if lack else ""))
        if len(saved["state"]) != len(self.state):
            raise ValueError(f"state dict {where} has {len(saved['state'])} segments, expected {len(self.state)}")
        for s, (st, sv) in enumerate(zip(self.state, saved["state"])):
            if set(st) != set(sv):
                raise ValueError(f"state dict {where} segment {s} has state {sorted(sv)}, expected {sorted(st)}")
            for k in st:
                _same_shape(sv[k], (self.raw.shape[0], *np.shape(st[k])[-1:]), f"{where} state '{k}'")
        _same_shape(saved["raw"], self.raw.shape, f"{where} values")
        for k in self.fixed:
            _same_shape(saved["fixed"][k], self.fixed[k].shape, f"{where} {k}")
        if saved["J"] is not None and not self.learned:
            raise ValueError(f"state dict {where} has tangents, but no level above learns this one")

    def adopt(self, old: "Level") -> None:
        """Take over what an earlier version of this level learned, in place: its stored values, fixed
        values and state (after add_param_group, whose new segments come after the old ones).
        Tangents start again."""
        with torch.no_grad():
            self.raw[:, :old.raw.shape[1]].copy_(old.raw)
            for k, v in old.fixed.items():
                self.fixed[k][:, :v.shape[1]].copy_(v)
            for st_old, st in zip(old.state, self.state):
                for k, v in st_old.items():
                    if self.small:
                        st[k][:len(v)] = v
                    else:
                        st[k][:, :v.shape[1]].copy_(v)
        self.fixed_host = {k: v.tolist() for k, v in self.fixed.items()}

    def load(self, saved: dict) -> None:
        with torch.no_grad():
            self.raw.copy_(saved["raw"])
            self.G.copy_(saved["G"])
            for k, v in self.fixed.items():
                v.copy_(saved["fixed"][k])
        self.fixed_host = {n: v.tolist() for n, v in self.fixed.items()}
        dev = self.raw.device

        def own(x):  # a saved tensor in this level's representation
            return x.cpu().numpy()[0].astype(np.float64) if self.small else x.to(device=dev, dtype=self.vdtype).clone()

        self.state = [{k: own(sv[k]) for k in st} for st, sv in zip(self.state, saved["state"])]

        def coefs(c):
            if self.host:
                return c.cpu().numpy()[0].astype(np.float64)
            return c.to(device=dev, dtype=self.raw.dtype).clone()

        self.tangents = None if saved["J"] is None else [
            Tangents([own(b) for b in bases], [tuple(e) for e in entries], coefs(c))
            for bases, entries, c in zip(saved["J"], saved["Jmap"], saved["Jc"])]


def check_keys(saved: dict, required: set, optional: set, where: str = "") -> None:
    """Refuse a saved mapping (a state dict, one level of it) with missing or unknown keys, naming them."""
    missing, extra = sorted(required - set(saved)), sorted(set(saved) - required - optional, key=str)
    if missing or extra:
        raise ValueError(f"state dict{where}" + (f" lacks {missing}" if missing else "")
                         + (" and" if missing and extra else "") + (f" has unknown key(s) {extra}" if extra else "")
                         + "; pass what this optimizer's state_dict() returned")


def _same_shape(t, shape, what: str) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"state dict {what} has shape {tuple(t.shape)}, expected {tuple(shape)}")


def _check_params(params: list, batch: int | None) -> None:
    """One device and dtype, dense real floating point, and the leading dimension K of ``batch``."""
    first = params[0]
    for p in params:
        if p.device != first.device or p.dtype != first.dtype:
            raise ValueError(
                "all parameters of one hypernb optimizer must share device and dtype; got "
                f"{first.dtype} on {first.device} and {p.dtype} on {p.device}. "
                "Move the model first (model.to(...)), then build the optimizer."
            )
        if p.is_complex() or not p.is_floating_point():
            raise ValueError(f"parameters must be real floating-point tensors, got {p.dtype}")
        if batch is not None and (p.dim() == 0 or p.shape[0] != batch):
            raise ValueError(f"batch={batch}: every parameter needs a leading configuration dimension of "
                             f"size {batch}, got shape {tuple(p.shape)}")


class _Restructure(Exception):
    """Raised while tracing a step that would change the structure of the tangent buffers."""


class Engine:
    """Owns the flat buffers and runs the step of a whole tower (levels 0..n).

    ``capturable``: write every result back into the same buffers (static addresses, as a CUDA
    graph needs); otherwise new state and tangents replace the old tensors.
    ``cuda_graph``: after two warm-up steps, capture this engine's own step once and replay it.
    ``compiled`` (CPU): run the step compiled by ``torch.compile``, from the second step on (the first
    without a level above: the first step of a tower has no tangents to read yet).
    """

    def __init__(self, groups: list[tuple[list, dict, str]], chain: list, batch: int | None,
                 capturable: bool | None = None, cuda_graph: bool | None = None, compiled: bool = False):
        params = [p for ps, _, _ in groups for p, _ in ps]
        _check_params(params, batch)
        first = params[0]
        self.batch, self.K = batch, batch or 1
        self.params, self.device, self.dtype = params, first.device, first.dtype
        # state, tangents and hypergradients in at least float32, also for bf16/fp16 parameters
        self.hdtype = torch.promote_types(first.dtype, torch.float32)
        self._choose_modes(capturable, cuda_graph, compiled)
        segments = self._flatten(groups)
        self.levels: list[Level] = []
        below = self.flat
        for k, opt in enumerate(chain):
            level = Level(opt, k, segments if k == 0 else opt._segments(self.levels[-1].names), below,
                          self.hdtype, self.host)
            self.levels.append(level)
            below = level.raw
        for lvl in self.levels[:-1]:  # a level keeps tangents iff the level above learns it
            lvl.learned = True
        self.t = torch.zeros((), dtype=torch.long, device=self.device)
        self.count = 0  # the same count on the host (host mode's t; labels; never read from the device)
        # what first_bad's columns watch: the gradient, then every learned value, then their hypergradients
        self.check_names = [(0, "gradient", "gradient")]
        for what in ("hyperparameter", "hypergradient"):
            self.check_names += [(lvl.index, n, what) for lvl in self.levels[:-1] for n in lvl.names]
        self.first_bad = torch.full((self.K, len(self.check_names)), -1, dtype=torch.long, device=self.device)
        self.heights = [len(self.levels) - 1] * self.K  # a configuration's own height (padded towers)
        self._max = torch.finfo(self.dtype).max
        self._keep_cache: dict = {}

    def _choose_modes(self, capturable, cuda_graph, compiled) -> None:
        """capturable, cuda_graph, compiled and host mode, from the options and the device."""
        cuda = self.device.type == "cuda"
        if compiled and self.device.type != "cpu":
            raise ValueError("compiled=True compiles the step for a CPU; on CUDA the step is already captured "
                             "in one CUDA graph (cuda_graph=True, the default there): drop compiled=True")
        if compiled and capturable is False:
            raise ValueError("compiled=True needs the capturable layout (every buffer at a fixed address); "
                             "leave capturable unset")
        self.compiled = bool(compiled)
        self._compiled_steps: dict = {}
        self._tracing = False  # True while make_fx traces the step (see _run_compiled)
        self.capturable = (cuda if capturable is None else bool(capturable)) or self.compiled
        if cuda_graph and (not cuda or not self.capturable):
            raise ValueError("cuda_graph=True needs CUDA parameters and capturable=True")
        self.cuda_graph = (cuda and self.capturable) if cuda_graph is None else cuda_graph
        self._graph, self._graph_key, self._g_static, self._warm = None, None, None, 0
        # one configuration on a CPU: the few-number part of the step runs in NumPy (see Level); not for batch=1,
        # which computes as a batch of any K does (a batch's last configuration goes on as one)
        self.host = HOST_MODE and self.batch is None and self.device.type == "cpu" and not self.capturable

    def _flatten(self, groups) -> list[Segment]:
        """One [K, P] matrix; each parameter becomes a view of its columns (they stay leaf
        Parameters). Returns the level-0 segments, one per group."""
        K, segments = self.K, []
        with torch.no_grad():
            self.flat = torch.cat([p.detach().reshape(K, -1) for p in self.params], dim=1)
            self.sizes, offset = [], 0
            for ps, values, gname in groups:
                start = offset
                for p, _ in ps:
                    n = p.numel() // K
                    view = self.flat[:, offset:offset + n]
                    p.data = view.view(p.shape) if self.batch is not None else view[0].view(p.shape)
                    self.sizes.append(n)
                    offset += n
                segments.append(Segment(start, offset, gname, values))
        self._ptrs = [p.data_ptr() for p in self.params]
        _ENGINES.add(self)
        return segments

    def invalidate_graph(self) -> None:
        """Buffers were replaced from outside (load_state_dict): capture the step again."""
        self._graph = None

    # -- the gradient ----------------------------------------------------------------------------
    def gather_grad(self) -> tuple[torch.Tensor, tuple]:
        """The gradient as a fresh [K, P] matrix (a missing .grad counts as 0 and is masked), and
        which parameters had one."""
        K = self.K
        grads, present = [], []
        for p, ptr in zip(self.params, self._ptrs):
            if p.data_ptr() != ptr:
                if any(e is not self and any(q is p for q in e.params) for e in list(_ENGINES)):
                    raise RuntimeError(
                        "another hypernb optimizer was built on this optimizer's parameters since, and they now "
                        "live in its buffer: only the newest one can step. Build one optimizer per set of "
                        "parameters (in a notebook, a re-run cell builds a new one: use that one)")
                raise RuntimeError(
                    f"a parameter (shape {tuple(p.shape)}) was moved or replaced after the optimizer was built, so it "
                    "is no longer a view into the optimizer's buffer: model.to(...), model.half(), p.data = …, "
                    "nn.utils.vector_to_parameters, prune.remove, model.share_memory() all do this; build the "
                    "optimizer after them (or copy values in place: with torch.no_grad(): p.copy_(new))"
                )
            if p.grad is None:
                present.append(False)
                grads.append(torch.zeros(K, p.numel() // K, dtype=self.dtype, device=self.device))
                continue
            if p.grad.is_sparse:
                raise ValueError("hypernb optimizers need dense gradients; this parameter has a sparse one "
                                 "(e.g. nn.Embedding(sparse=True)): use sparse=False")
            present.append(True)
            grads.append(p.grad.reshape(K, -1))
        g = torch.cat(grads, dim=1) if len(grads) > 1 else grads[0].clone()
        return (g if g.dtype == self.hdtype else g.to(self.hdtype)), tuple(present)

    def _keep(self, present: tuple):
        """Per level-0 segment, a mask of the entries whose parameter has a gradient (None: all)."""
        if all(present):
            return None
        if present not in self._keep_cache:  # decided on the host: no sync with the device
            mask = torch.tensor(present).repeat_interleave(torch.tensor(self.sizes))
            self._keep_cache[present] = [None if bool(m.all()) else m.to(self.device).unsqueeze(0)
                                         for m in (mask[seg.start:seg.stop] for seg in self.levels[0].segments)]
        return self._keep_cache[present]

    # -- the step --------------------------------------------------------------------------------
    def step(self) -> None:
        """One optimizer step (called by HyperOptimizer.step under no_grad). Without any gradient it
        does nothing, as ``torch.optim`` (whose per-parameter step counts do not move then)."""
        g, present = self.gather_grad()
        if not any(present):
            return
        self._run(g, present)
        self.count += 1

    def _run(self, g, present) -> None:
        key = (present, tuple(self.levels[0].decays(s) for s in range(len(self.levels[0].segments))))
        capturing = self.device.type == "cuda" and torch.cuda.is_current_stream_capturing()
        if self.cuda_graph and not capturing:  # inside the caller's own capture: record plain ops instead
            if self._graph is not None and self._graph_key == key:
                self._g_static.copy_(g)
                self._graph.replay()
                return
            self._graph = None
            self._warm = self._warm + 1 if self._graph_key == key else 1
            self._graph_key = key
            if self._warm > 2:  # warmed up: capture this step, then run it by replaying
                self._g_static = g.clone()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):  # recorded, not executed
                    self._step(self._g_static, self._keep(present))
                self._graph = graph
                graph.replay()
                return
        if self.compiled and all(lvl.tangents is not None for lvl in self.levels if lvl.learned):
            self._run_compiled(key, g, present)
            return
        self._step(g, self._keep(present))

    # -- the compiled step (CPU) ---------------------------------------------------------------------
    def _buffers(self) -> list[torch.Tensor]:
        """Every tensor the step reads or writes, in a fixed order (the compiled step's arguments)."""
        out = [self.flat, self.t, self.first_bad]
        for lvl in self.levels:
            out += [lvl.raw, lvl.G, *lvl.fixed.values(), *(v for st in lvl.state for v in st.values())]
            if lvl.tangents is not None:
                out += [b for tan in lvl.tangents for b in tan.bases] + [tan.coefs for tan in lvl.tangents]
        return out

    def _bind(self, buffers) -> None:
        """Put ``buffers`` where :meth:`_buffers` found its tensors."""
        it = iter(buffers)
        self.flat, self.t, self.first_bad = next(it), next(it), next(it)
        for lvl in self.levels:
            lvl.raw, lvl.G = next(it), next(it)
            lvl.fixed = {name: next(it) for name in lvl.fixed}
            lvl.state = [{name: next(it) for name in st} for st in lvl.state]
            if lvl.tangents is not None:  # (every base, then every coefficient vector)
                bases = [[next(it) for _ in tan.bases] for tan in lvl.tangents]
                lvl.tangents = [Tangents(b, tan.entries, next(it)) for b, tan in zip(bases, lvl.tangents)]

    def _run_compiled(self, key, g: torch.Tensor, present: tuple) -> None:
        """The step as one compiled function of (gradient, buffers), made once per structure.

        Why trace first: ``torch.compile`` cannot follow the Duals' operator overloading, but
        ``make_fx`` runs the step's Python as it is (Duals, rules, the lazy tangents) on copies of
        the buffers and records only the tensor ops, in place writes included; the recorded graph
        then compiles cleanly. The graph depends on the structure only (which parameters have a
        gradient, which segments decay, and the tangent buffers it reads), never on the values,
        which stay arguments. A step that changes the tangent buffers' structure runs eagerly,
        which allocates them anew; the next step compiles for the new structure."""
        key = (key, tuple(tuple(tuple(tan.entries) for tan in lvl.tangents)
                          for lvl in self.levels if lvl.tangents is not None))
        buffers = self._buffers()
        step = self._compiled_steps.get(key)
        if step is None:
            keep = self._keep(present)

            def plain_step(g, *buffers):
                originals = self._buffers()
                self._bind(buffers)
                self._tracing = True
                try:
                    self._step(g, keep)
                finally:
                    self._tracing = False
                    self._bind(originals)

            try:
                graph = make_fx(plain_step)(g.clone(), *(b.clone() for b in buffers))
            except _Restructure:
                self._step(g, keep)
                return
            step = torch.compile(graph, dynamic=False)
            try:
                step(g, *buffers)  # the first call compiles (seconds; cached on disk for later runs)
            except Exception as err:
                raise RuntimeError(
                    f"compiled=True: torch.compile could not compile the optimizer step ({type(err).__name__}: "
                    f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}). On a CPU it needs a working "
                    "C++ compiler (e.g. install g++); or build the optimizer without compiled=True") from err
            self._compiled_steps[key] = step
            return
        step(g, *buffers)

    def _step(self, g: torch.Tensor, keep) -> None:
        """One step of the tower (the module docstring's 1–4), then its results committed."""
        t1 = self.count + 1 if self.host else self.t + 1
        with np.errstate(all="ignore") if self.host else contextlib.nullcontext():  # inf/NaN are flagged below
            grads, raws, out = self._compute(g, keep, t1)
            first_bad = self._flag_nonfinite(g, grads, raws, t1)
        if self.capturable:
            self._fit_tangent_buffers(out)
        self._move_weights(out[0].steps)
        self._commit(out, raws, grads, t1, first_bad)

    def _compute(self, g: torch.Tensor, keep, t1):
        """Hypergradients bottom-up, then each level's update top-down: (hypergradients per level,
        new stored values per level, the :class:`Update` per level). Nothing is written."""
        levels, n = self.levels, len(self.levels) - 1
        t = t1 if self.host else t1.to(g.dtype)
        grads = [g]  # grads[k]: the gradient of what level k updates (the model's, or level k-1's values)
        for k in range(n):
            grads.append(levels[k].hypergradient(grads[k]))
        raws = [lvl.host_views["raw"] if self.host else lvl.raw for lvl in levels]
        out = [None] * (n + 1)
        for k in range(n, -1, -1):
            below = self.flat if k == 0 else raws[k - 1]
            out[k] = levels[k].apply(grads[k], below, raws[k], t, keep if k == 0 else None)
            if k > 0:
                raws[k - 1] = raws[k - 1] + levels[k].delta(out[k].steps)
        return grads, raws, out

    def _flag_nonfinite(self, g, grads, raws, t1):
        """The first step at which each value of each configuration stopped being finite: written in
        place in host mode (returns None), else returned as the new ``first_bad`` (no host sync).

        A non-finite gradient shows in level 0's first hypergradient, g · (its tangents) (one number instead of a
        pass over g; the other columns may be non-finite for their own reasons and are checked as what
        they are), except at a first step, where it is 0 without looking at g."""
        n = len(self.levels) - 1
        gsum = g.sum(dim=1, keepdim=True) if n == 0 or self.levels[0].tangents is None else grads[1][..., :1] * 0.0
        if self.host:
            bad = ~np.isfinite(np.concatenate([np.asarray(gsum, dtype=np.float64).reshape(1), *raws[:n],
                                               *grads[1:]]))
            if bad.any():
                fb = self.first_bad.numpy()[0]
                fb[(fb < 0) & bad] = t1
            return None
        bad = torch.isnan(torch.cat([gsum, *raws[:n], *grads[1:]], dim=1) * 0.0)  # inf·0 and nan·0 are NaN
        return torch.where((self.first_bad < 0) & bad, t1, self.first_bad)

    def _move_weights(self, steps) -> None:
        """The model's weights, in place: w += scale · direction, per level-0 segment."""
        one = len(self.levels[0].segments) == 1
        for seg, (d, c) in zip(self.levels[0].segments, steps):
            view = self.flat if one else self.flat[:, seg.start:seg.stop]
            if isinstance(c, torch.Tensor):
                view.addcmul_(d, c)
            elif abs(c) <= self._max:
                view.add_(d, alpha=float(c))
            else:  # a scale beyond the weights' dtype: inf/NaN weights, flagged, as on a device
                view.add_(d * float(c))

    def _commit(self, out, raws, grads, t1, first_bad) -> None:
        """Make the step's results the current ones: new values, hypergradients, states and tangents,
        the step count and the non-finite flags (through the NumPy views in host mode; copied into the
        same buffers when capturable; else the new tensors replace the old)."""
        n = len(self.levels) - 1
        if self.capturable:
            self._copy(out, raws, grads, t1, first_bad)
            return
        for k, (lvl, update) in enumerate(zip(self.levels, out)):
            if k < n and self.host:
                lvl.host_views["raw"][...] = raws[k]
                lvl.host_views["G"][...] = grads[k + 1]
            elif k < n:
                lvl.raw, lvl.G = raws[k], grads[k + 1]
            lvl.state = update.states
            if update.tangents:
                lvl.keep(update.tangents)
        if self.host:
            self.t.add_(1)
        else:
            self.t, self.first_bad = t1, first_bad

    def _fit_tangent_buffers(self, out) -> None:
        """Capturable layout: the tangents are copied into buffers that a first step allocates. A
        change of the step's structure can change theirs (AdamW's weight decay switched on adds the
        weights as a base, switched off drops it): then they are allocated again (by :meth:`_copy`).
        Decided before the weights change, so that a refusal leaves nothing half-applied."""
        for lvl, update in zip(self.levels, out):
            if (not update.tangents or lvl.tangents is None
                    or [tan.entries for tan in update.tangents] == [tan.entries for tan in lvl.tangents]):
                continue
            if self._tracing:  # a traced graph cannot allocate its own arguments: see _run_compiled
                raise _Restructure
            if self.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
                raise RuntimeError("the optimizer step changed its structure (e.g. AdamW's weight_decay switched "
                                   "on or off) inside a CUDA graph capture; run one step outside the capture after "
                                   "such a change, then capture again")
            lvl.tangents = None

    def _copy(self, out, raws, grads, t1, first_bad) -> None:
        """Static addresses (capturable): every result copied into the existing buffers; a result
        that *is* another slot's old buffer (momentum's tangent is the previous buffer) is copied
        out first. Tangent buffers are allocated by the first step (and again after a change of
        their structure, see :meth:`_fit_tangent_buffers`)."""
        pairs = [(self.t, t1), (self.first_bad, first_bad)]
        for k, (lvl, update) in enumerate(zip(self.levels, out)):
            if k < len(self.levels) - 1:
                pairs += [(lvl.raw, raws[k]), (lvl.G, grads[k + 1])]
            pairs += [(lvl.state[s][name], v) for s, st in enumerate(update.states) for name, v in st.items()]
            if update.tangents and lvl.tangents is None:
                lvl.keep(update.tangents, copies=True)
            elif update.tangents:
                for old, new in zip(lvl.tangents, update.tangents):
                    pairs += [*zip(old.bases, new.bases), (old.coefs, new.coefs)]
        targets = {id(dst) for dst, _ in pairs}
        values = [v.clone() if id(v) in targets and v is not dst else v for dst, v in pairs]
        for (dst, _), value in zip(pairs, values):
            if value is not dst:
                dst.copy_(value)

    # -- reading ---------------------------------------------------------------------------------
    def sync_host(self) -> None:
        """After the tensors were written from outside (load_state_dict): the host-side step counts."""
        self.count = int(self.t)

    def nonfinite(self) -> dict[int, NonFiniteError]:
        """Per configuration, the first value that stopped being finite (one host sync), ignoring
        levels above a configuration's own height (padded towers)."""
        bad = self.first_bad.tolist()
        out = {}
        for k, row in enumerate(bad):
            hits = [(s, i) for i, s in enumerate(row)
                    if s >= 0 and (self.check_names[i][2] == "gradient" or self.check_names[i][0] < self.heights[k])]
            if hits:
                step, i = min(hits)
                level, name, what = self.check_names[i]
                out[k] = NonFiniteError(level, self.levels[level].family, name, step, what,
                                        member=k if self.batch is not None else None)
        return out

    def check_finite(self) -> None:
        bad = self.nonfinite()
        if bad:
            raise bad[min(bad)]
