"""compiled=True: the CPU step traced once and compiled by torch.compile is the same step as the
eager one (float64: equal to 1e-10 relative to the largest value, the batch equivalence criterion;
fusion reorders sums and contracts a·b + c, so not bit for bit), recompiles when the step's
structure changes, follows schedulers and parameter groups, and refuses what it cannot do with a
clear message.

Elsewhere, as one more mode of the shared tests: the paper's package as oracle
(tests/test_oracle_gdtuo.py), bit-exact resume and divergence flags (tests/test_optim_api.py)."""

import pytest
import torch

from conftest import require_cxx
from hypernb import models, optim
from oracles import batches, mlp, train_hypernb


@pytest.fixture
def cxx():
    require_cxx()


needs_cxx = pytest.mark.usefixtures("cxx")  # every test that compiles a step


def train(spec, compiled, data, model=None, **options):
    model = mlp() if model is None else model
    kw = {"mu": 0.5} if spec.startswith("sgd/") else {}
    opt = optim.tower(spec, model.parameters(), kappa=1e-3, compiled=compiled, **kw, **options)
    return train_hypernb(model, opt, data)


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def close(x, y, what, rel=1e-10):
    gap = (x - y).abs().max().item() / max(y.abs().max().item(), 1e-300)
    assert gap <= rel, f"{what}: differs by {gap:.2e} of its largest value (allowed {rel:.0e})"


def assert_same_run(a, b):
    (model_a, opt_a), (model_b, opt_b) = a, b
    close(flat(model_a), flat(model_b), "weights")
    for (name, x), y in zip(opt_a.hyperparameters().items(), opt_b.hyperparameters().values()):
        close(x, y, name)


@needs_cxx
@pytest.mark.parametrize("spec", ["adam/sgd", "rmsprop/adagrad/sgd"])
def test_compiled_step_equals_the_eager_step(spec):
    data = batches(20)
    eager, compiled = train(spec, False, data), train(spec, True, data)
    assert len(compiled[1]._engine._compiled_steps) == 1  # steps 2..20 ran compiled, from one graph
    assert_same_run(eager, compiled)
    # the hyperparameters moved, so the hypergradients were compared too
    assert abs(compiled[1].hyperparameters()["alpha"].item() - 1e-3) > 1e-6


@needs_cxx
def test_parameter_groups_compile_each_with_its_own_values():
    runs = []
    for compiled in (False, True):
        model = mlp()
        groups = [{"params": [model[1].weight, model[3].weight], "lr": 1e-3, "weight_decay": 0.01},
                  {"params": [model[1].bias, model[3].bias], "lr": 2e-3}]
        opt = optim.Adam(groups, hyper=optim.SGD(lr=1e-3), compiled=compiled)
        runs.append(train_hypernb(model, opt, batches(12)))
    assert_same_run(*runs)
    assert "alpha.group1" in runs[1][1].hyperparameters()


@needs_cxx
def test_a_change_of_structure_compiles_a_second_graph_and_stays_equal():
    """A parameter without a gradient and weight decay switched on mid-run change which ops the
    step runs: the compiled step must follow, not replay the old graph."""
    data = batches(12)
    runs = []
    for compiled in (False, True):
        model = mlp()
        opt = optim.tower("adam/sgd", model.parameters(), kappa=1e-3, compiled=compiled)
        for i, (x, y) in enumerate(data):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            if 4 <= i < 7:
                model[3].bias.grad = None  # no gradient: this parameter and its state must stay as they are
            if i == 8:
                opt.param_groups[0]["weight_decay"] = 0.01
            opt.step()
        runs.append((model, opt))
    assert len(runs[1][1]._engine._compiled_steps) == 3
    assert_same_run(*runs)


@needs_cxx
def test_adamw_weight_decay_switched_on_and_off_recompiles_and_stays_equal():
    """AdamW's decoupled decay adds the weights as one more base of the tangents: the step that
    switches it changes the tangent buffers, which a compiled graph takes as arguments, so it runs
    eagerly and allocates them anew; the next steps compile for the new structure (once: switched
    off again, the first graph serves)."""
    data = batches(12)
    runs = []
    for compiled in (False, True):
        model = mlp()
        opt = optim.tower("adamw/sgd", model.parameters(), kappa=1e-3, weight_decay=0.0, compiled=compiled)
        for i, (x, y) in enumerate(data):
            if i in (4, 8):
                opt.param_groups[0]["weight_decay"] = 0.01 if i == 4 else 0.0
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        runs.append((model, opt))
    assert len(runs[1][1]._engine._compiled_steps) == 2
    assert_same_run(*runs)


@needs_cxx
def test_a_scheduler_drives_the_compiled_step():
    """A torch.optim scheduler writes the multiplier of the learned α into a buffer the compiled step
    reads: no recompilation, the same schedule as the eager step."""
    data = batches(12)
    runs = []
    for compiled in (False, True):
        model = mlp()
        opt = optim.tower("adam/sgd", model.parameters(), kappa=1e-3, compiled=compiled)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.1)
        for x, y in data:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
        runs.append((model, opt))
    assert len(runs[1][1]._engine._compiled_steps) == 1
    assert_same_run(*runs)
    lone = train("adam/sgd", True, data)  # the schedule made a difference
    assert (flat(lone[0]) - flat(runs[1][0])).abs().max() > 1e-6


@needs_cxx
def test_compiled_batch_equals_the_eager_batch():
    K = 3
    streams = [batches(10, seed=1 + k) for k in range(K)]
    out = []
    for compiled in (False, True):
        together = models.batched([mlp(seed=k) for k in range(K)])
        opt = optim.tower("adam/sgd", together.parameters(), alpha=[1e-3, 2e-3, 5e-4], kappa=[[1e-3, 0.0, 1e-2]],
                          batch=K, compiled=compiled)
        for step in range(10):
            opt.zero_grad()
            logits = together(torch.stack([s[step][0] for s in streams]))
            sum(torch.nn.functional.cross_entropy(logits[k], streams[k][step][1]) for k in range(K)).backward()
            opt.step()
        out.append((together, opt))
    assert_same_run(*out)


def test_compiled_refuses_what_it_cannot_do():
    w = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="compiled must be True or False"):
        optim.Adam([w], compiled="yes")
    with pytest.raises(ValueError, match="leave capturable unset"):
        optim.Adam([w], compiled=True, capturable=False)
    with pytest.raises(ValueError, match="compiles the step for a CPU"):
        optim.Adam([torch.nn.Parameter(torch.ones(3, device="meta"))], compiled=True)
