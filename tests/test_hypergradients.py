"""Oracle 3: hypergradients against closed forms and against reverse-mode autograd."""
import pytest
import torch

from hypernb import optim
from hypernb.optim.dual import Dual
from oracles import batches, mlp


def flat_grad(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def test_sgd_sgd_hypergradient_is_minus_dot_of_consecutive_gradients():
    """Baydin et al.'s closed form: ∂f(w_t)/∂α = −∇f(w_t)·∇f(w_{t−1})."""
    model, data = mlp(), batches(8)
    opt = optim.SGD(model.parameters(), alpha=0.05, hyper=optim.SGD(alpha=1e-3))
    previous = None
    for i, (x, y) in enumerate(data):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        g = flat_grad(model).clone()
        alpha_before = opt.hyperparameters()["alpha"].item()
        opt.step()
        expected = 0.0 if previous is None else -torch.dot(g, previous).item()
        assert opt.hypergradients()["alpha"].item() == pytest.approx(expected, rel=1e-12, abs=1e-300)
        # and the hyper-step used it: α_{t+1} = α_t − κ ∂f/∂α
        assert opt.hyperparameters()["alpha"].item() == pytest.approx(alpha_before - 1e-3 * expected, rel=1e-13)
        previous = g


def test_sgd_tower_hypergradients_chain_as_products():
    """For an all-SGD tower, d f_t/d κ_k = −(d f_t/d κ_{k−1}) · (d f_{t−1}/d κ_{k−1}) (ANCHORS §TL;DR)."""
    model, data = mlp(), batches(10)
    opt = optim.tower("sgd/sgd*3", model.parameters(), alpha=0.05, kappa=[1e-2, 1e-3, 1e-4])
    prev = None
    for x, y in data:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        hg = opt.hypergradients()
        now = [hg["alpha"].item(), hg["hyper.alpha"].item(), hg["hyper.hyper.alpha"].item()]
        if prev is not None:
            for k in (1, 2):
                assert now[k] == pytest.approx(-now[k - 1] * prev[k - 1], rel=1e-10, abs=1e-300)
        prev = now


FAMILIES = {
    "sgd": lambda p, h: optim.SGD(p, alpha=0.05, hyper=h),
    "sgd-momentum": lambda p, h: optim.SGD(p, alpha=0.02, mu=0.8, hyper=h),
    "adagrad": lambda p, h: optim.AdaGrad(p, alpha=0.05, hyper=h),
    "rmsprop": lambda p, h: optim.RMSProp(p, alpha=0.003, gamma=0.9, hyper=h),
    "adam": lambda p, h: optim.Adam(p, alpha=0.003, beta1=0.8, beta2=0.99, hyper=h),
    "sgdperparam": lambda p, h: optim.SGDPerParam(p, alpha=[0.05, 0.02, 0.05, 0.03], hyper=h),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_hypergradient_matches_reverse_mode_through_one_update(name):
    """Unroll the previous update with autograd (reverse mode) and differentiate the next loss with
    respect to the stored hyperparameters: it must equal what the forward-mode tangents gave."""
    model, data = mlp(), batches(6)
    opt = FAMILIES[name](model.parameters(), optim.SGD(alpha=0.0))
    engine = opt._engine
    lvl = engine.levels[0]
    for x, y in data[:4]:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    # state before the next update, and the gradient it will use
    x, y = data[4]
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    w, g = engine.flat.detach().clone(), flat_grad(model).clone()
    state = {k: v.clone() for k, v in lvl.state.items()}
    raw = lvl.raw.detach().clone().requires_grad_(True)
    t = (engine.t + 1).to(torch.float64)
    opt.step()
    # reverse mode: w_next(raw) with everything else constant, then the loss on the next batch
    h = lvl.effective(raw, with_tangents=False)
    delta, _ = lvl.rule.update(g, state, h, t)
    w_next = w + delta
    params = {}
    offset = 0
    for (pname, p) in model.named_parameters():
        params[pname] = w_next[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    x2, y2 = data[5]
    loss = torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (x2,)), y2)
    (expected,) = torch.autograd.grad(loss, raw)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x2), y2).backward()
    opt.step()
    torch.testing.assert_close(lvl.G, expected, rtol=1e-10, atol=1e-300)


def test_ema_matches_autograd():
    from hypernb.optim.dual import ema
    beta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    old, new = torch.rand(6, dtype=torch.float64), torch.rand(6, dtype=torch.float64)
    (expected,) = torch.autograd.grad((beta * old + (1 - beta) * new).sum(), beta)
    d = ema(old, new, Dual.seed(beta.detach(), 0))
    coef, base = d.tangent(0)
    assert torch.allclose(d.value, beta.detach() * old + (1 - beta.detach()) * new)
    assert torch.allclose((coef * base).sum(), expected)


def test_dual_numbers_match_autograd_on_each_primitive():
    x = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    v = torch.rand(5, dtype=torch.float64) + 0.5
    t = torch.tensor(3.0, dtype=torch.float64)
    fns = [
        lambda a: a * v + 2.0, lambda a: 1.0 - a * v, lambda a: v / a, lambda a: a / v, lambda a: (a * v) ** 0.5,
        lambda a: a ** t, lambda a: (a * v).sqrt(), lambda a: (a * v).tanh(), lambda a: (a * v).exp(),
        lambda a: (a * v) ** 2, lambda a: -(a * v), lambda a: 2.0 ** a * v, lambda a: v - a,
        lambda a: (a * v) ** 3, lambda a: v / (a * v + 1.0) - a * a / v,
    ]
    for f in fns:
        y = f(x)
        expected = torch.autograd.grad(y.sum(), x)[0]
        d = f(Dual.seed(x.detach(), 0))
        assert torch.allclose(d.value, y.detach())
        coef, base = d.tangent(0)
        tangent = coef if base is None else coef * base
        assert torch.allclose(torch.broadcast_to(torch.as_tensor(tangent, dtype=torch.float64), y.shape).sum(), expected), f
