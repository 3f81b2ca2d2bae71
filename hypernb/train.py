"""``run(config) -> Result``: the one entry point used by notebooks, sweeps, the CLI and the tests.

``run`` takes one configuration (trained for each of its seeds) or a list of them, and trains
compatible (configuration, seed) pairs together as one batched model (see :mod:`hypernb.groups`):
a grid of α0 × κ over five seeds is one training loop. Data stay on the device; the host reads
values only every ``log_every`` steps (to record the loss and check for divergence) and once per
evaluation.

With ``out_dir`` each configuration gets ``config.json``, ``env.json`` and ``metrics.json``,
written atomically; every epoch is checkpointed, and a rerun resumes where it stopped and ends
with exactly the metrics of an uninterrupted run. A seed that diverges — a non-finite value, a
training loss above ``EXPLODE_FACTOR`` times its first logged value — is recorded with its step and
reason and reports no numbers; the others go on. A run that is merely slow, or stuck at chance with a
finite loss, trains to the end and reports what it reached: no test on accuracy or on a loss that does
not fall tells a stalled run from a slow one reliably (both move by less than the noise of one batch),
and stopping a slow run would record chance for a run that learns.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import data as D
from . import io
from .config import RunConfig
from .groups import Member, batches_well_on_cpu, build_optimizer, plan
from .models import MLP, CharLSTM, ResNet20, batched
from .optim import NonFiniteError, Recorder
from .optim.base import select_configurations

# fields that do not change what is computed: a rerun may change them and still resume
NON_SEMANTIC = {"out_dir", "quiet", "data_root", "download", "device", "keep_checkpoint", "compiled"}
EXPLODE_FACTOR = 10.0  # a training loss above this × its first logged value counts as divergence
# on a CPU, runs still training leave their batch once a member diverged (see _without_stopped); off only for
# the baseline arm of benchmarks/diverged_members.py, which measures what it buys
LEAVE_DIVERGED_ON_CPU = True
MAX_BATCH_CPU = 32  # default largest group on a CPU (a GPU takes every compatible run at once)


@dataclass
class SeedResult:
    """Everything recorded for one seed."""

    seed: int
    status: str = "running"  # running | ok | diverged
    diverged_at_step: int | None = None
    reason: str | None = None
    epochs: list = field(default_factory=list)  # one dict of metrics per epoch
    steps: list = field(default_factory=list)  # global step of each logged training loss
    loss: list = field(default_factory=list)  # mean training loss over the last log_every steps
    trajectory: dict = field(default_factory=dict)  # {"step": [...], "alpha": [...], "hyper.alpha": [...]}
    final: dict = field(default_factory=dict)  # test metrics after the last epoch
    peak_memory_mb: float | None = None
    time_s: float = 0.0
    data: dict = field(default_factory=dict)  # what was trained on (says SUBSET for the CIFAR subset)
    trained_with: int = 1  # how many runs shared its training loop (batched), at its start (diverged ones leave)
    first_step_loss: float | None = None  # the training loss of the untrained model (its first batch)

    @property
    def warning(self) -> str | None:
        """Why a run that finished (ok) has poor or unchecked numbers, at length; None when it has none."""
        found = self._warned()
        return None if found is None else found[1]

    @property
    def warned_of(self) -> str | None:
        """:attr:`warning` in a few words, for one line among others (a Result's repr, the panel's table)."""
        found = self._warned()
        return None if found is None else found[0]

    def _warned(self) -> tuple[str, str] | None:
        """(a few words, at length). Two cases. Its training loss rose above ``EXPLODE_FACTOR`` × its first
        step's within the first logged window, which the divergence rule (against the first *logged* mean,
        as declared for the study) cannot see: the run stays ok, and the warning says why its numbers are
        poor. Or no loss was logged at all (a run shorter than ``log_every``), so only non-finite values
        were checked."""
        if self.status != "ok":
            return None
        if not self.loss and self.epochs:
            return ("no loss was logged", "no training loss was logged (the run is shorter than log_every steps), "
                    "so it was checked only for NaN/inf at each epoch's end, not for an exploding loss, and it has "
                    "no loss curve; lower log_every")
        if self.first_step_loss is None or not self.loss:
            return None
        worst = max(self.loss)
        if not worst > EXPLODE_FACTOR * max(self.first_step_loss, 1e-3):
            return None
        return "the loss exploded early", (
            f"its training loss reached {worst:.4g}, over {EXPLODE_FACTOR:g}× its first step's "
            f"{self.first_step_loss:.4g}; the divergence check compares with the first logged mean, "
            f"{self.loss[0]:.4g}, which was already that high, so this run counts as ok: the step size α0 "
            "is likely too large (in a tower, or κ: if α0 trains well alone, lower κ)")


@dataclass
class Result:
    """The outcome of ``run`` for one configuration: per-seed records and mean ± std over the
    seeds that finished."""

    config: dict
    seeds: list
    summary: dict
    env: dict
    out_dir: str | None = None

    @property
    def ok(self) -> bool:
        return all(s.status == "ok" for s in self.seeds)

    def mean(self, metric: str) -> float | None:
        return self.summary.get(metric, {}).get("mean")

    def to_dict(self) -> dict:
        return {"config": self.config, "seeds": [asdict(s) for s in self.seeds], "summary": self.summary,
                "env": self.env, "out_dir": self.out_dir}

    @classmethod
    def from_dict(cls, d: dict) -> "Result":
        return cls(d["config"], [SeedResult(**s) for s in d["seeds"]], d["summary"], d["env"], d.get("out_dir"))

    @classmethod
    def load(cls, out_dir, seeds: list[int] | None = None) -> "Result":
        """Read a finished (or partial) run back from its folder: every seed it holds, or ``seeds`` (in
        that order, with their own summary; a folder keeps every seed ever asked of it)."""
        path = Path(out_dir) / "metrics.json"
        saved = read_metrics(path)
        if not isinstance(saved.get("config"), dict) or not isinstance(saved.get("summary", {}), dict):
            raise io.wrong_json(path, METRICS, "its 'config' or 'summary' is not a mapping")
        config = {**saved["config"], "out_dir": str(out_dir)} if saved["config"].get("out_dir") else saved["config"]
        env = saved.get("env") if isinstance(saved.get("env"), dict) else {}
        found = read_seeds(saved, path)
        if seeds is None or [s.seed for s in found] == list(seeds):  # (its summary as it was written)
            return cls(config, found, saved.get("summary") or {}, env, str(out_dir))
        by_seed = {s.seed: s for s in found}
        chosen = [by_seed[s] for s in seeds if s in by_seed]
        return cls({**config, "seeds": list(seeds)}, chosen, summarize(chosen), env, str(out_dir))

    def __repr__(self) -> str:
        c = self.config
        # α0 and κ tell the runs of a grid apart (κ only where a level above learns something)
        setting = ([f"α0={c['alpha']:g}"] if isinstance(c.get("alpha"), (int, float)) else []) + (
            [f"κ={_short(c['kappa'])}"] if _levels_above(c) and c.get("kappa") is not None else [])
        parts = [f"{k}={v['mean']:.4g}±{v['std']:.2g}" for k, v in self.summary.items()
                 if k.startswith("test_") and v.get("mean") is not None]
        status = "ok" if self.ok else ", ".join(f"seed {s.seed}: {s.status}" for s in self.seeds if s.status != "ok")
        for what in dict.fromkeys(s.warned_of for s in self.seeds if s.warned_of):
            warned = [str(s.seed) for s in self.seeds if s.warned_of == what]
            status += f"; warning: {what} (seed {', '.join(warned)}: see .seeds[i].warning)"
        return f"Result({', '.join([str(c['task']), str(c['optimizer']), *setting, *parts])}; {status})"


def _levels_above(config: dict) -> int:
    """How many hyperoptimizer levels a config's tower has (0 for a plain optimizer or a peer)."""
    from .optim import parse_tower

    try:
        names = parse_tower(str(config.get("optimizer")))
    except ValueError:
        return 0
    height = config.get("height")
    return height if isinstance(height, int) and not isinstance(height, bool) else len(names) - 1


def _short(kappa) -> str:
    """κ as given: a number, a rule name, or one per level."""
    if isinstance(kappa, (list, tuple)):
        return "[" + ", ".join(_short(k) for k in kappa) + "]"
    return f"{kappa:g}" if isinstance(kappa, (int, float)) else str(kappa)


METRICS, CONFIG = "a run's metrics", "a run's configuration"
# what a group's checkpoint holds (written in _train_group, checked when a resume loads it)
CHECKPOINT_KEYS = ("model", "optimizer", "recorder", "results", "alive", "first_loss", "stopped", "epoch",
                   "global_step", "window", "window_n")
_SEED_FIELDS = {f.name for f in fields(SeedResult)}


def read_metrics(path: Path, fix: str | None = None) -> dict:
    """A run's metrics.json as a mapping; valid JSON of another kind is an error naming the file and the fix."""
    saved = io.read_json(path, what=METRICS)
    if not isinstance(saved, dict) or not isinstance(saved.get("seeds"), list):
        why = io.shape(saved) + (", without a list of 'seeds'" if isinstance(saved, dict) else ", not a mapping")
        raise io.wrong_json(path, METRICS, why, fix)
    return saved


def read_seeds(saved: dict, path: Path, fix: str | None = None) -> list[SeedResult]:
    """The seeds of metrics.json (read by :func:`read_metrics`) as SeedResults, each checked."""
    out = []
    for i, s in enumerate(saved["seeds"]):
        bad = None
        if not isinstance(s, dict):
            bad = f"seeds[{i}] is {io.shape(s)}, not a mapping"
        elif not isinstance(s.get("seed"), int) or isinstance(s.get("seed"), bool) or s["seed"] < 0:
            bad = f"seeds[{i}] has no seed number"
        elif not isinstance(s.get("status"), str):
            bad = f"seeds[{i}] has no status"
        elif set(s) - _SEED_FIELDS:
            bad = f"seeds[{i}] has unknown key(s) {sorted(set(s) - _SEED_FIELDS)}"
        if bad:
            raise io.wrong_json(path, METRICS, bad, fix)
        out.append(SeedResult(**_nan_for_null(s)))
    return out


def _nan_for_null(seed: dict) -> dict:
    """A seed as it was recorded: its numbers that were not finite are ``null`` in strict JSON
    (:func:`hypernb.io.write_json`), and NaN again here, so that a diverged run's loss curve keeps its
    length and its steps. (Records written before held ``NaN`` itself, which Python reads as it is.)"""
    nan = float("nan")
    out = dict(seed)
    if isinstance(seed.get("loss"), list):
        out["loss"] = [nan if v is None else v for v in seed["loss"]]
    if isinstance(seed.get("trajectory"), dict):
        out["trajectory"] = {k: [nan if v is None else v for v in vs] if isinstance(vs, list) else vs
                             for k, vs in seed["trajectory"].items()}
    if isinstance(seed.get("epochs"), list):
        out["epochs"] = [{k: nan if v is None else v for k, v in e.items()} if isinstance(e, dict) else e
                         for e in seed["epochs"]]
    if isinstance(seed.get("final"), dict):
        out["final"] = {k: nan if v is None else v for k, v in seed["final"].items()}
    return out


def read_config(path: Path) -> dict:
    """A run's config.json as a mapping (with at least its task and optimizer), else an error naming the fix."""
    old = io.read_json(path, what=CONFIG)
    if not isinstance(old, dict) or not {"task", "optimizer"} <= set(old):
        raise io.wrong_json(path, CONFIG, io.shape(old) + (", without 'task' and 'optimizer'" if isinstance(old, dict)
                                                           else ", not a mapping of config fields"),
                            "Delete it (rerunning writes it again), or restore it from a backup")
    return old


# -- data --------------------------------------------------------------------------------------------
@dataclass
class TaskData:
    """A task's tensors on the device; ``train(seed)`` is one run's seeded loader."""

    train: callable
    test: D.DeviceLoader
    kind: str  # image | text
    classes: int
    info: dict
    val: D.DeviceLoader | None = None  # held out from the training data (val_examples)


def prepare_data(c: RunConfig, device: torch.device, seed: int = 0) -> TaskData:
    root = D.data_root(c.data_root)
    with D.no_empty_folders_left(root):  # a failed download leaves no empty data folder behind
        return _prepare_data(c, root, device, seed)


def _prepare_data(c: RunConfig, root, device: torch.device, seed: int) -> TaskData:
    if c.is_text:
        corpus = D.load_corpus(c.dataset, root, c.download)
        train_codes = corpus.train[: c.train_limit] if c.train_limit else corpus.train
        val_codes = corpus.val[: c.test_limit] if c.test_limit else corpus.val
        held = None
        if c.val_examples:
            if c.val_examples >= len(train_codes) // 2:
                raise ValueError(f"val_examples={c.val_examples} leaves too little training text ({len(train_codes)})")
            train_codes, held = train_codes[:-c.val_examples], train_codes[-c.val_examples:]
        if c.text_split == "shuffled":  # the report's bug: characters at random positions, no context left
            gen = torch.Generator().manual_seed(seed)
            codes = torch.cat([corpus.train, corpus.val])
            codes = codes[torch.randperm(len(codes), generator=gen)]
            train_codes, val_codes = codes[: len(train_codes)], codes[len(corpus.train):][: len(val_codes)]
        train_w = D.windows(train_codes, c.seq_len).to(device)
        val_w = D.windows(val_codes, c.seq_len).to(device)
        if len(train_w) < c.batch_size:  # an epoch drops its last partial batch: not one step would be left
            raise ValueError(f"{len(train_codes)} training characters give {len(train_w)} windows (seq_len="
                             f"{c.seq_len}), fewer than one batch (batch_size={c.batch_size}): no training step "
                             "would run; lower batch_size or seq_len, or raise train_limit")
        info = {"vocab_size": corpus.vocab_size, "unigram_entropy_nats": corpus.unigram_entropy(),
                "train_chars": len(train_codes), "test_chars": len(val_codes),
                "split": ("contiguous: first 90% train, last 10% test" if c.text_split == "contiguous"
                          else "SHUFFLED characters (the report's bug, for demonstration)")}
        if held is not None:
            info["validation"] = f"the last {len(held)} training characters, held out"
        return TaskData(lambda s: D.DeviceLoader(train_w, None, c.batch_size, True, s, drop_last=True),
                        D.DeviceLoader(val_w, None, 256, False), "text", corpus.vocab_size, info,
                        None if held is None else D.DeviceLoader(D.windows(held, c.seq_len).to(device), None, 256,
                                                                 False))
    arrays = D.load_images(c.dataset, root, c.download)
    note = {"mnist": "MNIST (60,000 / 10,000)", "cifar10": "CIFAR-10 (50,000 / 10,000)",
            "cifar10subset": "CIFAR-10 SUBSET: first 4,000 train / 1,000 test images, not the full dataset"}[c.dataset]
    tx, ty, vx, vy = arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"]
    if c.train_limit:
        tx, ty = tx[: c.train_limit], ty[: c.train_limit]
    if c.test_limit:
        vx, vy = vx[: c.test_limit], vy[: c.test_limit]
    hx = hy = None
    if c.val_examples:
        if c.val_examples >= len(tx) // 2:
            raise ValueError(f"val_examples={c.val_examples} leaves too few training examples ({len(tx)})")
        tx, ty, hx, hy = tx[:-c.val_examples], ty[:-c.val_examples], tx[-c.val_examples:], ty[-c.val_examples:]
    dtype = getattr(torch, c.dtype)
    if c.dataset.startswith("cifar"):
        mean = torch.tensor(D.CIFAR_MEAN, device=device, dtype=dtype).view(1, 3, 1, 1)
        std = torch.tensor(D.CIFAR_STD, device=device, dtype=dtype).view(1, 3, 1, 1)
    else:  # MNIST as the paper's package loads it: ToTensor() only, pixels in [0, 1]
        mean, std = torch.zeros((), device=device, dtype=dtype), torch.ones((), device=device, dtype=dtype)

    def to_float(x):
        return (x.to(dtype) / 255.0 - mean) / std

    def train_transform(x, gen):
        return to_float(D.cifar_augment(x, gen) if c.augment else x)

    info = {"dataset": note, "train_examples": len(tx), "test_examples": len(vx), "augment": bool(c.augment)}
    if hx is not None:
        info["validation"] = f"the last {len(hx)} training examples, held out"
    tx, ty = tx.to(device), ty.to(device)
    plain = lambda x, g: to_float(x)  # noqa: E731
    return TaskData(
        lambda s: D.DeviceLoader(tx, ty, c.batch_size, True, s, train_transform),
        D.DeviceLoader(vx.to(device), vy.to(device), 1000, False, transform=plain), "image", 10, info,
        None if hx is None else D.DeviceLoader(hx.to(device), hy.to(device), 1000, False, transform=plain))


def build_model(c: RunConfig, task: TaskData) -> torch.nn.Module:
    if c.model_name == "mlp":
        return MLP(hidden=c.hidden, activation=c.activation, output_tanh=c.output_tanh)
    if c.model_name == "resnet20":
        return ResNet20()
    return CharLSTM(task.classes, hidden=c.hidden, layers=c.lstm_layers, dropout=c.dropout)


def _losses(out, y, kind) -> torch.Tensor:
    """Mean cross-entropy of each run ([K]) from outputs [K, B, …] and targets [K, B, …]."""
    K = out.shape[0]
    per = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none")
    return per.view(K, -1).mean(dim=1)


def _split(batch, kind):
    x, y = batch
    return (x[..., :-1], x[..., 1:]) if kind == "text" else (x, y)


def _forward(model, x, K: int, single: bool):
    """Outputs [K, B, …]: a plain model sees one run's batch, a batched one all K."""
    return model(x[0]).unsqueeze(0) if single else model(x)


@torch.no_grad()
def evaluate(model, loader: D.DeviceLoader, kind: str, K: int = 1, single: bool = True) -> list[dict]:
    """Mean loss and accuracy of each of the K runs over a whole split (one host sync at the end)."""
    model.eval()
    loss_sum = correct = count = None
    for batch in loader.epoch(0):
        x, y = _split(batch, kind)
        xs = x.unsqueeze(0).expand(K, *x.shape)  # shared by every run: not copied
        out = _forward(model, xs, K, single)
        n = y.numel()
        l_sum = _losses(out, y.unsqueeze(0).expand(K, *y.shape), kind).double() * n
        c_sum = (out.argmax(-1) == y.unsqueeze(0)).reshape(K, -1).sum(dim=1)
        loss_sum = l_sum if loss_sum is None else loss_sum + l_sum
        correct = c_sum if correct is None else correct + c_sum
        count = n if count is None else count + n
    model.train()
    out = []
    for loss, c in zip(loss_sum.tolist(), correct.tolist()):
        metrics = {"loss": loss / count, "acc": c / count}
        if kind == "text":
            metrics["bits"] = D.bits(metrics["loss"])
        out.append(metrics)
    return out


# -- the run -----------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """The torch device a config names ("auto": CUDA where there is one), or a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA GPU is available; use device='cpu' or 'auto'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """The one place seeds are set (data order uses per-epoch generators of its own)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def semantic(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in NON_SEMANTIC}


def grid(base: dict, **axes) -> list[dict]:
    """Every combination of ``axes`` on top of ``base``: ``grid(dict(task=…), alpha=[…], kappa=[…])``."""
    import itertools

    names = list(axes)
    return [{**base, **dict(zip(names, values))} for values in itertools.product(*axes.values())]


def run(config=None, *, batch: int | None = None, on_epoch_end=None, **given):
    """Train one configuration (a :class:`RunConfig` or dict, or its fields as keywords:
    ``run(task="mnist-mlp", optimizer="adam/sgd")``; returns a :class:`Result`) or a list of them
    (returns a list of Results in the same order), batching compatible runs.

    ``batch``: the most runs trained together (default: all compatible ones on a GPU; on a CPU up to
    ``MAX_BATCH_CPU`` MLP runs, and ResNet-20 and char-LSTM runs one at a time, which is faster
    there; 1 trains each run alone). ``on_epoch_end(seed_results, epoch)`` is
    called after each epoch's checkpoint (tests use it to interrupt a run).
    """
    if given:
        if config is not None:
            raise ValueError(f"run() got a configuration and keyword fields {sorted(given)}: give one of them")
        config = given
    if config is None or isinstance(config, str):
        raise ValueError("run() takes a configuration: a dict or RunConfig such as {'task': 'mnist-mlp', "
                         "'optimizer': 'adam/sgd'}, its fields as keywords (run(task='mnist-mlp')), or a list of "
                         + ("configurations" if config is None else f"configurations; got the string {config!r}"))
    single = not isinstance(config, (list, tuple))
    configs = [config] if single else list(config)
    configs = [(c if isinstance(c, RunConfig) else RunConfig.from_dict(c)).validate().resolved() for c in configs]
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise ValueError(f"batch must be a positive int (runs trained together), got {batch!r}")
    outs = [str(Path(c.out_dir).resolve()) for c in configs if c.out_dir]
    shared = sorted({o for o in outs if outs.count(o) > 1})
    if shared:  # checked before any record is written: a refused call leaves no file behind
        raise ValueError(f"several configurations share out_dir {shared[0]}; each run needs a folder of its own")
    with _claimed([c for c in configs if c.out_dir]):
        return _run(configs, single, batch, on_epoch_end)


@contextlib.contextmanager
def _claimed(configs: list[RunConfig]):
    """Hold each run folder's claim while training (one writer per folder: the same notebook run in
    JupyterLab and by papermill, two shells, a sweep's point): a folder another live process holds is
    refused, naming it, before anything is written. Claims are :mod:`hypernb.sweep`'s; one this process
    holds already stays its holder's, and a folder it cannot write to is only read (a finished run)."""
    from . import sweep

    held, made = [], []
    try:
        for c in configs:
            out = Path(c.out_dir)
            if out.is_dir() and not os.access(out, os.W_OK | os.X_OK) and finished_record(out, c.seeds):
                continue  # (reading a finished record needs no claim; anything else is refused below)
            top = next(p for p in [out, *out.parents] if p.exists() or p == p.parent)
            io.check_out_dir(out, "out_dir")  # (made if missing, with a clear error where it cannot be)
            if top != out:  # the folders this call made, innermost first
                made += [p for p in [out, *out.parents] if p != top and top in p.parents]
            if sweep.holds(out):
                continue
            if not sweep.claim(out):
                for folder in sorted(made, key=lambda p: -len(p.parts)):  # a refused call leaves no folder behind
                    with contextlib.suppress(OSError):
                        sweep.release(folder)
                        folder.rmdir()
                raise ValueError(f"out_dir {out} is {sweep.describe_claim(out)}, which is writing a run there; wait "
                                 "for it to end (running this again then resumes or reads the finished run) or "
                                 "choose another out_dir")
            held.append(out)
            io.remove_temporaries(out, older_than=None, recursive=False)  # ours alone: leftovers of killed writes
        yield
    finally:
        for out in held:
            sweep.release(out)


def finished_record(out_dir, seeds) -> bool:
    """Whether ``out_dir`` holds a readable record in which every one of ``seeds`` ended (ok or diverged)."""
    path = Path(out_dir) / "metrics.json"
    try:
        ended = {s.seed for s in read_seeds(read_metrics(path), path) if s.status in ("ok", "diverged")}
    except (OSError, ValueError, TypeError, KeyError):
        return False
    return set(seeds) <= ended


def _run(configs: list[RunConfig], single: bool, batch, on_epoch_end):
    records = [_Record(c) for c in configs]
    members, everyone = [], {}
    for i, (c, rec) in enumerate(zip(configs, records)):
        for s in c.seeds:
            m = Member(c, s, i)
            everyone[m.key()] = m
            if not rec.finished(s):
                members.append(m)
    by_device: dict = {}
    for m in members:
        by_device.setdefault(str(resolve_device(m.config.device)), []).append(m)
    for device_name, ms in by_device.items():
        device = torch.device(device_name)
        saved = _interrupted_groups(ms, everyone, records)
        taken = {id(m) for g, _, _ in saved for m in g}
        rest = [m for m in ms if id(m) not in taken]
        if batch is not None or device.type == "cuda":
            planned = plan(rest, batch)
        else:  # on a CPU only the models that gain are batched (measured: benchmarks/throughput.py)
            planned = plan([m for m in rest if batches_well_on_cpu(m.config)], MAX_BATCH_CPU) + \
                [[m] for m in rest if not batches_well_on_cpu(m.config)]
        for group, tower, together in saved + [(g, None, None) for g in planned]:
            handoff = None
            while group:  # (a group that members left trains on as a smaller one: see _without_stopped)
                group, tower, handoff = _train_group(group, device, records, on_epoch_end, tower, handoff, together)
                together = True
    results = [rec.result() for rec in records]
    return results[0] if single else results


def _portable(cfg: dict) -> dict:
    """A configuration as its record keeps it: its folder relative to the checkout when inside it, so
    that committed records name no machine's folders (the live Result keeps the path it was given)."""
    return {**cfg, "out_dir": io.shown(cfg["out_dir"])} if cfg.get("out_dir") else cfg


class _Record:
    """One configuration's files: its config, env and the metrics of every seed (merged as groups
    finish: a configuration's seeds may train in different groups).

    Seeds are independent runs of one configuration, so a folder's record is the union of the seeds
    ever asked of it: asking for fewer reads the finished ones back (nothing is rewritten), asking for
    more trains only the new ones and adds them, and the files keep every seed. Leaving out a seed that
    an interrupted group still holds is refused (see :func:`_held_by_interrupted_group`)."""

    def __init__(self, c: RunConfig):
        self.config, self.cfg = c, c.to_dict()
        self.out = Path(c.out_dir) if c.out_dir else None
        self.seeds: dict[int, SeedResult] = {}
        self.kept = list(c.seeds)  # every seed the folder's record holds: its own, then the new ones asked for
        self.env = None
        if self.out is None:
            return
        if (self.out / "config.json").exists():
            old = read_config(self.out / "config.json")
            # a field the record predates counts as its default (records outlive new RunConfig fields)
            defaults = RunConfig().to_dict()
            diff = sorted(k for k in set(old) | set(self.cfg) if k not in NON_SEMANTIC and k != "seeds"
                          and old.get(k, defaults.get(k)) != self.cfg.get(k, defaults.get(k)))
            if diff:
                started = (self.out / "metrics.json").exists() or any(self.out.glob("checkpoint-*"))
                hint = ("" if started else "; it holds no trained epoch (a run that stopped before its first one, or "
                        "one still in it): delete its config.json to use the folder for this configuration, or")
                raise ValueError(f"{self.out} already holds a run with a different configuration (differs in {diff})"
                                 f"{hint or ';'} choose another out_dir, or delete that folder to start over")
        listed = []  # the seeds the folder was asked for (its config.json), then those its metrics hold
        if (self.out / "config.json").exists():
            listed = [s for s in old.get("seeds") or [] if isinstance(s, int)]
        recorded = list(listed)
        if (self.out / "metrics.json").exists():
            saved = read_metrics(self.out / "metrics.json")
            self.seeds = {s.seed: s for s in read_seeds(saved, self.out / "metrics.json")}
            self.env = saved.get("env") if isinstance(saved.get("env"), dict) else None
            recorded += [s for s in self.seeds if s not in recorded]
        left_out = [s for s in recorded if s not in c.seeds]
        if left_out and _held_by_interrupted_group(c, left_out):
            raise ValueError(f"{self.out} holds an interrupted run of seeds {recorded} (a group checkpoint): run it "
                             f"with seeds={recorded} to finish it first; then any of its seeds can be read back alone")
        self.kept = recorded + [s for s in c.seeds if s not in recorded]
        if not (self.out / "config.json").exists():  # written once: reading a record back leaves it as it is
            io.write_json(self.out / "config.json", _portable({**self.cfg, "seeds": self.kept}))
        elif self.kept != listed:  # seeds added: the record will hold them too
            io.write_json(self.out / "config.json", {**old, "seeds": self.kept})

    def finished(self, seed: int) -> bool:
        s = self.seeds.get(seed)
        return s is not None and s.status in ("ok", "diverged")

    def update(self, results: list[SeedResult], env: dict) -> None:
        for r in results:
            self.seeds[r.seed] = r
        if self.env is None:
            self.env = env
            if self.out is not None and not (self.out / "env.json").exists():
                io.write_json(self.out / "env.json", env)
        if self.out is not None:  # every seed the folder holds, not only those asked for this time
            saved = self.result(self.kept).to_dict()
            io.write_json(self.out / "metrics.json", {**saved, "config": _portable(saved["config"]),
                                                      "out_dir": io.shown(self.out)})

    def result(self, seeds: list[int] | None = None) -> Result:
        """The Result of ``seeds`` (default: the ones asked for)."""
        seeds = list(self.config.seeds) if seeds is None else seeds
        found = [self.seeds[s] for s in seeds if s in self.seeds]
        return Result({**self.cfg, "seeds": seeds}, found, summarize(found), self.env or {},
                      str(self.out) if self.out else None)


def _held_by_interrupted_group(c: RunConfig, seeds: list[int]) -> bool:
    """Whether a group checkpoint (in the run's folder, or a ``.groups/`` above it) lists one of these
    seeds of ``c``: a call that leaves them out would not resume that group, train the others anew,
    and leave the checkpoint to overwrite their records later."""
    keys = {Member(c, s, 0).key() for s in seeds}
    out = Path(c.out_dir).resolve()
    listed = _members_files({out} | {d / ".groups" for d in [out, *out.parents]})
    return any(keys & {k for k in saved["members"] if isinstance(k, str)} for saved in listed.values())


def _members_files(places) -> dict[Path, dict]:
    """Every readable members file of a group checkpoint in these folders (a run's folder, or a
    ``.groups/``), with what it says (an unreadable one counts as none: its members start over)."""
    files = sorted({f for d in places if d.is_dir()
                    for f in [*d.glob("checkpoint-*.members.json"), *d.glob("*/members.json")]})
    listed = {}
    for f in files:
        with contextlib.suppress(OSError, ValueError):
            saved = io.read_json(f)
            if isinstance(saved, dict) and isinstance(saved.get("members"), list):
                listed[f] = saved
    return listed


def _checkpoint_path(group: list[Member]) -> Path | None:
    """Where a group checkpoints: in its run's folder, or (several runs) under their common parent
    in ``.groups/<id>``, named by exactly who is in the group (listed beside it, so that resuming finds it again)."""
    outs = [Path(m.config.out_dir) for m in group if m.config.out_dir]
    if len(outs) != len(group):
        return None
    gid = hashlib.sha1("|".join(m.key() for m in group).encode()).hexdigest()[:12]
    if len({str(o) for o in outs}) == 1:
        return outs[0] / f"checkpoint-{gid}.pt"
    return Path(os.path.commonpath([str(o.resolve()) for o in outs])) / ".groups" / gid / "checkpoint.pt"


def _members_file(ckpt: Path) -> Path:
    """Who trains in a group checkpoint (read on resume, before any checkpoint is loaded)."""
    return ckpt.with_name(ckpt.stem + ".members.json") if ckpt.name != "checkpoint.pt" else \
        ckpt.parent / "members.json"


def _interrupted_groups(pending: list[Member], everyone: dict[str, Member], records) -> list[tuple]:
    """The groups that were interrupted mid-way, exactly as they were, so that they resume from
    their checkpoints instead of starting over: planning the pending members afresh could group them
    differently (a member that diverged in the interrupted group is finished, so no longer pending;
    another ``batch`` limit). A saved group is taken when all its members are among this call's runs,
    at least one is pending, and every other one diverged (stopped inside that group). Each comes with
    the tower it trains and whether it is batched (its members file says: a group that members left keeps its
    padded levels, and its last member stays a batch of one). A larger group comes first: when a process was
    killed between a smaller group's first checkpoint and the removal of the one it left, the larger one
    resumes (and leaves again, cleaning up), so that no checkpoint is left behind."""
    pending_by_key = {m.key(): m for m in pending}
    outs = [Path(m.config.out_dir).resolve() for m in pending if m.config.out_dir]
    if not outs:
        return []
    places = set(outs) | {o.parent / ".groups" for o in outs} | {Path(os.path.commonpath(outs)) / ".groups"}
    listed = _members_files(places)  # (an unreadable one's members are planned afresh, and start over)

    def stopped_inside(m: Member) -> bool:
        s = records[m.index].seeds.get(m.seed)
        return s is not None and s.status == "diverged"

    groups, taken = [], set()
    for f in sorted(listed, key=lambda f: (-len(listed[f]["members"]), str(f))):  # larger groups first
        keys = listed[f]["members"]
        if not all(isinstance(k, str) and k in everyone for k in keys) or taken & set(keys):
            continue
        group = [pending_by_key.get(k, everyone[k]) for k in keys]
        if not any(k in pending_by_key for k in keys) or not all(
                k in pending_by_key or stopped_inside(m) for k, m in zip(keys, group)):
            continue
        ckpt = _checkpoint_path(group)
        if ckpt is not None and ckpt.exists() and _members_file(ckpt).resolve() == f.resolve():
            tower = listed[f].get("tower")  # (older members files name neither: then the members' own)
            together = listed[f].get("batched")
            groups.append((group, tower if isinstance(tower, list) and all(isinstance(n, str) for n in tower) else None,
                           together if isinstance(together, bool) else None))
            taken |= set(keys)
    return groups


def _train_group(group: list[Member], device, records, on_epoch_end, tower: list[str] | None = None,
                 handoff: dict | None = None, together: bool | None = None) -> tuple:
    """Train the members of one group together; write their records as it goes. Returns (None, None,
    None) when the group is done, or (members, tower, handoff) for the members still training when some
    diverged on a CPU, which go on as a group of their own (see :func:`_without_stopped`).

    ``tower``: the group's tower when it is not its members' tallest (a group that members left keeps
    its padded levels). ``handoff``: where the members stand, from the group they left. ``together``:
    trained as a batched model (default: when there are several; a batch's last member stays a batch
    of one, which computes exactly what the batch computed)."""
    c0 = group[0].config
    K = len(group)
    batched_model = K > 1 if together is None else together
    task = handoff["task"] if handoff else prepare_data(c0, device, group[0].seed)
    dtype = getattr(torch, c0.dtype)
    models = []
    for i, m in enumerate(group):  # each run's own initialisation, exactly as alone
        seed_everything(m.seed)
        models.append(build_model(m.config, task).to(device=device, dtype=dtype))
        if handoff:
            models[-1].load_state_dict(handoff["models"][i])
    model = models[0] if not batched_model else batched(models).to(device)
    tower = tower or max((m.tower for m in group), key=len)
    opt = build_optimizer(group, model.parameters(), batched_model, tower)
    recorder = Recorder(opt, every=c0.log_every)
    results = [SeedResult(m.seed, data=task.info, trained_with=K) for m in group]
    loaders = [task.train(m.seed) for m in group]
    alive = [True] * K
    stopped: list = [None] * K  # the step at which a diverged run was stopped
    first_loss: list = [None] * K
    ckpt = _checkpoint_path(group)
    start_epoch, global_step = 0, 0
    window = torch.zeros(K, device=device, dtype=torch.float64)
    window_n = 0
    first_step = None  # the first step's losses, on the device until the epoch's end
    ck = handoff or (io.load_checkpoint(ckpt, device, CHECKPOINT_KEYS) if ckpt is not None and ckpt.exists() else None)
    if ck is not None:
        if not handoff:
            model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        recorder.load_state_dict(ck["recorder"])
        results = [r if isinstance(r, SeedResult) else SeedResult(**r) for r in ck["results"]]
        alive, first_loss, stopped = ck["alive"], ck["first_loss"], ck["stopped"]
        start_epoch, global_step = ck["epoch"] + 1, ck["global_step"]
        window, window_n = ck["window"].to(device), ck["window_n"]

    def save_checkpoint(epoch: int) -> None:
        if epoch in (start_epoch, start_epoch - 1):  # (start_epoch − 1: where a handoff starts from)
            io.write_json(_members_file(ckpt), {"members": [m.key() for m in group], "tower": tower,
                                                "batched": batched_model})
        io.save_checkpoint(ckpt, {  # (CHECKPOINT_KEYS: what a resume checks that it finds)
            "model": model.state_dict(), "optimizer": opt.state_dict(), "recorder": recorder.state_dict(),
            "results": [asdict(r) for r in results], "alive": alive, "first_loss": first_loss,
            "stopped": stopped, "epoch": epoch,
            "global_step": global_step, "window": window.cpu(), "window_n": window_n})

    if handoff and ckpt is not None:  # from now on the members resume from here, not from the group they left
        save_checkpoint(handoff["epoch"])
        if handoff["checkpoint"] is not None:
            _remove_checkpoint(handoff["checkpoint"])
    env = io.environment(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    amp = _autocast(c0, device)
    scaler = torch.amp.GradScaler(device.type) if c0.autocast == "fp16" else None
    steps_per_epoch = min(len(loaders[0]), c0.max_steps or len(loaders[0]))
    from tqdm.auto import tqdm

    if c0.is_peer:  # its lr from the config (not from a resumed optimizer, whose lr may be scheduled)
        from .peers import default_lr

        lr0 = [c0.alpha if c0.alpha is not None else default_lr(c0.optimizer)]
    else:
        lr0 = [m.config.alpha for m in group]
    for epoch in range(start_epoch, c0.epochs):
        rows = [k for k in range(K) if alive[k]]
        if not rows:  # every one diverged at the last epoch's end
            break
        if len(rows) < K and _leaves(group, device, batched_model):
            _publish(group, results, records, env)  # (again: a resumed group had not published its last epoch)
            return [group[k] for k in rows], tower, _without_stopped(
                rows, task, model, opt, recorder, results, first_loss, epoch - 1, global_step, window, window_n, ckpt)
        t_epoch = time.perf_counter()
        scales = [schedule_multiplier(m.config.schedule, epoch, c0.epochs) for m in group]
        opt.param_groups[0]["lr"] = [a * s for a, s in zip(lr0, scales)] if batched_model else lr0[0] * scales[0]
        if hasattr(opt, "train"):  # Schedule-Free trains at one point and evaluates at another
            opt.train()
        model.train()
        loss_sum = torch.zeros(K, device=device, dtype=torch.float64)
        correct = torch.zeros(K, device=device, dtype=torch.long)
        count = 0
        who = f"{K} runs" if batched_model else f"seed {group[0].seed}"
        bar = tqdm(total=steps_per_epoch, desc=f"{who} · epoch {epoch + 1}/{c0.epochs}", disable=c0.quiet,
                   leave=False, dynamic_ncols=True)
        for i, batches in enumerate(zip(*[loader.epoch(epoch) for loader in loaders])):
            if i >= steps_per_epoch:
                break
            x = torch.stack([b[0] for b in batches])
            y = None if batches[0][1] is None else torch.stack([b[1] for b in batches])
            x, y = _split((x, y), task.kind)
            opt.zero_grad(set_to_none=True)
            with amp:
                logits = _forward(model, x, K, not batched_model)
                losses = _losses(logits, y, task.kind)
                loss = losses.sum()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            detached = losses.detach().double()
            if global_step == 0:
                first_step = detached.clone()  # no host sync here: read at the epoch's end
            n = y[0].numel()
            loss_sum += detached * n
            correct += (logits.detach().argmax(-1) == y).reshape(K, -1).sum(dim=1)
            count += n
            window += detached
            window_n += 1
            global_step += 1
            bar.update()
            if global_step % c0.log_every == 0:
                values = (window / window_n).tolist()  # the host reads here, every log_every steps
                window, window_n = torch.zeros(K, device=device, dtype=torch.float64), 0
                bad = opt.nonfinite()
                for k, value in enumerate(values):
                    if not alive[k]:
                        continue
                    results[k].steps.append(global_step)
                    results[k].loss.append(value)
                    if first_loss[k] is None:
                        first_loss[k] = value
                    reason = _divergence(value, first_loss[k], bad.get(k), global_step)
                    if reason:
                        _stop(results[k], *reason)
                        alive[k], stopped[k] = False, global_step
                if sum(alive) == 1:
                    bar.set_postfix(loss=f"{values[alive.index(True)]:.4f}", refresh=False)
                if not any(alive):
                    break
        bar.close()
        if not any(alive):
            break
        if hasattr(opt, "eval"):  # a peer that evaluates at another point than it trains at
            opt.eval()
            if opt.evaluates_elsewhere:
                _refresh_batchnorm(model, loaders[0], epoch, task.kind)
        tests = evaluate(model, task.test, task.kind, K, not batched_model)
        vals = evaluate(model, task.val, task.kind, K, not batched_model) if task.val is not None else None
        if hasattr(opt, "train"):
            opt.train()  # back to the training point before the checkpoint
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - t_epoch
        train_loss, train_correct = (loss_sum / count).tolist(), correct.tolist()
        if first_step is not None:  # read here, with the epoch's numbers (before its checkpoint)
            for res, value in zip(results, first_step.tolist()):
                res.first_step_loss = value
            first_step = None
        bad = opt.nonfinite()
        finals = opt.hyperparameters()
        for k, (m, res) in enumerate(zip(group, results)):
            if not alive[k]:
                continue
            test = tests[k]
            metrics = {"epoch": epoch + 1, "step": global_step, "train_loss": train_loss[k],
                       "train_acc": train_correct[k] / count, "test_loss": test["loss"], "test_acc": test["acc"],
                       "time_s": elapsed}
            if task.kind == "text":
                metrics.update(train_bits=D.bits(train_loss[k]), test_bits=test["bits"])
            if vals is not None:
                metrics.update({f"val_{name}": v for name, v in vals[k].items()})
            reason = (_divergence(train_loss[k], first_loss[k], bad.get(k), global_step)
                      or _divergence(test["loss"], None, None, global_step))
            if reason:
                _stop(res, *reason)
                alive[k], stopped[k] = False, global_step
                continue
            res.epochs.append(metrics)
            res.time_s += elapsed
            res.peak_memory_mb = _peak_memory_mb(device)
            res.final = {"test_loss": test["loss"], "test_acc": test["acc"],
                         **({"test_bits": test["bits"]} if task.kind == "text" else {}),
                         **({f"val_{name}": v for name, v in vals[k].items()} if vals is not None else {})}
            res.final.update({f"final_{name}": float(v if v.dim() == 0 else v[k])
                              for name, v in finals.items() if name.count("hyper.") <= m.height})
        for k, (m, res) in enumerate(zip(group, results)):
            res.trajectory = _trajectory(recorder, k if batched_model else None, m.height, stopped[k])
        if ckpt is not None:
            save_checkpoint(epoch)
        _publish(group, results, records, env)
        if on_epoch_end is not None:
            on_epoch_end(results, epoch)
    for k, res in enumerate(results):
        if alive[k]:
            res.status = "ok"
        res.trajectory = _trajectory(recorder, k if batched_model else None, group[k].height, stopped[k])
    _publish(group, results, records, env)  # the finished records first, then
    if ckpt is not None and not any(m.config.keep_checkpoint for m in group):
        _remove_checkpoint(ckpt)  # the checkpoint is no longer needed to resume
    return None, None, None


def _leaves(group: list[Member], device, batched_model: bool) -> bool:
    """Whether the members still training leave a batch in which some diverged: on a CPU, unless a
    member keeps its checkpoint (the group's checkpoint then stays whole)."""
    return (LEAVE_DIVERGED_ON_CPU and device.type == "cpu" and batched_model
            and not any(m.config.keep_checkpoint for m in group))


def _without_stopped(rows, task, model, opt, recorder, results, first_loss, epoch, global_step, window, window_n,
                     ckpt) -> dict:
    """Where the members ``rows`` of a batched group stand after ``epoch``, for a group of them alone.

    Why: on a CPU every member of a batch costs its share of every step, also one that diverged and
    whose record is finished, so the runs still training continue without it (from the next epoch on;
    the last one as a batch of one). Members are independent, so they continue exactly as they would
    have. On a GPU a batch's step costs about the same for any K, and the group stays whole."""
    return {"task": task, "models": [model.member_state(k) for k in rows],
            "optimizer": select_configurations(opt.state_dict(), rows),
            "recorder": Recorder.select(recorder.state_dict(), rows),
            "results": [results[k] for k in rows], "alive": [True] * len(rows),
            "first_loss": [first_loss[k] for k in rows], "stopped": [None] * len(rows), "epoch": epoch,
            "global_step": global_step, "window": window[rows], "window_n": window_n, "checkpoint": ckpt}


def _remove_checkpoint(ckpt: Path) -> None:
    """A group checkpoint and the list of its members (and its ``.groups`` folder, when empty)."""
    ckpt.unlink(missing_ok=True)
    _members_file(ckpt).unlink(missing_ok=True)
    if ckpt.parent.parent.name == ".groups":
        with contextlib.suppress(OSError):
            ckpt.parent.rmdir()
            ckpt.parent.parent.rmdir()


def _refresh_batchnorm(model, loader, epoch: int, kind: str, batches: int = 50) -> None:
    """BatchNorm statistics for the weights now in the model (a peer's averaged point): the running
    statistics were gathered at the training point, which evaluating elsewhere makes wrong (the
    Schedule-Free and DoG packages' own caveat). Recomputed as a plain average over ``batches``
    training batches, without touching the weights."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    model.train()
    with torch.no_grad():
        for i, batch in enumerate(loader.epoch(epoch)):
            if i >= batches:
                break
            model(_split(batch, kind)[0])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def schedule_multiplier(kind: str, epoch: int, epochs: int) -> float:
    """The multiplier on α during ``epoch``: He et al. (2016)'s ÷ 10 at 50 % and 75 % of training, or a
    cosine decay from 1 towards 0 (on the learned α, for a hyperoptimizer)."""
    if kind == "step":
        return 0.1 ** sum(epoch >= f * epochs for f in (0.5, 0.75))
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    return 1.0


def _publish(group, results, records, env) -> None:
    by_config: dict = {}
    for m, r in zip(group, results):
        by_config.setdefault(m.index, []).append(r)
    for index, rs in by_config.items():
        records[index].update(rs, env)


def _trajectory(recorder: Recorder, member: int | None, height: int, stopped: int | None) -> dict:
    """One run's hyperparameter trajectory: its own levels only (a padded tower has more), up to
    the step at which it was stopped (the others may train on)."""
    traj = recorder.read(check=False, member=member)
    keep = len(traj["step"]) if stopped is None else sum(s <= stopped for s in traj["step"])
    return {k: v[:keep] for k, v in traj.items() if k == "step" or k.count("hyper.") <= height}


def _stop(res: SeedResult, step: int, reason: str) -> None:
    res.status, res.diverged_at_step, res.reason = "diverged", step, reason
    res.final = {}  # no numbers from a diverged model


def _divergence(loss_value: float, first: float | None, nonfinite, step: int):
    """(step, reason) if a value of the optimizer or the loss stopped being finite, or the loss exploded."""
    if nonfinite is not None:  # with the loss it came with, which tells a too-large α0 from a too-large κ
        losses = "" if first is None or not math.isfinite(first) else (
            f" (mean training loss: {first:.4g} at the first log, {loss_value:.4g} at this check)")
        n = nonfinite  # as a run alone says it: a record does not name its row in a batch
        return n.step, str(NonFiniteError(n.level, n.optimizer, n.name, n.step, n.what)) + losses
    if not math.isfinite(loss_value):
        return step, f"training loss became {loss_value}"
    if first is not None and loss_value > EXPLODE_FACTOR * max(first, 1e-3):
        return step, (f"the loss exploded: {loss_value:.4g}, more than {EXPLODE_FACTOR:g}× its first logged value "
                      f"{first:.4g}; lower the step size (or κ)")
    return None


def _autocast(c: RunConfig, device):
    if c.autocast == "fp16" and device.type == "cpu" and c.model_name == "lstm":
        raise ValueError("autocast='fp16' has no LSTM kernel on a CPU (oneDNN refuses it); use autocast='bf16' "
                         "there, or fp16 on a GPU")
    if c.autocast == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if c.autocast == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def summarize(results: list) -> dict:
    """Mean ± std (sample) over the seeds that finished, for every final metric. ``epoch_time_s`` is
    the wall time of an epoch of the loop that trained a seed: seeds trained together (batched, see
    ``SeedResult.trained_with``) share it, so it is not one run's cost alone. ``diverged`` is the
    number of seeds that diverged (under "mean", of "n" seeds), not a fraction."""
    finished = [r for r in results if r is not None and r.status == "ok"]
    keys = sorted({k for r in finished for k, v in r.final.items() if isinstance(v, (int, float))})
    summary = {}
    for k in keys:
        vals = [r.final[k] for r in finished if k in r.final]
        summary[k] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                      "n": len(vals)}
    times = [e["time_s"] for r in finished for e in r.epochs]
    if times:
        summary["epoch_time_s"] = {"mean": statistics.fmean(times), "std": statistics.stdev(times) if len(times) > 1
                                   else 0.0, "n": len(times)}
    # a count under "mean" (not a fraction): the committed records keep it so, and tables read it as a count
    summary["diverged"] = {"mean": float(sum(r.status == "diverged" for r in results if r is not None)),
                           "std": 0.0, "n": len(results)}
    return summary
