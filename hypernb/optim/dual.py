"""Forward-mode automatic differentiation for optimizer update rules.

Why this exists: a hyperoptimizer needs, at every step, the derivative of the new weights with
respect to each of the few hyperparameters that produced them (the tangents ∂w_{t+1}/∂h). The next
step's gradient turns each tangent into a hypergradient with one dot product (paper §3:
∂f(w_{t+1})/∂h = ∇f(w_{t+1}) · ∂w_{t+1}/∂h). The rules are written once, as ordinary arithmetic;
running them on :class:`Dual` numbers yields the tangents automatically, so no optimizer needs a
hand-derived hypergradient.

Why not ``torch.func.jvp``: it propagates dense tangents, costing several times the update itself.
Here a tangent is a lazy sum Σ cᵢ·Bᵢ of vectors Bᵢ with scalar coefficients cᵢ (a number, or one
number per configuration), kept only for the hyperparameters a value depends on. Scalar factors
only touch coefficients; a full-size op happens only when a tangent meets a full-size factor, and
the sum is never formed: the engine dots each base with the next gradient. Adam with three
tangents costs about twice Adam's own arithmetic.

Values may be torch tensors, NumPy arrays or scalars (the engine runs the few-number part of a CPU
step in NumPy float64, whose arithmetic gives inf/NaN where Python's raises); :func:`sqrt`,
:func:`tanh`, :func:`exp` and :func:`ema` work on all of them.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch


def sqrt(x):
    return x.sqrt() if isinstance(x, (Dual, torch.Tensor)) else np.sqrt(x)  # correctly rounded in both


def _like_torch(fn, x):
    """A transcendental function of NumPy numbers computed by torch: NumPy's and torch's tanh and exp
    differ in the last bit, and the CPU step must round exactly as the tensor step does."""
    out = fn(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()
    return np.float64(out) if out.ndim == 0 else out


def tanh(x):
    return x.tanh() if isinstance(x, (Dual, torch.Tensor)) else _like_torch(torch.tanh, x)


def exp(x):
    return x.exp() if isinstance(x, (Dual, torch.Tensor)) else _like_torch(torch.exp, x)


def _full(x) -> bool:
    """A full-size vector (not a per-configuration column [K, 1], a 0-d tensor or a number)."""
    return isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim > 0 and x.shape[-1] > 1


def _mul(a, b):
    """a·b for coefficients, skipping the multiplication by an exact Python 1.0."""
    if type(a) is float and a == 1.0:
        return b
    if type(b) is float and b == 1.0:
        return a
    return a * b


# -- tangents: lists of (coefficient, base) terms; base None is a scalar term --------------------------
def _scale(terms, s):
    return [(_mul(c, s), b) for c, b in terms]


def _collapse(terms):
    """Σ cᵢ·Bᵢ as one (coefficient, base): the few full-size ops that forming it takes."""
    if len(terms) == 1:
        return terms[0]
    acc = scalar = None
    for c, b in terms:
        if b is None:
            scalar = c if scalar is None else scalar + c
        else:
            term = _mul(b, c)
            acc = term if acc is None else acc + term
    if acc is None:
        return scalar, None
    return 1.0, acc if scalar is None else acc + scalar


def _times(terms, x):
    """The tangent times a constant x."""
    if not _full(x):
        return _scale(terms, x)
    c, b = _collapse(terms)
    return [(c, x if b is None else b * x)]


def _over(terms, x):
    """The tangent divided by a constant x."""
    if not _full(x):
        return [(c / x, b) for c, b in terms]
    c, b = _collapse(terms)
    return [(c, 1.0 / x if b is None else b / x)]


def _plus(t1, t2):
    """The sum of two tangents, adding coefficients of the same base (or of the scalar term)."""
    out = list(t1)
    for c, b in t2:
        for i, (c0, b0) in enumerate(out):
            if b0 is b:
                out[i] = (c0 + c, b0)
                break
        else:
            out.append((c, b))
    return out


def _combine(d1: dict, d2: dict) -> dict:
    if not d2:
        return d1
    if not d1:
        return d2
    out = dict(d1)
    for k, t in d2.items():
        out[k] = _plus(out[k], t) if k in out else t
    return out


def _neg(d: dict) -> dict:
    return {k: _scale(t, -1.0) for k, t in d.items()}


class Dual:
    """A value with sparse tangents: ``tangents[key]`` is ∂value/∂(seed ``key``) as a list of
    (coefficient, base) terms.

    Supports the arithmetic that optimizer rules use: + − × ÷, ``**``, sqrt, tanh, exp, and
    :func:`ema`. Operands may be Duals, tensors, arrays or numbers; anything that is not a Dual is a
    constant (this is where the paper's *detach* happens: old weights, gradients and state carry no
    tangent).
    """

    __slots__ = ("value", "tangents")
    __array_ufunc__ = None  # NumPy arrays defer to Dual's operators instead of making object arrays

    def __init__(self, value, tangents: dict | None = None):
        self.value = value
        self.tangents = tangents or {}

    @staticmethod
    def seed(value, key) -> "Dual":
        """An independent variable: ∂value/∂value = 1 (elementwise, for a vector of values)."""
        return Dual(value, {key: [(1.0, None)]})

    def __add__(self, other):
        if isinstance(other, Dual):
            return Dual(self.value + other.value, _combine(self.tangents, other.tangents))
        return Dual(self.value + other, self.tangents)

    __radd__ = __add__

    def __sub__(self, other):
        if isinstance(other, Dual):
            return Dual(self.value - other.value, _combine(self.tangents, _neg(other.tangents)))
        return Dual(self.value - other, self.tangents)

    def __rsub__(self, other):
        return Dual(other - self.value, _neg(self.tangents))

    def __mul__(self, other):
        a = self.value
        if not isinstance(other, Dual):
            return Dual(a * other, {k: _times(t, other) for k, t in self.tangents.items()})
        b = other.value
        return Dual(a * b, _combine({k: _times(t, b) for k, t in self.tangents.items()},
                                    {k: _times(t, a) for k, t in other.tangents.items()}))

    __rmul__ = __mul__

    def __truediv__(self, other):
        return _div(self, other)

    def __rtruediv__(self, other):
        return _div(other, self)

    def __pow__(self, exponent):
        if isinstance(exponent, Dual):
            raise NotImplementedError("Dual ** Dual is not needed by any update rule")
        a = self.value
        if isinstance(exponent, numbers.Number):
            if exponent == 0.5:
                return self.sqrt()
            if exponent == 0:
                return Dual(a ** 0)
            dy = _mul(a if exponent == 2 else a ** (exponent - 1), float(exponent))
        else:  # a tensor exponent, e.g. the step count t in β^t
            dy = exponent * a ** (exponent - 1)
        return Dual(a ** exponent, {k: _times(t, dy) for k, t in self.tangents.items()})

    def __rpow__(self, base):
        y = base ** self.value  # constant base: d/dx b^x = b^x ln b
        log_b = torch.log(torch.as_tensor(base, dtype=y.dtype, device=y.device)) if isinstance(y, torch.Tensor) \
            else np.log(base)
        dy = y * log_b
        return Dual(y, {k: _times(t, dy) for k, t in self.tangents.items()})

    def __neg__(self):
        return Dual(-self.value, _neg(self.tangents))

    def sqrt(self):
        y = sqrt(self.value)
        return Dual(y, {k: _scale(_over(t, y), 0.5) for k, t in self.tangents.items()})

    def tanh(self):
        y = tanh(self.value)
        dy = 1.0 - y * y
        return Dual(y, {k: _times(t, dy) for k, t in self.tangents.items()})

    def exp(self):
        y = exp(self.value)
        return Dual(y, {k: _times(t, y) for k, t in self.tangents.items()})

    def tangent(self, key):
        """(coefficient, base) of ∂value/∂(seed key), formed into one term (base None: a scalar),
        or None if the value does not depend on it."""
        t = self.tangents.get(key)
        return None if t is None else _collapse(t)

    def __repr__(self):
        return f"Dual({self.value!r}, d/d{sorted(self.tangents)})"


def _div(num, den):
    if not isinstance(den, Dual):
        return Dual(num.value / den, {k: _over(t, den) for k, t in num.tangents.items()})
    a, b = num.value if isinstance(num, Dual) else num, den.value
    q = a / b
    tangents = {k: _over(t, b) for k, t in num.tangents.items()} if isinstance(num, Dual) else {}
    # d(a/b) = −(a/b)·db/b = −r·db with r = q/b: one full-size pass for r, shared by every term
    if _full(q):
        r = q / b
        back = {k: [(_mul(c, -1.0), r if base is None else base * r) for c, base in t]
                for k, t in den.tangents.items()}
    else:
        mr = -(q / b)
        back = {k: _times(t, mr) for k, t in den.tangents.items()}
    return Dual(q, _combine(tangents, back))


def scaled(scale, direction) -> dict:
    """The tangents of scale × direction (a scalar times a vector) without forming the product:
    the engine adds the step to the weights as one ``add_(direction, alpha=scale)``."""
    out = {}
    if isinstance(scale, Dual):
        d = value_of(direction)
        out = {k: _times(t, d) for k, t in scale.tangents.items()}
    if isinstance(direction, Dual):
        s = value_of(scale)
        out = _combine(out, {k: _times(t, s) for k, t in direction.tangents.items()})
    return out


def value_of(x):
    """The value of a Dual, or x itself."""
    return x.value if isinstance(x, Dual) else x


FUSED_MIN = 4096  # vectors at least this long (a model's parameters) use fused torch ops


def ema(old, new, beta, square: bool = False):
    """β·old + (1 − β)·x with x = new (or new² with ``square``); its tangent in β is (old − x)·dβ.

    On a model-sized tensor the difference d = old − x is formed once (``addcmul`` for new²) and
    serves both the value, old − (1 − β)·d, and the tangent: two passes over the vector. The few
    numbers of the levels above use the plain formula, which NumPy (the CPU step's few-number
    part) rounds identically."""
    b = beta.value if isinstance(beta, Dual) else beta
    if isinstance(old, torch.Tensor) and old.shape[-1] >= FUSED_MIN:
        if not isinstance(beta, Dual):  # a fixed β: no tangent, so the plain lerp
            return torch.lerp(new * new if square else new, old, b)
        diff = torch.addcmul(old, new, new, value=-1.0) if square else old - new
        value = torch.addcmul(old, diff, b - 1.0) if isinstance(b, torch.Tensor) else torch.add(old, diff, alpha=b - 1.0)
    else:
        x = new * new if square else new
        value = b * old + (1.0 - b) * x
        if not isinstance(beta, Dual):
            return value
        diff = old - x
    return Dual(value, {k: _times(t, diff) for k, t in beta.tangents.items()})
