"""Oracle 2: with no hyperoptimizer, or with κ = 0, the rules are torch.optim's, step for step
(float64), wherever the two definitions agree. Where they differ, the test says how:

* AdaGrad: gdtuo starts the accumulator at 0.1 (torch: ``initial_accumulator_value=0``) and puts
  ε inside the square root (torch: outside); we pass torch the same start and compare with ε = 0.
* RMSProp: ε inside the square root (torch: outside); compared with ε = 0 on both sides.
* Adam: v₀ = ε (torch: 0); compared with ε = 1e-300 so that v₀ and ε vanish on both sides.
"""
import pytest
import torch

from hypernb import optim
from oracles import batches, mlp, train_hypernb

CASES = {
    "sgd": (lambda p, h: optim.SGD(p, alpha=0.05, hyper=h), lambda p: torch.optim.SGD(p, lr=0.05)),
    "sgd-momentum": (lambda p, h: optim.SGD(p, alpha=0.02, mu=0.9, hyper=h),
                     lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9)),
    "adagrad": (lambda p, h: optim.AdaGrad(p, alpha=0.02, eps=0.0, hyper=h),
                lambda p: torch.optim.Adagrad(p, lr=0.02, initial_accumulator_value=0.1, eps=0.0)),
    "rmsprop": (lambda p, h: optim.RMSProp(p, alpha=0.003, gamma=0.9, eps=0.0, hyper=h),
                lambda p: torch.optim.RMSprop(p, lr=0.003, alpha=0.9, eps=0.0)),
    "adam": (lambda p, h: optim.Adam(p, alpha=0.002, beta1=0.8, beta2=0.99, log_eps=-300, hyper=h),
             lambda p: torch.optim.Adam(p, lr=0.002, betas=(0.8, 0.99), eps=1e-300)),
}


def run_torch(opt_fn, data):
    model = mlp()
    opt = opt_fn(model.parameters())
    for x, y in data:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.mark.parametrize("hyper", ["none", "kappa0"])
@pytest.mark.parametrize("name", list(CASES))
def test_reduces_to_torch_optim(name, hyper):
    ours_fn, torch_fn = CASES[name]
    data = batches(30)
    reference = run_torch(torch_fn, data)
    model = mlp()
    h = None if hyper == "none" else optim.Adam(alpha=0.0, hyper=optim.SGD(alpha=0.0))
    if name in ("sgd", "sgd-momentum", "adagrad"):
        h = None if hyper == "none" else optim.SGD(alpha=0.0)
    train_hypernb(model, ours_fn(model.parameters(), h), data)
    for (n, ours), ref in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14, msg=f"{name}: parameter {n}")


def test_adam_default_v0_is_a_large_early_epsilon():
    """Documented difference: gdtuo's v₀ = ε is divided by the bias correction 1 − β2ᵗ, so at step 1
    the denominator is √(g² + ε·β2/(1−β2)) + ε ≈ √(g² + 1e-5): coordinates with |g| ≪ 3e-3 move far
    less than under torch's Adam (which moves every coordinate by ≈ α at step 1)."""
    (x, y), = batches(1)
    ref = run_torch(lambda p: torch.optim.Adam(p, lr=1e-3), [(x, y)])
    model, start = mlp(), mlp()
    train_hypernb(model, optim.Adam(model.parameters(), alpha=1e-3), [(x, y)])
    torch.nn.functional.cross_entropy(start(x), y).backward()
    g = torch.cat([p.grad.reshape(-1) for p in start.parameters()])
    w0 = torch.cat([p.detach().reshape(-1) for p in start.parameters()])
    ours = torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - w0
    theirs = torch.cat([p.detach().reshape(-1) for p in ref.parameters()]) - w0
    eps, beta2 = 1e-8, 0.999
    predicted = -1e-3 * g / ((g * g + eps * beta2 / (1 - beta2)).sqrt() + eps)
    torch.testing.assert_close(ours, predicted, rtol=1e-9, atol=1e-15)
    small = (g.abs() < 1e-4) & (g != 0)
    assert small.any() and (ours[small].abs() < 0.05 * theirs[small].abs()).all()


@pytest.mark.parametrize("name", list(CASES))
def test_each_member_of_a_batch_reduces_to_torch_optim(name):
    """Two configurations trained at once with κ = 0, each from its own initialisation: each equals
    torch.optim alone."""
    from hypernb import models

    ours_fn, torch_fn = CASES[name]
    data = batches(20)
    together = models.batched([mlp(seed=0), mlp(seed=1)])
    hyper = optim.SGD(alpha=0.0)
    probe = ours_fn([torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))], None)  # the case's values
    kw = {k: v for k, v in probe._values.items()}
    rule = probe._rule
    options = {"eps": getattr(rule, "eps", None)} if name in ("adagrad", "rmsprop") else {}
    if name == "adam":
        options = {"log_eps": -300}
    if name == "adagrad":
        options["initial_accumulator"] = rule.initial_accumulator
    opt = type(probe)(together.parameters(), hyper=hyper, batch=2, **kw, **options)
    for x, y in data:
        opt.zero_grad()
        out = together(x.unsqueeze(0).expand(2, *x.shape))
        (torch.nn.functional.cross_entropy(out[0], y) + torch.nn.functional.cross_entropy(out[1], y)).backward()
        opt.step()
    for k in range(2):
        reference = mlp(seed=k)
        t = torch_fn(reference.parameters())
        for x, y in data:
            t.zero_grad()
            torch.nn.functional.cross_entropy(reference(x), y).backward()
            t.step()
        state = together.member_state(k)
        for n, p in reference.named_parameters():
            torch.testing.assert_close(state[n], p.detach(), rtol=1e-12, atol=1e-14, msg=f"{name} member {k}: {n}")


# -- weight decay and parameter groups ---------------------------------------------------------------
# torch.optim's weight_decay: L2 (g + λw) for SGD, Adagrad, RMSprop and Adam; decoupled for AdamW
# (w ← w − αλw − α·m̂/(√v̂+ε)). Same documented differences as above (ε, G₀, v₀).
DECAY = {
    "sgd": (lambda p, h: optim.SGD(p, lr=0.05, weight_decay=1e-2, hyper=h),
            lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=1e-2)),
    "sgd-momentum": (lambda p, h: optim.SGD(p, lr=0.02, momentum=0.9, weight_decay=5e-2, hyper=h),
                     lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9, weight_decay=5e-2)),
    "adagrad": (lambda p, h: optim.AdaGrad(p, lr=0.02, eps=0.0, weight_decay=1e-2, hyper=h),
                lambda p: torch.optim.Adagrad(p, lr=0.02, initial_accumulator_value=0.1, eps=0.0, weight_decay=1e-2)),
    "rmsprop": (lambda p, h: optim.RMSProp(p, lr=0.003, gamma=0.9, eps=0.0, weight_decay=1e-2, hyper=h),
                lambda p: torch.optim.RMSprop(p, lr=0.003, alpha=0.9, eps=0.0, weight_decay=1e-2)),
    "adam-l2": (lambda p, h: optim.Adam(p, lr=0.002, betas=(0.8, 0.99), eps=1e-300, weight_decay=1e-2, hyper=h),
                lambda p: torch.optim.Adam(p, lr=0.002, betas=(0.8, 0.99), eps=1e-300, weight_decay=1e-2)),
    "adamw": (lambda p, h: optim.AdamW(p, lr=0.002, betas=(0.8, 0.99), eps=1e-300, weight_decay=0.1, hyper=h),
              lambda p: torch.optim.AdamW(p, lr=0.002, betas=(0.8, 0.99), eps=1e-300, weight_decay=0.1)),
}


def kappa0():
    """κ = 0 one level up: the hyperoptimizer runs (tangents, hypergradients) but moves nothing."""
    return optim.SGD(alpha=0.0)


def assert_same(model, reference, what):
    for (n, ours), ref in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14, msg=f"{what}: parameter {n}")


@pytest.mark.parametrize("hyper", ["none", "kappa0"])
@pytest.mark.parametrize("name", list(DECAY))
def test_weight_decay_reduces_to_torch_optim(name, hyper):
    ours_fn, torch_fn = DECAY[name]
    data = batches(30)
    reference = run_torch(torch_fn, data)
    model = mlp()
    opt = ours_fn(model.parameters(), None if hyper == "none" else kappa0())
    train_hypernb(model, opt, data)
    assert_same(model, reference, name)


def split(model):
    """The usual two groups: weights (decayed) and biases (not decayed)."""
    named = list(model.named_parameters())
    return [p for n, p in named if n.endswith("weight")], [p for n, p in named if n.endswith("bias")]


# each: hypernb groups and torch groups built from (weights, biases); the groups differ in step size,
# momentum / betas / gamma and weight decay; the first group names α 'alpha', the second 'lr'
GROUPS = {
    "sgd-momentum": (
        lambda w, b, h: optim.SGD([{"params": w, "weight_decay": 5e-2, "name": "weights"},
                                   {"params": b, "lr": 0.1, "momentum": 0.5, "name": "biases"}],
                                  alpha=0.02, momentum=0.9, hyper=h),
        lambda w, b: torch.optim.SGD([{"params": w, "weight_decay": 5e-2}, {"params": b, "lr": 0.1, "momentum": 0.5}],
                                     lr=0.02, momentum=0.9)),
    "sgd": (
        lambda w, b, h: optim.SGD([{"params": w, "alpha": 0.03, "weight_decay": 1e-2}, {"params": b, "lr": 0.2}],
                                  hyper=h),
        lambda w, b: torch.optim.SGD([{"params": w, "lr": 0.03, "weight_decay": 1e-2}, {"params": b, "lr": 0.2}])),
    "adagrad": (
        lambda w, b, h: optim.AdaGrad([{"params": w, "weight_decay": 1e-2}, {"params": b, "lr": 0.05}], lr=0.02,
                                      eps=0.0, hyper=h),
        lambda w, b: torch.optim.Adagrad([{"params": w, "weight_decay": 1e-2}, {"params": b, "lr": 0.05}], lr=0.02,
                                         initial_accumulator_value=0.1, eps=0.0)),
    "rmsprop": (
        lambda w, b, h: optim.RMSProp([{"params": w, "weight_decay": 1e-2, "gamma": 0.95}, {"params": b, "lr": 0.01}],
                                      lr=0.003, gamma=0.9, eps=0.0, hyper=h),
        lambda w, b: torch.optim.RMSprop([{"params": w, "weight_decay": 1e-2, "alpha": 0.95},
                                          {"params": b, "lr": 0.01}], lr=0.003, alpha=0.9, eps=0.0)),
    "adam-l2": (
        lambda w, b, h: optim.Adam([{"params": w, "weight_decay": 1e-2}, {"params": b, "alpha": 0.01, "beta1": 0.5}],
                                   lr=0.002, betas=(0.8, 0.99), eps=1e-300, hyper=h),
        lambda w, b: torch.optim.Adam([{"params": w, "weight_decay": 1e-2}, {"params": b, "lr": 0.01,
                                                                              "betas": (0.5, 0.99)}],
                                      lr=0.002, betas=(0.8, 0.99), eps=1e-300)),
    "adamw": (
        lambda w, b, h: optim.AdamW([{"params": w}, {"params": b, "weight_decay": 0.0, "beta2": 0.9}],
                                    lr=0.002, betas=(0.8, 0.99), eps=1e-300, weight_decay=0.1, hyper=h),
        lambda w, b: torch.optim.AdamW([{"params": w}, {"params": b, "weight_decay": 0.0, "betas": (0.8, 0.9)}],
                                       lr=0.002, betas=(0.8, 0.99), eps=1e-300, weight_decay=0.1)),
}


@pytest.mark.parametrize("hyper", ["none", "kappa0"])
@pytest.mark.parametrize("name", list(GROUPS))
def test_two_parameter_groups_reduce_to_torch_optim(name, hyper):
    """Two groups with their own step size, momentum/betas/gamma and weight decay (no decay on the
    biases, the usual split): each group follows torch.optim's group, step for step."""
    ours_fn, torch_fn = GROUPS[name]
    data = batches(30)
    reference = mlp()
    t = torch_fn(*split(reference))
    train_hypernb(reference, t, data)
    model = mlp()
    opt = ours_fn(*split(model), None if hyper == "none" else kappa0())
    train_hypernb(model, opt, data)
    assert_same(model, reference, name)
    hp = opt.hyperparameters()
    for i, group in enumerate(t.param_groups):  # each group kept its own α (κ = 0: its initial value)
        key = next(k for k in hp if k.startswith("alpha.") and k.endswith(opt.param_groups[i].get("name",
                                                                                                    f"group{i}")))
        assert hp[key].item() == pytest.approx(group["lr"], rel=1e-15)
