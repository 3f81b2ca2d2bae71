"""The optimizer API: towers, repr, bad input, checkpoints, recorder, non-finite detection."""
import io
import math

import pytest
import torch

from hypernb import optim
from conftest import require_cxx
from oracles import batches, mlp


def step_n(model, opt, data):
    losses = []
    for x, y in data:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# -- construction and display ---------------------------------------------------------------------
def test_repr_reads_like_the_paper():
    p = [torch.nn.Parameter(torch.ones(3))]
    assert repr(optim.Adam(p, hyper=optim.SGD(alpha=1e-5))) == "Adam(α=0.001, β1=0.9, β2=0.999) / SGD(α=1e-05)"
    assert repr(optim.SGD(alpha=0.1, mu=0.9)) == "SGD(α=0.1, μ=0.9)"
    assert repr(optim.RMSProp(alpha=0.01, sign_safe=True)) == "RMSProp(α=0.01, γ=0.99, sign_safe)"
    assert repr(optim.tower("sgd/sgd*2", p, alpha=1.0, kappa="report")) == \
        "SGD(α=1) / SGD(α=0.005) / SGD(α=0.00333333)"
    q = [torch.nn.Parameter(torch.ones(2))]  # groups that start differently show each group's value
    assert repr(optim.SGD([{"params": p, "name": "body"}, {"params": q, "name": "head", "lr": 0.1,
                                                            "weight_decay": 0.01}], lr=0.01, momentum=0.9)) == \
        "SGD(α={body: 0.01, head: 0.1}, μ=0.9, weight_decay={body: 0, head: 0.01})"


def test_hyperparameters_are_flat_device_tensors_of_every_level():
    model = mlp(dtype=torch.float32)
    opt = optim.tower("adam/sgd/rmsprop", model.parameters(), alpha=1e-3, kappa=[1e-5, 1e-6])
    hp = opt.hyperparameters()
    assert list(hp) == ["alpha", "beta1", "beta2", "hyper.alpha", "hyper.mu", "hyper.hyper.alpha",
                        "hyper.hyper.gamma"]
    assert all(v.dim() == 0 and v.device == next(model.parameters()).device for v in hp.values())
    assert hp["beta2"].item() == pytest.approx(0.999, rel=1e-6)  # effective (squashed) value
    assert hp["hyper.hyper.alpha"].item() == pytest.approx(1e-6, rel=1e-6)  # effective (squared) value


def test_parameters_stay_leaf_parameters_and_state_dict_of_model_works():
    model = mlp(dtype=torch.float32)
    opt = optim.Adam(model.parameters(), hyper=optim.SGD(alpha=1e-5))
    step_n(model, opt, batches(2, dtype=torch.float32))
    for p in model.parameters():
        assert isinstance(p, torch.nn.Parameter) and p.is_leaf and p.grad is not None
    clone = mlp(dtype=torch.float32, seed=5)
    clone.load_state_dict(model.state_dict())
    x = torch.rand(4, 784)
    assert torch.equal(clone(x), model(x))


def test_named_parameters_name_the_per_parameter_step_sizes():
    model = mlp()
    opt = optim.SGDPerParam(model.named_parameters(), alpha={"1.weight": 0.1, "1.bias": 0.2, "3.weight": 0.3,
                                                            "3.bias": 0.4})
    hp = opt.hyperparameters()
    assert [k for k in hp] == ["alpha.1.weight", "alpha.1.bias", "alpha.3.weight", "alpha.3.bias"]
    assert hp["alpha.3.bias"].item() == pytest.approx(0.4)


# -- bad input ------------------------------------------------------------------------------------
P, Q = [torch.nn.Parameter(torch.ones(2))], [torch.nn.Parameter(torch.ones(2))]


@pytest.mark.parametrize("make, match", [
    (lambda: optim.Adam(P, beta1=1.0), r"beta1 .* \(0, 1\)"),
    (lambda: optim.Adam(P, beta2=0.0), r"beta2 .* \(0, 1\)"),
    (lambda: optim.RMSProp(P, gamma=1.5), r"gamma .* \(0, 1\)"),
    (lambda: optim.SGD(P, mu=1.0), r"mu .* \[0, 1\)"),
    (lambda: optim.SGD(P, hyper=optim.SGD(alpha=-1e-5)), r"alpha .* >= 0"),
    (lambda: optim.tower("adam/sgd", P, kappa=-1e-5), r"κ must be a finite number >= 0"),
    (lambda: optim.tower("adam/sdg", P), r"unknown optimizer 'sdg'.*choose from"),
    (lambda: optim.parse_tower("prodigy/sgd"), r"'prodigy' \(in 'prodigy/sgd'\) is a learning-rate-free peer .*"
                                              r"run\(optimizer='prodigy'\), never in a tower"),
    (lambda: optim.tower("adam/sgd", P, kappa="papr"), r"unknown κ rule 'papr'"),
    (lambda: optim.tower("adam/sgd*2", P, kappa=[1e-5]), r"one value per hyper level"),
    (lambda: optim.SGD(P, hyper=optim.SGD(P)), r"unbound optimizer"),
    (lambda: optim.SGD([]), r"empty parameter list"),
    (lambda: optim.SGD(0.01), r"unbound hyperoptimizer write SGD\(alpha=0.01\)"),
    (lambda: optim.SGD(P, alpha=float("nan")), r"finite number"),
    (lambda: optim.SGD(P, alpha=0.0, sign_safe=True), r"sign_safe=True stores log α"),
    (lambda: optim.Adam(P, log_eps=3), r"log_eps"),
    (lambda: optim.SGD(P, nesterov=True), r"nesterov are not supported"),
    (lambda: optim.SGD(P, maximize=True), r"unsupported option\(s\) \['maximize'\]"),
    (lambda: optim.Adam(P, amsgrad=True, fused=True), r"unsupported option\(s\) \['amsgrad', 'fused'\]"),
    (lambda: optim.SGD(P, lr=0.1, alpha=0.1), r"alpha= or lr="),
    (lambda: optim.RMSProp(P, lr=0.01, alpha=0.9), r"gamma= here"),
    (lambda: optim.Adam(P, betas=(0.9,)), r"betas must be a pair"),
    (lambda: optim.SGD(P, weight_decay=-1.0), r"weight_decay must be a finite number >= 0"),
    (lambda: optim.SGD(P, alpha=[0.1, 0.2]), r"a list of values needs batch=K"),
    (lambda: optim.SGD(P, batch=3), r"leading configuration dimension of size 3"),
    (lambda: optim.SGD(P, hyper="sgd"), r"hyper= must be a hypernb optimizer"),
    (lambda: optim.SGDPerParam(P, alpha=[0.1, 0.2]), r"2 step sizes for 1 entries"),
    (lambda: optim.SGDPerParam(P, alpha=[0.1, 0.2, 0.3], batch=2), r"one alpha per configuration, got 3.*dict"),
    (lambda: optim.tower("adam/sgd", P, kappa=None), r"kappa must be a number, a list"),
    (lambda: optim.tower("adam/sgd", P, hyper_options={"mu": 0.5}), r"hyper_options must be a list"),
    (lambda: optim.tower("adam/sgd", P, hyper_options=[None]), r"hyper_options\[0\] \(level 1\) must be a dict"),
    (lambda: optim.tower("adam/sgd", P, hyper_options=[{"alpha": 1e-3}]), r"gives \['alpha'\].*use kappa="),
    (lambda: optim.tower("adam/sgd", P, hyper_options=[{"hyper": optim.SGD()}]), r"gives \['hyper'\]"),
    (lambda: optim.tower("sgd*", P), r"repeat count in 'sgd\*'"),
    (lambda: optim.tower("sgdperparam/sgd", P, alpha={"0": 0.1}, kappa="paper"), r"kappa='paper' is a rule that "
                                                                                  r"starts from one α0"),
    (lambda: optim.SGD(P, sign_safe="no"), r"sign_safe must be True or False, got 'no'"),
    (lambda: optim.SGD(P, check_every=True), r"check_every must be a positive int"),
    (lambda: optim.Recorder(optim.SGD(P), every=True), r"every must be a positive int, got True"),
    (lambda: optim.SGD(P, hyper=optim.SGDPerParam(alpha={"alpha": 0.0}, sign_safe=True)),
     r"sign_safe=True stores log α, so alpha must be > 0, got 0.0"),
    (lambda: optim.SGDPerParam(P, alpha=[[0.1, -0.2]], batch=2), r"alpha must be >= 0, got -0.2"),
    (lambda: optim.SGD([{"params": P, "momentum": 0.9}, {"params": Q}], hyper=optim.SGD()), r"μ₀\) is 0 for some"),
])
def test_bad_input_raises_clear_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_hyperoptimizer_cannot_join_two_towers():
    h = optim.SGD(alpha=1e-5)
    optim.SGD([torch.nn.Parameter(torch.ones(2))], hyper=h)
    with pytest.raises(ValueError, match="already part of another tower"):
        optim.SGD([torch.nn.Parameter(torch.ones(2))], hyper=h)
    with pytest.raises(RuntimeError, match="step that one"):
        h.step()


def test_moving_the_model_after_building_the_optimizer_is_caught():
    model = mlp(dtype=torch.float32)
    opt = optim.SGD(model.parameters())
    model.double()
    torch.nn.functional.cross_entropy(model(torch.rand(2, 784, dtype=torch.float64)), torch.tensor([0, 1])).backward()
    with pytest.raises(RuntimeError, match=r"moved or replaced .* model.to\(\.\.\.\), model.half\(\).*build the optimizer after them"):
        opt.step()


# -- behaviour --------------------------------------------------------------------------------------
def test_adam_adam_trains_without_nan():
    """The report's Adam/Adam went NaN because it removed the β squashing; ours keeps β in (0, 1)."""
    model = mlp(dtype=torch.float32)
    opt = optim.Adam(model.parameters(), alpha=1e-3, hyper=optim.Adam(alpha=1e-3))
    losses = step_n(model, opt, batches(120, batch=64, dtype=torch.float32))
    opt.check_finite()
    hp = opt.hyperparameters()
    assert all(math.isfinite(v.item()) for v in hp.values())
    assert 0 < hp["beta1"].item() < 1 and 0 < hp["beta2"].item() < 1
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10


def test_tower_of_height_50_runs_and_upper_levels_matter_little():
    """The paper's claim, in 5 steps: a 50-level tower ends within 1e-3 (measured 2e-4) of a 2-level
    one, while dropping the second level changes the weights by more than 0.5 % (measured 1.8 %)."""
    def weights(height):
        model = mlp(dtype=torch.float32)
        opt = optim.tower(f"sgd/sgd*{height}", model.parameters(), alpha=0.05, kappa="paper")
        step_n(model, opt, batches(5, dtype=torch.float32))
        opt.check_finite()
        return opt, torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    opt, w50 = weights(50)
    assert opt.height == 50 and len(opt.hyperparameters()) == 51 * 2
    (_, w2), (_, w1) = weights(2), weights(1)
    assert ((w50 - w2).norm() / w2.norm()).item() < 1e-3
    assert ((w50 - w1).norm() / w1.norm()).item() > 5e-3


def test_single_parameter_tangent_row_does_not_alias_a_reused_gradient():
    """SGD's tangent in α is the gradient itself; with one parameter the gradient vector is a view
    of p.grad, which zero_grad(set_to_none=False) zeroes and backward refills in place."""
    out = []
    for set_to_none in (True, False):
        w = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float64))
        opt = optim.SGD([w], alpha=0.1, hyper=optim.SGD(alpha=1e-2))
        for _ in range(4):
            opt.zero_grad(set_to_none=set_to_none)
            ((w - 0.3) ** 4).sum().backward()
            opt.step()
        out.append((w.detach().clone(), opt.hyperparameters()["alpha"]))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])


def test_step_hooks_run_and_the_profiler_sees_the_step():
    model = mlp()
    opt = optim.tower("adam/sgd", model.parameters())
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    step_n(model, opt, batches(2))
    assert calls == ["pre", "post", "pre", "post"]
    with torch.profiler.profile() as prof:
        step_n(model, opt, batches(1))
    assert any(e.name == "Optimizer.step#Adam.step" for e in prof.events())


def test_parameter_without_a_gradient_is_skipped_and_its_state_untouched():
    """As torch.optim: a parameter whose .grad is None (an unused branch) is left alone that step,
    momentum included, while the others train."""
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = optim.SGD([used, unused], alpha=0.1, mu=0.9, hyper=optim.SGD(alpha=1e-3))
    ((used ** 2).sum() + (unused ** 2).sum()).backward()
    opt.step()  # both move; the unused one now has momentum
    after_first = unused.detach().clone()
    buf = opt._engine.levels[0].state[0]["buf"][0, 3:].clone()
    for _ in range(3):
        opt.zero_grad()
        (used ** 2).sum().backward()
        opt.step()
        assert unused.grad is None
    assert torch.equal(unused.detach(), after_first)  # no momentum drift (torch.optim leaves it alone)
    assert torch.equal(opt._engine.levels[0].state[0]["buf"][0, 3:], buf)
    assert not torch.equal(used.detach(), torch.full((3,), 0.8))


def test_sign_safe_alpha_stays_positive_where_plain_alpha_goes_negative():
    """A large κ on a noisy problem drives the plain α through zero; log α cannot cross it."""
    def run(sign_safe):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.zeros(20))
        opt = optim.SGD([w], alpha=0.1, hyper=optim.SGD(alpha=0.5), sign_safe=sign_safe)
        lowest = 1.0
        for _ in range(200):
            opt.zero_grad()
            x = torch.randn(20)
            ((w - x) ** 2).sum().backward()
            opt.step()
            lowest = min(lowest, opt.hyperparameters()["alpha"].item())
        return lowest
    assert run(False) < 0 < run(True)


# -- checkpoints ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, compiled", [("adam/sgd", False), ("sgd/adam/rmsprop", False), ("rmsprop/adagrad", False),
                                            ("sgdperparam/sgd", False), ("adam/sgd", True)])
def test_state_dict_round_trip_resumes_exactly(spec, compiled):
    if compiled:  # the step compiled by torch.compile resumes bit for bit too
        require_cxx()

    def build(model):
        if spec.startswith("sgd/"):
            return optim.tower(spec, model.parameters(), alpha=0.01, kappa=1e-4, mu=0.5, compiled=compiled)
        return optim.tower(spec, model.parameters(), kappa=1e-4, compiled=compiled)

    data = batches(12)
    model_a = mlp()
    opt_a = build(model_a)
    step_n(model_a, opt_a, data)
    model_b = mlp()
    opt_b = build(model_b)
    step_n(model_b, opt_b, data[:5])
    buf = io.BytesIO()
    torch.save({"model": model_b.state_dict(), "opt": opt_b.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    model_c = mlp(seed=9)
    opt_c = build(model_c)
    model_c.load_state_dict(saved["model"])
    opt_c.load_state_dict(saved["opt"])
    step_n(model_c, opt_c, data[5:])
    for a, c in zip(model_a.parameters(), model_c.parameters()):
        assert torch.equal(a, c)
    for (k, a), c in zip(opt_a.hyperparameters().items(), opt_c.hyperparameters().values()):
        assert torch.equal(a, c), k


def test_load_state_dict_rejects_another_tower():
    a = optim.Adam([torch.nn.Parameter(torch.ones(2))], hyper=optim.SGD(alpha=1e-5))
    b = optim.Adam([torch.nn.Parameter(torch.ones(2))], hyper=optim.Adam(alpha=1e-5))
    with pytest.raises(ValueError, match="state dict is for the tower"):
        b.load_state_dict(a.state_dict())


def test_a_state_dict_of_another_parametrisation_is_refused():
    """sign_safe=True stores log α: its saved values mean something else to a plain optimizer."""
    def build(sign_safe):
        return optim.SGD([torch.nn.Parameter(torch.ones(2))], alpha=0.1, hyper=optim.SGD(alpha=1e-3),
                         sign_safe=sign_safe)

    saved = build(True).state_dict()
    plain = build(False)
    with pytest.raises(ValueError, match=r"level 0 \(SGD\) stores alpha as log, this optimizer stores alpha as "
                                         r"identity; build it with the same sign_safe="):
        plain.load_state_dict(saved)
    assert plain.hyperparameters()["alpha"].item() == pytest.approx(0.1)
    for level in saved["levels"]:  # a state dict of an earlier version has no such entry: loaded as before
        del level["stored"]
    safe = build(True)
    safe.load_state_dict(saved)
    assert safe.hyperparameters()["alpha"].item() == pytest.approx(0.1)


def test_adamw_weight_decay_switched_on_and_off_on_the_capturable_path():
    """AdamW's decoupled decay adds the weights as one more base of the tangents, so switching it
    changes the tangents' structure; the capturable layout (CUDA's default) allocates its tangent
    buffers again and equals the host step bit for bit."""
    out = []
    for capturable in (False, True):
        model = mlp()
        opt = optim.tower("adamw/sgd", model.parameters(), kappa=1e-3, weight_decay=0.0, capturable=capturable)
        for t, (x, y) in enumerate(batches(9)):
            if t in (3, 6):
                opt.param_groups[0]["weight_decay"] = 0.05 if t == 3 else 0.0
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        out.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
                    torch.stack(list(opt.hyperparameters().values()))))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])


# -- trajectories and non-finite values ---------------------------------------------------------------
def test_recorder_keeps_every_kth_step():
    model = mlp(dtype=torch.float32)
    opt = optim.SGD(model.parameters(), alpha=0.05, hyper=optim.SGD(alpha=1e-3))
    rec = optim.Recorder(opt, every=3, capacity=2)  # grows past its initial capacity
    step_n(model, opt, batches(9, dtype=torch.float32))
    traj = rec.read()
    assert traj["step"] == [0, 3, 6, 9]
    assert traj["alpha"][0] == pytest.approx(0.05) and traj["alpha"][-1] == pytest.approx(opt.hyperparameters()["alpha"].item())
    assert set(traj) == {"step", "alpha", "mu", "hyper.alpha", "hyper.mu"}


def test_recorder_labels_the_optimizers_own_steps_and_skips_steps_that_did_nothing():
    model = mlp(dtype=torch.float32)
    opt = optim.SGD(model.parameters(), alpha=0.05, hyper=optim.SGD(alpha=1e-3))
    step_n(model, opt, batches(5, dtype=torch.float32))
    rec = optim.Recorder(opt)  # attached after 5 steps
    opt.zero_grad()
    opt.step()  # no gradient: nothing happens, nothing is recorded
    step_n(model, opt, batches(2, dtype=torch.float32))
    assert rec.read()["step"] == [5, 6, 7] and int(opt.steps) == 7


def test_recorder_stops_with_a_warning_when_the_hyperparameters_change():
    """add_param_group renames and adds hyperparameters: the recorder keeps what it has and stops,
    instead of breaking the optimizer's step."""
    model = mlp(dtype=torch.float32)
    opt = optim.SGD(list(model.parameters())[:2], alpha=0.05, hyper=optim.SGD(alpha=1e-3))
    rec = optim.Recorder(opt)
    step_n(model, opt, batches(2, dtype=torch.float32))
    opt.add_param_group({"params": list(model.parameters())[2:], "name": "head"})
    with pytest.warns(UserWarning, match=r"Recorder: the optimizer's hyperparameters changed at step 3"):
        step_n(model, opt, batches(1, dtype=torch.float32))
    step_n(model, opt, batches(1, dtype=torch.float32))  # the optimizer goes on
    assert rec.read()["step"] == [0, 1, 2]


def test_recorder_reads_one_member_and_checks_only_it():
    from hypernb import models

    together = models.batched([mlp(seed=0), mlp(seed=1)])
    opt = optim.SGD(together.parameters(), alpha=[0.05, 0.1], hyper=optim.SGD(alpha=[1e-3, 1e308]), batch=2)
    rec = optim.Recorder(opt)
    for x, y in batches(6):
        opt.zero_grad()
        out = together(x.expand(2, *x.shape))
        sum(torch.nn.functional.cross_entropy(out[k], y) for k in range(2)).backward()
        opt.step()
    assert 1 in opt.nonfinite() and 0 not in opt.nonfinite()
    assert len(rec.read(member=0)["alpha"]) == 7  # member 1 went non-finite: it does not hide member 0
    with pytest.raises(optim.NonFiniteError):
        rec.read(member=1)
    for member in (None, 2, -1):
        with pytest.raises(ValueError, match=r"read\(member=k\) with k in 0…1"):
            rec.read(member=member)
    single = optim.Recorder(optim.SGD([torch.nn.Parameter(torch.ones(2))]))
    with pytest.raises(ValueError, match=r"one configuration"):
        single.read(member=0)


def test_repr_of_per_tensor_alphas_per_configuration():
    from hypernb import models

    together = models.batched([torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)])
    opt = optim.SGDPerParam(together.parameters(), alpha=[[0.1, 0.2], [0.3, 0.4]], batch=2)
    assert repr(opt) == "SGDPerParam(α=[[0.1, 0.2], [0.3, 0.4]])"


def test_set_hyperparameters_is_all_or_nothing_and_takes_what_hyperparameters_returns():
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = optim.Adam([w], alpha=0.1, hyper=optim.SGD(alpha=1e-3))
    with pytest.raises(ValueError, match=r"beta1 \(β1\) \(set_hyperparameters\) must lie in the open interval"):
        opt.set_hyperparameters(alpha=0.5, beta1=1.5)
    assert opt.hyperparameters()["alpha"].item() == pytest.approx(0.1)
    opt.set_hyperparameters(alpha=opt.hyperparameters()["alpha"] * 0.5)
    assert opt.hyperparameters()["alpha"].item() == pytest.approx(0.05)


@pytest.mark.parametrize("mode", ["host", "tensor", "compiled"])  # NumPy few numbers, all tensors, torch.compile
def test_non_finite_hyperparameter_is_flagged_with_level_name_and_step(mode):
    if mode == "compiled":
        require_cxx()
    w = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = optim.SGD([w], alpha=0.1, hyper=optim.SGD(alpha=1e308), check_every=None,  # α overflows
                    capturable=True if mode == "tensor" else None, compiled=mode == "compiled")
    for _ in range(6):  # no host sync and no exception inside step()
        opt.zero_grad()
        (w ** 4).sum().backward()
        opt.step()
    with pytest.raises(optim.NonFiniteError) as err:
        opt.check_finite()
    e = err.value
    assert e.level == 0 and e.name == "alpha" and e.what == "hyperparameter" and e.step == 2
    assert "level 0 (SGD)" in str(e) and f"step {e.step}" in str(e)


def test_non_finite_gradient_is_flagged_and_check_every_raises():
    w = torch.nn.Parameter(torch.ones(2))
    opt = optim.Adam([w], hyper=optim.SGD(alpha=1e-5), check_every=2)
    opt.zero_grad()
    (w.sum() * 2).backward()
    opt.step()
    opt.zero_grad()
    (w.sum() * float("inf")).backward()
    with pytest.raises(optim.NonFiniteError, match="non-finite gradient at level 0 .* step 2"):
        opt.step()


@pytest.mark.parametrize("capturable", [False, True])
def test_a_non_finite_gradient_at_the_first_step_of_a_tower_is_reported_as_the_gradient(capturable):
    """At a first step level 0's hypergradients are 0 whatever the gradient: the gradient itself is checked."""
    w = torch.nn.Parameter(torch.ones(2))
    opt = optim.Adam([w], hyper=optim.SGD(alpha=1e-5), capturable=capturable)
    (w.sum() * float("nan")).backward()
    opt.step()
    with pytest.raises(optim.NonFiniteError) as err:
        opt.check_finite()
    assert (err.value.what, err.value.step) == ("gradient", 1)


@pytest.mark.parametrize("capturable", [False, True])
def test_hyperparameters_and_hypergradients_are_snapshots(capturable):
    """The values read after a step stay what they were: the next steps write their buffers in place."""
    w = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float64))
    opt = optim.SGD([w], alpha=0.1, hyper=optim.SGD(alpha=1e-2), capturable=capturable)
    history = []
    for _ in range(4):
        opt.zero_grad()
        ((w - 0.3) ** 4).sum().backward()
        opt.step()
        history.append((opt.hyperparameters(), opt.hypergradients()))
    assert len({hp["alpha"].item() for hp, _ in history}) == 4
    assert len({hg["alpha"].item() for _, hg in history}) == 4


def test_a_step_without_gradient_gives_no_hypergradient_to_a_one_element_group():
    """A parameter without a gradient does not move, so the next step's hypergradient of its group's
    values is 0, also for a group of one entry (whose tangents are numbers, not vectors)."""
    w, b = (torch.nn.Parameter(torch.ones(n, dtype=torch.float64)) for n in (3, 1))
    opt = optim.Adam([{"params": [w], "name": "w"}, {"params": [b], "name": "b"}], hyper=optim.SGD(alpha=1e-3))
    for used in ([w, b], [w], [w, b]):
        opt.zero_grad()
        sum((p ** 2).sum() for p in used).backward()
        opt.step()
    hg = opt.hypergradients()
    assert [hg[f"{h}.b"].item() for h in ("alpha", "beta1", "beta2")] == [0.0, 0.0, 0.0]
    assert hg["alpha.w"].item() != 0.0


def test_set_hyperparameters_writes_the_stored_value():
    w = torch.nn.Parameter(torch.ones(3))
    opt = optim.tower("rmsprop/sgd", [w], alpha=0.01, kappa=1e-4)
    opt.set_hyperparameters(alpha=0.04, gamma=0.5, **{"hyper.alpha": 1e-6})
    hp = opt.hyperparameters()
    assert hp["alpha"].item() == pytest.approx(0.04) and hp["gamma"].item() == pytest.approx(0.5)
    assert hp["hyper.alpha"].item() == pytest.approx(1e-6)
    with pytest.raises(ValueError, match="no learnable hyperparameter 'beta1'"):
        opt.set_hyperparameters(beta1=0.9)
    with pytest.raises(ValueError, match=r"gamma .* \(0, 1\)"):
        opt.set_hyperparameters(gamma=1.5)


def test_a_value_set_between_steps_is_the_one_the_next_step_uses():
    """The CPU step reads the stored values from one packed buffer: a write through
    set_hyperparameters (or load_state_dict) between steps must reach it."""
    model = mlp()
    opt = optim.tower("adam/sgd/sgd", model.parameters(), kappa=[0.0, 0.0])
    step_n(model, opt, batches(2))
    opt.set_hyperparameters(alpha=0.25, **{"hyper.alpha": 0.0})
    before = [p.detach().clone() for p in model.parameters()]
    step_n(model, opt, batches(1))
    assert opt.hyperparameters()["alpha"].item() == 0.25  # κ = 0: nothing moves it
    moved = max((p.detach() - b).abs().max().item() for p, b in zip(model.parameters(), before))
    assert 0.1 < moved <= 0.25 * 1.01  # an Adam step moves a weight by at most ≈ α


def test_per_hyperparameter_kappa_for_sgdperparam():
    w = torch.nn.Parameter(torch.ones(3))
    opt = optim.tower("sgd/sgdperparam", [w], alpha=0.1, mu=0.9, kappa={"alpha": 1e-3, "mu": 1e-6})
    assert opt.hyperparameters()["hyper.alpha.mu"].item() == pytest.approx(1e-6)
    with pytest.raises(ValueError, match="needs an sgdperparam hyperoptimizer"):
        optim.tower("sgd/sgd", [torch.nn.Parameter(torch.ones(3))], kappa={"alpha": 1e-3})


@pytest.mark.parametrize("spec", ["sgd", "adam", "sgd/sgd", "adam/adam/sgd", "rmsprop/adagrad", "sgdperparam/sgd",
                                  "sgd/sgd*3", "adamw/sgdperparam", "rmsprop/adagrad/sgd/adam", "adam/rmsprop/adam"])
def test_host_step_equals_the_tensor_step(spec, monkeypatch):
    """On a CPU with one configuration the few-number part of the step runs in NumPy float64 (the
    default); capturable=True runs everything as tensors, as on a GPU, and so does HOST_MODE off (the
    benchmark's ablation). In float64 all are the same arithmetic, rounded alike, so they agree bit for bit."""
    from hypernb.optim import engine

    out = []
    for capturable, host_mode in ((False, True), (True, True), (False, False)):
        monkeypatch.setattr(engine, "HOST_MODE", host_mode)
        model = mlp()
        kw = {"mu": 0.5} if spec.startswith("sgd/") else {}
        opt = optim.tower(spec, model.parameters(), kappa=1e-4, capturable=capturable, **kw)
        assert opt._engine.host == (host_mode and not capturable)
        step_n(model, opt, batches(6))
        out.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
                    torch.stack(list(opt.hyperparameters().values()))))
    for other in out[1:]:
        assert torch.equal(out[0][0], other[0]) and torch.equal(out[0][1], other[1])


def test_a_second_optimizer_on_the_same_parameters_is_named_when_the_first_steps():
    """The newest optimizer owns the parameters' storage; the older one says so instead of blaming a move."""
    model = torch.nn.Linear(3, 2)
    first = optim.Adam(model.parameters(), hyper=optim.SGD(alpha=1e-5))
    second = optim.Adam(model.parameters())
    model(torch.ones(4, 3)).sum().backward()
    second.step()
    with pytest.raises(RuntimeError, match="another hypernb optimizer was built on this optimizer's parameters"):
        first.step()
    moved = optim.SGD(torch.nn.Linear(3, 2).double().parameters())
    for p in moved.param_groups[0]["params"]:
        p.data = p.data.clone()
        p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError, match=r"a parameter \(shape \(2, 3\)\) was moved or replaced.*p.data = .*"
                                           r"vector_to_parameters.*p.copy_\(new\)"):
        moved.step()
