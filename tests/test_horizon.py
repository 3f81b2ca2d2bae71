"""The short-horizon-bias measurement (notebook 01, section 6): its finite differences are right."""
import torch

from conftest import require
from hypernb.study import horizon


def test_one_step_finite_difference_equals_its_closed_form():
    """dF₁/dα = −⟨∇F(θ − α g), g⟩: the central difference the figure uses matches it in float64."""
    require("mnist")
    x, y = horizon._data(1024)
    torch.manual_seed(0)
    layers = [torch.nn.Linear(784, 128), torch.nn.Linear(128, 10)]
    theta = [t.detach().double() for layer in layers for t in (layer.weight, layer.bias)]
    batch, ex, ey = (x[:256], y[:256]), x[256:768], y[256:768]
    g = horizon._grad(theta, *batch)
    for alpha in (1e-3, 1e-1):
        h = 1e-4 * alpha
        f = [float(horizon._loss(horizon._sgd(theta, alpha + s * h, [batch]), ex, ey)) for s in (1, -1)]
        fd = (f[0] - f[1]) / (2 * h)
        closed = -sum(float((a * b).sum()) for a, b in zip(horizon._grad([p - alpha * q for p, q in zip(theta, g)],
                                                                          ex, ey), g))
        assert abs(fd - closed) <= 1e-6 * abs(closed)


def test_measure_reports_every_seed_alpha_and_horizon():
    require("mnist")
    h = horizon.measure("smoke")
    cfg = horizon.SETTINGS["smoke"]
    assert len(h["rows"]) == len(cfg["seeds"]) * len(cfg["alphas"])
    assert all(f"T{T}" in r and f"F{T}" in r for r in h["rows"] for T in cfg["horizons"])
    small = [r for r in h["rows"] if r["alpha"] == min(cfg["alphas"])]
    assert all(r["T10"] < 0 for r in small)  # from an ordinary point, a tiny α is too small for 10 steps
    assert h["env"]["torch"]
    assert len(horizon.agreement_table(h)) == len(cfg["alphas"])
