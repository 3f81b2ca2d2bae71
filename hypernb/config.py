"""One flat, validated configuration for a training run, and the smoke/demo/full profiles.

A field left at ``None`` takes its value from the profile (per task); anything set explicitly wins.
``RunConfig.from_dict`` rejects unknown keys (papermill and YAML typos must not pass silently).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from .errors import did_you_mean
from .optim.tower import FAMILIES, KAPPA_RULES, MAX_LEVELS as MAX_HEIGHT, parse_tower

TASKS = {
    # task: (dataset, model, kind)
    "mnist-mlp": ("mnist", "mlp", "image"),
    "cifar10-resnet20": ("cifar10", "resnet20", "image"),
    "cifar10subset-resnet20": ("cifar10subset", "resnet20", "image"),
    "warpeace-lstm": ("warpeace", "lstm", "text"),
    "shakespeare-lstm": ("shakespeare", "lstm", "text"),
}
PROFILES = ("smoke", "demo", "full")
ADAMS = ("adam", "adamw", "adambaydin", "adamunclamped")
RULE_FIELDS = ("mu", "beta1", "beta2", "gamma")  # fields that set a hyperparameter of the first level's rule


def _plain(value):
    """NumPy (and torch) numbers and arrays as Python ones, paths as strings: a record's config.json must hold what a
    rerun compares equal (np.int64(1) was written as the string 'np.int64(1)', and the rerun was refused)."""
    import os

    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if type(value).__module__ == "numpy" or (type(value).__module__ == "torch" and hasattr(value, "tolist")):
        return value.tolist() if hasattr(value, "tolist") else value  # (a 0-d array or tensor: its number)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "float64", "bfloat16")
AUTOCAST = ("none", "bf16", "fp16")
# the names torch.optim and the CLI use, accepted in a config dict for the fields they mean
CONFIG_ALIASES = {"lr": "alpha", "momentum": "mu", "opt": "optimizer"}


def field_names(values: Mapping) -> dict:
    """``values`` with the aliases above renamed to their fields (refusing both names for one setting)."""
    out = dict(values)
    for alias, name in CONFIG_ALIASES.items():
        if alias in out:
            if name in out and out[name] is not None and out[alias] is not None:
                raise ValueError(f"config gives both {alias!r} and {name!r} (the same setting); give one")
            value = out.pop(alias)
            out[name] = value if value is not None else out.get(name)
    return out

# per (profile, model): defaults for the fields left at None
_PROFILE_DEFAULTS = {
    "smoke": {
        "mlp": dict(epochs=1, batch_size=128, train_limit=2048, test_limit=1024),
        "resnet20": dict(epochs=1, batch_size=64, train_limit=256, test_limit=256),
        "lstm": dict(epochs=1, batch_size=32, seq_len=64, train_limit=65536, test_limit=16384, hidden=64),
    },
    "demo": {  # minutes on a laptop CPU with the offline data
        "mlp": dict(epochs=2, batch_size=256),
        "resnet20": dict(epochs=3, batch_size=128),
        "lstm": dict(epochs=4, batch_size=64, seq_len=100, hidden=128),
    },
    "full": {  # the paper's / report's settings, for a GPU
        "mlp": dict(epochs=30, batch_size=256),
        "resnet20": dict(epochs=200, batch_size=128),
        "lstm": dict(epochs=50, batch_size=128, seq_len=100, hidden=128),
    },
}


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class RunConfig:
    """Everything that defines a run. ``help`` metadata documents each field (and the CLI)."""

    task: str = _f("mnist-mlp", f"what to train: {', '.join(TASKS)}")
    optimizer: str = _f("adam/sgd", "tower, left to right, e.g. 'adam', 'adam/sgd', 'sgd/sgd*3'; "
                                    f"names: {', '.join(FAMILIES)}; or a learning-rate-free peer: "
                                    "prodigy, dadapt_adam, schedulefree_adamw, dog")
    alpha: float | None = _f(None, "level-0 step size α (default: 1e-3 for Adam, 1e-2 otherwise; a peer's own lr)")
    d0: float | None = _f(None, "a learning-rate-free peer's remaining setting: Prodigy's and D-Adaptation's initial "
                                "estimate d0, DoG's reps_rel (default: the package's)")
    mu: float = _f(0.0, "SGD momentum μ (momentum is learned only when μ ≠ 0)")
    beta1: float = _f(0.9, "Adam β1")
    beta2: float = _f(0.999, "Adam β2")
    gamma: float = _f(0.99, "RMSProp γ")
    kappa: object = _f(1e-5, "hyper-step sizes κ: a number, one per level (list), or a rule: "
                              f"{', '.join(KAPPA_RULES)}")
    height: int | None = _f(None, "tower height: repeat the last optimizer of the tower until it has "
                                  "this many hyper levels (0 = the plain optimizer)")
    sign_safe: bool = _f(False, "store log α so every step size stays positive")
    weight_decay: float = _f(0.0, "weight decay λ (L2 as torch.optim; decoupled for adamw)")
    schedule: str = _f("none", "α schedule on top of the optimizer, a multiplier on the learned α: none, step (He et "
                               "al. 2016: α×0.1 at 50% and 75% of the epochs) or cosine (α·(1+cos(π·epoch/epochs))/2)")
    epochs: int | None = _f(None, "epochs (profile default)")
    batch_size: int | None = _f(None, "batch size (profile default)")
    seeds: list = _f((0,), "seeds; several give mean ± std")
    device: str = _f("auto", f"{', '.join(DEVICES)} (auto: cuda if available)")
    dtype: str = _f("float32", f"parameter dtype: {', '.join(DTYPES)}")
    compiled: bool = _f(False, "on a CPU, compile the optimizer step with torch.compile (seconds once, then about 2× "
                               "faster for Adam/SGD; needs a C++ compiler); on CUDA the step is a CUDA graph anyway")
    autocast: str = _f("none", f"mixed precision for forward/backward: {', '.join(AUTOCAST)}")
    data_root: str | None = _f(None, "data folder (default: $HYPERNB_DATA, else the first of ./data, this checkout's "
                                         "data/ and shared/data next to this checkout that holds a dataset, else "
                                         "this checkout's data/, where downloads go)")
    download: bool = _f(True, "download missing datasets (needs network)")
    log_every: int = _f(10, "record the loss and every hyperparameter every k steps")
    out_dir: str | None = _f(None, "write config/metrics/env/checkpoints here; rerunning resumes")
    keep_checkpoint: bool = _f(False, "keep each finished seed's last checkpoint (model + optimizer state)")
    profile: str = _f("demo", f"default sizes: {', '.join(PROFILES)}")
    train_limit: int | None = _f(None, "use only the first N training examples (characters for text)")
    val_examples: int = _f(0, "hold out the last N training examples (characters for text) as a validation "
                              "split, evaluated every epoch (val_loss, val_acc): for choosing α or κ without the "
                              "test set")
    test_limit: int | None = _f(None, "use only the first N test examples (characters for text)")
    max_steps: int | None = _f(None, "stop each epoch after this many steps")
    augment: bool | None = _f(None, "CIFAR crop+flip augmentation (default on for CIFAR)")
    hidden: int | None = _f(None, "MLP / LSTM hidden width (profile default; MLP 128)")
    activation: str = _f("tanh", "MLP activation: tanh (paper) or relu (report)")
    output_tanh: bool = _f(False, "MLP: squash the logits with tanh too, as the model of arXiv v1's appendix and of "
                                  "the paper package's README (the loss cannot go below 0.797)")
    seq_len: int | None = _f(None, "characters per training window (text tasks)")
    lstm_layers: int = _f(2, "LSTM layers")
    dropout: float = _f(0.0, "LSTM dropout (the report used 0.5)")
    text_split: str = _f("contiguous", "text split: contiguous (first 90% train, last 10% validation), or "
                                       "shuffled: the COMP6258 report's bug (random character positions), "
                                       "kept to demonstrate the unigram plateau")
    quiet: bool = _f(False, "no progress bar")

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """A validated config from a mapping. The names torch.optim users and the CLI use (``lr``,
        ``momentum``, ``opt``) are accepted for ``alpha``, ``mu``, ``optimizer``; records keep the field names."""
        if not isinstance(values, Mapping):
            raise ValueError(f"a run configuration is a dict (or RunConfig) such as {{'task': 'mnist-mlp', "
                             f"'optimizer': 'adam/sgd'}}, got {type(values).__name__} {values!r}")
        values = {k: _plain(v) for k, v in field_names(values).items()}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}{did_you_mean(unknown, known)}; valid keys: "
                             f"{sorted(known)}")
        return cls(**values).validate()

    def replace(self, **changes) -> "RunConfig":  # (changes go through from_dict)
        return RunConfig.from_dict({**dataclasses.asdict(self), **field_names(changes)})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["seeds"] = list(d["seeds"])
        if isinstance(d["kappa"], tuple):
            d["kappa"] = list(d["kappa"])
        return d

    # -- derived --------------------------------------------------------------------------------
    @property
    def dataset(self) -> str:
        return TASKS[self.task][0]

    @property
    def model_name(self) -> str:
        return TASKS[self.task][1]

    @property
    def is_text(self) -> bool:
        return TASKS[self.task][2] == "text"

    @property
    def is_peer(self) -> bool:
        from .peers import is_peer

        return is_peer(self.optimizer)

    def rule_fields(self) -> set:
        """The fields of RULE_FIELDS that the first level's family takes: those its rule declares (so a family
        registered in ``optim.FAMILIES`` gets its own μ, β or γ from the config too)."""
        rule = FAMILIES[self.tower_names()[0]]()._rule
        return {h.name for h in rule.hypers()} & set(RULE_FIELDS)

    def tower_names(self) -> list[str]:
        if self.is_peer:
            return [self.optimizer]
        names = parse_tower(self.optimizer)
        if self.height is not None:
            if self.height < len(names) - 1:
                names = names[: self.height + 1]
            else:
                names = names + [names[-1]] * (self.height + 1 - len(names))
        return names

    def resolved(self) -> "RunConfig":
        """The config with every profile default filled in."""
        defaults = _PROFILE_DEFAULTS[self.profile][self.model_name]
        changes = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if self.hidden is None and "hidden" not in changes:
            changes["hidden"] = 128
        if self.augment is None:
            changes["augment"] = self.dataset.startswith("cifar")
        if self.alpha is None and not self.is_peer:
            changes["alpha"] = 1e-3 if self.tower_names()[0] in ADAMS else 1e-2
        return dataclasses.replace(self, **changes)

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> "RunConfig":
        def choice(name, options):
            value = getattr(self, name)
            if value not in options:
                raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")

        choice("task", TASKS)
        choice("profile", PROFILES)
        choice("device", DEVICES)
        choice("dtype", DTYPES)
        choice("autocast", AUTOCAST)
        choice("activation", ("tanh", "relu"))
        choice("schedule", ("none", "step", "cosine"))
        choice("text_split", ("contiguous", "shuffled"))
        choice("compiled", (True, False))
        choice("output_tanh", (True, False))
        for name in ("out_dir", "data_root"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a folder path (a string), got {getattr(self, name)!r}")
        for name in ("sign_safe", "keep_checkpoint", "download"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.augment is not None and not isinstance(self.augment, bool):
            raise ValueError(f"augment must be True, False or None (the task's default), got {self.augment!r}")
        if self.augment and not self.dataset.startswith("cifar"):
            raise ValueError(f"augment is CIFAR's crop and flip; {self.task} has no CIFAR images: drop augment")
        if self.autocast != "none" and self.dtype == "float64":
            raise ValueError(f"autocast={self.autocast!r} casts float32 operations only: with dtype='float64' it would "
                             "change nothing; drop autocast, or train in float32")
        if self.output_tanh and self.model_name != "mlp":
            raise ValueError(f"output_tanh squashes the MLP's logits; {self.task} has no MLP: drop output_tanh")
        if self.height is not None and (not isinstance(self.height, numbers.Integral) or isinstance(self.height, bool)
                                        or self.height < 0):  # (checked before a tower is built from it)
            raise ValueError(f"height must be an integer >= 0, got {self.height!r}")
        if isinstance(self.height, numbers.Integral) and self.height > MAX_HEIGHT:
            raise ValueError(f"height must be at most {MAX_HEIGHT} (every level is built and stepped), got {self.height}")
        if len(self.tower_names()) > MAX_HEIGHT + 1:  # (also raises on unknown optimizer names)
            raise ValueError(f"{self.optimizer!r} has {len(self.tower_names()) - 1} hyper levels; at most {MAX_HEIGHT}")
        if not self.is_peer:
            family, takes = self.tower_names()[0], self.rule_fields()
            for f in fields(self):
                if f.name in RULE_FIELDS and f.name not in takes and getattr(self, f.name) != f.default:
                    raise ValueError(f"{f.name}={getattr(self, f.name)!r} is not a hyperparameter of {family} (it takes "
                                     f"{', '.join(['alpha', *sorted(takes)])}): drop {f.name}")
        if self.is_peer:  # a peer's package takes its lr, d0 (or reps_rel) and weight decay, nothing of a tower's
            for f in fields(self):
                if f.name in (*RULE_FIELDS, "kappa", "sign_safe") and getattr(self, f.name) != f.default:
                    raise ValueError(f"{f.name}={getattr(self, f.name)!r} is not a setting of {self.optimizer}, a "
                                     "learning-rate-free peer (it takes alpha as its lr, d0 and weight_decay): "
                                     f"drop {f.name}")
        elif self.d0 is not None:
            raise ValueError(f"d0={self.d0!r} is a learning-rate-free peer's setting (Prodigy's, D-Adaptation's d0, "
                             f"DoG's reps_rel); {self.optimizer} does not take it: drop d0")
        if self.is_peer and self.compiled:
            raise ValueError(f"compiled=True compiles a hypernb tower's step; {self.optimizer} is a peer's own "
                             "optimizer: drop compiled")
        if self.is_peer and self.height:
            raise ValueError(f"{self.optimizer} is a learning-rate-free peer, not a tower: height must be 0 or None")
        if self.d0 is not None and self.optimizer == "schedulefree_adamw":
            raise ValueError("schedulefree_adamw has no d0 setting: vary its lr with alpha")
        if self.d0 is not None and (not isinstance(self.d0, numbers.Real) or isinstance(self.d0, bool)
                                    or not math.isfinite(self.d0) or self.d0 <= 0):
            raise ValueError(f"d0 must be a finite number > 0, got {self.d0!r}")
        if isinstance(self.seeds, numbers.Integral) and not isinstance(self.seeds, bool):
            n = int(self.seeds)  # refused as a sweep spec's `seeds: 5` is: seed 5, or 5 seeds?
            raise ValueError(f"seeds is a list of seeds, got the number {n}: write [{n}] for seed {n}, or "
                             f"{list(range(n)) if 0 < n <= 10 else '[0, 1, 2]'} for {n} seeds")
        if isinstance(self.seeds, (str, bytes, dict)) or not hasattr(self.seeds, "__iter__"):  # range(3) is fine
            raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {self.seeds!r}")
        self.seeds = tuple(self.seeds)
        if not self.seeds or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and 0 <= s < 2 ** 32
                                     for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty list of integers from 0 to 2**32 - 1, got {self.seeds!r}")
        repeated = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
        if repeated:  # the same seed twice is the same run twice: it would count as two in the summary's n
            raise ValueError(f"seeds {list(self.seeds)} repeat {repeated}; each seed is one run, so list each once")
        if not isinstance(self.val_examples, numbers.Integral) or isinstance(self.val_examples, bool) \
                or self.val_examples < 0:
            raise ValueError(f"val_examples must be an integer >= 0, got {self.val_examples!r}")
        for name in ("epochs", "batch_size", "log_every", "train_limit", "test_limit", "max_steps", "hidden",
                     "seq_len", "lstm_layers"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, lo, hi in (("beta1", 0, 1), ("beta2", 0, 1), ("gamma", 0, 1)):
            v = getattr(self, name)
            if not isinstance(v, numbers.Real) or not lo < v < hi:
                raise ValueError(f"{name} must lie in the open interval (0, 1), got {v!r}")
        if not isinstance(self.mu, numbers.Real) or not 0 <= self.mu < 1:
            raise ValueError(f"mu must lie in [0, 1), got {self.mu!r}")
        if self.alpha is not None and (not isinstance(self.alpha, numbers.Real) or not math.isfinite(self.alpha)
                                       or self.alpha < 0):
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        if (not isinstance(self.weight_decay, numbers.Real) or isinstance(self.weight_decay, bool)
                or not math.isfinite(self.weight_decay) or self.weight_decay < 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if not isinstance(self.dropout, numbers.Real) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        k = self.kappa
        if isinstance(k, dict):
            if self.tower_names()[1:] != ["sgdperparam"]:
                raise ValueError("a dict kappa (one κ per hyperparameter) needs optimizer '<name>/sgdperparam'")
            if not all(isinstance(x, numbers.Real) and math.isfinite(x) and x >= 0 for x in k.values()):
                raise ValueError(f"every kappa must be a finite number >= 0, got {k!r}")
        elif isinstance(k, str):
            if k not in KAPPA_RULES:
                number = ""
                with contextlib.suppress(ValueError):
                    if math.isfinite(float(k)) and float(k) >= 0:  # (not "inf" or "-1": no κ at all)
                        number = f" ({float(k):g} as a number: kappa={float(k):g}, not the string {k!r})"
                raise ValueError(f"kappa rule must be one of {sorted(KAPPA_RULES)}, got {k!r}{number}")
        elif isinstance(k, (list, tuple)):
            if len(k) != len(self.tower_names()) - 1:
                at = "" if self.height is None else f" at height {self.height}"
                raise ValueError(f"kappa lists one value per hyper level: {len(self.tower_names()) - 1} "
                                 f"for {self.optimizer!r}{at}, got {len(k)}")
            if not all(isinstance(x, numbers.Real) and math.isfinite(x) and x >= 0 for x in k):
                raise ValueError(f"every kappa must be a finite number >= 0, got {k!r}")
        elif not isinstance(k, numbers.Real) or isinstance(k, bool) or not math.isfinite(k) or k < 0:
            raise ValueError(f"kappa must be a number >= 0, a list, or a rule name, got {k!r}")
        return self

    def compiles_on(self, params: list) -> bool:
        """Whether the optimizer over ``params`` compiles its step: asked for, and on a CPU (on CUDA
        the step is captured in a CUDA graph instead)."""
        return bool(self.compiled) and bool(params) and params[0].device.type == "cpu"
