"""Learning-rate-free peers (Prodigy, D-Adaptation, Schedule-Free, DoG) trained by run(), and the
notebook-06 study module around them."""
import dataclasses
import math

import pytest
import torch

from conftest import require
from hypernb import peers, run
from hypernb.config import RunConfig
from hypernb.groups import Member, plan

NAMES = sorted(peers.PEERS)


def small(**kw):
    return dict(task="mnist-mlp", profile="smoke", epochs=1, batch_size=64, train_limit=1024, test_limit=512,
                log_every=2, quiet=True, **kw)


@pytest.mark.parametrize("name", NAMES)
def test_every_peer_trains_through_run_and_logs_its_step_size(name, tmp_path):
    require("mnist")
    r = run(small(optimizer=name, out_dir=str(tmp_path)))
    sd = r.seeds[0]
    assert sd.status == "ok"
    steps = sd.trajectory["step_size"]
    assert len(steps) > 3 and all(math.isfinite(x) and x >= 0 for x in steps)
    if name == "dog":  # its step starts at r_ε-scale and grows with the distance travelled: 16 steps are warm-up
        assert steps[-1] > 10 * steps[1] > 0
    else:
        assert sd.final["test_acc"] > 0.3  # 1 epoch of 16 steps learns something
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "config.json").exists()
    if name in ("prodigy", "dadapt_adam"):  # d starts at d0 = 1e-6 (lr 1) and only grows
        assert steps[0] == pytest.approx(1e-6) and steps[-1] > steps[0]


def test_d0_and_lr_reach_the_package():
    model = torch.nn.Linear(3, 2)
    p = peers.build("prodigy", model.parameters(), alpha=0.5, knob=1e-3)
    assert p.opt.param_groups[0]["lr"] == 0.5 and p.opt.param_groups[0]["d0"] == 1e-3
    assert p.step_size() == pytest.approx(0.5e-3)
    d = peers.build("dog", model.parameters(), knob=1e-4)
    assert d.opt.param_groups[0]["reps_rel"] == 1e-4
    sf = peers.build("schedulefree_adamw", model.parameters())
    assert sf.step_size() == pytest.approx(0.0025)  # the package's default lr


def test_schedule_free_evaluates_at_its_averaged_point():
    """Schedule-Free keeps two points; the wrapper switches the package between them as run() does."""
    model = torch.nn.Linear(3, 1)
    sf = peers.build("schedulefree_adamw", model.parameters())
    sf.train()
    for _ in range(5):
        sf.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        sf.step()
    at_train = model.weight.detach().clone()
    sf.eval()
    assert not torch.equal(model.weight, at_train)  # the evaluation point differs from the training point
    sf.train()
    assert torch.allclose(model.weight, at_train)


def test_peers_train_one_configuration_per_model():
    """Their step-size estimates sum over all parameters, so two configurations never share a model."""
    cfgs = [RunConfig(**small(optimizer="prodigy", seeds=[0, 1])).resolved(),
            RunConfig(**small(optimizer="prodigy", seeds=[2])).resolved(),
            RunConfig(**small(optimizer="sgd", seeds=[0, 1])).resolved()]
    groups = plan([Member(c, s, i) for i, c in enumerate(cfgs) for s in c.seeds], batch=None)
    assert sorted(len(g) for g in groups) == [1, 1, 1, 2]
    assert all(len(g) == 1 for g in groups if g[0].config.is_peer)


def test_bad_peer_settings_are_clear_errors():
    with pytest.raises(ValueError, match="learning-rate-free peer, not a tower"):
        RunConfig(**small(optimizer="prodigy", height=2)).validate()
    with pytest.raises(ValueError, match="d0 must be a finite number > 0"):
        RunConfig(**small(optimizer="prodigy", d0=0.0)).validate()
    with pytest.raises(ValueError, match="prodigy, dadapt_adam, schedulefree_adamw, dog"):
        RunConfig(**small(optimizer="prodigyy")).validate()
    # a tower's settings on a peer would be recorded as if used and silently ignored: refused instead
    for field, value in (("beta1", 0.5), ("mu", 0.9), ("kappa", 1.0), ("sign_safe", True)):
        with pytest.raises(ValueError, match=rf"{field}={value!r} is not a setting of prodigy.*drop {field}"):
            RunConfig(**small(optimizer="prodigy", **{field: value})).validate()
    with pytest.raises(ValueError, match=r"d0=0.001 is a learning-rate-free peer's setting.*adam/sgd does not take it"):
        RunConfig(**small(optimizer="adam/sgd", d0=1e-3)).validate()
    with pytest.raises(ValueError, match=r"written exactly, in lower case: optimizer='prodigy', not 'Prodigy'"):
        RunConfig(**small(optimizer="Prodigy")).validate()
    from hypernb.optim.tower import parse_tower
    with pytest.raises(ValueError, match=r"'prodigy' \(in 'prodigy'\) is a learning-rate-free peer .* in a tower"):
        parse_tower("prodigy")  # the right name, where a tower is built: not told to write it as it is
    with pytest.raises(ValueError, match=r"unknown learning-rate-free peer 'adam'; choose from prodigy"):
        peers.build("adam", [torch.nn.Parameter(torch.zeros(2))])


def _without_prodigyopt(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "prodigyopt":
            raise ImportError("No module named 'prodigyopt'")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    from hypernb.errors import MissingPackage

    _without_prodigyopt(monkeypatch)
    with pytest.raises(MissingPackage, match=r"pip install -e '\.\[peers\]'"):
        peers.build("prodigy", torch.nn.Linear(2, 2).parameters())


def test_the_command_line_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    require("mnist")
    from hypernb.cli import main

    _without_prodigyopt(monkeypatch)
    assert main(["run", "--task", "mnist-mlp", "--opt", "prodigy", "--epochs", "1", "--train-limit", "256",
                 "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error: the optimizer 'prodigy' needs the package 'prodigyopt', which is not installed" in err and "Traceback" not in err


# -- the notebook-06 study module -----------------------------------------------------------------------
def _setup(tmp_path, **over):
    from hypernb import study

    ns = dict(PROFILE="smoke", SEEDS=None, EPOCHS=None, TUNE_SEEDS=None, ALPHA_GRID=None, VAL_EXAMPLES=None, FOLLOW_UP_SEEDS=None,
              TASKS=["mnist-mlp"], TRAIN=True, OUT_DIR=str(tmp_path), INTERACTIVE=False, QUIET=True)
    ns.update(over)
    return study.start("06_vs_lr_free", ns)


def test_every_method_gets_the_same_budget_per_task(tmp_path):
    from hypernb.study import lrfree

    s = _setup(tmp_path, PROFILE="full")
    for task in lrfree.TASK_SETTINGS:
        cfgs = [lrfree.base(s, task, **kw) for kw in (*lrfree.HYPERNB.values(), *lrfree.PEERS.values(),
                                                     dict(optimizer="adam", schedule="cosine"))]
        for key in ("epochs", "batch_size", "train_limit", "test_limit", "task"):
            assert len({str(c.get(key)) for c in cfgs}) == 1, (task, key)
    assert lrfree.base(s, "mnist-mlp")["epochs"] == 30  # the paper's protocol
    assert lrfree.val_examples(s, "cifar10subset-resnet20") < 2000  # leaves most of the 4,000 images to train
    with pytest.raises(ValueError, match="unknown task"):
        lrfree.run_all(dataclasses.replace(s, params={**s.params, "TASKS": ["mnist"]}))


def test_gpu_sized_full_runs_are_reported_missing_on_a_cpu(tmp_path, monkeypatch):
    """The full profile of the char-LSTM and ResNet-20 is never trained on a CPU (days); it is reported."""
    from hypernb.study import lrfree

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    s = _setup(tmp_path, PROFILE="full", TASKS=["cifar10subset-resnet20"])
    out = lrfree.run_task(s, "cifar10subset-resnet20")
    assert "need a GPU" in out["missing"] and not (tmp_path / "runs").exists()
    v = lrfree.verdicts(s, {"mnist-mlp": {"missing": "not run"}})
    assert {x.verdict for x in v} == {"inconclusive"} and len(v) == 5


def test_both_sensitivity_claims_count_decades_within_1_pp_against_adams(tmp_path):
    """κ sensitivity and α0 sensitivity are each judged as (decades of Adam/SGD within 1 pp of its grid's best)
    − (the same for Adam over α), per seed; a diverged run is never within."""
    from types import SimpleNamespace

    import pandas as pd

    from hypernb.study import lrfree

    s = _setup(tmp_path, PROFILE="full")
    rows = []
    for seed in (0, 1, 2):
        for d, a in enumerate([1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]):
            rows.append(dict(method="Adam", value=a, seed=seed, status="ok", test_error=[9, 5, 2.5, 2.0, 2.4, 30, 90][d]))
            rows.append(dict(method="Adam/SGD", value=a, seed=seed, status="ok", test_error=2.0 + 0.1 * d))
            rows.append(dict(method=lrfree.ALPHA0, value=a, seed=seed, status="diverged" if d == 6 else "ok",
                             test_error=[9, 2.9, 2.2, 2.0, 2.3, 2.6, 90][d] + 0.5 * (seed == 2) * (d == 5)))
    run = SimpleNamespace(config={"task": "mnist-mlp"}, seeds=[SimpleNamespace(seed=i, status="ok", final={"test_acc": 0.98})
                                                               for i in range(5)])
    runs = {name: run for name in ("Adam (tuned α, cosine)", "hypernb Adam/SGD", "Prodigy (cosine)", lrfree.TUNED_PEER)}
    v = {x.claim.id: x for x in lrfree.verdicts(s, {"mnist-mlp": {"grid": pd.DataFrame(rows), "runs": runs}})}
    kappa, alpha0 = v["peers-adam-sgd-less-sensitive"], v["peers-adam-sgd-spares-choosing-alpha0"]
    assert kappa.n == 3 and kappa.effect.mean == 7 - 3  # Adam: 2.5, 2.0, 2.4 are within 1 pp of 2.0
    # Adam/SGD over α0: 5 decades within on seeds 0 and 1, 4 on seed 2 (the diverged 10 never counts)
    assert alpha0.n == 3 and "0: +2, 1: +2, 2: +1" in alpha0.detail, alpha0.detail
    assert alpha0.effect.mean == 2  # a count of decades: judged on the median (claims.MEDIAN_CLAIMS)
    assert alpha0.verdict == "inconclusive" and "no distribution-free 95 % interval below n = 6" in alpha0.reason
    assert lrfree.decade_differences(pd.DataFrame(rows), lrfree.ALPHA0, [0, 1, 2, 7]) == {0: 2.0, 1: 2.0, 2: 1.0}


def test_dog_evaluates_at_its_polynomial_decay_average_and_trains_at_its_iterate():
    """As dog.PolynomialDecayAverager (γ = 8): x̄_t = (1 − w) x̄_{t−1} + w x_t, w = 9 / (t + 8)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    d = peers.build("dog", model.parameters())
    avg = [p.detach().clone() for p in model.parameters()]
    for t in range(1, 6):
        d.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        d.step()
        w = 9.0 / (t + 8.0)
        avg = [(1 - w) * a + w * p.detach() for a, p in zip(avg, model.parameters())]
    iterate = [p.detach().clone() for p in model.parameters()]
    d.eval()
    assert all(torch.allclose(p, a, atol=1e-7) for p, a in zip(model.parameters(), avg))
    d.eval()  # idempotent
    d.train()
    assert all(torch.equal(p, x) for p, x in zip(model.parameters(), iterate))
    state = d.state_dict()
    e = peers.build("dog", torch.nn.Linear(3, 1).parameters())
    e.load_state_dict(state)
    assert e.averaged_steps == 5 and all(torch.equal(a, b) for a, b in zip(e.average, d.average))


def test_weight_decay_reaches_every_peer_and_schedule_free_has_no_d0():
    for name in NAMES:
        p = peers.build(name, torch.nn.Linear(2, 2).parameters(), weight_decay=1e-4)
        assert p.opt.param_groups[0]["weight_decay"] == 1e-4, name
    with pytest.raises(ValueError, match="no d0"):
        RunConfig(**small(optimizer="schedulefree_adamw", d0=1e-3)).validate()


def test_batchnorm_statistics_are_refreshed_for_the_evaluated_weights():
    from hypernb.data import DeviceLoader
    from hypernb.train import _refresh_batchnorm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    x = torch.randn(512, 4) * 3 + 1
    loader = DeviceLoader(x, torch.zeros(512, dtype=torch.long), 64, True, seed=0)
    _refresh_batchnorm(model, loader, 0, "image", batches=8)
    with torch.no_grad():
        h = model[0](x)
    assert torch.allclose(model[1].running_mean, h.mean(0), atol=1e-5)  # the average over all 8 batches
    assert model[1].momentum == 0.1  # restored


def test_the_tower_parser_knows_every_peer_by_name():
    """parse_tower names the peers in its errors (it cannot import hypernb.peers: optim stands alone)."""
    import importlib

    from hypernb import peers

    assert set(importlib.import_module("hypernb.optim.tower").PEERS) == set(peers.PEERS)
