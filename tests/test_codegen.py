"""The code generator behind the traced step: Python-number scalars, donated buffers, folded Δ."""
import math

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from hypernb.optim import codegen


def scalar_edge_cases(x, s):
    """Scalars hitting every IEEE special case, then used on a full-size tensor."""
    a = s[0] / s[1]                      # 1/0 = inf
    b = (s[2] - 1.0).sqrt()              # √(negative) = nan
    c = s[3] * 1e30 * 1e10               # overflows float32 (not a double)
    d = (s[3] * 1e3).exp()               # overflows
    e = torch.log(s[1])                  # log 0 = -inf
    f = s[4] ** 0.5                      # negative base, fractional power = nan
    g = torch.tanh(s[3]) / (1.0 - s[2] ** 3)
    flags = torch.isnan(torch.stack([a, b, c, d, e, f, g]) * 0.0)
    y = x * g + x * s[3]
    return flags, y, torch.stack([a, b, c, d, e, f, g]), torch.where(flags, 1, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_python_number_scalars_keep_tensor_semantics_for_special_values(dtype):
    x = torch.linspace(-1, 1, 50, dtype=dtype)
    s = torch.tensor([1.0, 0.0, 0.5, 2.0, -3.0], dtype=dtype)
    gm = make_fx(scalar_edge_cases)(x, s)
    fn = codegen.to_python(gm, host=True)
    assert fn.host and "_tensor(" in fn.source  # the scalars really ran as Python numbers
    want, got = gm(x, s), fn(x, s)
    for w, g in zip(want, got):
        assert g.dtype == w.dtype and g.shape == w.shape
        torch.testing.assert_close(g, w, equal_nan=True, rtol=1e-6, atol=0)


def test_helpers_return_inf_and_nan_instead_of_raising():
    assert codegen._h_div(1.0, 0.0) == math.inf and codegen._h_div(-1.0, 0.0) == -math.inf
    assert math.isnan(codegen._h_div(0.0, 0.0)) and math.isnan(codegen._h_div(math.nan, 0.0))
    assert codegen._h_pow(10.0, 400.0) == math.inf and math.isnan(codegen._h_pow(-8.0, 1 / 3))
    assert codegen._h_pow(-10.0, 401.0) == -math.inf and codegen._h_pow(0.0, -1.0) == math.inf
    assert math.isnan(codegen._h_sqrt(-1.0)) and codegen._h_exp(1e4) == math.inf
    assert codegen._h_log(0.0) == -math.inf and math.isnan(codegen._h_log(-1.0))


def test_float32_scalars_round_like_float32_tensor_ops():
    """Every float32 result is rounded to float32, so the Python-number path follows float32 tensor
    arithmetic (here bit for bit: only +, −, ×, ÷, √), including saturation: (1 − β) is exactly 0
    once β rounds to 1, as on a GPU."""
    def f(s):
        b = 1.0 - (s[0] + s[1])          # 1 − (1 − 2⁻²⁶): 0 in float32, not in double
        q = (s[2] * s[3] / s[4]).sqrt() - s[5] * 1e38 * 10.0   # the product overflows float32
        return (torch.stack([b, q, (s[0] / 3.0) * 3.0]),)
    s = torch.tensor([1 - 2.0 ** -24, 2.0 ** -25 + 2.0 ** -26, 1e-20, 3.3, 7.1, 2.0], dtype=torch.float32)
    gm = make_fx(f)(s)
    fn = codegen.to_python(gm, host=True)
    assert fn.host
    assert torch.equal(fn(s)[0], gm(s)[0]) and fn(s)[0][0] == 0 and fn(s)[0][1] == -math.inf


def update(state, other, g, w):
    """An update shaped like an optimizer step: the old state is read, then replaced."""
    d = state - g
    new = torch.lerp(state, g, w)
    r = new / (new.abs() + 1.0)
    return new, d * r, r * (w * 2.0)


def test_donated_buffers_are_reused_and_results_unchanged():
    gen = torch.Generator().manual_seed(0)
    state, other, g = (torch.randn(1000, generator=gen, dtype=torch.float64) for _ in range(3))
    w = torch.tensor(0.3, dtype=torch.float64)
    gm = make_fx(update)(state, other, g, w)
    want = gm(state.clone(), other.clone(), g.clone(), w)
    plain = codegen.to_python(gm)
    donating = codegen.to_python(gm, host=True, donated={0, 1}, fold={2})
    args = [state.clone(), other.clone(), g.clone(), w]
    ptrs = [a.data_ptr() for a in args[:3]]
    got = donating(*args)
    assert torch.equal(args[2], g), "a buffer that was not donated must never be written"
    assert any(o.data_ptr() == ptrs[0] for o in got if isinstance(o, torch.Tensor)), \
        "the donated state buffer should hold one of the results"
    x, s = got[2]  # folded: Δ comes back as (X, s) with s a Python number
    assert isinstance(s, float)
    torch.testing.assert_close(x * s, want[2], rtol=1e-14, atol=0)
    for a, b in zip(got[:2], want[:2]):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=0)
    for a, b in zip(plain(state.clone(), other.clone(), g.clone(), w), want):
        assert torch.equal(a, b)  # without host scalars the generated code is exact


def test_fast_callable_falls_back_to_the_graph_when_the_code_disagrees(monkeypatch):
    x = torch.ones(20, dtype=torch.float64)
    s = torch.tensor([1.0, 2.0, 0.5, 2.0, -3.0], dtype=torch.float64)
    gm = make_fx(scalar_edge_cases)(x, s)
    monkeypatch.setitem(codegen._BINARY, "mul", "{0} * {1} * 2")  # a deliberately wrong lowering
    assert codegen.fast_callable(gm, [x, s], host=True) is gm
