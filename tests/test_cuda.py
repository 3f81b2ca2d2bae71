"""GPU behaviour (skipped without CUDA): no host sync inside step(), and a whole training step
captured in a CUDA graph gives the same trajectory as eager steps."""
import pytest
import torch

from hypernb import optim

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SPECS = ["adam/sgd", "sgd/sgd*3", "rmsprop/adam", "adagrad/sgd", "sgdperparam/sgd"]


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.Tanh(), torch.nn.Linear(128, 10)).cuda()


def batches(n):
    gen = torch.Generator().manual_seed(1)
    return [(torch.rand(64, 784, generator=gen).cuda(), torch.randint(0, 10, (64,), generator=gen).cuda())
            for _ in range(n)]


def build(spec, model):
    kw = {"mu": 0.9} if spec.startswith("sgd/") else {}
    return optim.tower(spec, model.parameters(), kappa=1e-4, **kw)


@pytest.mark.parametrize("spec", SPECS)
def test_step_never_synchronises_with_the_host(spec):
    model = mlp()
    opt = build(spec, model)
    rec = optim.Recorder(opt, every=1)
    data = batches(4)
    for x, y in data[:2]:  # the first step traces the step function
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for x, y in data[2:]:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        torch.cuda.set_sync_debug_mode("error")
        try:
            opt.step()  # includes the recorder's hook
            opt.hyperparameters()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert len(rec.read()["step"]) == 5


@pytest.mark.parametrize("spec", SPECS)
def test_cuda_graph_capture_matches_eager(spec):
    data = batches(12)
    eager_model = mlp()
    eager = build(spec, eager_model)
    for x, y in data:
        eager.zero_grad()
        torch.nn.functional.cross_entropy(eager_model(x), y).backward()
        eager.step()

    model = mlp()
    opt = build(spec, model)
    static_x, static_y = data[0][0].clone(), data[0][1].clone()

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(static_x), static_y).backward()
        opt.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for x, y in data[:3]:  # warm-up (and tracing) on a side stream, as the CUDA-graph recipe says
            static_x.copy_(x)
            static_y.copy_(y)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for x, y in data[3:]:
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(model.parameters(), eager_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for (k, a), b in zip(opt.hyperparameters().items(), eager.hyperparameters().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9, msg=k)
    assert int(opt.steps) == len(data)


@pytest.mark.parametrize("spec", SPECS + ["sgd", "adam"])
def test_internal_cuda_graph_replay_equals_eager_steps(spec):
    """By default on CUDA the optimizer captures its own step after two warm-up steps and replays
    it; the trajectory must equal plain eager steps (cuda_graph=False)."""
    data = batches(10)
    out = []
    for graph in (False, True):
        model = mlp()
        kw = {"mu": 0.9} if spec.startswith("sgd/") else {}
        opt = optim.tower(spec, model.parameters(), kappa=1e-4, cuda_graph=graph, **kw)
        rec = optim.Recorder(opt, every=1)
        for x, y in data:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        assert (opt._engine._graph is not None) == graph
        out.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]), rec.read()))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-6, atol=1e-7)
    assert out[0][1]["step"] == out[1][1]["step"]
    for k in out[0][1]:
        torch.testing.assert_close(torch.tensor(out[0][1][k]), torch.tensor(out[1][1][k]), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("spec", SPECS)
def test_swapped_buffers_equal_capturable_write_back_on_cuda(spec):
    """capturable=False swaps the full-size buffers and lets the step reuse the old ones (donation);
    it must give exactly the trajectory of the static-address default."""
    data = batches(6)
    out = []
    torch.use_deterministic_algorithms(True, warn_only=True)  # SGDPerParam's index_add sums in any order
    try:
        for capturable in (True, False):
            model = mlp()
            kw = {"mu": 0.9} if spec.startswith("sgd/") else {}
            opt = optim.tower(spec, model.parameters(), kappa=1e-4, capturable=capturable, cuda_graph=False, **kw)
            for x, y in data:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            out.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
                        torch.stack(list(opt.hyperparameters().values()))))
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])


@pytest.mark.parametrize("spec", ["sgd/sgd*3", "adam/sgd"])
def test_cpu_and_cuda_follow_the_same_float32_trajectory(spec):
    """On the CPU the scalar part runs as Python numbers rounded to float32; on the GPU as float32
    tensors. The hyperparameters must agree to float32 rounding (matrix products differ slightly)."""
    data = batches(8)
    out = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.Tanh(), torch.nn.Linear(128, 10)).to(device)
        kw = {"mu": 0.9} if spec.startswith("sgd/") else {}
        opt = optim.tower(spec, model.parameters(), kappa=1e-4, **kw)
        for x, y in data:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device)).backward()
            opt.step()
        if device == "cpu":
            assert opt._engine.host  # the NumPy few-number path
        out.append(torch.stack(list(opt.hyperparameters().values())).cpu())
    torch.testing.assert_close(out[0], out[1], rtol=1e-4, atol=1e-9)
