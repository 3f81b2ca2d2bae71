"""The machinery behind every hyperoptimizer: flat buffers, the tower's levels, and one traced step.

Why a flat buffer: the model's parameters become views into one contiguous vector, so each
arithmetic op of an update rule is one kernel over all parameters instead of one per tensor, and a
hypergradient is one matrix-vector product. The parameters stay ordinary leaf ``nn.Parameter``s.

Why one traced step: the whole tower step (hypergradients bottom-up, updates top-down, the
non-finite flags) is a pure function of tensors with no data-dependent control flow. It is traced
once with ``make_fx`` into a straight-line graph of ATen ops, which removes the Python overhead of
the :class:`~hypernb.optim.dual.Dual` arithmetic, never synchronises with the host, and can be
captured in a CUDA graph or compiled by inductor (``mode="compiled"``).
"""
from __future__ import annotations

import torch

from .codegen import FRESH, host_small, op_name
from .dual import Dual
from .errors import NonFiniteError
from .rules import Rule

MODES = ("traced", "eager", "compiled")


class Level:
    """Runtime state of one level of a tower: stored hyperparameters, rule state, tangents.

    The tangent of the vector below with respect to stored hyperparameter j is ``Jc[j] * J[j]``:
    keeping the scalar factor apart saves a full-size multiply per row.
    """

    def __init__(self, opt, index: int, below: torch.Tensor, below_names: list[str], hdtype, segment_ids):
        self.opt, self.index = opt, index
        self.rule: Rule = opt._rule
        values = opt._values
        device = below.device
        hypers = self.rule.hypers()
        self.trainable = [h for h in hypers if h.trainable]
        self.fixed = {h.name: float(values[h.name]) for h in hypers if not h.trainable}
        if self.rule.per_segment:
            alphas = _per_segment_values(values["alpha"], below_names)
            (h,) = self.trainable
            self.names = [f"alpha.{n}" for n in below_names]
            raw = [h.param.to_raw(a) for a in alphas]
            self.segment_ids = segment_ids
        else:
            self.names = [h.name for h in self.trainable]
            raw = [h.param.to_raw(float(values[h.name])) for h in self.trainable]
            self.segment_ids = None
        self.raw = torch.tensor(raw, dtype=hdtype, device=device)
        self.state = dict(sorted(self.rule.init_state(below, values).items()))
        self.J: list[torch.Tensor] | None = None  # only when a level above learns this level
        self.Jc: torch.Tensor | None = None
        self.const_scales: list[float] | None = None  # set while tracing if Jc never changes
        self.G = torch.zeros(len(raw), dtype=hdtype, device=device)  # last d loss / d raw
        self._fixed_tensors = {k: torch.tensor(v, dtype=hdtype, device=device) for k, v in self.fixed.items()}

    @property
    def family(self) -> str:
        return type(self.opt).__name__

    def enable_tangents(self, below: torch.Tensor) -> None:
        rows = 1 if self.rule.per_segment else len(self.raw)
        self.J = [torch.zeros_like(below) for _ in range(rows)]
        self.Jc = torch.zeros(rows, dtype=self.raw.dtype, device=below.device)

    # -- pure pieces of the step (traced) -------------------------------------------------------
    def hypergradient(self, J: list, Jc, g):
        """d loss / d raw = Σ_i g_i ∂w_i/∂raw, with ∂w/∂raw the tangents of the previous update."""
        if self.segment_ids is None:
            dots = torch.stack([torch.dot(row, g) for row in J]) if len(J) > 1 else torch.dot(J[0], g).reshape(1)
            return dots.to(self.raw.dtype) * Jc
        contrib = (J[0] * g).to(self.raw.dtype)
        return torch.zeros_like(self.raw).index_add(0, self.segment_ids, contrib) * Jc

    def effective(self, raw, with_tangents: bool) -> dict:
        """Hyperparameter values as the rule uses them; Duals when tangents are wanted."""
        h = dict(self.fixed)
        if self.segment_ids is not None:
            (hyper,) = self.trainable
            value = raw[self.segment_ids]
            x = Dual.seed(value, 0) if with_tangents else value
            h[hyper.name] = hyper.param.from_raw(x)
            return h
        for j, hyper in enumerate(self.trainable):
            x = Dual.seed(raw[j], j) if with_tangents else raw[j]
            h[hyper.name] = hyper.param.from_raw(x)
        return h

    def apply(self, g, state: dict, raw, t, with_tangents: bool):
        """(Δ, new state, tangent rows, tangent scales) of this level's update of the vector below."""
        h = self.effective(raw, with_tangents)
        delta, new_state = self.rule.update(g, state, h, t)
        new_state = {k: _value(v) for k, v in sorted(new_state.items())}
        if not with_tangents:
            return _value(delta), new_state, None, None
        rows = 1 if self.segment_ids is not None else len(self.trainable)
        J, coefs = [], []
        for j in range(rows):
            tangent = delta.tangent(j) if isinstance(delta, Dual) else None
            coef, base = (0.0, None) if tangent is None else tangent
            if base is None:  # a scalar tangent: coefficient times a row of ones
                base = torch.ones_like(g)
            J.append(base.to(g.dtype))
            coefs.append(coef)
        if all(isinstance(c, (int, float)) for c in coefs):
            # constant scales (e.g. −1 for SGD's α) are stored once instead of rebuilt every step
            self.const_scales = [float(c) for c in coefs]
            return _value(delta), new_state, J, None
        coefs = [torch.as_tensor(c, dtype=self.raw.dtype, device=g.device).reshape(1) for c in coefs]
        return _value(delta), new_state, J, torch.cat(coefs)

    # -- reading values (outside the step) -----------------------------------------------------
    def values(self) -> dict[str, torch.Tensor]:
        """Effective values as 0-d tensors on the device (no host sync)."""
        out = {}
        if self.segment_ids is not None:
            (hyper,) = self.trainable
            eff = hyper.param.from_raw(self.raw)
            out.update({name: eff[i] for i, name in enumerate(self.names)})
        else:
            for j, hyper in enumerate(self.trainable):
                out[hyper.name] = hyper.param.from_raw(self.raw[j])
        for h in self.rule.hypers():
            if not h.trainable:
                out[h.name] = self._fixed_tensors[h.name]
        return out


def _value(x):
    return x.value if isinstance(x, Dual) else x


def _per_segment_values(alpha, names: list[str]) -> list[float]:
    if isinstance(alpha, (int, float)):
        return [float(alpha)] * len(names)
    if isinstance(alpha, dict):
        unknown = sorted(set(alpha) - set(names))
        if unknown:
            raise ValueError(f"SGDPerParam: unknown names {unknown}; the level below has {names}")
        missing = sorted(set(names) - set(alpha))
        if missing:
            raise ValueError(f"SGDPerParam: no step size given for {missing}")
        return [float(alpha[n]) for n in names]
    alpha = [float(a) for a in alpha]
    if len(alpha) != len(names):
        raise ValueError(f"SGDPerParam: got {len(alpha)} step sizes for {len(names)} entries {names}")
    return alpha


def _get(holder, key):
    return getattr(holder, key) if isinstance(key, str) and not isinstance(holder, dict) else holder[key]


def _set(holder, key, value) -> None:
    if isinstance(key, str) and not isinstance(holder, dict):
        setattr(holder, key, value)
    else:
        holder[key] = value


class Engine:
    """Owns the flat buffers and runs the traced step for a whole tower (levels 0..n).

    ``capturable``: write every result back into the same buffers (static addresses, as a CUDA
    graph needs). Otherwise the full-size state and tangent buffers are swapped for the new ones,
    which saves a copy per buffer; the parameters are always updated in place.
    """

    def __init__(self, params: list[torch.nn.Parameter], names: list[str], chain: list, mode: str,
                 capturable: bool | None = None, cuda_graph: bool | None = None, host_scalars: bool = True):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.params = params
        first = params[0]
        for p in params:
            if p.device != first.device or p.dtype != first.dtype:
                raise ValueError(
                    "all parameters of one hypernb optimizer must share device and dtype; got "
                    f"{first.dtype} on {first.device} and {p.dtype} on {p.device}. "
                    "Move the model first (model.to(...)), then build the optimizer."
                )
            if p.is_sparse or p.is_complex() or not p.is_floating_point():
                raise ValueError(f"parameters must be dense real floating-point tensors, got {p.dtype}")
        self.device, self.dtype = first.device, first.dtype
        # on a CPU the scalar part of the traced step runs as Python floats (see codegen)
        self.host_scalars = host_scalars and first.device.type == "cpu"
        self.codegen = None  # which code runs the traced step; set when it is built
        # with one parameter the gradient vector is a view of p.grad, which zero_grad may reuse
        self._g_is_fresh = len(params) > 1
        self.capturable = first.device.type == "cuda" if capturable is None else bool(capturable)
        if cuda_graph and (first.device.type != "cuda" or not self.capturable):
            raise ValueError("cuda_graph=True needs CUDA parameters and capturable=True")
        # on CUDA the step is ~100 tiny kernels: after two warm-up steps it is captured once and
        # replayed (one launch), unless the caller is itself capturing a CUDA graph
        self.cuda_graph = (first.device.type == "cuda" and self.capturable) if cuda_graph is None else cuda_graph
        self._graph, self._g_static, self._eager_steps = None, None, 0
        self.hdtype = torch.promote_types(first.dtype, torch.float32)
        # one contiguous vector; the parameters become views into it (they stay leaf Parameters)
        with torch.no_grad():
            self.flat = torch.cat([p.detach().reshape(-1) for p in params])
            offset, seg = 0, []
            for i, p in enumerate(params):
                n = p.numel()
                p.data = self.flat[offset:offset + n].view_as(p)
                seg.append(torch.full((n,), i, dtype=torch.long, device=self.device))
                offset += n
        self._ptrs = [p.data_ptr() for p in params]
        self._zeros = [None] * len(params)
        segment_ids = torch.cat(seg)
        self.levels: list[Level] = []
        below, below_names = self.flat, names
        for k, opt in enumerate(chain):
            seg_k = segment_ids if k == 0 else torch.arange(below.numel(), device=self.device)
            level = Level(opt, k, below, below_names, self.hdtype, seg_k)
            self.levels.append(level)
            below, below_names = level.raw, level.names
        for k in range(len(self.levels) - 1):  # a level needs tangents iff the level above learns it
            self.levels[k].enable_tangents(self.flat if k == 0 else self.levels[k - 1].raw)
        self.t = torch.zeros((), dtype=torch.long, device=self.device)
        self.check_names = [(0, "gradient", "gradient")]
        for lvl in self.levels[:-1]:
            self.check_names += [(lvl.index, n, "hyperparameter") for n in lvl.names]
        for lvl in self.levels[:-1]:
            self.check_names += [(lvl.index, n, "hypergradient") for n in lvl.names]
        self.first_bad = torch.full((len(self.check_names),), -1, dtype=torch.long, device=self.device)
        self._fn = None
        self._host_inputs: list[int] = []
        self._views: dict = {}  # id(small tensor) -> (tensor, numpy view) for writing Python numbers
        self._pack, self._pack_np, self._pack_at, self._pack_vals = None, None, {}, None
        self._reads = None  # the host-scalar path's inputs (see _read_plan)
        self._writes: list | None = None  # where each result goes (see _write_plan)
        if self.host_scalars:
            self._pack_small_buffers()

    def _pack_small_buffers(self) -> None:
        """On a CPU, make every level's few-number buffers (stored values, tangent scales,
        hypergradients, and the state and tangents of levels above the first) views of one vector.

        Why: the step passes them as Python numbers; one ``tolist()`` and one write per step then
        serve the whole tower, instead of a read and a write per buffer (a few µs each), so a
        level costs only its own arithmetic.
        """
        slots = []
        for lvl in self.levels:
            slots += [(lvl, "raw"), (lvl, "G")] + [(lvl.state, key) for key in lvl.state]
            if lvl.J is not None:
                slots += [(lvl.J, j) for j in range(len(lvl.J))] + [(lvl, "Jc")]
        chosen = []
        for holder, key in slots:
            x = getattr(holder, key) if isinstance(holder, Level) else holder[key]
            if x.dim() == 1 and x.dtype == self.hdtype and host_small(x):
                chosen.append((holder, key, x))
        if not chosen:
            return
        self._pack = torch.cat([x for _, _, x in chosen])
        offset = 0
        for holder, key, x in chosen:
            view = self._pack[offset:offset + x.numel()]
            if isinstance(holder, Level):
                setattr(holder, key, view)
            else:
                holder[key] = view
            self._pack_at[id(view)] = (view, offset, offset + x.numel())
            offset += x.numel()
        try:
            self._pack_np = self._pack.numpy()
        except (RuntimeError, TypeError, ImportError):  # no NumPy: packed buffers are written one by one
            self._pack_np = None

    # -- buffers in a fixed order ---------------------------------------------------------------
    def _inputs(self) -> list[torch.Tensor]:
        bufs = [lvl.raw for lvl in self.levels]
        for lvl in self.levels:
            bufs += list(lvl.state.values())
        for lvl in self.levels[:-1]:
            bufs += [*lvl.J, lvl.Jc]
        return bufs

    def _step_fn(self, t, g, first_bad, *bufs):
        """One step of the whole tower as a pure function (traced; see the module docstring).

        Returns (t, first_bad, Δw, raw_0..raw_{n-1}, states…, tangent rows and scales…, G_0..G_{n-1}).
        """
        levels, n = self.levels, len(self.levels) - 1
        raws = list(bufs[: n + 1])
        pos, states = n + 1, []
        for lvl in levels:
            k = len(lvl.state)
            states.append(dict(zip(lvl.state.keys(), bufs[pos:pos + k])))
            pos += k
        Js = []
        for lvl in levels[:n]:
            r = len(lvl.J)
            Js.append((list(bufs[pos:pos + r]), bufs[pos + r]))
            pos += r + 1
        t1 = t + 1
        tf = t1.to(self.hdtype)
        # 1. hypergradients, bottom-up, from the tangents of the previous step's updates
        grads = [g]
        for k in range(n):
            grads.append(levels[k].hypergradient(*Js[k], grads[k]))
        # 2. updates, top-down: level k learns raw_{k-1} (level 0 learns w) with the new raw_k
        new_states, new_Js, delta_w = [None] * (n + 1), [None] * n, None
        for k in range(n, -1, -1):
            delta, new_states[k], J, Jc = levels[k].apply(grads[k], states[k], raws[k], tf, k < n)
            if k < n:
                new_Js[k] = (J, Jc)
            if k == 0:
                delta_w = delta
            else:
                raws[k - 1] = raws[k - 1] + delta
        # 3. device-side record of the first step at which anything stopped being finite
        checks = torch.cat([g.sum().reshape(1).to(self.hdtype), *raws[:n], *grads[1:]])
        bad = torch.isnan(checks * 0.0)  # inf·0 and nan·0 are NaN
        first_bad = torch.where((first_bad < 0) & bad, t1, first_bad)
        flat_states = [v for s in new_states for v in s.values()]
        rows = [x for J, Jc in new_Js for x in (*J, *([] if Jc is None else [Jc]))]
        outs = (t1, first_bad, delta_w, *raws[:n], *flat_states, *rows, *grads[1:])
        if not self.capturable:
            # a tangent row that *is* the gradient (SGD's α) must not alias a p.grad that
            # zero_grad(set_to_none=False) will overwrite before the next step reads the row
            return outs if self._g_is_fresh else tuple(o.clone() if o is g else o for o in outs)
        # an output may *be* an input buffer (e.g. the momentum tangent is the previous buffer);
        # the in-place write-back would overwrite it before it is copied, so copy it first
        overwritten = {id(x) for x in (t, first_bad, *bufs)}
        return tuple(o.clone() if id(o) in overwritten or id(getattr(o, "_base", None)) in overwritten else o
                     for o in outs)

    def _build(self, args) -> None:
        if self.mode == "eager":
            self._fn = self._step_fn
            return
        from torch.fx.experimental.proxy_tensor import make_fx

        from .codegen import fast_callable

        try:
            gm = make_fx(self._step_fn)(*args)
        except Exception as e:  # an older or newer torch whose tracer disagrees: same maths, eagerly
            import warnings

            warnings.warn(f"hypernb: tracing the optimizer step failed ({type(e).__name__}: {e}); "
                          "falling back to mode='eager'", RuntimeWarning, stacklevel=3)
            self.mode, self._fn = "eager", self._step_fn
            return
        try:  # merge repeated subexpressions (e.g. the bias-correction pieces shared by β1 and β2)
            from torch.fx.passes.dialect.common.cse_pass import CSEPass

            gm = CSEPass()(gm).graph_module
        except Exception:  # an optional optimisation
            pass
        gm.graph.eliminate_dead_code()
        gm.recompile()
        self.graph_module = gm
        if self.mode == "compiled":
            self._fn, self.codegen = torch.compile(gm, dynamic=False), "inductor"
            return
        donated = () if self.capturable else self._donatable(gm)
        options = {"host": self.host_scalars, "donated": donated, "fold": {2} if self.host_scalars else ()}
        if self.host_scalars:  # small inputs and outputs cross as Python numbers (see _apply)
            n_out = len(next(node for node in gm.graph.nodes if node.op == "output").args[0])
            options.update(host_inputs=[i for i, a in enumerate(args) if i != 1 and host_small(a)],
                           host_outputs=[i for i in range(n_out) if i != 2])  # 2 is Δ (see fold)
        probe = self._probe_args(args) if options["host"] else args
        self._fn, self.codegen = fast_callable(gm, probe, **options), "python"
        if self._fn is gm and options["host"]:  # e.g. an op the host-scalar lowering does not know
            self._fn = fast_callable(gm, args)
        if self._fn is gm:
            self.codegen = "fx"
        elif options["host"] and self._fn.host:
            self.codegen = "python, host scalars"
        self._host_inputs = sorted(getattr(self._fn, "host_inputs", ()))
        self._reads = self._read_plan() if self._host_inputs and self._pack_np is not None else None

    # -- the CPU host-scalar path: where each input comes from and each output goes ---------------
    def _slots(self):
        """(holder, key) of every step input (None for the gradient) and output (None for Δ), in
        the order of ``_step_fn``'s arguments and results; holder[key], or an attribute when
        the holder is the engine or a Level."""
        n = len(self.levels) - 1
        ins = [(self, "t"), None, (self, "first_bad")] + [(lvl, "raw") for lvl in self.levels]
        outs = [(self, "t"), (self, "first_bad"), None] + [(lvl, "raw") for lvl in self.levels[:n]]
        for lvl in self.levels:
            state = [(lvl.state, key) for key in lvl.state]
            ins, outs = ins + state, outs + state
        for lvl in self.levels[:n]:
            rows = [(lvl.J, j) for j in range(len(lvl.J))]
            ins += rows + [(lvl, "Jc")]
            outs += rows + ([] if lvl.const_scales is not None else [(lvl, "Jc")])
        outs += [(lvl, "G") for lvl in self.levels[:n]]
        return ins, outs

    def _read_plan(self):
        """Where each input of the host-scalar step comes from: a slice of the packed small
        buffers (one ``tolist()`` serves every level, see _pack_small_buffers), a small tensor
        read as numbers, or a tensor as it is."""
        ins, _ = self._slots()
        reads = []
        for i, slot in enumerate(ins):
            entry = None if slot is None else self._pack_at.get(id(_get(*slot)))
            if i in self._host_inputs and entry is not None:
                reads.append(("pack", i, entry[1], entry[2]))
            elif slot is not None:
                reads.append(("tolist" if i in self._host_inputs else "tensor", i, *slot))
        return len(ins), reads

    def _write_plan(self):
        """Where each result of the step goes: into the pack, in place (the step count, flags and
        every level's stored values, tangent scales and hypergradients), or, for full-size state
        and tangents, swapped in (or copied, when capturable: static addresses)."""
        _, outs = self._slots()
        writes = []
        for k, slot in enumerate(outs):
            if slot is None:
                continue
            entry = self._pack_at.get(id(_get(*slot)))
            if entry is not None:
                writes.append(("pack", k, entry))
            elif isinstance(slot[0], (Engine, Level)):
                writes.append(("in place", k, slot))
            else:
                writes.append(("copy" if self.capturable else "swap", k, slot))
        return writes

    def _host_args(self, g) -> list:
        n_in, reads = self._reads
        vals = self._pack_vals = self._pack.tolist()
        args = [g] * n_in
        for kind, i, a, b in reads:
            if kind == "pack":
                args[i] = vals[a:b]
            elif kind == "tensor":
                args[i] = _get(a, b)
            else:
                args[i] = _get(a, b).tolist()
        return args

    def _probe_args(self, args) -> list[torch.Tensor]:
        """Inputs for checking the generated code: the real hyperparameters and step count moved on
        a few steps, with random positive full-size state, so that no output is pure rounding
        noise (at step 1, e.g., Adam's ∂Δ/∂β1 is 0 up to rounding)."""
        gen = torch.Generator(device=self.device).manual_seed(0)
        probe = [args[0] + 7, torch.randn(args[1].shape, generator=gen, device=self.device, dtype=args[1].dtype)]
        for a in args[2:]:
            if a.is_floating_point() and not host_small(a):  # full-size state and tangents
                a = torch.rand(a.shape, generator=gen, device=self.device, dtype=a.dtype) * 0.01 + 1e-3
            probe.append(a)
        return probe

    def _donatable(self, gm) -> list[int]:
        """Input positions of state and tangent buffers that the step may overwrite once read.

        With swapped buffers the old ones are dropped after the step, so their memory can hold
        new results. Excluded: a slot whose new value is not a fresh tensor of its own (e.g. it is
        the gradient, or the same tensor as another slot), as next step's input would be shared;
        and the few-number buffers (engine or Level attributes), written in place.
        """
        ins, outs = self._slots()
        out_at = {(id(slot[0]), slot[1]): k for k, slot in enumerate(outs) if slot is not None}
        results = list(next(node for node in gm.graph.nodes if node.op == "output").args[0])
        keep = []
        for i, slot in enumerate(ins):
            if slot is None or isinstance(slot[0], (Engine, Level)):
                continue
            node = results[out_at[(id(slot[0]), slot[1])]]
            name = op_name(getattr(node, "target", None))  # None for an input passed through
            if name in FRESH and sum(x is node for x in results) == 1:
                keep.append(i)
        return keep

    # -- the step --------------------------------------------------------------------------------
    def gather_grad(self) -> torch.Tensor:
        params = self.params
        if any(p.data_ptr() != ptr for p, ptr in zip(params, self._ptrs)):
            raise RuntimeError(
                "a parameter was moved or replaced after the optimizer was built (e.g. model.to(...) "
                "or model.half()); build the optimizer after moving the model"
            )
        grads = []
        for i, p in enumerate(params):
            if p.grad is None:  # not used by this loss: treated as a zero gradient
                if self._zeros[i] is None:
                    self._zeros[i] = torch.zeros(p.numel(), dtype=self.dtype, device=self.device)
                grads.append(self._zeros[i])
            else:
                grads.append(p.grad.reshape(-1))
        g = grads[0] if len(grads) == 1 else torch.cat(grads)
        return g if g.dtype == self.dtype else g.to(self.dtype)

    def step(self) -> None:
        """One optimizer step (called by HyperOptimizer.step under no_grad)."""
        g = self.gather_grad()
        if self._fn is None:
            self._build([self.t, g, self.first_bad, *self._inputs()])
        if self._reads is not None:  # CPU, host scalars: the fast path
            self._apply(self._fn(*self._host_args(g)))
            return
        capturing = self.device.type == "cuda" and torch.cuda.is_current_stream_capturing()
        if self._graph is not None and not capturing:
            self._g_static.copy_(g)
            self._graph.replay()
            return
        args = [self.t, g, self.first_bad, *self._inputs()]
        for i in self._host_inputs:  # a few scalars, read without a device (this is a CPU)
            args[i] = args[i].tolist()
        self._pack_vals = None
        if self.cuda_graph and not capturing:  # inside the caller's capture: record plain ops instead
            self._eager_steps += 1
            if self._eager_steps > 2:  # warmed up: capture this step, then run it by replaying
                self._capture(g)
                self._g_static.copy_(g)
                self._graph.replay()
                return
        self._apply(self._fn(*args))

    def _capture(self, g) -> None:
        self._g_static = torch.empty_like(g)
        args = [self.t, self._g_static, self.first_bad, *self._inputs()]
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # recorded, not executed
            self._apply(self._fn(*args))
        self._graph = graph

    def _apply(self, outs) -> None:
        """Write one step's results back (see _write_plan): the parameters in place, the pack
        in one write, the rest in place, swapped or copied."""
        delta = outs[2]
        if isinstance(delta, tuple):  # folded by the codegen: Δ = X·s with s a Python number
            self.flat.add_(delta[0], alpha=delta[1])
        else:
            self.flat.add_(delta)  # the parameters are views of flat: updated in place
        first = self._writes is None
        if first:  # the step has run once, so the rules' constant tangent scales are known
            self._writes = self._write_plan()
        vals, late = self._pack_vals, []
        for kind, k, where in self._writes:
            value = outs[k]
            if kind == "pack":
                if isinstance(value, torch.Tensor):
                    late.append((where[0], value))
                elif vals is not None:
                    vals[where[1]:where[2]] = value
                else:
                    self._write(where[0], value)
            elif not isinstance(value, torch.Tensor):  # Python numbers from the host-scalar code
                self._write(_get(*where), value)
            elif kind == "swap":
                _set(*where, value)
            else:
                late.append((_get(*where), value))
        if vals is not None:  # the whole pack in one write (unchanged entries hold what was read)
            self._pack_np[:] = vals
        if late:  # after the pack write, which would otherwise overwrite them
            torch._foreach_copy_([d for d, _ in late], [v for _, v in late])
        if first:  # e.g. −1 for SGD's α, stored once (the first step's tangents are zero anyway)
            for lvl in self.levels[:-1]:
                if lvl.const_scales is not None:
                    lvl.Jc.copy_(torch.tensor(lvl.const_scales, dtype=lvl.Jc.dtype))

    def _write(self, dst: torch.Tensor, value) -> None:
        """Store Python numbers into a small CPU tensor in place (through a NumPy view: about
        1 µs, against 5–15 µs for building a tensor and copying it)."""
        entry = self._views.get(id(dst))
        if entry is None or entry[0] is not dst:
            try:
                entry = (dst, dst.numpy())
            except (RuntimeError, TypeError, ImportError):  # no NumPy: the slower way
                dst.copy_(torch.tensor(value, dtype=dst.dtype))
                return
            self._views[id(dst)] = entry
        entry[1][...] = value

    # -- reading -------------------------------------------------------------------------------
    def check_finite(self) -> None:
        bad = self.first_bad.tolist()  # the one host sync, done only when asked
        hits = [(s, i) for i, s in enumerate(bad) if s >= 0]
        if hits:
            step, i = min(hits)
            level, name, what = self.check_names[i]
            raise NonFiniteError(level, self.levels[level].family, name, step, what)
