"""The interactive panel: sliders for α, μ, κ and tower height, optimizer, hyperoptimizer and κ-rule
menus, and a Run button. It trains only when Run is pressed (``run()``, the same path as the batch
jobs), so a notebook executed headlessly (papermill, nbval) builds the panel and moves on.

Each Run adds its curves to the comparison (training loss, test metric per epoch, α and every hyper
level's κ, μ/β where learned) and a row to the table of runs; Clear empties the comparison. Finished
runs are cached by configuration: moving the controls back to a setting that ran shows it at once.
While training, a progress line (and, in Jupyter, the step bar with the current loss) and the curves
update after every epoch. A run that diverges stays in the comparison, marked, with the command
line's own words for the reason, the level, the step and what to lower.

Displayed where no widget frontend runs it (an executed notebook opened without a kernel, a file
viewer), the panel shows a static picture of itself and "run the notebook to use the panel" instead
of a ``VBox(...)`` repr.
"""
from __future__ import annotations

import base64
import contextlib
import html
import json
import math
import numbers
import re
import time
import traceback
from dataclasses import dataclass, field
from types import SimpleNamespace

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adambaydin")
HYPEROPTIMIZERS = ("none", "sgd", "adagrad", "rmsprop", "adam")
# how the panel sets κ for each hyper level ℓ = 1…height from the κ slider (κ₁) and α0
KAPPA_RULES = {
    "same": "same κ at every level",
    "decay": "decay: κ_ℓ = κ₁·d^(ℓ−1)",
    "paper": "paper: κ_ℓ = α0",
    "report": "report: κ_ℓ = α0/(100(1+ℓ))",
}
KAPPA_DECAY = 1e-8  # d of the "decay" rule
KAPPA_FLOOR = 1e-30  # a "decay" κ below this is 0: that level is held at its initial value
ALPHA_EXPONENTS = (-6, 3)  # α slider: 1e-6 … 1e3 (log)
KAPPA_EXPONENTS = (-8, 0)  # κ slider: 1e-8 … 1 (log)
MAX_HEIGHT = 20
MAX_EPOCHS = 50
FIELDS = ("optimizer", "hyperoptimizer", "height", "alpha", "mu", "kappa_rule", "kappa", "epochs")


def kappa_rule_text(rule: str, decay: float = KAPPA_DECAY) -> str:
    """A rule's name with what it means, for headers and labels a reader sees without the dropdown:
    ``decay (κ_ℓ = κ₁·d^(ℓ−1), d = 1e-08)``."""
    text = KAPPA_RULES[rule]
    meaning = text.split(": ", 1)[1] if ": " in text else "κ_ℓ = κ₁"
    return f"{rule} ({meaning}" + (f", d = {decay:g})" if rule == "decay" else ")")


def tower_string(optimizer: str, hyperoptimizer: str, height: int) -> str:
    """("adam", "sgd", 2) → "adam/sgd*2"; no hyperoptimizer or height 0 → the plain optimizer."""
    if hyperoptimizer == "none" or height == 0:
        return optimizer
    return f"{optimizer}/{hyperoptimizer}*{height}"


def tower_label(optimizer: str, hyperoptimizer: str, height: int) -> str:
    """The tower as a person writes it: "adam/sgd" at height 1, "adam/sgd*3" above, "adam" alone."""
    return tower_string(optimizer, hyperoptimizer, height).removesuffix("*1")


def default_kappa_rule(optimizer: str, hyperoptimizer: str) -> str:
    """The rule the panel starts with when a notebook names none: "decay" for SGD hyper levels above
    an adaptive optimizer, "same" otherwise.

    Above Adam (or AdaGrad, RMSProp), the level-1 hypergradient of α sums over every parameter, and
    each SGD level above multiplies the hypergradients of the one below: on the MNIST MLP the level-ℓ
    hypergradient grows by many orders of magnitude per level (about 10²⁸ at level 5 by step 6), so
    one κ at every level diverges from height 2 or 3, and the κ that stay stable fall by about 10⁻⁸
    per level. SGD levels above SGD, and adaptive hyper levels (whose steps are normalised), train at
    every height with one κ."""
    return "decay" if hyperoptimizer == "sgd" and optimizer != "sgd" else "same"


def kappa_levels(rule: str, kappa: float, alpha: float, height: int, decay: float = KAPPA_DECAY) -> list[float]:
    """κ of hyper levels 1…height under a panel rule (see ``KAPPA_RULES``)."""
    from .optim.tower import KAPPA_RULES as TOWER_RULES

    if rule not in KAPPA_RULES:
        raise ValueError(f"unknown κ rule {rule!r}; choose from {list(KAPPA_RULES)}")
    if height <= 0:
        return []
    if rule == "same":
        return [float(kappa)] * height
    if rule == "decay":
        values = [float(kappa) * decay ** level for level in range(height)]
        return [v if v >= KAPPA_FLOOR else 0.0 for v in values]
    return [float(v) for v in TOWER_RULES[rule](float(alpha), height)]


def panel_config(task: str, profile: str, optimizer: str, hyperoptimizer: str, alpha: float, mu: float,
                 kappa: float, height: int, epochs: int, kappa_rule: str = "same", kappa_decay: float = KAPPA_DECAY,
                 **fixed):
    """The RunConfig a click runs (also what a batch job would run for the same values): "paper" and
    "report" are passed to ``run()`` by name, "decay" as one κ per level."""
    from .config import CONFIG_ALIASES, RunConfig

    if isinstance(height, bool) or not isinstance(height, int) or height < 0:
        raise ValueError(f"height (the number of hyperoptimizer levels) must be an integer >= 0, got {height!r}")
    tower = tower_string(optimizer, hyperoptimizer, height)
    if kappa_rule not in KAPPA_RULES:
        raise ValueError(f"unknown κ rule {kappa_rule!r}; choose from {list(KAPPA_RULES)}")
    if tower == optimizer or kappa_rule == "same":
        kap = kappa
    elif kappa_rule in ("paper", "report"):
        kap = kappa_rule
    else:
        kap = kappa_levels(kappa_rule, kappa, alpha, height, kappa_decay)
    values = dict(task=task, profile=profile, optimizer=tower, alpha=alpha, mu=mu if optimizer == "sgd" else 0.0,
                  kappa=kap, epochs=epochs, quiet=True)
    controlled = sorted(k for k in fixed if CONFIG_ALIASES.get(k, k) in values and k != "quiet")
    if controlled:  # (lr, opt, momentum: the panel's α, tower and μ)
        raise ValueError(f"{controlled}: the panel sets these itself (its sliders and menus); give them as alpha=, "
                         "optimizer=, mu=")
    values.update(fixed)
    return RunConfig.from_dict(values)


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (where a widget frontend may be listening)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _tidy(v: float) -> float:
    """A slider's value without the float noise of its frontend (a log slider moved back to 1e-3
    reads 0.000999999999999999), so that the setting finds its cached run."""
    return float(f"{v:.12g}")


@contextlib.contextmanager
def _interruptible(asked: list):
    """Kernel → Interrupt (SIGINT) stops a Run: KeyboardInterrupt in the thread that trains it, and
    ``asked`` set, which the epoch callback also turns into KeyboardInterrupt should a library on the
    way swallow the first.

    Why not rely on ipykernel: it installs Python's handler only around the message it is handling
    (a click that arrives while another widget message is handled had none: SIGINT was ignored), and
    JupyterLab sends widget messages to a kernel *subshell*, a thread of its own, where no signal
    arrives. There the handler is installed in the main thread through the kernel's loop, and it
    raises KeyboardInterrupt in the training thread (``PyThreadState_SetAsyncExc``, CPython's API for
    this). The previous handler comes back only if ours is still the one installed."""
    import ctypes
    import signal
    import threading

    trainer = threading.current_thread()
    main = trainer is threading.main_thread()
    armed = [True]  # off as soon as the block ends: nothing is raised into the panel's own bookkeeping

    def interrupt(signum, frame):
        asked.append(True)
        if main and armed[0]:
            raise KeyboardInterrupt
        if armed[0]:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(trainer.ident),
                                                       ctypes.py_object(KeyboardInterrupt))

    def install(saved: list) -> None:
        saved.append(signal.signal(signal.SIGINT, interrupt))

    def restore(saved: list) -> None:
        if saved and signal.getsignal(signal.SIGINT) is interrupt:  # (replaced meanwhile: leave that one)
            signal.signal(signal.SIGINT, saved.pop())

    saved: list = []
    if main:
        install(saved)
        try:
            yield
        finally:
            armed[0] = False
            restore(saved)
        return
    loop = None
    with contextlib.suppress(ImportError):
        from IPython import get_ipython

        loop = getattr(getattr(get_ipython(), "kernel", None), "io_loop", None)  # the main thread's
    if loop is None:
        yield
        return
    loop.add_callback(install, saved)
    try:
        yield
    finally:
        armed[0] = False
        loop.add_callback(restore, saved)


def _num(v) -> str:
    return "–" if v is None else f"{v:.3g}"


def _config_text(c: dict) -> str:
    """A recorded run's settings as the table writes them (an example shown beside the panel's own runs
    may come from another profile and length: it says so)."""
    from .train import _short

    parts = [str(c.get("optimizer", "?"))]
    parts.append(f"α0 = {_num(c['alpha'])}" if isinstance(c.get("alpha"), (int, float)) else "its default lr")
    if c.get("mu"):
        parts.append(f"μ = {_num(c['mu'])}")
    if "/" in parts[0] and c.get("kappa") is not None:  # a tower: its hyper levels' κ
        parts.append(f"κ = {_short(c['kappa'])}")
    if c.get("d0") is not None:
        parts.append(f"d0 = {_num(c['d0'])}")
    if c.get("schedule") not in (None, "none"):
        parts.append(f"{c['schedule']} schedule")
    if c.get("epochs"):
        parts.append(f"{c['epochs']} epoch{'s' if c['epochs'] != 1 else ''}")
    if c.get("profile"):
        parts.append(f"profile {c['profile']}")
    return ", ".join(parts + _seeds_text(c.get("seeds") or []))


def _seeds_text(seeds) -> list[str]:
    """The seeds a row's numbers average, when there are several (for the table's settings)."""
    return [f"seeds {', '.join(map(str, seeds))} (numbers: their mean)"] if len(seeds) > 1 else []


def _sub(n: int) -> str:
    return str(n).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


@dataclass
class PanelRun:
    """One run in the comparison: the panel's settings, its config, and its Result (or, while it
    trains, the seeds recorded so far)."""

    number: int
    settings: dict | None
    config: object = None
    result: object = None
    status: str = "running"  # running | ok | diverged | error
    time_s: float | None = None
    epoch: int = 0
    error: str | None = None
    label: str | None = None  # fixed label (examples); otherwise made from what changed
    trained_with: int = 1  # an example trained in a batch of this many runs: its time is the batch's
    live: list = field(default_factory=list)

    def view(self):
        """Something with ``.seeds`` and ``.config`` for the figures, also while training."""
        if self.result is not None:
            return self.result
        return SimpleNamespace(seeds=list(self.live), config={}, summary={})


class Explorer:
    """The panel. ``explorer(...)`` builds one; display it (or ``.widget``). ``run()`` presses Run,
    ``clear()`` presses Clear; ``runs`` is the comparison, ``cache`` every finished run by configuration."""

    def __init__(self, task: str, profile: str, values: dict, kappa_decay: float, fixed: dict, examples=None):
        import ipywidgets as W

        from .config import RunConfig

        self.task, self.profile, self.fixed, self.kappa_decay = task, profile, dict(fixed), kappa_decay
        self.metric = "test_bits" if RunConfig(task=task).is_text else "test_acc"
        self.runs: list[PanelRun] = []
        self.cache: dict[str, PanelRun] = {}
        self._count = 0
        self._busy = False
        self._highlight: PanelRun | None = None

        v = values
        style = {"description_width": "initial"}
        wide = W.Layout(width="430px")
        a_lo = min(ALPHA_EXPONENTS[0], math.floor(math.log10(v["alpha"]))) if v["alpha"] > 0 else ALPHA_EXPONENTS[0]
        a_hi = max(ALPHA_EXPONENTS[1], math.ceil(math.log10(v["alpha"]))) if v["alpha"] > 0 else ALPHA_EXPONENTS[1]
        k_lo = min(KAPPA_EXPONENTS[0], math.floor(math.log10(v["kappa"]))) if v["kappa"] > 0 else KAPPA_EXPONENTS[0]
        k_hi = max(KAPPA_EXPONENTS[1], math.ceil(math.log10(v["kappa"]))) if v["kappa"] > 0 else KAPPA_EXPONENTS[1]
        c = self.controls = {
            "optimizer": W.Dropdown(options=OPTIMIZERS, value=v["optimizer"], description="optimizer", style=style,
                                    layout=W.Layout(width="230px")),
            "hyperoptimizer": W.Dropdown(options=HYPEROPTIMIZERS, value=v["hyperoptimizer"],
                                         description="hyperoptimizer", style=style, layout=W.Layout(width="250px")),
            "alpha": W.FloatLogSlider(value=v["alpha"], base=10, min=a_lo, max=a_hi, step=0.25,
                                      description="α (level-0 step size)", style=style, layout=wide,
                                      continuous_update=False, readout_format=".2e"),
            "mu": W.FloatSlider(value=v["mu"], min=0.0, max=0.99, step=0.01, description="μ (SGD momentum)",
                                style=style, layout=wide, continuous_update=False),
            "kappa": W.FloatLogSlider(value=v["kappa"], base=10, min=k_lo, max=k_hi, step=0.25,
                                      description="κ₁ (level-1 step size)", style=style, layout=wide,
                                      continuous_update=False, readout_format=".2e"),
            "kappa_rule": W.Dropdown(options=[(f"{text}" + (f", d = {kappa_decay:g}" if name == "decay" else ""), name)
                                              for name, text in KAPPA_RULES.items()],
                                     value=v["kappa_rule"], description="κ for higher levels", style=style,
                                     layout=W.Layout(width="430px")),
            "height": W.IntSlider(value=v["height"], min=0, max=max(MAX_HEIGHT, v["height"]),
                                  description="height (hyper levels)", style=style, layout=wide,
                                  continuous_update=False),
            "epochs": W.IntSlider(value=v["epochs"], min=1, max=max(MAX_EPOCHS, v["epochs"]), description="epochs",
                                  style=style, layout=wide, continuous_update=False),
        }
        for name, w in c.items():
            w.add_class(f"hypernb-{name.replace('_', '-')}")
        self._given = {name: v[name] for name in ("alpha", "kappa", "epochs")}  # what the notebook asked for
        self.kappa_info = W.HTML()
        self.limits = W.HTML()  # says when a slider sits at an end (a value typed beyond it was set there)
        self.run_button = W.Button(description="Run", button_style="primary", icon="play", tooltip="train this setting")
        self.clear_button = W.Button(description="Clear", icon="trash",
                                     tooltip="empty the comparison (the cache stays)")
        self.status = W.HTML(value="Move the controls, then press <b>Run</b>: each run is added to the comparison.")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="300px",
                                                                                           visibility="hidden"))
        self.progress_text = W.HTML()
        self.steps = W.Output()  # the step bar with the current loss (tqdm, in Jupyter)
        self.message = W.HTML()
        self.figure = W.Image(format="png", layout=W.Layout(max_width="100%", height="auto", display="none"))
        self.table = W.HTML()
        for w, name in ((self.run_button, "run"), (self.clear_button, "clear"), (self.status, "status"),
                        (self.progress_text, "progress"), (self.message, "message"), (self.figure, "figure"),
                        (self.table, "table"), (self.kappa_info, "kappa-info"), (self.limits, "limits")):
            w.add_class(f"hypernb-{name}")
        self.run_button.on_click(self.run)
        self.clear_button.on_click(self.clear)
        for w in c.values():
            w.observe(self._on_change, names="value")
        title = W.HTML(f"<b>Explore {html.escape(task)}</b> (profile {html.escape(profile)}) — it trains only when "
                       "<b>Run</b> is pressed; each run is added to the figures and the table below.")
        def row(*items):  # a narrow window wraps a row instead of squeezing its sliders to dots
            return W.HBox(list(items), layout=W.Layout(flex_flow="row wrap"))

        controls = W.VBox([
            row(c["optimizer"], c["hyperoptimizer"], c["epochs"]),
            row(c["alpha"], c["mu"]),
            row(c["kappa"], c["kappa_rule"]),
            row(c["height"], self.kappa_info),
            self.limits,
            row(self.run_button, self.clear_button, self.progress, self.progress_text),
            self.status,
        ])
        self.widget = W.VBox([title, controls, self.steps, self.message, self.figure, self.table])
        self.widget.add_class("hypernb-panel")
        for example in self._examples(examples):
            self.runs.append(example)
        self._sync_controls()
        self._refresh(figure=bool(self.runs))  # no empty figure before the first run

    # -- the state of the controls ------------------------------------------------------------------
    @property
    def children(self):  # the panel's widgets, as before (a VBox's children)
        return self.widget.children

    def settings(self) -> dict:
        """The controls' values, with those that do not apply set to None (μ outside SGD, κ without a
        hyper level)."""
        s = {name: _tidy(w.value) if isinstance(w.value, float) else w.value for name, w in self.controls.items()}
        if s["hyperoptimizer"] == "none" or s["height"] == 0:
            s.update(hyperoptimizer="none", height=0, kappa=None, kappa_rule=None)
        elif s["kappa_rule"] in ("paper", "report"):
            s["kappa"] = None  # these rules set every κ from α0
        if s["optimizer"] != "sgd":
            s["mu"] = None
        return s

    def config(self, settings: dict | None = None):
        s = settings or self.settings()
        return panel_config(self.task, self.profile, s["optimizer"], s["hyperoptimizer"], s["alpha"], s["mu"] or 0.0,
                            s["kappa"] if s["kappa"] is not None else self.controls["kappa"].value, s["height"],
                            s["epochs"], kappa_rule=s["kappa_rule"] or "same", kappa_decay=self.kappa_decay,
                            **self.fixed)

    def kappas(self, settings: dict | None = None) -> list[float]:
        """κ of every hyper level for the current (or given) settings."""
        s = settings or self.settings()
        if not s["height"]:
            return []
        return kappa_levels(s["kappa_rule"], s["kappa"] or 0.0, s["alpha"], s["height"], self.kappa_decay)

    @staticmethod
    def _key(cfg) -> str:
        from .train import semantic

        from .optim.tower import kappa_schedule, parse_tower

        d = semantic(cfg.to_dict())
        height = len(parse_tower(d["optimizer"])) - 1
        # κ as every level gets it: a rule's name, one number or a list that give the same values are one run
        d["kappa"] = [float(k) for k in kappa_schedule(d["kappa"], d["alpha"], height)] if height else None
        return json.dumps(d, sort_keys=True, default=str)

    def _at_ends(self) -> list[str]:
        """The sliders in use that sit at an end of their range. A value typed into a slider's box beyond
        it is set to that end by the browser, without a word: the panel says so instead."""
        c, out = self.controls, []
        # (height's range is the most a tower may have; a value given to explorer() widened its slider to itself)
        for name, label in (("alpha", "α"), ("kappa", "κ₁"), ("epochs", "epochs")):
            w = c[name]
            if w.disabled or (name == "epochs" and w.value == w.min) or w.value == self._given[name]:
                continue
            low, high = (10.0 ** w.min, 10.0 ** w.max) if name in ("alpha", "kappa") else (w.min, w.max)
            for end, which in ((low, "lowest"), (high, "highest")):
                if math.isclose(w.value, end, rel_tol=1e-9):
                    out.append(f"{label} = {_num(end)} is its slider's {which} value")
        return out

    def _sync_controls(self) -> None:
        c, s = self.controls, self.settings()
        c["mu"].disabled = s["optimizer"] != "sgd"
        tower = s["height"] > 0
        c["height"].disabled = c["hyperoptimizer"].value == "none"
        c["kappa_rule"].disabled = not tower
        c["kappa"].disabled = not tower or s["kappa_rule"] in ("paper", "report")
        ends = self._at_ends()
        self.limits.value = "" if not ends else (
            f"<span style='font-size:12px;color:#8a5a00'>{html.escape('; '.join(ends), quote=False)}: a value typed "
            "beyond a slider's range is set to its end. For a wider range, build the panel with it, e.g. "
            "<code>explorer(alpha=…, epochs=…)</code>.</span>")
        if not tower:
            self.kappa_info.value = "<i>height 0: the plain optimizer, no κ</i>"
            return
        ks = self.kappas(s)
        shown = ", ".join(f"κ{_sub(i + 1)} = {_num(k)}" for i, k in enumerate(ks[:6]))
        more = f", … κ{_sub(len(ks))} = {_num(ks[-1])}" if len(ks) > 6 else ""
        frozen = " (0: held at its start)" if any(k == 0 for k in ks) else ""
        self.kappa_info.value = f"<span style='font-size:12px'>{shown}{more}{frozen}</span>"

    def _on_change(self, change) -> None:
        c = self.controls
        if change.get("owner") in (c["optimizer"], c["hyperoptimizer"]):
            rule = default_kappa_rule(c["optimizer"].value, c["hyperoptimizer"].value)
            if c["kappa_rule"].value != rule:  # (this observer runs again for it, and does the rest there)
                c["kappa_rule"].value = rule
                return
        self._sync_controls()
        if self._busy:
            return
        try:
            key = self._key(self.config())
        except ValueError as e:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
            return
        hit = self.cache.get(key)
        before = self._highlight
        if hit is not None:
            if hit not in self.runs:
                self.runs.append(hit)
            self._highlight = hit
            self.status.value = (f"This setting ran before as <b>#{hit.number}</b> ({hit.status}); it is shown from "
                                 "the cache, highlighted.")
            self.message.value = self._divergence_html(hit)
        else:
            self._highlight = None
            self.status.value = "Press <b>Run</b> to train this setting and add it to the comparison."
            self.message.value = ""
        if hit is not before or (hit is not None and hit not in self.runs):
            self._refresh()

    # -- the buttons --------------------------------------------------------------------------------
    def run(self, _=None) -> PanelRun | None:
        """Press Run: train the current setting (or show it from the cache) and add it to the comparison."""
        from . import train

        if self._busy:
            return None
        settings = self.settings()
        try:
            cfg = self.config(settings)
        except ValueError as e:
            self.message.value = f"<div style='color:#b00'>error: {html.escape(str(e))}</div>"
            return None
        key = self._key(cfg)
        if key in self.cache:
            entry = self.cache[key]
            if entry not in self.runs:
                self.runs.append(entry)
            self._highlight = entry
            self.status.value = f"<b>#{entry.number}</b> was run before with these settings: shown from the cache."
            self.message.value = self._divergence_html(entry)
            self._refresh()
            return entry
        self._count = max([self._count] + [r.number for r in self.runs]) + 1
        entry = PanelRun(self._count, settings, cfg)
        self.runs.append(entry)
        self._highlight = entry
        self._busy = True
        self.run_button.disabled = self.clear_button.disabled = True
        self.message.value = ""
        self.progress.max, self.progress.value = max(1, cfg.resolved().epochs), 0
        self.progress.layout.visibility = "visible"
        what = (f"#{entry.number} {tower_label(settings['optimizer'], settings['hyperoptimizer'], settings['height'])} "
                f"on {self.task} ({self.profile})")
        self.progress_text.value = f"training {html.escape(what)}: epoch 1 of {self.progress.max}…"
        self.status.value = (f"Training <b>{html.escape(what)}</b>… (to stop it: Kernel → Interrupt, or ■ in the "
                             "toolbar)")
        self._refresh(figure=False)  # its row; the curves come after the first epoch
        t0 = time.perf_counter()

        interrupt_asked = []

        def on_epoch_end(seed_results, epoch):
            if interrupt_asked and epoch + 1 < self.progress.max:  # (after the last one: the run is done)
                raise KeyboardInterrupt
            entry.live, entry.epoch = list(seed_results), epoch + 1
            entry.time_s = time.perf_counter() - t0
            self.progress.value = epoch + 1
            last = [s.epochs[-1] for s in seed_results if s.epochs]
            parts = [f"epoch {epoch + 1} of {self.progress.max} done"]
            if last:
                parts.append(f"training loss {last[-1]['train_loss']:.4g}")
                parts.append(self._metric_text(last[-1].get(self.metric)))
            parts.append(f"{entry.time_s:.1f} s")
            self.progress_text.value = html.escape(f"#{entry.number}: " + " · ".join(parts))
            self._refresh()

        run_cfg = cfg
        steps = contextlib.nullcontext()
        live = _in_kernel()
        if live:  # the step bar (tqdm, with the current loss) appears in the panel
            run_cfg = cfg.replace(quiet=False)
            self.steps.clear_output()
            steps = self.steps
        result, failure = None, None
        # (in a kernel an Output widget swallows what is raised inside it: so nothing is)
        with steps, _interruptible(interrupt_asked):
            try:
                result = train.run(run_cfg, on_epoch_end=on_epoch_end)
            except BaseException as e:  # noqa: B036 (Kernel → Interrupt too: the run is marked, then it goes on)
                failure, trace = e, traceback.format_exc()
        said = None  # the status line, shown once the figure and table show the run (not before them)
        try:
            if failure is not None:
                raise failure
        except KeyboardInterrupt:
            entry.status, entry.time_s = "interrupted", time.perf_counter() - t0
            said = (f"<b>#{entry.number}</b> interrupted after {entry.epoch} epoch(s): it stays in the comparison "
                    "with what it recorded; press Run to train it again.")
            raise
        except Exception as e:  # shown in the panel (a traceback in the log would go unseen)
            entry.status, entry.error = "error", f"{type(e).__name__}: {e}"
            entry.time_s = time.perf_counter() - t0
            self.message.value = (f"<div style='color:#b00'><b>#{entry.number} failed</b>: {html.escape(entry.error)}"
                                  f"<details><summary>traceback</summary><pre style='white-space:pre-wrap'>"
                                  f"{html.escape(trace)}</pre></details></div>")
            said = f"#{entry.number} failed: see the message below."
        else:
            entry.result, entry.live = result, []
            entry.time_s = time.perf_counter() - t0
            entry.status = "ok" if result.ok else "diverged"
            self.cache[key] = entry
            said = f"<b>#{entry.number}</b> {entry.status} in {entry.time_s:.1f} s" + (
                " — moving the controls back to this setting shows it again at once." if result.ok else "")
            self.message.value = self._divergence_html(entry)
        finally:
            self.progress.layout.visibility = "hidden"
            self.progress_text.value = ""
            if live:
                self.steps.clear_output()
            self._refresh()
            if said is not None:
                self.status.value = said
            self._busy = False
            self.run_button.disabled = self.clear_button.disabled = False
        return entry

    def clear(self, _=None) -> None:
        """Press Clear: empty the comparison (finished runs stay cached)."""
        n = len(self.runs)
        self.runs, self._highlight = [], None
        self.message.value = ""
        self.status.value = (f"Cleared {n} run(s) from the comparison; {len(self.cache)} finished run(s) stay cached "
                             "(moving back to one of their settings shows it at once).")
        self._refresh()

    # -- what is shown ------------------------------------------------------------------------------
    def _metric_text(self, value) -> str:
        if value is None:
            return "–"
        return f"test {value:.3f} bits/char" if self.metric == "test_bits" else f"test accuracy {100 * value:.1f} %"

    def _divergence_html(self, entry: PanelRun) -> str:
        """The command line's own words (``hypernb run`` prints the same lines) for each diverged seed."""
        seeds = [s for s in entry.result.seeds if s.status == "diverged"]
        warned = [s for s in entry.result.seeds if s.warning]  # ok, with a warning (as the CLI prints it)
        if not seeds and not warned:
            return ""
        lines = "".join(f"<li>{html.escape(f'seed {s.seed}: {s.status} at step {s.diverged_at_step}: {s.reason}')}"
                        "</li>" for s in seeds)
        lines += "".join(f"<li>{html.escape(f'seed {s.seed}: warning: {s.warning}')}</li>" for s in warned)
        what = "diverged</b> — it stays in the comparison, marked ×" if seeds else "finished, with a warning</b>"
        return (f"<div style='color:#8a1c00;white-space:normal'><b>{html.escape(self.label(entry))} "
                f"{what}:<ul style='margin:2px 0'>{lines}</ul></div>")

    def _changed(self) -> list[str]:
        """The settings that differ between the runs in the comparison."""
        mine = [r.settings for r in self.runs if r.settings is not None]
        return [f for f in FIELDS if len({json.dumps(s.get(f)) for s in mine}) > 1]

    def label(self, entry: PanelRun, changed: list[str] | None = None) -> str:
        """A run's label: what differs from the other runs in the comparison (everything for one run)."""
        if entry.label is not None:
            return entry.label
        s = entry.settings
        changed = self._changed() if changed is None else changed
        show = set(changed) if changed else set(FIELDS)
        parts = []
        if show & {"optimizer", "hyperoptimizer", "height"}:
            parts.append(tower_label(s["optimizer"], s["hyperoptimizer"], s["height"]))
        if "alpha" in show:
            parts.append(f"α={_num(s['alpha'])}")
        if show & {"kappa", "kappa_rule"} and s["height"]:
            rule = s["kappa_rule"]
            if rule in ("paper", "report"):
                parts.append(f"κ {rule}")
            else:  # (at height 1 the rule has no level to act on: κ₁ alone)
                parts.append(f"κ₁={_num(s['kappa'])}" + (f" ({rule})" if s["height"] > 1 else ""))
        if "mu" in show and s["mu"] is not None and (s["mu"] or "mu" in changed):
            parts.append(f"μ={_num(s['mu'])}")
        if "epochs" in show and (changed or s["epochs"] > 1):
            parts.append(f"{s['epochs']} epoch{'s' if s['epochs'] > 1 else ''}")
        return f"#{entry.number} " + ", ".join(parts or [tower_label(s["optimizer"], s["hyperoptimizer"],
                                                                        s["height"])])

    def _full(self, entry: PanelRun) -> str:
        """Every setting of a run (an example's from its record: it may come from another profile)."""
        if entry.settings is None:
            return _config_text(entry.result.config) if entry.result is not None else entry.label or ""
        s = entry.settings
        parts = [tower_label(s["optimizer"], s["hyperoptimizer"], s["height"]), f"α0 = {_num(s['alpha'])}"]
        if s["mu"] is not None:
            parts.append(f"μ = {_num(s['mu'])}")
        if s["height"]:
            ks = kappa_levels(s["kappa_rule"], s["kappa"] or 0.0, s["alpha"], s["height"], self.kappa_decay)
            rule = f"κ rule {kappa_rule_text(s['kappa_rule'], self.kappa_decay)}: " if s["height"] > 1 else ""
            parts.append(rule + ", ".join(f"κ{_sub(i + 1)} = {_num(k)}" for i, k in enumerate(ks)))
        parts.append(f"{s['epochs']} epoch{'s' if s['epochs'] > 1 else ''}")
        return ", ".join(parts + _seeds_text(list(self.fixed.get("seeds") or [0])))

    def _status_text(self, entry: PanelRun) -> str:
        if entry.status == "running":
            return f"running (epoch {entry.epoch} of {self.progress.max} done)"
        if entry.status == "interrupted":
            return f"interrupted after {entry.epoch} epoch(s)"
        if entry.status == "error":
            return f"error: {entry.error}"
        out = []  # per seed that did not simply finish: diverged, or finished with a warning
        seeds = entry.result.seeds if entry.result is not None else []
        for s in seeds:
            which = f" (seed {s.seed})" if len(seeds) > 1 else ""
            if s.status == "diverged":
                level = re.search(r"at level (\d+)", s.reason or "")
                out.append(f"diverged at step {s.diverged_at_step}" + (f", level {level.group(1)}" if level else "")
                           + which)
            elif s.warning:
                out.append(f"ok, but {s.warned_of}{which}")
        return "; ".join(out) or "ok"

    @staticmethod
    def _time_text(entry: PanelRun) -> str:
        if entry.time_s is None:
            return "–"
        if entry.trained_with > 1:  # not this run's own cost: compare it with runs batched alike only
            return f"{entry.time_s:.1f}\u00a0s, batched with {entry.trained_with - 1} other run(s)"
        return f"{entry.time_s:.1f}\u00a0s"

    def _learned_text(self, entry: PanelRun) -> str:
        """Final learned values (mean over the seeds that finished): α, κ₁…, μ, γ, β where learned."""
        from .viz import learned_momenta, level_name

        r = entry.result
        if r is None or not r.summary:
            return "–"
        names = [k[len("final_"):] for k in r.summary if k.startswith("final_")]
        if not names:
            return "–"
        if "step_size" in names:  # a learning-rate-free peer: the step size it estimated, at the end
            return f"its own step size = {r.summary['final_step_size']['mean']:.3g} (estimated, not learned by κ)"
        height = max(n.count("hyper.") for n in names)
        if height == 0:
            return "nothing learned (height 0)"
        order = {"alpha": 0, "mu": 1, "gamma": 1, "beta1": 2, "beta2": 3}
        moved = set(learned_momenta(r))  # level 0's μ, γ, β that were learned (Adam_α's β are not)
        keep = []
        for n in sorted(names, key=lambda n: (n.count("hyper."), order.get(n.rsplit(".", 1)[-1], 9))):
            base, level = n.rsplit(".", 1)[-1], n.count("hyper.")
            if (base == "alpha" and level < height) or n in moved:  # (the top level's κ is fixed)
                keep.append(n)
        return ", ".join(f"{level_name(n)} = {r.summary[f'final_{n}']['mean']:.3g}" for n in keep) or "–"

    def _table_html(self) -> str:
        if not self.runs:
            return ""
        metric = "test bits/char" if self.metric == "test_bits" else "test accuracy"
        changed = self._changed()
        td = "style='padding:3px 8px;border-bottom:1px solid #ddd;vertical-align:top;white-space:normal;" \
             "overflow-wrap:break-word'"
        head = "".join(f"<th {td} align='left'>{h}</th>" for h in
                       ("run (what changed)", "settings", "status", metric, "learned values (end)", "time"))
        rows = []
        for entry in self.runs:
            r = entry.result
            value = r.mean(self.metric) if r is not None and entry.status == "ok" else None
            shown = "–" if value is None else (f"{value:.3f}" if self.metric == "test_bits" else f"{100 * value:.1f} %")
            bg = "background:#fff3c4;" if entry is self._highlight else ""
            color = {"diverged": "color:#a11;", "error": "color:#a11;"}.get(entry.status, "")
            cells = (html.escape(self.label(entry, changed)), html.escape(self._full(entry)),
                     html.escape(self._status_text(entry)), shown, html.escape(self._learned_text(entry)),
                     self._time_text(entry))
            nowrap = td.replace("white-space:normal", "white-space:nowrap")  # a number and its unit stay together
            rows.append(f"<tr class='hypernb-row hypernb-row-{entry.status}' style='{bg}{color}'>"
                        + "".join(f"<td {nowrap if i == 3 else td}>{c}</td>" for i, c in enumerate(cells))
                        + "</tr>")
        return ("<table class='hypernb-runs' style='border-collapse:collapse;width:100%;font-size:12px;"
                f"table-layout:auto'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")

    def _entries(self) -> list:
        changed = self._changed()
        return [(e.number, self.label(e, changed) + self._legend_status(e), e.view(), e is self._highlight)
                for e in self.runs if e.status != "error"]

    @staticmethod
    def _legend_status(entry: PanelRun) -> str:
        """What the legend adds to a run's label: how it ended, unless it simply finished (a run that is
        ok but warned, as one whose loss exploded early, must not read as a normal run in the figure)."""
        if entry.status not in ("ok", "running"):
            return f" — {entry.status}"
        warned = {s.warned_of for s in entry.view().seeds if s.warned_of}
        return f" — warning: {'; '.join(sorted(warned))}" if warned else ""

    def _refresh(self, figure: bool = True) -> None:
        from .viz import figure_png, panel_figure

        self.table.value = self._table_html()
        if figure:
            self.figure.value = figure_png(panel_figure(self._entries(), self.metric))
            self.figure.layout.display = None

    def _examples(self, examples) -> list[PanelRun]:
        """Finished Results shown from the start (``explorer(examples={label: Result})``)."""
        if not examples:
            return []
        items = examples.items() if isinstance(examples, dict) else [(None, r) for r in examples]
        out = []
        for label, result in items:
            self._count += 1
            entry = PanelRun(self._count, None, result=result, status="ok" if result.ok else "diverged",
                             label=f"#{self._count} {label or result.config.get('optimizer', '')}")
            entry.time_s = sum(s.time_s for s in result.seeds) or None
            entry.trained_with = max(((getattr(s, "trained_with", 1) or 1) for s in result.seeds), default=1)
            out.append(entry)
        return out

    # -- display ------------------------------------------------------------------------------------
    def header(self) -> str:
        s = self.settings()
        parts = [f"{self.task} (profile {self.profile})", tower_label(s["optimizer"], s["hyperoptimizer"],
                                                                      s["height"]), f"α0 = {_num(s['alpha'])}"]
        if s["mu"]:
            parts.append(f"μ = {_num(s['mu'])}")
        if s["height"]:
            parts.append(f"κ rule {kappa_rule_text(s['kappa_rule'], self.kappa_decay)}: "
                         + ", ".join(f"κ{_sub(i + 1)} = {_num(k)}" for i, k in enumerate(self.kappas(s)[:4])))
        parts.append(f"{s['epochs']} epoch(s)")
        seeds = list(self.fixed.get("seeds") or [0])
        if len(seeds) > 1:
            parts.append(f"mean of {len(seeds)} seeds")
        return " · ".join(parts)

    def preview_png(self) -> bytes:
        """A static picture of the panel (its settings and the runs in its comparison)."""
        from .viz import figure_png, panel_figure

        fig = panel_figure(self._entries(), self.metric,
                           header="Interactive panel — run the notebook to use the panel (it trains only when Run is "
                                  "pressed; each run is added to these figures).\nSettings: " + self.header(),
                           note="run the notebook, then press Run: each run adds its curves here")
        return figure_png(fig)

    def __repr__(self) -> str:
        return f"hypernb explorer: {self.header()} — run the notebook to use the panel"

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The live widget for a frontend that runs it; a static picture and one line for any other
        viewer (an unexecuted or untrusted notebook, nbviewer, a file listing), never ``VBox(...)``."""
        data = dict(self.widget._repr_mimebundle_())
        data["text/plain"] = repr(self)
        data["image/png"] = base64.b64encode(self.preview_png()).decode("ascii")
        return data


def explorer(task: str = "mnist-mlp", profile: str = "smoke", optimizer: str = "sgd", hyperoptimizer: str = "sgd",
             alpha: float = 0.01, mu: float = 0.0, kappa: float = 1e-3, height: int = 1, epochs: int = 1,
             kappa_rule: str | None = None, kappa_decay: float = KAPPA_DECAY, examples=None, **fixed) -> Explorer:
    """Build the panel (nothing is trained until Run is pressed).

    ``kappa`` is κ₁, the level-1 step size; ``kappa_rule`` sets the higher levels' κ (see
    ``KAPPA_RULES``; default: :func:`default_kappa_rule`), ``kappa_decay`` is the "decay" rule's d.
    ``examples``: finished Results ({label: Result} or a list) shown in the comparison from the start
    (and in the static picture). Other keywords are fixed RunConfig fields (``train_limit=…``)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {OPTIMIZERS}")
    if hyperoptimizer not in HYPEROPTIMIZERS:
        raise ValueError(f"unknown hyperoptimizer {hyperoptimizer!r}; choose from {HYPEROPTIMIZERS}")
    rule = kappa_rule or default_kappa_rule(optimizer, hyperoptimizer)
    if rule not in KAPPA_RULES:
        raise ValueError(f"unknown κ rule {rule!r}; choose from {list(KAPPA_RULES)}")
    if not (0 < kappa_decay <= 1):
        raise ValueError(f"kappa_decay must be in (0, 1], got {kappa_decay!r}")
    checked = [("alpha", alpha, ALPHA_EXPONENTS, "")]
    if hyperoptimizer != "none" and height != 0:  # (without a hyper level κ is not used)
        checked.append(("kappa", kappa, KAPPA_EXPONENTS, "; for no hyper level use height=0 or hyperoptimizer='none'"))
    for name, value, (lo, hi), why in checked:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be a number > 0 (its slider is logarithmic: 1e{lo} to 1e{hi}, widened to "
                             f"include a value given here), got {value!r}{why}")
    if "device" in fixed:  # a device this machine lacks fails here, not at every Run
        from .train import resolve_device

        resolve_device(fixed["device"])
    values = dict(optimizer=optimizer, hyperoptimizer=hyperoptimizer, alpha=float(alpha), mu=float(mu),
                  kappa=float(kappa), kappa_rule=rule, height=int(height), epochs=int(epochs))
    panel_config(task, profile, optimizer, hyperoptimizer, alpha, mu, kappa, height, epochs, kappa_rule=rule,
                 kappa_decay=kappa_decay, **fixed)  # a typo in a fixed field fails here, not at the first Run
    return Explorer(task, profile, values, kappa_decay, fixed, examples)
