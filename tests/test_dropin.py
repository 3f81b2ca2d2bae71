"""Drop-in means drop-in: a hypernb optimizer in an ordinary PyTorch training script.

Each case of issue 12's "Why" has a test here (the SGD α = 100 divergence is in test_batch.py,
the Slurm dry run in test_sweep.py, weight decay and groups against torch.optim in
test_oracle_torch.py). Where a test says "κ = 0" the hyperoptimizer runs but moves nothing, so the
result must equal torch.optim's, step for step, in float64.
"""
import copy
import io
import pickle
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim import lr_scheduler as S

from hypernb import optim
from oracles import batches, mlp


# -- the pytorch/examples MNIST script (mnist/main.py), unchanged except the optimizer's constructor --
class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    return test_loss, correct / len(test_loader.dataset)


test.__test__ = False  # the example's own test(), not a pytest test


def main(make_optimizer, dtype=torch.float32, epochs=3, lr=1e-3, gamma=0.7, n_train=256):
    """mnist/main.py's main(), with n_train/64 batches of 64 real MNIST images per epoch (the
    transform's normalisation included) and `optimizer = make_optimizer(model.parameters(), lr=lr)`."""
    from hypernb import data

    torch.manual_seed(1)
    device = torch.device("cpu")
    arrays = data.load_mnist(data.data_root(), download_ok=False)
    x = ((arrays["train_x"][:512].to(dtype) / 255.0) - 0.1307) / 0.3081
    train_set = torch.utils.data.TensorDataset(x[:n_train], arrays["train_y"][:n_train])
    test_set = torch.utils.data.TensorDataset(x[256:], arrays["train_y"][256:512])
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000)

    model = Net().to(device=device, dtype=dtype)
    optimizer = make_optimizer(model.parameters(), lr=lr)

    scheduler = S.StepLR(optimizer, step_size=1, gamma=gamma)
    history = []
    for epoch in range(1, epochs + 1):
        train(model, device, train_loader, optimizer, epoch)
        history.append(test(model, device, test_loader))
        scheduler.step()
    return model, optimizer, history


def test_pytorch_examples_mnist_script_runs_with_only_the_constructor_changed():
    from conftest import require

    require("mnist")
    model, opt, history = main(lambda params, lr: optim.Adam(params, lr=lr, hyper=optim.SGD(lr=1e-5)))
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(1e-3 * 0.7 ** 3)]  # StepLR wrote the multiplier
    alpha = opt.hyperparameters()["alpha"].item()
    assert alpha != 1e-3 and alpha > 0  # the hyperoptimizer learned α alongside the schedule
    losses = [loss for loss, _ in history]
    assert losses[-1] < 0.75 * losses[0] and history[-1][1] > 0.5, history


def test_pytorch_examples_mnist_script_with_kappa_0_equals_torch_adam_with_steplr():
    """κ = 0: the script (dropout, StepLR and all) ends with exactly torch.optim.Adam's weights."""
    from conftest import require

    require("mnist")
    ours, _, h1 = main(lambda params, lr: optim.Adam(params, lr=lr, eps=1e-300, hyper=optim.SGD(lr=0.0)),
                       dtype=torch.float64, n_train=128)
    theirs, _, h2 = main(lambda params, lr: torch.optim.Adam(params, lr=lr, eps=1e-300), dtype=torch.float64,
                         n_train=128)
    for (n, a), b in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=n)
    assert [v for h in h1 for v in h] == pytest.approx([v for h in h2 for v in h], rel=1e-12)


# -- every scheduler of torch.optim.lr_scheduler -------------------------------------------------------
SCHEDULERS = {
    "StepLR": lambda o: S.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=8, eta_min=1e-3),
    "LambdaLR": lambda o: S.LambdaLR(o, [lambda t: 1 / (1 + t), lambda t: 0.95 ** t]),  # one per group
    "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda t: 0.9),
    "LinearLR": lambda o: S.LinearLR(o, start_factor=0.25, total_iters=6),
    "ConstantLR": lambda o: S.ConstantLR(o, factor=0.5, total_iters=4),
    "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=10, power=2.0),
    "CyclicLR": lambda o: S.CyclicLR(o, base_lr=0.005, max_lr=0.05, step_size_up=3, cycle_momentum=False),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=0.08, total_steps=12, cycle_momentum=False),
    "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2, eta_min=1e-4),
    "SequentialLR": lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=3),
                                                 S.ExponentialLR(o, gamma=0.8)], milestones=[3]),
    "ChainedScheduler": lambda o: S.ChainedScheduler([S.ConstantLR(o, factor=0.5, total_iters=5),
                                                      S.ExponentialLR(o, gamma=0.9)]),
    "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, mode="max", factor=0.5, patience=1),  # the loss falls
}


def test_every_scheduler_of_torch_is_covered():
    """A new torch release with a new scheduler fails here, so it gets a tested meaning too."""
    names = {n for n, c in vars(S).items() if isinstance(c, type) and issubclass(c, (S.LRScheduler,
                                                                                         S.ReduceLROnPlateau))}
    assert names - {"LRScheduler", "_LRScheduler"} <= set(SCHEDULERS)


def scheduled_run(make_opt, make_sched, steps=12):
    model = mlp()
    named = list(model.named_parameters())
    groups = [[p for n, p in named if n.endswith("weight")], [p for n, p in named if n.endswith("bias")]]
    opt = make_opt(groups)
    sched = make_sched(opt)
    lrs = []
    for x, y in batches(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sched.step(loss.item()) if isinstance(sched, S.ReduceLROnPlateau) else sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    return model, opt, lrs


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_is_a_multiplier_that_equals_torch_with_kappa_0(name):
    """The step uses learned α × lr / initial lr. With κ = 0 the learned α stays the initial lr, so
    the run must equal torch.optim.SGD under the same scheduler (two groups, momentum, float64)."""
    def ours(groups):
        return optim.SGD([{"params": groups[0]}, {"params": groups[1], "lr": 0.02}], lr=0.05, momentum=0.9,
                         hyper=optim.SGD(lr=0.0))

    def theirs(groups):
        return torch.optim.SGD([{"params": groups[0]}, {"params": groups[1], "lr": 0.02}], lr=0.05, momentum=0.9)

    model_a, opt, lrs_a = scheduled_run(ours, SCHEDULERS[name])
    model_b, _, lrs_b = scheduled_run(theirs, SCHEDULERS[name])
    assert lrs_a == lrs_b and len({tuple(r) for r in lrs_a}) > 1  # the schedule really changed lr
    for (n, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=f"{name}: {n}")
    hp = opt.hyperparameters()  # the learned values are not what the scheduler writes
    assert hp["alpha.group0"].item() == 0.05 and hp["alpha.group1"].item() == 0.02


def test_scheduler_multiplies_what_the_hyperoptimizer_learns():
    """κ > 0: every step moves the weights by −(learned α after this step) × lr/initial lr × g,
    and the schedule never resets what was learned."""
    w = torch.nn.Parameter(torch.linspace(-1, 1, 7, dtype=torch.float64))
    opt = optim.SGD([w], lr=0.1, hyper=optim.SGD(lr=0.05))
    sched = S.StepLR(opt, step_size=2, gamma=0.5)
    alphas = []
    for t in range(8):
        opt.zero_grad()
        ((w - 0.3) ** 4).sum().backward()
        before, g, multiplier = w.detach().clone(), w.grad.clone(), opt.param_groups[0]["lr"] / 0.1
        opt.step()
        alpha = opt.hyperparameters()["alpha"].item()
        torch.testing.assert_close(w.detach() - before, -alpha * multiplier * g, rtol=1e-14, atol=1e-16)
        alphas.append(alpha)
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 4)
    assert len(set(alphas)) == 8 and all(a > 0.1 for a in alphas[1:])  # learned and kept across the schedule


@pytest.mark.parametrize("make", [
    lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1),  # cycle_momentum=True is CyclicLR's default
    lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=10),
])
@pytest.mark.parametrize("family", ["sgd", "adam"])
def test_cycling_momentum_is_a_clear_error_not_a_silent_no_op(make, family):
    """μ and β are learned by the hyperoptimizer, not scheduled: torch's own check refuses."""
    p = [torch.nn.Parameter(torch.ones(3))]
    opt = optim.SGD(p, lr=0.1, momentum=0.9) if family == "sgd" else optim.Adam(p, lr=0.1)
    with pytest.raises(ValueError, match="must support momentum or beta1 with `cycle_momentum`"):
        make(opt)


# -- writing param_groups[i][key] ---------------------------------------------------------------------
def _loop(model, opt, data, writes):
    """Train; before step t apply writes[t] = [(group, key, value), ...] to opt.param_groups."""
    for t, (x, y) in enumerate(data):
        for g, key, value in writes.get(t, []):
            opt.param_groups[g][key] = value
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.mark.parametrize("case", ["sgd", "adam"])
def test_group_writes_take_effect_at_the_next_step_like_torch(case):
    """Mid-training writes of lr, weight_decay, momentum (μ), alpha, beta1/beta2 equal torch.optim's
    writes of lr, weight_decay, momentum and betas (κ = 0, float64)."""
    data = batches(12)
    if case == "sgd":
        model_a, model_b = mlp(), mlp()
        opt_a = optim.SGD(model_a.parameters(), lr=0.05, momentum=0.5, hyper=optim.SGD(lr=0.0))
        opt_b = torch.optim.SGD(model_b.parameters(), lr=0.05, momentum=0.5)
        ours = {3: [(0, "lr", 0.1)], 5: [(0, "weight_decay", 0.05)], 7: [(0, "momentum", 0.9)], 9: [(0, "mu", 0.2)]}
        theirs = {3: [(0, "lr", 0.1)], 5: [(0, "weight_decay", 0.05)], 7: [(0, "momentum", 0.9)],
                  9: [(0, "momentum", 0.2)]}
    else:
        model_a, model_b = mlp(), mlp()
        opt_a = optim.Adam(model_a.parameters(), lr=0.002, eps=1e-300, hyper=optim.SGD(lr=0.0))
        opt_b = torch.optim.Adam(model_b.parameters(), lr=0.002, eps=1e-300)
        ours = {3: [(0, "alpha", 0.004)], 5: [(0, "beta1", 0.5)], 6: [(0, "beta2", 0.9)],
                8: [(0, "weight_decay", 0.01)]}
        theirs = {3: [(0, "lr", 0.004)], 5: [(0, "betas", (0.5, 0.999))], 6: [(0, "betas", (0.5, 0.9))],
                  8: [(0, "weight_decay", 0.01)]}
    _loop(model_a, opt_a, data, ours)
    _loop(model_b, opt_b, data, theirs)
    for (n, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=f"{case}: {n}")


def _opt(kind):
    p = [torch.nn.Parameter(torch.ones(3))]
    return {"sgd": lambda: optim.SGD(p, lr=0.1),
            "sgd-momentum": lambda: optim.SGD(p, lr=0.1, momentum=0.9),
            "adam": lambda: optim.Adam(p, lr=0.1),
            "zero-lr": lambda: optim.SGD(p, lr=0.0)}[kind]()


@pytest.mark.parametrize("kind, key, value, match", [
    ("sgd", "momentum", 0.9, r"built without momentum"),  # a μ the rule would ignore
    ("sgd", "mu", 0.5, r"built without momentum"),
    ("sgd", "betas", (0.9, 0.99), r"writing 'betas' cannot take effect: SGD has no such [^;]*\)$"),  # no β hint
    ("sgd", "gamma", 0.9, r"writing 'gamma' cannot take effect"),
    ("sgd", "nesterov", True, r"writing 'nesterov' cannot take effect"),
    ("sgd", "dampening", 0.1, r"writing 'dampening' cannot take effect"),
    ("adam", "momentum", 0.9, r"writing 'momentum' cannot take effect"),
    ("adam", "betas", (0.9, 0.99), r"write 'beta1' and 'beta2'"),
    ("adam", "eps", 1e-6, r"writing 'eps' cannot take effect"),
    ("adam", "amsgrad", True, r"writing 'amsgrad' cannot take effect"),
    ("adam", "beta1", 1.0, r"beta1 .* \(0, 1\)"),
    ("sgd-momentum", "momentum", 1.0, r"mu .* \[0, 1\)"),
    ("sgd", "lr", -0.1, r"lr must be a finite number >= 0"),
    ("sgd", "alpha", float("nan"), r"alpha .* finite"),
    ("sgd", "weight_decay", -1.0, r"weight_decay must be a finite number >= 0"),
    ("sgd", "params", [], r"use add_param_group"),
    ("zero-lr", "lr", 0.1, r"started with lr = 0"),
])
def test_a_group_write_that_cannot_take_effect_raises(kind, key, value, match):
    opt = _opt(kind)
    before = dict(opt.param_groups[0])
    with pytest.raises(ValueError, match=match):
        opt.param_groups[0][key] = value
    assert opt.param_groups[0].keys() == before.keys()  # nothing was stored


def test_a_group_dict_with_its_own_values_is_used_and_learned_on_its_own():
    """{'params': …, 'alpha': 0.1, 'weight_decay': 0.5}: both values are used; every group's α is
    learned from its own hypergradient (SGD/SGD: −g_t · d_{t−1} over the group's entries, where g is
    the gradient of the model's loss and d = g + λw the direction the decayed update took)."""
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = optim.SGD([{"params": [a], "alpha": 0.1, "weight_decay": 0.5, "name": "a"}, {"params": [b], "name": "b"}],
                    lr=0.01, hyper=optim.SGD(lr=1e-2))
    grads = []
    for t in range(3):
        opt.zero_grad()
        ((a - 2) ** 2).sum().backward()
        ((b + 1) ** 4).sum().backward()
        grads.append((a.grad.clone(), b.grad.clone()))
        directions = (a.grad + 0.5 * a.detach(), b.grad.clone())  # L2 decay joins a's update
        before = a.detach().clone()
        opt.step()
        hg = opt.hypergradients()
        if t == 0:
            assert hg["alpha.a"].item() == 0 and hg["alpha.b"].item() == 0
            torch.testing.assert_close(a.detach() - before, -0.1 * directions[0], rtol=1e-15, atol=0)
        else:
            for name, i in (("a", 0), ("b", 1)):
                expected = -(grads[t][i] * previous[i]).sum()
                torch.testing.assert_close(hg[f"alpha.{name}"], expected, rtol=1e-12, atol=0)
        previous = directions
    hp = opt.hyperparameters()
    assert set(hp) == {"alpha.a", "mu.a", "alpha.b", "mu.b", "hyper.alpha", "hyper.mu"}
    assert hp["alpha.a"].item() != 0.1 and hp["alpha.b"].item() != 0.01 and hp["alpha.a"] != hp["alpha.b"]


def test_add_param_group_on_a_running_optimizer_keeps_every_state():
    """As torch.optim: momentum buffers of the old groups survive; the new group starts fresh (κ = 0)."""
    data = batches(8)
    out = []
    for ours in (True, False):
        torch.manual_seed(0)
        model, head = mlp(), nn.Linear(10, 10).double()
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, hyper=optim.SGD(lr=0.0)) if ours else \
            torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for t, (x, y) in enumerate(data):
            if t == 4:
                opt.add_param_group({"params": head.parameters(), "lr": 0.02, "momentum": 0.5})
            opt.zero_grad()
            out_ = model(x) if t < 4 else head(model(x))
            F.cross_entropy(out_, y).backward()
            opt.step()
        out.append([p.detach() for p in [*model.parameters(), *head.parameters()]])
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_add_param_group_keeps_the_learned_values():
    w = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float64))
    opt = optim.SGD([w], lr=0.1, hyper=optim.SGD(lr=0.05))
    for _ in range(4):
        opt.zero_grad()
        ((w - 0.3) ** 4).sum().backward()
        opt.step()
    learned = opt.hyperparameters()["alpha"].item()
    assert learned != 0.1
    opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2, dtype=torch.float64))], "lr": 0.3})
    hp = opt.hyperparameters()
    assert hp["alpha.group0"].item() == learned and hp["alpha.group1"].item() == 0.3


def test_a_group_without_parameters_shifts_no_other_group():
    """torch.optim allows a group with no parameters; writing a key of it, or of the groups after it,
    reaches the right parameters (κ = 0: equal to torch.optim.SGD under the same writes)."""
    out = []
    for ours in (True, False):
        p, q = (torch.nn.Parameter(torch.ones(n, dtype=torch.float64)) for n in (2, 3))
        groups = [{"params": [p]}, {"params": []}, {"params": [q]}]
        opt = optim.SGD(groups, lr=0.1, hyper=optim.SGD(lr=0.0)) if ours else torch.optim.SGD(groups, lr=0.1)
        for t in range(3):
            if t == 1:
                opt.param_groups[1]["lr"] = 0.0  # the empty group: nothing moves differently
                opt.param_groups[2]["lr"] = 0.2
            opt.zero_grad()
            ((p ** 2).sum() + (q ** 2).sum()).backward()
            opt.step()
        out.append((p.detach().clone(), q.detach().clone()))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=1e-15, atol=0)
    w = torch.nn.Parameter(torch.ones(2))
    opt = optim.SGD([{"params": []}, {"params": [w]}], lr=0.1, hyper=optim.SGD(lr=1e-3))
    opt.param_groups[1]["lr"] = 0.05
    opt.param_groups[0]["weight_decay"] = 0.1
    opt.load_state_dict(opt.state_dict())
    w.sum().backward()
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((2,), 0.95))


def test_a_refused_add_param_group_leaves_the_optimizer_as_it_was():
    """A group refused for a bad value, or because its parameters cannot join the others, is not
    kept: the optimizer trains on, and a later group can still be added."""
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = optim.SGD([w], lr=0.1, hyper=optim.SGD(lr=1e-3))
    (w ** 2).sum().backward()
    opt.step()
    with pytest.raises(ValueError, match="alpha .* must be >= 0"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2, dtype=torch.float64))], "lr": -1.0})
    with pytest.raises(ValueError, match="share device and dtype"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2, dtype=torch.float32))]})
    assert len(opt.param_groups) == 1
    before = w.detach().clone()
    opt.zero_grad()
    (w ** 2).sum().backward()
    opt.step()
    assert not torch.equal(w.detach(), before)  # still trained: the parameter points into the engine
    b = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt.add_param_group({"params": [b], "lr": 0.2})
    opt.load_state_dict(opt.state_dict())
    opt.zero_grad()
    ((w ** 2).sum() + b.sum()).backward()
    opt.step()
    torch.testing.assert_close(b.detach(), torch.full((2,), 0.8, dtype=torch.float64))


def test_two_groups_of_one_name_are_refused():
    """Their values would share one key (``alpha.<name>``) of hyperparameters()."""
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=r"several parameter groups are named \['x'\]"):
        optim.SGD([{"params": [a], "name": "x"}, {"params": [b], "name": "x"}], lr=0.1)
    opt = optim.SGD([{"params": [a], "name": "x"}], lr=0.1)
    with pytest.raises(ValueError, match="give each group its own 'name'"):
        opt.add_param_group({"params": [b], "name": "x"})
    assert len(opt.param_groups) == 1


# -- parameters as torch.optim treats them ------------------------------------------------------------
def _same_as_torch(train_fn):
    out = []
    for ours in (True, False):
        model = mlp()
        extra = nn.Linear(784, 10).double()
        params = [*model.parameters(), *extra.parameters()]
        opt = optim.SGD(params, lr=0.05, momentum=0.9, hyper=optim.SGD(lr=0.0)) if ours \
            else torch.optim.SGD(params, lr=0.05, momentum=0.9)
        train_fn(model, extra, opt)
        out.append((opt, [p.detach().clone() for p in params]))
    for a, b in zip(out[0][1], out[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    return out[0][0]


def test_frozen_parameters_are_kept_and_train_once_unfrozen():
    """The optimizer is built while the first layer is frozen (requires_grad=False), as torch.optim
    allows; it keeps those parameters, leaves them alone while frozen and trains them once
    unfrozen, exactly as torch.optim.SGD (κ = 0)."""
    out = []
    for ours in (True, False):
        model = mlp()
        model[1].requires_grad_(False)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, hyper=optim.SGD(lr=0.0)) if ours \
            else torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        assert sum(len(g["params"]) for g in opt.param_groups) == 4  # the frozen ones are kept
        start = model[1].weight.detach().clone()
        for t, (x, y) in enumerate(batches(8)):
            if t == 4:
                model[1].requires_grad_(True)
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            assert torch.equal(model[1].weight, start) == (t < 4)  # still only while frozen
        out.append([p.detach() for p in model.parameters()])
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_parameters_without_a_gradient_are_skipped_like_torch_optim():
    """An unused branch (its .grad is None) is left alone, momentum buffer included; used again
    later it continues from its own untouched state (κ = 0, equal to torch.optim.SGD)."""
    def train_fn(model, extra, opt):
        for t, (x, y) in enumerate(batches(10)):
            opt.zero_grad(set_to_none=True)
            out = model(x) + (extra(x.flatten(1)) if t < 2 or t >= 7 else 0)
            F.cross_entropy(out, y).backward()
            opt.step()

    _same_as_torch(train_fn)


def test_sparse_gradients_and_parameters_are_clear_errors():
    emb = nn.Embedding(10, 3, sparse=True)
    opt = optim.SGD(emb.parameters(), lr=0.1)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(ValueError, match=r"dense gradients.*sparse=False"):
        opt.step()
    with pytest.raises(ValueError, match="sparse parameters are not supported"):
        optim.SGD([nn.Parameter(torch.eye(3).to_sparse())], lr=0.1)


# -- pickling, torch.save(opt), deepcopy and state dicts -----------------------------------------------
def _steps(model, opt, data):
    for x, y in data:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def _build():
    model = mlp()
    return model, optim.Adam(model.parameters(), lr=0.01, hyper=optim.SGD(lr=1e-4, momentum=0.5))


@pytest.mark.parametrize("how", ["torch.save", "pickle", "deepcopy"])
def test_pickled_optimizer_and_model_resume_exactly(how):
    data = batches(10)
    ref_model, ref_opt = _build()
    _steps(ref_model, ref_opt, data)
    model, opt = _build()
    _steps(model, opt, data[:5])
    if how == "torch.save":
        buf = io.BytesIO()
        torch.save({"model": model, "optimizer": opt}, buf)
        buf.seek(0)
        loaded = torch.load(buf, weights_only=False)
        model2, opt2 = loaded["model"], loaded["optimizer"]
    elif how == "pickle":
        model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    else:
        model2, opt2 = copy.deepcopy((model, opt))
    assert repr(opt2) == repr(opt)
    _steps(model2, opt2, data[5:])
    for a, b in zip(ref_model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    for (k, a), b in zip(ref_opt.hyperparameters().items(), opt2.hyperparameters().values()):
        assert torch.equal(a, b), k
    _steps(model, opt, data[5:])  # the original is independent of its copy and ends the same
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))


@pytest.mark.parametrize("how", ["torch.save", "pickle", "deepcopy"])
def test_a_copy_made_with_a_scheduler_attached_steps_only_itself(how):
    """A scheduler wraps ``opt.step`` in a function that holds a weak reference to that optimizer: copied along,
    the copy's step stepped the original (and pickling failed on the wrapper). As torch's optimizers, the copy
    keeps neither; its scheduler, copied with it, goes on scheduling the copy."""
    model, opt = _build()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    data = batches(4)
    _steps(model, opt, data[:1])
    sched.step()
    if how == "torch.save":
        buf = io.BytesIO()
        torch.save((model, opt, sched), buf)
        buf.seek(0)
        model2, opt2, sched2 = torch.load(buf, weights_only=False)
    elif how == "pickle":
        model2, opt2, sched2 = pickle.loads(pickle.dumps((model, opt, sched)))
    else:
        model2, opt2, sched2 = copy.deepcopy((model, opt, sched))
    before = [p.detach().clone() for p in model.parameters()]
    with warnings.catch_warnings():  # torch warns that the copy's step is no longer the scheduler's wrapper
        warnings.filterwarnings("ignore", message=r"Seems like `optimizer.step\(\)` has been overridden")
        _steps(model2, opt2, data[1:3])
        sched2.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the original did not move
    assert int(opt.steps) == 1 and int(opt2.steps) == 3
    assert not any(torch.equal(a, b) for a, b in zip(before, model2.parameters()))
    assert opt2.param_groups[0]["lr"] == sched2.get_last_lr()[0]


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_copies_keep_every_setting_of_the_optimizer(how):
    """A copy is the same optimizer: SGDPerParam's step sizes (its repr), SGD's torch-style names
    ('momentum' writes μ), a group's lr after a schedule."""
    copy_of = (lambda x: pickle.loads(pickle.dumps(x))) if how == "pickle" else copy.deepcopy
    w = torch.nn.Parameter(torch.ones(3))
    per = copy_of(optim.SGDPerParam([w], alpha=0.1, hyper=optim.SGD(alpha=1e-4)))
    assert repr(per) == "SGDPerParam(α=0.1) / SGD(α=0.0001)"
    sgd = optim.SGD([w], lr=0.1, momentum=0.9)
    sgd.param_groups[0]["lr"] = 0.05
    twin = copy_of(sgd)
    twin.param_groups[0]["momentum"] = 0.5
    assert float(twin.hyperparameters()["mu"]) == 0.5 and float(sgd.hyperparameters()["mu"]) == 0.9
    twin.zero_grad()
    w.grad = None
    p = twin.param_groups[0]["params"][0]
    p.grad = torch.ones(3)
    twin.step()  # lr 0.05 of a group that started at 0.1: half the learned α (0.1)
    assert torch.allclose(p.detach(), torch.full((3,), 1 - 0.05, dtype=p.dtype))
    model, opt = _build()
    _steps(model, opt, batches(2))
    hyper, twin = copy_of((opt.hyper, opt))  # the level above first: it is bound again by its owner
    assert twin.hyper is hyper and repr(twin) == repr(opt)


@pytest.mark.parametrize("family", ["Adam", "SGDPerParam"])
def test_a_pickle_of_the_earlier_layout_still_loads(family):
    """Optimizers pickled before the pickle kept the whole object held their parts by name."""
    model, opt = _build()
    if family == "SGDPerParam":
        opt = optim.SGDPerParam(model.parameters(), alpha=0.05, hyper=optim.SGD(alpha=1e-4))
    _steps(model, opt, batches(3))
    earlier = {"_unpickle": True, "cls": type(opt), "groups": [dict(g) for g in opt.param_groups],
               "initial_lr": [g._initial_lr for g in opt.param_groups], "rule": opt._rule, "values": opt._values,
               "batch": opt._batch, "options": opt._options, "hyper": opt.hyper,
               "state": opt._state_dict(opt._engine), "repr": opt._repr_hypers}
    loaded = pickle.loads(pickle.dumps((model, earlier)))
    twin = type(opt).__new__(type(opt))
    twin.__setstate__(loaded[1])
    assert repr(twin) == repr(opt)
    for (k, a), b in zip(opt.hyperparameters().items(), twin.hyperparameters().values()):
        assert torch.equal(a, b), k


def test_deepcopy_of_the_optimizer_alone_trains_its_own_copy_of_the_parameters():
    model, opt = _build()
    _steps(model, opt, batches(2))
    twin = copy.deepcopy(opt)
    before = [p.detach().clone() for p in model.parameters()]
    twin_params = [p for g in twin.param_groups for p in g["params"]]
    assert all(p is not q for p, q in zip(twin_params, model.parameters()))
    x, y = batches(1)[0]
    twin.zero_grad()
    F.cross_entropy(torch.func.functional_call(model, dict(zip([n for n, _ in model.named_parameters()],
                                                                  twin_params)), (x,)), y).backward()
    twin.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the original is untouched
    assert not all(torch.equal(a, b) for a, b in zip(before, twin_params))


def _sd():
    model, opt = _build()
    _steps(model, opt, batches(2))
    return opt, opt.state_dict()


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.pop("levels"), r"state dict lacks \['levels'\]"),
    (lambda sd: sd.update(extra=1), r"state dict has unknown key\(s\) \['extra'\]"),
    (lambda sd: sd["levels"].pop(), r"state dict has 1 levels, this tower has 2"),
    (lambda sd: sd["levels"].append(sd["levels"][-1]), r"state dict has 3 levels, this tower has 2"),
    (lambda sd: sd["levels"][0].pop("J"), r"level 0 \(Adam\) lacks \['J'\]"),
    (lambda sd: sd["levels"][1].update(momentum=0), r"level 1 \(SGD\) has unknown key\(s\) \['momentum'\]"),
    (lambda sd: sd["levels"][0]["state"][0].pop("v"), r"level 0 \(Adam\) segment 0 has state \['m'\], expected"),
    (lambda sd: sd["levels"][0]["fixed"].pop("lr_scale"), r"level 0 \(Adam\): fixed values missing \['lr_scale'\]"),
    (lambda sd: sd["levels"][0].update(names=["alpha"]), r"hyperparameters \['alpha'\], expected"),
    (lambda sd: sd.update(format="torch"), r"not a hypernb optimizer state dict"),
    (lambda sd: sd.update(initial_lr=[[0.1], [0.2]]), r"initial_lr \[\[0.1\], \[0.2\]\] is not one list"),
    (lambda sd: sd.update(initial_lr=[[float("nan")]]), r"initial_lr \[\[nan\]\] is not one list of finite"),
    (lambda sd: sd.update(initial_lr=[["x"]]), r"initial_lr \[\['x'\]\] is not one list"),
])
def test_a_state_dict_that_does_not_fit_is_refused_naming_what(edit, match):
    opt, sd = _sd()
    before = {k: v.clone() for k, v in opt.hyperparameters().items()}
    sd = copy.deepcopy(sd)
    edit(sd)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    assert all(torch.equal(before[k], v) for k, v in opt.hyperparameters().items())  # nothing half-loaded


def _one_step(make, before=None) -> float:
    """The change one step with gradient 1 makes to a weight at 1 (float64), after ``before(opt, make)``;
    ``make(params, lr)`` builds the optimizer."""
    w = nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = make([w], 0.01)
    if before is not None:
        before(opt, make)
    w.grad = torch.ones_like(w)
    opt.step()
    return 1.0 - w.item()


def _loaded_from(lr):
    def load(opt, make):
        opt.load_state_dict(make([nn.Parameter(torch.ones(1, dtype=torch.float64))], lr).state_dict())
    return load


@pytest.mark.parametrize("case", ["load a state dict of another lr", "load, then write lr", "group.update(lr=)",
                                  "group |= {lr}", "group.update(weight_decay=)"])
@pytest.mark.parametrize("family", ["SGD", "Adam"])
def test_loading_and_dict_style_group_writes_act_like_torch(case, family):
    """After load_state_dict, group["lr"] is a multiple of the *saved* initial lr (the learned α is
    the saved one too); dict.update and |= on a group reach the optimizer like group[key] = value."""
    def write(**kw):
        return lambda opt, make: opt.param_groups[0].update(**kw)

    def load_then_write(opt, make):
        _loaded_from(0.1)(opt, make)
        opt.param_groups[0]["lr"] = 0.01

    before = {"load a state dict of another lr": _loaded_from(0.1), "load, then write lr": load_then_write,
              "group.update(lr=)": write(lr=0.01),
              "group |= {lr}": lambda opt, make: opt.param_groups[0].__ior__({"lr": 0.01}),
              "group.update(weight_decay=)": write(weight_decay=0.5)}[case]
    extra = {"eps": 1e-300} if family == "Adam" else {}  # gdtuo's v₀ = ε: a negligible ε makes them equal
    ours = _one_step(lambda p, lr: getattr(optim, family)(p, lr=lr, hyper=optim.SGD(lr=0.0), **extra), before)
    theirs = _one_step(lambda p, lr: getattr(torch.optim, family)(p, lr=lr, **extra), before)
    assert ours == pytest.approx(theirs, rel=1e-12), (ours, theirs)


def test_a_refused_group_update_changes_nothing():
    """group.update(...) is all or nothing: a refused key leaves the keys before it unwritten."""
    w = nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = optim.Adam([w], lr=0.1, eps=1e-300)
    with pytest.raises(ValueError, match=r"writing 'betas' cannot take effect"):
        opt.param_groups[0].update(lr=0.05, betas=(0.9, 0.99))
    assert opt.param_groups[0]["lr"] == 0.1
    w.grad = torch.ones_like(w)
    opt.step()
    assert 1.0 - w.item() == pytest.approx(0.1, rel=1e-9)  # the step still uses lr 0.1


def test_a_step_without_any_gradient_does_nothing_like_torch():
    """torch.optim skips parameters without a gradient, so a step with none moves no step count: Adam's
    bias correction at the next real step is its first."""
    steps = []
    for make in (lambda p, lr: optim.Adam(p, lr=0.1, eps=1e-300, hyper=optim.SGD(lr=1e-3)),
                 lambda p, lr: torch.optim.Adam(p, lr=0.1, eps=1e-300)):
        steps.append(_one_step(make, before=lambda opt, make: opt.step()))
    assert steps[0] == pytest.approx(steps[1], rel=1e-12) and steps[0] == pytest.approx(0.1)


def test_parameters_appended_to_a_group_list_or_listed_twice_are_refused():
    """torch trains parameters appended to group["params"] (it reads the list at every step) and
    updates a duplicate twice (with a warning); here the first would be silently untrained and the
    second counted twice in a hypergradient, so both are errors naming the fix."""
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    opt = optim.SGD(model[0].parameters(), lr=0.1)
    opt.param_groups[0]["params"].extend(model[1].parameters())
    model(torch.ones(1, 2)).sum().backward()
    with pytest.raises(RuntimeError, match=r"a group's 'params' list was changed after the optimizer was built.*"
                                           r"add_param_group"):
        opt.step()
    opt = optim.SGD(model[0].parameters(), lr=0.1)
    opt.param_groups[0]["params"][0] = model[1].weight  # replaced, same length: torch would train the new one
    with pytest.raises(RuntimeError, match=r"parameters added, removed or replaced"):
        opt.step()
    w = nn.Parameter(torch.ones(2))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"a parameter appears more than once"):
        optim.SGD([w, w], lr=0.1)


@pytest.mark.parametrize("make, match", [
    (lambda p: optim.Adam(p, 1e-3, (0.9, 0.99)), r"give the pair as betas=\(β1, β2\).*pass the options by name"),
    (lambda p: optim.RMSProp(p, 0.01, 0.9, 1e-8), r"hyper= must be a hypernb optimizer.*pass the options by name"),
])
def test_torch_style_positional_arguments_are_named_in_the_error(make, match):
    with pytest.raises(ValueError, match=match):
        make([nn.Parameter(torch.ones(2))])


def test_torch_no_op_flags_are_accepted():
    """foreach (how torch computes) and fused/maximize/differentiable/amsgrad at their defaults change
    nothing: code that passes torch's defaults explicitly runs unchanged."""
    p = [nn.Parameter(torch.ones(2))]
    optim.SGD(p, lr=0.1, foreach=True, maximize=False, differentiable=False, fused=None)
    optim.Adam(p, lr=0.1, foreach=False, amsgrad=False, fused=False)


@pytest.mark.parametrize("unpickled", [False, True])
def test_state_dict_hooks_run_as_in_torch(unpickled):
    """register_state_dict_pre/post_hook and register_load_state_dict_pre/post_hook: called in torch's
    order, a post hook's (or a load pre hook's) returned dict replaces the state dict; an unpickled
    optimizer takes hooks too."""
    w = nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = optim.Adam([w], lr=0.1, hyper=optim.SGD(lr=1e-3))
    if unpickled:
        w, opt = pickle.loads(pickle.dumps((w, opt)))
    calls = []
    opt.register_state_dict_pre_hook(lambda o: calls.append(("save pre", o is opt)))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, "note": "added"})
    opt.register_load_state_dict_pre_hook(lambda o, sd: {k: v for k, v in sd.items() if k != "note"})
    opt.register_load_state_dict_post_hook(lambda o: calls.append(("load post", o is opt)))
    w.grad = torch.ones_like(w)
    opt.step()
    sd = opt.state_dict()
    assert sd["note"] == "added"
    opt.load_state_dict(sd)  # the pre hook takes the extra key out again: accepted
    assert calls == [("save pre", True), ("load post", True)]
    opt.register_load_state_dict_pre_hook(lambda o, sd: sd.pop("initial_lr") and None)
    opt.load_state_dict(sd)
    assert "initial_lr" in sd and "note" in sd  # the hooks got a copy, as in torch
    copy.deepcopy(opt)  # pickling runs no user hook (torch runs none), so the extra key does not get in its way
    pickle.loads(pickle.dumps(opt))


def test_saving_part_of_a_model_with_clones_writes_only_that_part():
    """The README's advice for the one cost of the flat buffer: torch.save writes a view's whole storage."""
    model = nn.Sequential(nn.Linear(512, 512), nn.Linear(512, 2))
    optim.SGD(model.parameters(), lr=0.1)

    def size(obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.tell()

    head = model[1].state_dict()
    assert size(head) > 512 * 512 * 4  # the whole buffer
    assert size({k: v.clone() for k, v in head.items()}) < 20_000  # 1,026 numbers


# -- low precision ----------------------------------------------------------------------------------------
def test_bf16_parameters_follow_the_float32_hyperparameter_trajectory():
    """State, tangents and hypergradients stay float32 for bf16 parameters: Adam/SGD's learned α
    follows the float32 run (within 1 % at every one of 150 steps; 0.2 % measured) and stays
    positive. (Measured: keeping the state in bf16 instead would track about as well here, so
    the dtype of every buffer is checked as such.)"""
    def run(dtype):
        model = mlp(dtype=torch.float32).to(dtype)
        opt = optim.Adam(model.parameters(), lr=1e-3, hyper=optim.SGD(lr=1e-5))
        alphas = []
        for x, y in batches(150, batch=64, dtype=torch.float32):
            opt.zero_grad()
            F.cross_entropy(model(x.to(dtype)).float(), y).backward()
            opt.step()
            alphas.append(opt.hyperparameters()["alpha"].item())
        return opt, alphas

    opt16, a16 = run(torch.bfloat16)
    _, a32 = run(torch.float32)
    level = opt16._engine.levels[0]
    assert opt16._engine.flat.dtype == torch.bfloat16
    assert {v.dtype for st in level.state for v in st.values()} == {torch.float32}
    assert level.G.dtype in (torch.float32, torch.float64)
    assert all(b.dtype == torch.float32 for b in level.tangents[0].bases)
    assert max(a32) > 3 * a32[0]  # α really moved (×4)
    assert min(a16) > 0 and max(abs(a - b) / b for a, b in zip(a16, a32)) < 0.01


# -- the rest of a training script: clipping, AMP's GradScaler, autocast, torch.compile ----------------------
def _script(make_opt, clip=False, scaler=None, autocast=False, compile_model=False, steps=8):
    model = mlp()
    opt = make_opt(model.parameters())
    net = torch.compile(model, backend="aot_eager") if compile_model else model
    for x, y in batches(steps):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(net(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
    return model, opt


OURS = lambda p: optim.SGD(p, lr=0.05, momentum=0.9, hyper=optim.SGD(lr=0.0))  # noqa: E731
THEIRS = lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)  # noqa: E731


@pytest.mark.parametrize("extra", ["clip_grad_norm_", "GradScaler", "torch.compile(model)"])
def test_training_script_extras_equal_torch_optim_with_kappa_0(extra):
    kw = {"clip_grad_norm_": dict(clip=True), "GradScaler": dict(clip=True),
          "torch.compile(model)": dict(compile_model=True)}[extra]
    runs = []
    for make in (OURS, THEIRS):
        if extra == "GradScaler":
            kw["scaler"] = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        runs.append(_script(make, **kw)[0])
    for a, b in zip(runs[0].parameters(), runs[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_a_compiled_training_step_runs_the_optimizer_step_eagerly():
    """torch.compile of a whole training step, or of ``opt.step`` (torch.optim's recipe), breaks its graph around
    the hypernb step, which dynamo cannot trace (it stopped with an internal error): the same training as eager."""
    def train(compiled):
        torch._dynamo.reset()
        model = mlp()
        opt = optim.Adam(model.parameters(), lr=1e-3, hyper=optim.SGD(lr=1e-5))

        def train_step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        step = torch.compile(train_step, backend="eager") if compiled else train_step
        for x, y in batches(4):
            step(x, y)
        return model, opt

    from torch._dynamo.utils import counters

    counters.clear()
    (eager, _), (compiled, opt) = train(False), train(True)
    assert counters["stats"]["unique_graphs"] >= 1 and sum(counters["graph_break"].values()) >= 1  # compiled around it
    for a, b in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert int(opt.steps) == 4
    torch.compile(opt.step, backend="eager")()  # (no gradient changed: a step all the same)
    assert int(opt.steps) == 5


def test_grad_scaler_skips_the_step_on_inf_and_autocast_trains():
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = optim.SGD([w], lr=0.1, hyper=optim.SGD(lr=1e-3))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    scaler.scale(w.sum() * float("inf")).backward()
    scaler.step(opt)  # an inf gradient: GradScaler skips optimizer.step()
    scaler.update()
    assert torch.equal(w.detach(), torch.ones(3, dtype=torch.float64)) and opt.steps.item() == 0
    assert scaler.get_scale() == 2.0 ** 9
    model, opt = _script(lambda p: optim.Adam(p, lr=1e-3, hyper=optim.SGD(lr=1e-5)), autocast=True, steps=20)
    opt.check_finite()
    assert opt.steps.item() == 20 and opt.hyperparameters()["alpha"].item() != 1e-3


# -- hypernb.run: the He et al. step schedule is the same multiplier ----------------------------------------
def test_step_schedule_in_run_multiplies_the_learned_alpha_without_resetting_it():
    """schedule="step": α × 0.1 at 50 % and 75 % of the epochs, on top of the learned α; the
    learned α carries over every epoch boundary (it used to be reset to α0 each epoch)."""
    from conftest import require
    from hypernb import run

    require("mnist")
    base = dict(task="mnist-mlp", optimizer="sgd/sgd", alpha=0.05, kappa=1e-2, profile="smoke", epochs=4,
                max_steps=6, log_every=1, quiet=True, dtype="float64")
    step, none = run(dict(base, schedule="step")).seeds[0], run(dict(base, schedule="none")).seeds[0]
    assert step.status == "ok" and none.status == "ok"
    a = step.trajectory["alpha"]
    assert a[6] != 0.05 and a[7] != 0.05  # epoch 2 starts from the learned α, not from α0
    assert a[6] > 0.06 and min(a[7:]) > a[6]  # never back to α0 (nor to α0 × 0.1) at an epoch boundary
    for e in (0, 1):
        assert step.epochs[e]["train_loss"] == none.epochs[e]["train_loss"]
    assert step.epochs[2]["train_loss"] != none.epochs[2]["train_loss"]  # × 0.1 from the third epoch on
    assert a[:13] == none.trajectory["alpha"][:13]  # the first two epochs: identical
