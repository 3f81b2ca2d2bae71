"""Measuring a training step: median time and the memory it keeps alive.

Used by ``benchmarks/step_overhead.py`` and by the towers notebook (cost per level, measured).
"""
from __future__ import annotations

import contextlib
import math
import platform
import statistics
import time
from collections import deque

import torch


def median_ci(values, level: float = 0.95):
    """(median, low, high): a distribution-free confidence interval for the median of repeated
    measurements, from their order statistics. The j-th smallest of n values lies above the true
    median with probability P(Bin(n, 1/2) < j) (fewer than j values fell below it), and the
    (n+1−j)-th below it with the same probability, so (x₍ⱼ₎, x₍ₙ₊₁₋ⱼ₎) with the largest j whose
    two-sided miss probability is at most 1 − ``level`` covers it with at least that probability;
    no assumption of normality, which timings on a shared machine do not meet. (low, high) is
    None when n is too small for any such interval (n < 6 at 95 %)."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("median_ci needs at least one value")

    def miss(j):  # P(the interval (x_j, x_{n+1-j}) misses the median) = 2 · P(Bin(n, 1/2) < j)
        return 2.0 * sum(math.comb(n, i) for i in range(j)) / 2.0 ** n

    j = 0
    while j + 1 <= (n + 1) // 2 and miss(j + 1) <= 1.0 - level:
        j += 1
    med = statistics.median(xs)
    return (med, None, None) if j == 0 else (med, xs[j - 1], xs[n - j])


def device_name(device) -> str:
    """What a benchmark ran on, for its record: the GPU's name, or the CPU's model name."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def make_mlp():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.Tanh(), torch.nn.Linear(128, 10))


def make_cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(2048, 10))


WORKLOADS = {"mlp": (make_mlp, (256, 1, 28, 28)), "cnn": (make_cnn, (128, 3, 32, 32))}


def fixed_batch(shape, device):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=gen).to(device)
    y = torch.randint(0, 10, (shape[0],), generator=gen).to(device)
    return x, y


@contextlib.contextmanager
def one_thread():
    """Measure on one CPU thread (the per-core figure), then give the caller back its thread count: a
    process that measures and then trains (``python -m hypernb records``) must not train on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def training_step(model, opt):
    """One whole step (zero_grad, forward, backward, step), as a benchmark times it."""
    def step(x, y):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def hypernb_step(spec: str, **kw):
    """A builder: model → (step(x, y), optimizer) for a hypernb tower."""
    from . import optim

    def build(model):
        opt = optim.tower(spec, model.parameters(), **kw)
        return training_step(model, opt), opt
    return build


def torch_step(cls, **kw):
    """A builder: model → (step(x, y), optimizer) for a torch.optim optimizer."""
    def build(model):
        opt = cls(model.parameters(), **kw)
        return training_step(model, opt), opt
    return build


def time_step(build, make_model=make_mlp, shape=(256, 1, 28, 28), device="cpu", steps=200, warmup=30,
              wrap=None) -> float:
    """Median milliseconds of one whole training step (on CUDA: a timed block / steps, no per-step sync)."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = make_model().to(device)
    x, y = fixed_batch(shape, device)
    step, _ = build(model)
    if wrap is not None:
        step = wrap(step, x, y)
    for _ in range(warmup):
        step(x, y)
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            step(x, y)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / steps
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def held_tensors(root):
    """Every tensor reachable from ``root`` (breadth-first): attributes, containers, gradients, and
    the tensors saved in the autograd graphs hanging off them (gdtuo keeps its state there)."""
    seen, queue = set(), deque([root])
    while queue:
        obj = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            yield obj
            if obj.grad is not None:
                yield obj.grad
            yield from _graph_tensors(obj.grad_fn, seen)
        elif isinstance(obj, dict):
            queue.extend(obj.keys())
            queue.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            queue.extend(obj)
        elif isinstance(obj, torch.nn.Module):
            queue.extend(obj.parameters())
            queue.extend(obj.buffers())
        elif hasattr(obj, "__dict__") and not isinstance(obj, type) and type(obj).__module__.split(".")[0] in (
                "hypernb", "torch", "gradient_descent_the_ultimate_optimizer", "__main__", "benchmarks",
                "prodigyopt", "dadaptation", "schedulefree", "dog"):  # notebook 06's peers
            queue.extend(vars(obj).values())


def _graph_tensors(fn, seen):
    stack = [fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        for attr in dir(node):
            if attr.startswith("_saved_"):
                try:
                    value = getattr(node, attr)
                except Exception:
                    continue
                if isinstance(value, torch.Tensor):
                    yield value
        if hasattr(node, "variable"):
            yield node.variable
        stack.extend(f for f, _ in getattr(node, "next_functions", ()))


def held_memory(build, make_model=make_mlp, shape=(256, 1, 28, 28), device="cpu", steps=3):
    """(MB of distinct storage held between steps by model, gradients and optimizer — counted
    exactly —, and on CUDA the allocator's peak MB during one more step, else None)."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = make_model().to(device)
    x, y = fixed_batch(shape, device)
    step, holder = build(model)
    for _ in range(steps):
        step(x, y)
    sync(device)
    storages = {}
    for t in held_tensors((model, holder)):
        st = t.untyped_storage()
        storages[st.data_ptr()] = st.nbytes()
    held = sum(storages.values()) / 2**20
    peak = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(x, y)
        sync(device)
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20 + held
    return held, peak


def tower_costs(heights, family: str = "sgd", device="cpu", steps=100, warmup=20, reps=3):
    """Step time and held memory of an MLP trained by ``family`` towers of each height, with the
    plain torch.optim step measured alongside (ratios are to it)."""
    base_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[family]
    base = torch_step(base_cls, lr=0.01 if family == "sgd" else 1e-3)
    rows = []
    for h in heights:
        spec = family if h == 0 else f"{family}/sgd*{h}"
        build = hypernb_step(spec, kappa=1e-5)
        ratios, times = [], []
        for _ in range(reps):
            b = time_step(base, device=device, steps=steps, warmup=warmup)
            t = time_step(build, device=device, steps=steps, warmup=warmup)
            ratios.append(t / b)
            times.append(t)
        held, peak = held_memory(build, device=device)
        rows.append({"height": h, "ms_per_step": statistics.median(times), "ratio_to_torch": statistics.median(ratios),
                     "held_mb": held, "peak_mb": peak})
    return rows
