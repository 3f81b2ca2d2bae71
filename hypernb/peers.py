"""Today's learning-rate-free optimizers, from their own PyPI packages, so that ``hypernb.run``
trains them like any hypernb optimizer (for notebook 06).

Each is wrapped in :class:`Peer`, which gives it the few things the training loop reads from a
hypernb optimizer: ``hyperparameters()`` (here the step size it uses now: d·lr for Prodigy and
D-Adaptation, the DoG step η, Schedule-Free's lr), ``nonfinite()`` and ``check_finite()`` (the loss
check covers them), and ``train()``/``eval()``: Schedule-Free evaluates at its averaged point, and
DoG at its polynomial-decay average (γ = 8, Shamir & Zhang 2013), as the DoG authors recommend and
their package implements (``dog.PolynomialDecayAverager``; kept here over the parameters so that it
checkpoints with the optimizer). A peer is built in training mode, ready to step in any loop; it is not
itself a ``torch.optim.Optimizer``: give ``peer.opt`` (the package's optimizer) to a learning-rate scheduler.
They train one configuration at a time: their step-size estimates sum over every parameter, so K
configurations in one model would share one estimate.
"""
from __future__ import annotations

import torch

from .errors import optional

# name → (package, class, the knob the notebook varies, its keyword, the package's default lr)
PEERS = {
    "prodigy": ("prodigyopt", "Prodigy", "d0", "d0", 1.0),
    "dadapt_adam": ("dadaptation", "DAdaptAdam", "d0", "d0", 1.0),
    "schedulefree_adamw": ("schedulefree", "AdamWScheduleFree", "lr", "lr", 0.0025),
    "dog": ("dog", "DoG", "r_ε (reps_rel)", "reps_rel", 1.0),
}
INSTALL = "pip install -e '.[peers]'   (prodigyopt, dadaptation, schedulefree, dog-optimizer)"


def is_peer(name: str) -> bool:
    return name in PEERS


def default_lr(name: str) -> float:
    return PEERS[name][4]


def build(name: str, params, alpha: float | None = None, knob: float | None = None,
          weight_decay: float = 0.0) -> "Peer":
    """The peer ``name`` over ``params``: ``alpha`` its lr (default: the package's), ``knob`` its
    remaining setting (Prodigy/D-Adaptation d0, DoG reps_rel; Schedule-Free has none besides its lr),
    ``weight_decay`` in each package's own sense (Prodigy and Schedule-Free decouple it as AdamW;
    D-Adaptation Adam and DoG add it to the gradient, as L2)."""
    if name not in PEERS:
        raise ValueError(f"unknown learning-rate-free peer {name!r}; choose from {', '.join(PEERS)} (hypernb's own "
                         "optimizers are in hypernb.optim)")
    package, cls, _, keyword, default = PEERS[name]
    if knob is not None and name == "schedulefree_adamw":
        raise ValueError("Schedule-Free AdamW has no d0-like setting; vary its lr (alpha) instead")
    params = list(params)
    module = optional(package, f"the optimizer {name!r}", INSTALL)
    kw = {"lr": default if alpha is None else alpha}
    if knob is not None:
        kw[keyword] = knob
    if weight_decay:
        kw["weight_decay"] = weight_decay
    return Peer(name, getattr(module, cls)(params, **kw))


class Peer:
    """A peer optimizer with the interface the training loop reads (see the module docstring)."""

    AVERAGE_GAMMA = 8.0  # DoG's polynomial-decay averaging (the package's default γ)

    def __init__(self, name: str, opt: torch.optim.Optimizer):
        self.name, self.opt = name, opt
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self.average = [p.detach().clone() for p in self.params] if name == "dog" else None
        self.averaged_steps = 0
        self._training = None  # the training point while the averaged one is in the parameters
        self.train()

    def __getattr__(self, item):  # zero_grad, param_groups, hooks, … (not for the attributes set above)
        if item in ("name", "opt", "params", "average", "averaged_steps", "_training"):
            raise AttributeError(item)
        return getattr(self.opt, item)

    def step(self, closure=None):
        out = self.opt.step(closure)
        if self.average is not None:  # x̄_t = (1 − w) x̄_{t−1} + w x_t, w = (1 + γ)/(t + γ)
            self.averaged_steps += 1
            w = (1.0 + self.AVERAGE_GAMMA) / (self.averaged_steps + self.AVERAGE_GAMMA)
            with torch.no_grad():
                for a, p in zip(self.average, self.params):
                    a.mul_(1.0 - w).add_(p, alpha=w)
        return out

    def step_size(self) -> float:
        group = self.opt.param_groups[0]
        if self.name in ("prodigy", "dadapt_adam"):
            return float(group["d"]) * float(group["lr"])
        if self.name == "dog":
            eta = group.get("eta")
            if not eta:
                return 0.0
            first = eta[0]
            return float(first) if not isinstance(first, torch.Tensor) else float(first.reshape(-1)[0])
        return float(group["lr"])

    def hyperparameters(self) -> dict:
        return {"step_size": torch.tensor(self.step_size(), dtype=torch.float64)}

    def nonfinite(self) -> dict:
        return {}

    def check_finite(self) -> None:
        pass

    @property
    def evaluates_elsewhere(self) -> bool:
        """Whether evaluation uses other weights than training (BatchNorm statistics then need a refresh)."""
        return self.average is not None or hasattr(self.opt, "eval")

    def train(self) -> None:
        """Put the training point into the parameters (idempotent)."""
        if hasattr(self.opt, "train"):
            self.opt.train()
        if self._training is not None:
            with torch.no_grad():
                for p, x in zip(self.params, self._training):
                    p.copy_(x)
            self._training = None

    def eval(self) -> None:
        """Put the evaluation point into the parameters (idempotent)."""
        if hasattr(self.opt, "eval"):
            self.opt.eval()
        if self.average is not None and self._training is None:
            self._training = [p.detach().clone() for p in self.params]
            with torch.no_grad():
                for p, a in zip(self.params, self.average):
                    p.copy_(a)

    def state_dict(self) -> dict:
        """The package's state dict, plus DoG's average (the loop takes it in training mode)."""
        state = self.opt.state_dict()
        if self.average is not None:
            state = {**state, "hypernb_average": [a.clone() for a in self.average],
                     "hypernb_averaged_steps": self.averaged_steps}
        return state

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        average, steps = state.pop("hypernb_average", None), state.pop("hypernb_averaged_steps", 0)
        self.opt.load_state_dict(state)
        if self.average is not None and average is not None:
            with torch.no_grad():
                for a, saved in zip(self.average, average):
                    a.copy_(saved)
            self.averaged_steps = steps
