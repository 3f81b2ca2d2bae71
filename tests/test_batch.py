"""Many configurations at once: batched models and runs equal the same configurations trained alone
(float64, ≤ 1e-10 relative), with different α0, κ, μ0, seeds and padded tower heights in one batch."""
import math

import pytest
import torch

from conftest import require
from hypernb import groups, models, run

pytestmark = pytest.mark.filterwarnings("ignore:.*functorch.*:UserWarning")


@pytest.mark.parametrize("name", ["mlp", "resnet20", "lstm-loop", "lstm-blockdiag"])
def test_a_batched_model_computes_what_each_model_computes_alone(name):
    torch.set_default_dtype(torch.float64)
    try:
        K = 3
        make = {"mlp": lambda: models.MLP(), "resnet20": lambda: models.ResNet20(),
                "lstm-loop": lambda: models.CharLSTM(20, hidden=16), "lstm-blockdiag": lambda: models.CharLSTM(20, hidden=16)}
        singles = []
        for k in range(K):
            torch.manual_seed(k)
            singles.append(make[name]())
        x = {"mlp": torch.rand(K, 5, 1, 28, 28), "resnet20": torch.rand(K, 4, 3, 32, 32)}.get(
            name, torch.randint(0, 20, (K, 4, 7)))
        together = models.batched(singles, impl=name.split("-")[1] if name.startswith("lstm") else "auto")
        out = together(x)
        out.square().sum().backward()
        for k, m in enumerate(singles):
            ref = m(x[k])
            ref.square().sum().backward()
            torch.testing.assert_close(out[k], ref, rtol=1e-10, atol=1e-12)
            for pname, p in m.named_parameters():
                mine = dict(together.named_parameters())[pname.replace(".", "__")]
                torch.testing.assert_close(mine.grad[k], p.grad, rtol=1e-10, atol=1e-12, msg=pname)
        if name == "resnet20":  # BatchNorm statistics per configuration
            torch.testing.assert_close(together.member_state(1)["bn.running_mean"], singles[1].bn.running_mean)
        with pytest.raises(ValueError, match=r"takes inputs \[K, B, .*x\.expand\(K, \*x\.shape\)"):
            together(x[0])  # one batch [B, ...] without the configurations' dimension: named, with the fix
        shared = together(x[0].expand(K, *x[0].shape))  # the fix: every configuration gets the same batch
        torch.testing.assert_close(shared[1], singles[1](x[0]), rtol=1e-10, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


def _close(a, b, what):
    assert a.status == b.status, (what, a.status, b.status, a.reason, b.reason)
    assert set(a.trajectory) == set(b.trajectory), what
    for key in a.trajectory:
        torch.testing.assert_close(torch.tensor(a.trajectory[key]), torch.tensor(b.trajectory[key]), rtol=1e-10,
                                   atol=1e-12, msg=f"{what}: {key}")
    torch.testing.assert_close(torch.tensor(a.loss), torch.tensor(b.loss), rtol=1e-10, atol=1e-12, msg=what)
    for k, v in a.final.items():
        assert v == pytest.approx(b.final[k], rel=1e-10, abs=1e-12), (what, k)


TASKS = {
    "mlp": (dict(task="mnist-mlp", train_limit=640, test_limit=200, batch_size=32), "mnist"),
    "resnet20": (dict(task="cifar10subset-resnet20", train_limit=160, test_limit=40, batch_size=8), "cifar10subset"),
    "lstm": (dict(task="warpeace-lstm", train_limit=4000, test_limit=1000, batch_size=8, seq_len=20, hidden=24),
             "warpeace"),
}


@pytest.mark.parametrize("task", list(TASKS))
def test_runs_trained_together_equal_runs_trained_alone(task):
    """20 steps in float64: different α0, κ, μ0 and seeds, towers of height 0–3 padded to one."""
    common, dataset = TASKS[task]
    require(dataset)
    base = dict(common, profile="smoke", epochs=1, max_steps=20, dtype="float64", quiet=True, log_every=5)
    if task == "lstm":
        configs = [dict(base, optimizer="adam", alpha=2e-3, seeds=[0]),
                   dict(base, optimizer="adam/sgd", alpha=5e-3, kappa=1e-4, seeds=[1]),
                   dict(base, optimizer="adam/sgd*3", alpha=1e-3, kappa=[1e-4, 1e-5, 1e-6], seeds=[2])]
    else:
        # ResNet's hypergradients are ~10³ larger, and a tower multiplies them level by level
        a, k = (1.0, [1e-3, 1e-4, 1e-5]) if task == "mlp" else (0.03, [1e-6, 1e-12, 1e-18])
        configs = [dict(base, optimizer="sgd/sgd", alpha=0.05 * a, mu=0.9, kappa=k[0], seeds=[0]),
                   dict(base, optimizer="sgd", alpha=0.02 * a, mu=0.5, seeds=[1]),
                   dict(base, optimizer="sgd/sgd*3", alpha=0.1 * a, mu=0.8, kappa=k, seeds=[2])]
    together = run(configs, batch=3)
    assert all(r.seeds[0].trained_with == 3 for r in together)
    assert all(r.seeds[0].status == "ok" for r in together), [r.seeds[0].reason for r in together]
    for c, t in zip(configs, together):
        alone = run(c, batch=1)
        assert alone.seeds[0].trained_with == 1
        _close(t.seeds[0], alone.seeds[0], f"{c['optimizer']} α0={c['alpha']}")


@pytest.mark.parametrize("task, expected", [("mlp", 2), ("lstm", 1)])
def test_on_a_cpu_only_models_that_gain_are_batched_by_default(task, expected):
    """benchmarks/throughput.py measures batching as a gain for the MLP on a CPU and as a loss for
    ResNet-20 and the char-LSTM there, so by default a CPU batches the MLP and trains the others one
    at a time; ``batch=`` still decides when given."""
    common, dataset = TASKS[task]
    require(dataset)
    base = dict(common, profile="smoke", epochs=1, max_steps=2, quiet=True, device="cpu", optimizer="adam/sgd")
    configs = [dict(base, alpha=1e-3, seeds=[0]), dict(base, alpha=2e-3, seeds=[1])]
    assert [r.seeds[0].trained_with for r in run(configs)] == [expected] * 2
    assert [r.seeds[0].trained_with for r in run(configs, batch=2)] == [2, 2]


def test_one_diverging_run_leaves_the_others_unchanged():
    require("mnist")
    base = dict(TASKS["mlp"][0], profile="smoke", epochs=1, max_steps=30, dtype="float64", quiet=True, log_every=5,
                optimizer="sgd/sgd")
    good = [dict(base, alpha=0.05, kappa=1e-3, seeds=[0]), dict(base, alpha=0.1, kappa=1e-4, seeds=[1])]
    bad = dict(base, alpha=0.05, kappa=1e300, seeds=[2])  # α overflows at the second step
    together = run(good + [bad])
    assert together[2].seeds[0].status == "diverged" and together[2].seeds[0].final == {}
    assert "exploded" in together[2].seeds[0].reason or "non-finite" in together[2].seeds[0].reason
    for c, t in zip(good, together):
        _close(t.seeds[0], run(c, batch=1).seeds[0], "a healthy run beside a diverging one")


def test_an_exploding_but_finite_loss_is_divergence():
    """SGD with α = 100 keeps every value finite while the loss explodes (the report's failure
    regime): recorded as diverged, with its step and reason, not as ok."""
    require("mnist")
    r = run(dict(TASKS["mlp"][0], profile="smoke", epochs=1, quiet=True, log_every=2, optimizer="sgd", alpha=100.0))
    s = r.seeds[0]
    assert s.status == "diverged" and s.final == {} and s.diverged_at_step is not None
    assert "exploded" in s.reason, s.reason


def test_grouping_keeps_incompatible_runs_apart_and_pads_towers():
    from hypernb.config import RunConfig

    def member(**kw):
        return groups.Member(RunConfig.from_dict({"task": "mnist-mlp", **kw}).resolved(), 0, 0)

    ms = [member(optimizer="sgd"), member(optimizer="sgd/sgd*2"), member(optimizer="sgd/adam"),
          member(optimizer="sgd", mu=0.9), member(optimizer="sgd", hidden=64), member(optimizer="adam/sgd")]
    plan = groups.plan(ms, batch=None)
    assert [[m.config.optimizer for m in g] for g in plan] == [["sgd", "sgd/sgd*2"], ["sgd/adam"], ["sgd"], ["sgd"],
                                                             ["adam/sgd"]]
    assert [len(g) for g in groups.plan(ms[:2] * 3, batch=4)] == [4, 2]


def test_a_padded_level_leaves_the_level_below_exactly_unchanged():
    """κ = 0 at the padded levels: SGD alone inside an sgd/sgd*3 batch keeps α bit for bit."""
    w = torch.nn.Parameter(torch.randn(2, 5, dtype=torch.float64))
    from hypernb import optim

    opt = optim.tower("sgd/sgd*3", [w], alpha=[0.1, 0.1], kappa=[[0.0, 1e-2], [0.0, 1e-3], [0.0, 1e-4]], batch=2)
    for _ in range(5):
        opt.zero_grad()
        (w ** 4).sum().backward()
        opt.step()
    alpha = opt.hyperparameters()["alpha"]
    assert alpha[0].item() == 0.1 and alpha[1].item() != 0.1
    assert math.isfinite(alpha[1].item())


def test_momentum_zero_beside_momentum_trains_as_alone_or_is_refused_where_mu_is_learned():
    """μ₀ = 0 means no momentum (μ ≡ 0). Without a hyperoptimizer a batch of μ₀ = 0 and μ₀ = 0.9
    trains each configuration as alone; with one, μ₀ = 0 would be learned away from 0 through the
    shared momentum buffer, which its own run never does: refused (also for groups), not computed."""
    from hypernb import optim

    start = torch.randn(2, 5, dtype=torch.float64)
    w = torch.nn.Parameter(start.clone())
    alone = [torch.nn.Parameter(start[k].clone()) for k in range(2)]
    opts = [optim.SGD([w], alpha=0.05, mu=[0.0, 0.9], batch=2)]
    opts += [optim.SGD([p], alpha=0.05, mu=m) for p, m in zip(alone, (0.0, 0.9))]
    for _ in range(5):
        for opt, p in zip(opts, [w, *alone]):
            opt.zero_grad()
            (p ** 4).sum().backward()
            opt.step()
    for k in range(2):
        torch.testing.assert_close(w.detach()[k], alone[k].detach(), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match=r"momentum \(μ₀\) is 0 for some configurations"):
        optim.SGD([w], alpha=0.05, mu=[0.0, 0.9], batch=2, hyper=optim.SGD(alpha=1e-3))
    with pytest.raises(ValueError, match=r"momentum \(μ₀\) is 0 for some configurations"):
        optim.tower("adam/sgd/sgd", [w], batch=2, hyper_options=[{"mu": [0.0, 0.9]}, {}])
    with pytest.raises(ValueError, match="separate optimizers"):
        optim.tower("sgd/sgd", [w], alpha=0.05, mu=[0.0, 0.9], batch=2)
    opt = optim.SGD([w], alpha=0.05, mu=0.9, batch=2, hyper=optim.SGD(alpha=1e-3))
    with pytest.raises(ValueError, match="separate optimizers"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2, 3, dtype=torch.float64))], "momentum": 0.0})
    assert len(opt.param_groups) == 1


def test_sgdperparam_reads_a_flat_list_as_one_value_per_configuration():
    """With batch=K a list of K numbers is one value per configuration, as for every hyperparameter;
    per-entry values are a dict or a list of lists (each a number or K numbers)."""
    from hypernb import optim

    w, b = (torch.nn.Parameter(torch.ones(2, n, dtype=torch.float64)) for n in (3, 1))
    cases = {"flat": ([0.1, 0.2], [[0.1, 0.2], [0.1, 0.2]]),
             "nested": ([[0.1, 0.2], 0.3], [[0.1, 0.2], [0.3, 0.3]]),
             "dict": ({"0": 0.3, "1": [0.1, 0.2]}, [[0.3, 0.3], [0.1, 0.2]])}
    for name, (alpha, expected) in cases.items():
        hp = optim.SGDPerParam([w, b], alpha=alpha, batch=2).hyperparameters()
        assert [hp["alpha.0"].tolist(), hp["alpha.1"].tolist()] == expected, name
    p = torch.nn.Parameter(torch.ones(3, 4, dtype=torch.float64))
    hp = optim.tower("adam/sgdperparam", [p], batch=3, kappa=[[1e-3, 2e-3, 3e-3]]).hyperparameters()
    for h in ("alpha", "beta1", "beta2"):
        assert hp[f"hyper.alpha.{h}"].tolist() == [1e-3, 2e-3, 3e-3], h
    single = optim.tower("adam/sgdperparam", [torch.nn.Parameter(torch.ones(4))], kappa=[[1e-3, 2e-3, 3e-3]])
    assert [single.hyperparameters()[f"hyper.alpha.{h}"].item() for h in ("alpha", "beta1", "beta2")] == \
        pytest.approx([1e-3, 2e-3, 3e-3])  # without batch a list is one value per entry, as documented


def test_on_a_cpu_runs_that_diverged_leave_their_batch_and_the_rest_train_on_exactly():
    """The tallest tower diverges in the first epoch: from the second epoch on the two others train as a
    batch of two (the diverged run no longer costs a share of each step), then one of them alone (as an
    ordinary run) once the second diverges too; each still equals its run trained alone."""
    require("mnist")
    base = dict(TASKS["mlp"][0], profile="smoke", epochs=4, max_steps=10, dtype="float64", quiet=True, log_every=5)
    configs = [dict(base, optimizer="sgd/sgd", alpha=0.05, mu=0.9, kappa=1e-3, seeds=[0]),
               dict(base, optimizer="sgd", alpha=0.05, mu=0.5, seeds=[1]),
               dict(base, optimizer="sgd/sgd*3", alpha=0.05, mu=0.9, kappa=[1e300, 1e-4, 1e-5], seeds=[2])]
    sizes = []

    def watch(results, epoch):
        sizes.append(len(results))

    together = run(configs, batch=3, on_epoch_end=watch)
    assert sizes == [3, 2, 2, 2]
    assert [r.seeds[0].status for r in together] == ["ok", "ok", "diverged"]
    assert together[2].seeds[0].diverged_at_step <= 5 and not together[2].seeds[0].epochs  # found at the first log
    assert together[2].seeds[0].reason == run(configs[2], batch=1).seeds[0].reason  # (not naming its row in the batch)
    for c, t in zip(configs[:2], together):
        assert len(t.seeds[0].epochs) == 4
        _close(t.seeds[0], run(c, batch=1).seeds[0], f"{c['optimizer']} after its batch lost a member")
    # another diverges in the second epoch (at step 15, κ too large): the last one trains alone from then on
    grows = dict(configs[1], optimizer="sgd/sgd", kappa=3e-2, alpha=2.0)
    sizes.clear()
    together = run([configs[0], grows, configs[2]], batch=3, on_epoch_end=watch)
    statuses = [r.seeds[0].status for r in together]
    assert statuses == ["ok", "diverged", "diverged"], [r.seeds[0].reason for r in together]
    assert together[1].seeds[0].diverged_at_step == 15 and sizes == [3, 2, 1, 1]
    _close(together[0].seeds[0], run(configs[0], batch=1).seeds[0], "the last run of its batch, alone")


def test_selecting_configurations_of_a_state_dict_refuses_what_it_cannot_select():
    from hypernb import optim
    from hypernb.optim.base import select_configurations

    p = torch.nn.Parameter(torch.randn(3, 4))
    opt = optim.Adam([p], alpha=[1e-3, 2e-3, 3e-3], hyper=optim.SGD(alpha=1e-5), batch=3)
    p.grad = torch.randn(3, 4)
    opt.step()
    sd = opt.state_dict()
    for rows in ([], [3], [1, 1], [-1]):
        with pytest.raises(ValueError, match="distinct configurations in 0…2"):
            select_configurations(sd, rows)
    with pytest.raises(ValueError, match="one configuration; got 2 rows"):
        select_configurations(sd, [0, 1], batched=False)
    single = optim.Adam([torch.nn.Parameter(torch.randn(4))], alpha=1e-3, hyper=optim.SGD(alpha=1e-5))
    with pytest.raises(ValueError, match="built with batch=K"):
        select_configurations(single.state_dict(), [0])
    # what it selects loads into an optimizer of those configurations and steps as row 2 would have
    q = torch.nn.Parameter(p.detach()[2].clone())
    alone = optim.Adam([q], alpha=3e-3, hyper=optim.SGD(alpha=1e-5))
    alone.load_state_dict(select_configurations(sd, [2], batched=False))
    assert alone.param_groups[0]["lr"] == 3e-3
    g = torch.randn(3, 4)
    p.grad, q.grad = g, g[2].clone()
    opt.step()
    alone.step()
    torch.testing.assert_close(q.detach(), p.detach()[2], rtol=1e-6, atol=1e-7)
    assert float(alone.hyperparameters()["alpha"]) == pytest.approx(float(opt.hyperparameters()["alpha"][2]), rel=1e-6)
    assert float(alone.hyperparameters()["alpha"]) != pytest.approx(3e-3, rel=1e-9)  # it was learned on
    # and two rows into a batch of two
    r = torch.nn.Parameter(p.detach()[[0, 2]].clone())
    pair = optim.Adam([r], alpha=[1e-3, 3e-3], hyper=optim.SGD(alpha=1e-5), batch=2)
    pair.load_state_dict(select_configurations(opt.state_dict(), [0, 2]))
    assert pair.param_groups[0]["lr"] == [1e-3, 3e-3] and int(pair.steps) == 2
    g = torch.randn(3, 4)
    p.grad, r.grad = g, g[[0, 2]].clone()
    opt.step()
    pair.step()
    torch.testing.assert_close(r.detach(), p.detach()[[0, 2]], rtol=0, atol=0)
    torch.testing.assert_close(pair.hyperparameters()["alpha"], opt.hyperparameters()["alpha"][[0, 2]], rtol=0, atol=0)


def test_in_float32_a_run_computes_the_same_whether_the_others_of_its_batch_diverge_or_not():
    """Its last partner diverged: it goes on as a batch of one, which computes as the batch did (a run
    alone keeps its few numbers in float64, a batch in the parameters' dtype)."""
    require("mnist")
    base = dict(TASKS["mlp"][0], profile="smoke", epochs=3, max_steps=10, quiet=True, log_every=5,
                optimizer="adam/sgd", kappa=1e-5)
    mine = dict(base, alpha=0.1, seeds=[0])
    beside_healthy = run([mine, dict(base, alpha=0.05, seeds=[1])])[0].seeds[0]
    sizes = []
    beside_diverging = run([mine, dict(base, alpha=0.05, kappa=1e3, seeds=[1])],
                           on_epoch_end=lambda results, epoch: sizes.append(len(results)))
    assert beside_diverging[1].seeds[0].status == "diverged" and sizes == [2, 1, 1]
    mine_then = beside_diverging[0].seeds[0]
    assert mine_then.status == "ok" and mine_then.loss == beside_healthy.loss
    assert mine_then.trajectory == beside_healthy.trajectory and mine_then.final == beside_healthy.final


def test_a_batch_whose_runs_all_diverge_at_an_epoch_end_finishes_cleanly(tmp_path):
    """No logging point inside the epoch: both runs are found diverged at its end; the next epoch has
    nobody left to train (a batch of none is not formed) and the group's checkpoint is removed."""
    require("mnist")
    base = dict(TASKS["mlp"][0], profile="smoke", epochs=3, max_steps=10, quiet=True, log_every=1000,
                optimizer="sgd/sgd", alpha=0.05, kappa=1e300)
    results = run([dict(base, seeds=[s], out_dir=str(tmp_path / str(s))) for s in (0, 1)])
    assert [r.seeds[0].status for r in results] == ["diverged", "diverged"]
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*members.json"))
