"""The README's own update rule (Nesterov SGD), run from the README itself: the extension point works
as documented, checked against torch.optim, finite differences, reverse mode and the tensor path."""
import copy
import re
from pathlib import Path

import pytest
import torch

import test_hypergradients as H
from hypernb import optim
from hypernb.optim import engine
from oracles import batches, mlp

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> dict:
    """Execute the python block of the README's "Your own update rule" section; its namespace."""
    section = README.read_text().split("### Your own update rule", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    namespace: dict = {}
    try:
        exec(compile(code, f"{README}:Your own update rule", "exec"), namespace)
    finally:
        optim.FAMILIES.pop("nesterov", None)  # the example registers it; other tests see the stock families
    return namespace


EXAMPLE = _readme_example()
Nesterov = EXAMPLE["Nesterov"]


def test_the_readme_example_builds_what_it_says():
    assert repr(EXAMPLE["opt"]) == "Nesterov(α=0.05, μ=0.9) / SGD(α=0.0001)"
    assert set(EXAMPLE["opt"].hyperparameters()) == {"alpha", "mu", "hyper.alpha", "hyper.mu"}  # SGD: μ = 0, fixed


def test_with_kappa_0_it_is_torch_sgd_with_nesterov_momentum():
    data = batches(8)
    ours, theirs = mlp(), mlp()
    mine = Nesterov(ours.parameters(), alpha=0.05, mu=0.8, weight_decay=0.01, hyper=optim.SGD(alpha=0.0))
    ref = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.8, weight_decay=0.01, nesterov=True)
    for model, opt in ((ours, mine), (theirs, ref)):
        H._steps(model, opt, data)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


@pytest.fixture
def with_nesterov(monkeypatch):
    monkeypatch.setitem(H.FAMILIES, "nesterov", lambda p, h: Nesterov(p, alpha=0.02, mu=0.7, hyper=h))


def test_its_hypergradients_equal_a_finite_difference(with_nesterov):
    H.test_hypergradient_equals_a_central_finite_difference_of_the_next_loss("nesterov")


def test_its_hypergradients_equal_reverse_mode(with_nesterov):
    H.test_hypergradient_matches_reverse_mode_through_one_update("nesterov")


def test_as_a_hyperoptimizer_on_numpy_numbers_it_equals_its_tensor_path(monkeypatch):
    """On a CPU the levels above the first run on NumPy float64 numbers: the rule must give what it
    gives on tensors (here bit for bit, in float64), and learn something."""
    def train():
        model = mlp()
        opt = optim.SGD(model.parameters(), alpha=0.05, hyper=Nesterov(alpha=1e-3, mu=0.5))
        H._steps(model, opt, batches(8))
        return opt.hyperparameters(), torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    host_values, host_w = train()
    monkeypatch.setattr(engine, "HOST_MODE", False)
    tensor_values, tensor_w = train()
    assert host_values["alpha"].item() != 0.05
    for key in host_values:
        assert host_values[key].item() == tensor_values[key].item(), key
    assert torch.equal(host_w, tensor_w)


def test_registered_it_joins_tower_strings_and_its_domain_is_checked(monkeypatch):
    monkeypatch.setitem(optim.FAMILIES, "nesterov", Nesterov)
    opt = optim.tower("sgd/nesterov", [torch.nn.Parameter(torch.ones(3))], alpha=0.1, kappa=1e-3)
    assert repr(opt) == "SGD(α=0.1) / Nesterov(α=0.001, μ=0.9)"
    with pytest.raises(ValueError, match=r"Nesterov: mu \(μ\) must lie in \[0, 1\), got 1.5"):
        Nesterov([torch.nn.Parameter(torch.ones(3))], mu=1.5)
    with pytest.raises(ValueError, match=r"sign_safe=True stores log α, so alpha must be > 0, got 0.0"):
        Nesterov([torch.nn.Parameter(torch.ones(3))], alpha=0.0, sign_safe=True)
    copy.deepcopy(opt)  # pickles like the stock optimizers


def test_run_gives_a_registered_rule_its_config_values_and_refuses_one_it_does_not_take(monkeypatch):
    """``hypernb.run`` passes a family's own hyperparameters from the config (μ here), as for the stock ones: a
    registered Nesterov trained with μ = 0.9, its constructor's default, whatever the config said."""
    from hypernb import groups
    from hypernb.config import RunConfig

    monkeypatch.setitem(optim.FAMILIES, "nesterov", Nesterov)
    cfg = RunConfig.from_dict(dict(task="mnist-mlp", optimizer="nesterov/sgd", alpha=0.05, kappa=1e-4, mu=0.5))
    assert cfg.rule_fields() == {"mu"}
    model = torch.nn.Linear(3, 2)
    member = groups.Member(cfg.resolved(), seed=0, index=0)
    opt = groups.build_optimizer([member], model.parameters(), batched=False)
    assert float(opt.hyperparameters()["mu"]) == 0.5 and repr(opt) == "Nesterov(α=0.05, μ=0.5) / SGD(α=0.0001)"
    with pytest.raises(ValueError, match=r"gamma=0.5 is not a hyperparameter of nesterov \(it takes alpha, mu\)"):
        RunConfig.from_dict(dict(task="mnist-mlp", optimizer="nesterov", gamma=0.5))
    with pytest.raises(ValueError, match=r"mu=0.9 is not a hyperparameter of adam \(it takes alpha, beta1, beta2\)"):
        RunConfig.from_dict(dict(task="mnist-mlp", optimizer="adam/sgd", mu=0.9))


@pytest.mark.parametrize("domain", ["0..1", "(0, ∞)", "(1, 0)", "", "[0, 1"])
def test_a_malformed_domain_is_refused_where_it_is_written(domain):
    with pytest.raises(ValueError, match=r"a domain is an interval written as in mathematics"):
        optim.Hyper("beta", "β", optim.IDENTITY, domain=domain)


def test_a_log_stored_hyperparameter_of_another_name_is_named_in_its_message():
    with pytest.raises(ValueError, match=r"Lion: eps \(ε\) is stored as its log, so eps must be > 0, got 0.0"):
        optim.Hyper("eps", "ε", optim.LOG).check(0.0, "Lion")
