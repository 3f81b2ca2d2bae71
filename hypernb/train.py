"""``run(config) -> Result``: the one entry point used by notebooks, sweeps, the CLI and the tests.

A run trains one model per seed with the configured hyperoptimizer tower, keeping data on the
device and synchronising with the host only every ``log_every`` steps (to check for divergence) and
once per evaluation. With ``out_dir`` it writes ``config.json``, ``env.json`` and ``metrics.json``
atomically, checkpoints every epoch, and a rerun in the same folder resumes where it stopped and
ends with exactly the metrics of an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import math
import random
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import data as D
from . import io
from .config import RunConfig
from .models import MLP, CharLSTM, ResNet20
from .optim import NonFiniteError, Recorder

# fields that do not change what is computed: a rerun may change them and still resume
NON_SEMANTIC = {"out_dir", "quiet", "data_root", "download", "device", "keep_checkpoint"}


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


@dataclass
class Result:
    """The outcome of ``run``: per-seed records and mean ± std over the seeds that finished."""

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
    def load(cls, out_dir) -> "Result":
        """Read a finished (or partial) run back from its folder."""
        return cls.from_dict(io.read_json(Path(out_dir) / "metrics.json"))

    def __repr__(self) -> str:
        parts = [f"{k}={v['mean']:.4g}±{v['std']:.2g}" for k, v in self.summary.items()
                 if k.startswith("test_") and v.get("mean") is not None]
        status = "ok" if self.ok else ", ".join(f"seed {s.seed}: {s.status}" for s in self.seeds if s.status != "ok")
        return f"Result({self.config['task']}, {self.config['optimizer']}, {', '.join(parts)}; {status})"


# -- data --------------------------------------------------------------------------------------------
@dataclass
class TaskData:
    train: D.DeviceLoader
    test: D.DeviceLoader
    kind: str  # image | text
    classes: int
    info: dict


def prepare_data(c: RunConfig, device: torch.device, seed: int) -> TaskData:
    root = D.data_root(c.data_root)
    if c.is_text:
        corpus = D.load_corpus(c.dataset, root, c.download)
        train_codes = corpus.train[: c.train_limit] if c.train_limit else corpus.train
        val_codes = corpus.val[: c.test_limit] if c.test_limit else corpus.val
        if c.text_split == "shuffled":  # the report's bug: characters at random positions, no context left
            gen = torch.Generator().manual_seed(seed)
            codes = torch.cat([corpus.train, corpus.val])
            codes = codes[torch.randperm(len(codes), generator=gen)]
            train_codes, val_codes = codes[: len(train_codes)], codes[len(corpus.train):][: len(val_codes)]
        train_w = D.windows(train_codes, c.seq_len).to(device)
        val_w = D.windows(val_codes, c.seq_len).to(device)
        info = {"vocab_size": corpus.vocab_size, "unigram_entropy_nats": corpus.unigram_entropy(),
                "train_chars": len(train_codes), "val_chars": len(val_codes),
                "split": ("contiguous: first 90% train, last 10% validation" if c.text_split == "contiguous"
                          else "SHUFFLED characters (the report's bug, for demonstration)")}
        return TaskData(D.DeviceLoader(train_w, None, c.batch_size, True, seed, drop_last=True),
                        D.DeviceLoader(val_w, None, 256, False), "text", corpus.vocab_size, info)
    if c.dataset == "mnist":
        arrays = D.load_mnist(root, c.download)
        note = "MNIST (60,000 / 10,000)"
    elif c.dataset == "cifar10":
        arrays = D.load_cifar10(root, c.download)
        note = "CIFAR-10 (50,000 / 10,000)"
    else:
        arrays = D.load_cifar10_subset(root)
        note = "CIFAR-10 SUBSET: first 4,000 train / 1,000 test images, not the full dataset"
    tx, ty, vx, vy = arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"]
    if c.train_limit:
        tx, ty = tx[: c.train_limit], ty[: c.train_limit]
    if c.test_limit:
        vx, vy = vx[: c.test_limit], vy[: c.test_limit]
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
    return TaskData(
        D.DeviceLoader(tx.to(device), ty.to(device), c.batch_size, True, seed, train_transform),
        D.DeviceLoader(vx.to(device), vy.to(device), 1000, False, transform=lambda x, g: to_float(x)),
        "image", 10, info)


def build_model(c: RunConfig, task: TaskData) -> torch.nn.Module:
    if c.model_name == "mlp":
        return MLP(hidden=c.hidden, activation=c.activation)
    if c.model_name == "resnet20":
        return ResNet20()
    return CharLSTM(task.classes, hidden=c.hidden, layers=c.lstm_layers, dropout=c.dropout)


def _loss(out, y, kind):
    if kind == "text":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return F.cross_entropy(out, y)


def _split(batch, kind):
    x, y = batch
    return (x[:, :-1], x[:, 1:]) if kind == "text" else (x, y)


@torch.no_grad()
def evaluate(model, loader: D.DeviceLoader, kind: str) -> dict:
    """Mean loss and accuracy over a whole split (one host sync at the end)."""
    model.eval()
    loss_sum = correct = count = None
    for batch in loader.epoch(0):
        x, y = _split(batch, kind)
        out = model(x)
        n = y.numel()
        l_sum = _loss(out, y, kind).float() * n
        c_sum = (out.argmax(-1) == y).sum()
        loss_sum = l_sum if loss_sum is None else loss_sum + l_sum
        correct = c_sum if correct is None else correct + c_sum
        count = n if count is None else count + n
    model.train()
    loss, acc = float(loss_sum) / count, float(correct) / count
    out = {"loss": loss, "acc": acc}
    if kind == "text":
        out["bits"] = D.bits(loss)
    return out


# -- the run -----------------------------------------------------------------------------------------
def _device(name: str) -> torch.device:
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


def _semantic(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in NON_SEMANTIC}


def run(config: RunConfig | dict, *, on_epoch_end=None) -> Result:
    """Train ``config`` for every seed; see the module docstring.

    ``on_epoch_end(seed_result, epoch)`` is called after each epoch's checkpoint (tests use it to
    interrupt a run).
    """
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    config = config.validate()
    c = config.resolved()
    device = _device(c.device)
    out = Path(c.out_dir) if c.out_dir else None
    cfg_dict = c.to_dict()
    previous = {}
    if out is not None:
        if (out / "config.json").exists():
            old = io.read_json(out / "config.json")
            if _semantic(old) != _semantic(cfg_dict):
                diff = sorted(k for k in set(old) | set(cfg_dict)
                              if k not in NON_SEMANTIC and old.get(k) != cfg_dict.get(k))
                raise ValueError(f"{out} already holds a run with a different configuration (differs in {diff}); "
                                 "choose another out_dir, or delete that folder to start over")
            if (out / "metrics.json").exists():
                previous = {s["seed"]: s for s in io.read_json(out / "metrics.json")["seeds"]}
    env = io.environment(device)
    if out is not None:
        io.write_json(out / "config.json", cfg_dict)
        io.write_json(out / "env.json", env)
    results = []
    for seed in c.seeds:
        done = previous.get(seed)
        if done and done["status"] in ("ok", "diverged"):
            results.append(SeedResult(**done))
            continue
        results.append(None)
        results[-1] = _run_seed(c, seed, device, out, results, cfg_dict, env, on_epoch_end)
    result = Result(cfg_dict, results, summarize(results), env, str(out) if out else None)
    if out is not None:
        io.write_json(out / "metrics.json", result.to_dict())
    return result


def _save_progress(out, cfg_dict, env, results):
    if out is not None:
        done = [r for r in results if r is not None]
        io.write_json(out / "metrics.json", Result(cfg_dict, done, summarize(done), env, str(out)).to_dict())


def _run_seed(c: RunConfig, seed: int, device, out, results, cfg_dict, env, on_epoch_end) -> SeedResult:
    seed_everything(seed)
    task = prepare_data(c, device, seed)
    model = build_model(c, task).to(device=device, dtype=getattr(torch, c.dtype))
    opt = c.build_optimizer(model.parameters())
    recorder = Recorder(opt, every=c.log_every)
    res = SeedResult(seed)
    ckpt_path = out / f"seed{seed}" / "checkpoint.pt" if out else None
    start_epoch, global_step, window, window_n = 0, 0, torch.zeros((), device=device), 0
    if ckpt_path is not None and ckpt_path.exists():
        ck = io.load_checkpoint(ckpt_path, device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        recorder.load_state_dict(ck["recorder"])
        res = SeedResult(**ck["seed_result"])
        start_epoch, global_step = ck["epoch"] + 1, ck["global_step"]
        window, window_n = ck["window"].to(device), ck["window_n"]
        torch.set_rng_state(ck["rng_cpu"])
        if device.type == "cuda" and ck.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ck["rng_cuda"], device)
    res.status = "running"
    res.data = task.info
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    amp = _autocast(c, device)
    scaler = torch.amp.GradScaler(device.type) if c.autocast == "fp16" else None
    steps_per_epoch = min(len(task.train), c.max_steps or len(task.train))
    from tqdm.auto import tqdm

    alpha0 = c.alpha
    for epoch in range(start_epoch, c.epochs):
        t_epoch = time.perf_counter()
        if c.schedule == "step":  # He et al. (2016): divide α by 10 at 50 % and 75 % of training
            opt.set_hyperparameters(alpha=alpha0 * 0.1 ** sum(epoch >= f * c.epochs for f in (0.5, 0.75)))
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        count = 0
        bar = tqdm(total=steps_per_epoch, desc=f"seed {seed} · epoch {epoch + 1}/{c.epochs}", disable=c.quiet,
                   leave=False, dynamic_ncols=True)
        for i, batch in enumerate(task.train.epoch(epoch)):
            if i >= steps_per_epoch:
                break
            x, y = _split(batch, task.kind)
            opt.zero_grad(set_to_none=True)
            with amp:
                logits = model(x)
                loss = _loss(logits, y, task.kind)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            detached = loss.detach().float()
            n = y.numel()
            loss_sum += detached * n
            correct += (logits.detach().argmax(-1) == y).sum()
            count += n
            window += detached
            window_n += 1
            global_step += 1
            bar.update()
            if global_step % c.log_every == 0:
                value = float(window / window_n)  # the host reads here, every log_every steps
                res.steps.append(global_step)
                res.loss.append(value)
                window, window_n = torch.zeros((), device=device), 0
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                reason = _divergence(value, opt)
                if reason:
                    res.status, res.diverged_at_step, res.reason = "diverged", reason[0], reason[1]
                    break
        bar.close()
        if res.status == "diverged":
            break
        test = evaluate(model, task.test, task.kind)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_metrics = {"epoch": epoch + 1, "step": global_step, "train_loss": float(loss_sum) / count,
                         "train_acc": float(correct) / count, "test_loss": test["loss"], "test_acc": test["acc"],
                         "time_s": time.perf_counter() - t_epoch}
        if task.kind == "text":
            epoch_metrics.update(train_bits=D.bits(epoch_metrics["train_loss"]), test_bits=test["bits"])
        reason = _divergence(epoch_metrics["train_loss"], opt) or _divergence(test["loss"], opt)
        if reason:
            res.status, res.diverged_at_step, res.reason = "diverged", global_step, reason[1]
            break
        res.epochs.append(epoch_metrics)
        res.trajectory = recorder.read(check=False)
        res.time_s += epoch_metrics["time_s"]
        res.peak_memory_mb = _peak_memory_mb(device)
        res.final = {"test_loss": test["loss"], "test_acc": test["acc"], **({"test_bits": test["bits"]}
                                                                            if task.kind == "text" else {})}
        res.final.update({f"final_{k}": float(v) for k, v in opt.hyperparameters().items()})
        if ckpt_path is not None:
            io.save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "recorder": recorder.state_dict(),
                "seed_result": asdict(res), "epoch": epoch, "global_step": global_step, "window": window.cpu(),
                "window_n": window_n, "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None})
            _save_progress(out, cfg_dict, env, results[:-1] + [res])
        if on_epoch_end is not None:
            on_epoch_end(res, epoch)
    if res.status == "diverged":
        res.final = {}  # no numbers from a diverged model
        res.trajectory = recorder.read(check=False)
    else:
        res.status = "ok"
    if ckpt_path is not None and not c.keep_checkpoint:
        _save_progress(out, cfg_dict, env, results[:-1] + [res])  # the finished record first, then
        ckpt_path.unlink(missing_ok=True)  # the checkpoint is no longer needed to resume
    return res


def _divergence(loss_value: float, opt):
    """(step, reason) if the loss or any value of the optimizer stopped being finite."""
    try:
        opt.check_finite()
    except NonFiniteError as e:
        return e.step, str(e)
    if not math.isfinite(loss_value):
        return int(opt.steps), f"training loss became {loss_value}"
    return None


def _autocast(c: RunConfig, device):
    if c.autocast == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if c.autocast == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def summarize(results: list) -> dict:
    """Mean ± std (sample) over the seeds that finished, for every final metric."""
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
    summary["diverged"] = {"mean": float(sum(r.status == "diverged" for r in results if r is not None)),
                           "std": 0.0, "n": len(results)}
    return summary
