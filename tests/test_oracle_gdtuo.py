"""Oracle 1: the paper's own package. Same model, same batches, float64, 50 steps: every parameter
and every hyperparameter of every level must agree to 1e-10 relative."""
import os

import pytest
import torch

from conftest import require_cxx
from oracles import batches, build_gdtuo, gdtuo_effective, hypernb_spec, mlp, train_gdtuo, train_hypernb

if os.environ.get("HYPERNB_REQUIRE_ORACLES") == "1":  # `make test`: a missing oracle is a failure
    import gradient_descent_the_ultimate_optimizer  # noqa: F401
else:
    pytest.importorskip("gradient_descent_the_ultimate_optimizer")

BASE = {
    "sgd": {"alpha": 0.05},
    "sgd-momentum": {"alpha": 0.02, "mu": 0.9},
    "adagrad": {"alpha": 0.02},
    "rmsprop": {"alpha": 0.003, "gamma": 0.99},
    "rmspropalpha": {"alpha": 0.003, "gamma": 0.99},
    "adam": {"alpha": 0.002, "beta1": 0.9, "beta2": 0.999},
    "adambaydin": {"alpha": 0.002, "beta1": 0.9, "beta2": 0.999},
}
# hyper-step sizes large enough that every hyperparameter visibly moves within 50 steps
HYPER = {
    "sgd": {"alpha": 1e-3},
    "adagrad": {"alpha": 1e-3},
    "rmsprop": {"alpha": 1e-4, "gamma": 0.99},
    "adam": {"alpha": 1e-3, "beta1": 0.9, "beta2": 0.99},
}


def family(name):
    return name.split("-")[0]


CASES = [[(family(b), BASE[b])] for b in BASE]
CASES += [[(family(b), BASE[b]), (h, HYPER[h])] for b in BASE for h in HYPER]
CASES += [  # towers of height 3
    [("sgd", BASE["sgd"]), ("sgd", {"alpha": 1e-2}), ("sgd", {"alpha": 1e-3}), ("sgd", {"alpha": 1e-4})],
    [("adam", BASE["adam"]), ("sgd", {"alpha": 1e-4}), ("adam", {"alpha": 1e-5}), ("rmsprop", {"alpha": 1e-6})],
    [("rmsprop", BASE["rmsprop"]), ("adagrad", {"alpha": 1e-3}), ("sgd", {"alpha": 1e-3, "mu": 0.5}),
     ("adam", {"alpha": 1e-4})],
    [("adam", BASE["adam"]), ("sgdperparam", {"pairs": [("alpha", 1e-3), ("beta1", 1e-2), ("beta2", 1e-3)]})],
]


def ids(case):
    return "/".join(n for n, _ in case) + ("-mom" if case[0][1].get("mu") else "")


# compiled=True (the CPU step compiled by torch.compile) on a tower of each kind
COMPILED = [c for c in CASES if ids(c) in ("adam/adam", "adam/sgd/adam/rmsprop", "rmsprop/adagrad/sgd/adam")]


@pytest.mark.parametrize("compiled,case", [(False, c) for c in CASES] + [(True, c) for c in COMPILED],
                         ids=[ids(c) for c in CASES] + [ids(c) + "-compiled" for c in COMPILED])
def test_matches_paper_package(case, compiled):
    if compiled:
        require_cxx()
    torch.set_default_dtype(torch.float64)  # gdtuo creates its hyperparameters with the default dtype
    try:
        data = batches(50)
        theirs = train_gdtuo(mlp(), build_gdtuo(case), data)
        model = mlp()
        opt = hypernb_spec(case, model.parameters(), compiled=compiled)
        train_hypernb(model, opt, data)
    finally:
        torch.set_default_dtype(torch.float32)
    for (name, ours), theirs_p in zip(model.named_parameters(), theirs.module.parameters()):
        torch.testing.assert_close(ours, theirs_p.detach(), rtol=1e-10, atol=1e-13, msg=f"parameter {name}")
    expected = gdtuo_effective(theirs.optimizer)
    got = {k: float(v) for k, v in opt.hyperparameters().items()}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-10, abs=1e-15), key
    # the oracle can only catch a wrong hypergradient if the hyperparameters actually moved
    if len(case) > 1:
        initial = {k: float(v) for k, v in hypernb_spec(case, mlp().parameters()).hyperparameters().items()}
        moved = [k for k in expected if k.count("hyper.") == 0 and abs(got[k] - initial[k]) > 1e-9 * max(1, abs(initial[k]))]
        assert moved, f"no level-0 hyperparameter moved: {got} vs {initial}"


@pytest.mark.parametrize("case", [c for c in CASES if len(c) > 1][::3], ids=[ids(c) for c in CASES if len(c) > 1][::3])
def test_each_member_of_a_batch_matches_the_papers_package(case):
    """Three configurations trained at once (batch=3: one MLP each, in one batched model), each from
    its own initialisation on its own batches: every one equals the paper's package run alone.
    (Batched runs with different α, κ, μ0 and heights equal their runs alone: tests/test_batch.py.)"""
    from hypernb import models

    torch.set_default_dtype(torch.float64)
    try:
        K = 3
        streams = [batches(20, seed=1 + k) for k in range(K)]
        together = models.batched([mlp(seed=k) for k in range(K)])
        opt = hypernb_spec(case, together.parameters(), batch=K)
        for step in range(20):
            x = torch.stack([s[step][0] for s in streams])
            y = [s[step][1] for s in streams]
            opt.zero_grad()
            out = together(x)
            sum(torch.nn.functional.cross_entropy(out[k], y[k]) for k in range(K)).backward()
            opt.step()
        for k in range(K):
            theirs = train_gdtuo(mlp(seed=k), build_gdtuo(case), streams[k])
            state = together.member_state(k)
            for pname, p in theirs.module.named_parameters():
                torch.testing.assert_close(state[pname], p.detach(), rtol=1e-10, atol=1e-13, msg=f"member {k}: {pname}")
            got = {key: float(v[k]) for key, v in opt.hyperparameters().items()}
            for key, value in gdtuo_effective(theirs.optimizer).items():
                assert got[key] == pytest.approx(value, rel=1e-10, abs=1e-15), (k, key)
    finally:
        torch.set_default_dtype(torch.float32)
