"""Today's learning-rate-free optimizers, from their own PyPI packages, so that ``hypernb.run``
trains them like any hypernb optimizer (for notebook 06).

Each is wrapped in :class:`Peer`, which gives it the few things the training loop reads from a
hypernb optimizer: ``hyperparameters()`` (here the step size it uses now: d·lr for Prodigy and
D-Adaptation, the DoG step η, Schedule-Free's lr), ``nonfinite()`` and ``check_finite()`` (the loss
check covers them), and ``train()``/``eval()`` (Schedule-Free evaluates at its averaged point).
They train one configuration at a time: their step-size estimates sum over every parameter, so K
configurations in one model would share one estimate.
"""
from __future__ import annotations

import importlib

import torch

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


def build(name: str, params, alpha: float | None = None, knob: float | None = None) -> "Peer":
    """The peer ``name`` over ``params``: ``alpha`` its lr (default: the package's), ``knob`` its
    remaining setting (Prodigy/D-Adaptation d0, DoG reps_rel; for Schedule-Free the lr itself)."""
    package, cls, _, keyword, default_lr = PEERS[name]
    try:
        module = importlib.import_module(package)
    except ImportError as e:
        raise ImportError(f"the optimizer {name!r} comes from the package {package!r}, which is not installed: "
                          f"{INSTALL}") from e
    kw = {"lr": default_lr if alpha is None else alpha}
    if knob is not None:
        kw[keyword] = knob
    return Peer(name, getattr(module, cls)(params, **kw))


class Peer:
    """A peer optimizer with the interface the training loop reads (see the module docstring)."""

    def __init__(self, name: str, opt: torch.optim.Optimizer):
        self.name, self.opt = name, opt

    def __getattr__(self, item):  # zero_grad, step, param_groups, state_dict, hooks, …
        return getattr(self.opt, item)

    def step(self, closure=None):
        return self.opt.step(closure)

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

    def train(self) -> None:
        if hasattr(self.opt, "train"):
            self.opt.train()

    def eval(self) -> None:
        if hasattr(self.opt, "eval"):
            self.opt.eval()

    def state_dict(self) -> dict:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state)
