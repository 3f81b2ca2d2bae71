"""Oracle 3: hypergradients against closed forms and against reverse-mode autograd."""
import copy

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
    "sgd-weight-decay": lambda p, h: optim.SGD(p, alpha=0.02, mu=0.8, weight_decay=0.1, hyper=h),
    "adagrad": lambda p, h: optim.AdaGrad(p, alpha=0.05, hyper=h),
    "rmsprop": lambda p, h: optim.RMSProp(p, alpha=0.003, gamma=0.9, hyper=h),
    "adam": lambda p, h: optim.Adam(p, alpha=0.003, beta1=0.8, beta2=0.99, hyper=h),
    "adamw": lambda p, h: optim.AdamW(p, alpha=0.003, beta1=0.8, beta2=0.99, weight_decay=0.1, hyper=h),
    "adam-sign-safe": lambda p, h: optim.Adam(p, alpha=0.003, beta1=0.8, beta2=0.99, sign_safe=True, hyper=h),
    "sgdperparam": lambda p, h: optim.SGDPerParam(p, alpha=[0.05, 0.02, 0.05, 0.03], hyper=h),
}


def _loss(model, batch):
    x, y = batch
    return torch.nn.functional.cross_entropy(model(x), y)


def _steps(model, opt, data):
    for batch in data:
        opt.zero_grad()
        _loss(model, batch).backward()
        opt.step()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_hypergradient_matches_reverse_mode_through_one_update(name):
    """Unroll the previous update with autograd (reverse mode) and differentiate the next loss with
    respect to the stored hyperparameters: it must equal what the forward-mode tangents gave."""
    model, data = mlp(), batches(6)
    opt = FAMILIES[name](model.parameters(), optim.SGD(alpha=0.0))
    engine = opt._engine
    lvl = engine.levels[0]
    _steps(model, opt, data[:4])
    # state before the next update, and the gradient it will use
    opt.zero_grad()
    _loss(model, data[4]).backward()
    w, g = engine.flat.detach().clone(), flat_grad(model).clone().unsqueeze(0)
    states = [{k: v.clone() for k, v in st.items()} for st in lvl.state]
    raw = lvl.raw.detach().clone().requires_grad_(True)
    t = (engine.t + 1).to(torch.float64)
    opt.step()
    # reverse mode: w_next(raw) with everything else constant, then the loss on the next batch
    H = len(lvl.trainable)
    deltas = []
    for s, seg in enumerate(lvl.segments):
        h = {hy.name: hy.param.from_raw(raw[:, s * H + j:s * H + j + 1]) for j, hy in enumerate(lvl.trainable)}
        for fixed in lvl.fixed_names:
            if fixed != "weight_decay" or lvl.decays(s):
                h[fixed] = lvl.fixed[fixed][:, s:s + 1]
        h["alpha"] = h["alpha"] * h.pop("lr_scale")
        direction, scale, _ = lvl.rule.update(g[:, seg.start:seg.stop], w[:, seg.start:seg.stop], states[s], h, t)
        deltas.append(scale * direction)
    w_next = (w + torch.cat(deltas, dim=1))[0]
    params, offset = {}, 0
    for pname, p in model.named_parameters():
        params[pname] = w_next[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    x2, y2 = data[5]
    loss = torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (x2,)), y2)
    (expected,) = torch.autograd.grad(loss, raw)
    opt.zero_grad()
    _loss(model, data[5]).backward()
    opt.step()
    torch.testing.assert_close(lvl.G, expected, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_hypergradient_equals_a_central_finite_difference_of_the_next_loss(name):
    """The paper's hypergradient at step t+1 is d f_{t+1}(w_{t+1}) / d h_t, with w_{t+1} the result of
    step t. Check it against (f(h + ε) − f(h − ε)) / 2ε, re-running step t from saved state (float64)."""
    data = batches(7)

    def setup():
        model = mlp()
        opt = FAMILIES[name](model.parameters(), optim.SGD(alpha=0.0))  # κ = 0: h stays where it is set
        _steps(model, opt, data[:4])
        return model, opt

    model, opt = setup()
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    _steps(model, opt, data[4:6])  # step t (batch 4), then step t+1 (batch 5) reports the hypergradient
    reported = {k: v.item() for k, v in opt.hypergradients().items()}
    checked = 0
    for key, value in reported.items():
        raw0 = opt._engine.levels[0].raw[0, opt._engine.levels[0].names.index(key)].item()
        eps = 1e-6 * max(1.0, abs(raw0))
        losses = []
        for sign in (1, -1):
            model.load_state_dict(saved_model)
            opt.load_state_dict(saved_opt)
            lvl = opt._engine.levels[0]
            with torch.no_grad():
                lvl.raw[0, lvl.names.index(key)] += sign * eps
            _steps(model, opt, data[4:5])
            with torch.no_grad():
                losses.append(_loss(model, data[5]).item())
        fd = (losses[0] - losses[1]) / (2 * eps)
        assert value == pytest.approx(fd, rel=1e-6, abs=1e-9), (key, value, fd)
        checked += abs(value) > 1e-6
    assert checked, f"every hypergradient is ~0: {reported}"


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


def test_sgd_sgd_closed_form_holds_for_each_member_of_a_batch():
    """batch=2, each configuration on its own data: each hypergradient is −⟨g_t, g_{t−1}⟩ of its own."""
    from hypernb import models

    together = models.batched([mlp(seed=0), mlp(seed=1)])
    opt = optim.SGD(together.parameters(), alpha=[0.05, 0.02], hyper=optim.SGD(alpha=[1e-3, 1e-2]), batch=2)
    streams = [batches(6, seed=3), batches(6, seed=4)]
    previous = None
    for step in range(6):
        x = torch.stack([s[step][0] for s in streams])
        opt.zero_grad()
        out = together(x)
        sum(torch.nn.functional.cross_entropy(out[k], streams[k][step][1]) for k in range(2)).backward()
        g = torch.cat([p.grad.reshape(2, -1) for p in together.parameters()], dim=1).clone()
        opt.step()
        expected = torch.zeros(2, dtype=torch.float64) if previous is None else -(g * previous).sum(dim=1)
        torch.testing.assert_close(opt.hypergradients()["alpha"], expected, rtol=1e-12, atol=1e-300)
        previous = g
