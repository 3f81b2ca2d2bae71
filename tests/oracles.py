"""Shared helpers for the oracle tests: the MLP, a fixed batch stream, and gdtuo adapters."""
from __future__ import annotations

import warnings

import torch

from hypernb import optim


def mlp(seed: int = 0, dtype=torch.float64, hidden: int = 128) -> torch.nn.Module:
    """The paper's MNIST model shape: 784-128-10 with tanh."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 10)
    ).to(dtype)


def batches(n: int, batch: int = 32, seed: int = 1, dtype=torch.float64):
    """A fixed stream of MNIST-shaped batches (sparse non-negative pixels, learnable labels)."""
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(784, 10, generator=gen, dtype=dtype)
    out = []
    for _ in range(n):
        x = torch.rand(batch, 784, generator=gen, dtype=dtype) * (torch.rand(batch, 784, generator=gen) < 0.2)
        out.append((x, (x @ teacher).argmax(1)))
    return out


def train_hypernb(model, opt, data):
    for x, y in data:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, opt


# -- gdtuo (the paper's package, test-only oracle) ------------------------------------------------
def gdtuo_module():
    from gradient_descent_the_ultimate_optimizer import gdtuo

    return gdtuo


def build_gdtuo(spec: list[tuple[str, dict]]):
    """[("adam", {...}), ("sgd", {...})] → nested gdtuo optimizers (leftmost trains the model)."""
    g = gdtuo_module()
    classes = {"sgd": g.SGD, "adagrad": g.AdaGrad, "rmsprop": g.RMSProp, "rmspropalpha": g.RMSPropAlpha,
               "adam": g.Adam, "adambaydin": g.AdamBaydin}
    opt = g.NoOpOptimizer()
    for name, kw in reversed(spec):
        if name == "sgdperparam":
            opt = g.SGDPerParam(list(kw["pairs"]), optimizer=opt)
        else:
            opt = classes[name](**kw, optimizer=opt)
    return opt


def train_gdtuo(model, gd_opt, data):
    g = gdtuo_module()
    mw = g.ModuleWrapper(model, optimizer=gd_opt)
    mw.initialize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_graph=True warns about reference cycles (as documented)
        for x, y in data:
            mw.begin()
            loss = torch.nn.functional.cross_entropy(mw.forward(x), y)
            mw.zero_grad()
            loss.backward(create_graph=True)  # the package's documented protocol
            mw.step()
    return mw


def gdtuo_effective(opt) -> dict[str, float]:
    """Effective hyperparameters of every gdtuo level, keyed like hypernb's hyperparameters()."""
    g = gdtuo_module()
    out, prefix = {}, ""
    while not isinstance(opt, g.NoOpOptimizer):
        p = opt.parameters
        name = type(opt).__name__
        for key, raw in p.items():
            raw = raw.detach()
            if name in ("RMSProp", "RMSPropAlpha") and key == "alpha":
                val = raw ** 2
            elif (name == "Adam" and key.startswith("beta")) or (name == "RMSProp" and key == "gamma"):
                val = (raw.tanh() + 1) / 2
            elif name == "SGDPerParam":
                key = "alpha." + key[: -len("_alpha")]
                val = raw
            else:
                val = raw
            out[prefix + key] = float(val)
        opt, prefix = opt.optimizer, prefix + "hyper."
    return out


def hypernb_spec(spec: list[tuple[str, dict]], params, **options):
    """The same tower in hypernb."""
    node = None
    for name, kw in reversed(spec[1:]):
        kw = dict(kw)
        if name == "sgdperparam":
            kw = {"alpha": dict(kw.pop("pairs"))}
        node = optim.FAMILIES[name](hyper=node, **kw)
    name, kw = spec[0]
    return optim.FAMILIES[name](params, hyper=node, **kw, **options)
