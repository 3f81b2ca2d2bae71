"""Forward-mode automatic differentiation for optimizer update rules.

Why this exists: a hyperoptimizer needs, at every step, the derivative of the new weights with
respect to each of the few hyperparameters that produced them (the tangents ∂w_{t+1}/∂h). The next
step's gradient turns each tangent into a hypergradient with one dot product (paper §3:
∂f(w_{t+1})/∂h = ∇f(w_{t+1}) · ∂w_{t+1}/∂h). The rules are written once, as ordinary arithmetic;
running them on :class:`Dual` numbers yields the tangents automatically, so no optimizer needs a
hand-derived hypergradient.

Why not ``torch.func.jvp``: it propagates dense tangents and emits copies, costing several times
the update itself. Here a tangent is a lazy linear combination Σ cᵢ·Bᵢ of tensors Bᵢ with scalar
coefficients cᵢ, kept only for the hyperparameters a value depends on. A coefficient is a Python
number times an optional 0-d tensor, so constants fold away while tracing and scalar factors cost
one 0-d op; a full-size op happens only when a tangent meets a full-size factor. Traced once (see
``engine``), Adam with three tangents costs about twice Adam's own arithmetic.
"""
from __future__ import annotations

import numbers

import torch


# -- coefficients: (k, T) means the Python number k times the 0-d tensor T (T None means 1) ---------
def _coef(x):
    return (float(x), None) if isinstance(x, numbers.Number) else (1.0, x)


def _cmul(a, b):
    (ka, ta), (kb, tb) = a, b
    t = ta if tb is None else tb if ta is None else ta * tb
    return (ka * kb, t)


def _cadd(a, b):
    (ka, ta), (kb, tb) = a, b
    if ta is None and tb is None:
        return (ka + kb, None)
    return (1.0, _ctensor(a) + _ctensor(b))


def _cdiv(c, x):
    """Coefficient divided by a 0-d tensor x: one op (not a reciprocal and a multiply)."""
    k, t = c
    return (k, 1.0 / x if t is None else t / x)


def _ctensor(c):
    k, t = c
    if t is None:
        return k
    return t if k == 1.0 else t * k


def _full(x) -> bool:
    return isinstance(x, torch.Tensor) and x.dim() > 0


class Tangent:
    """Σ coefᵢ · baseᵢ, with base a full-size tensor or ``None`` (the scalar 1)."""

    __slots__ = ("terms",)

    def __init__(self, terms):
        self.terms = terms

    def scale(self, s) -> "Tangent":
        c = _coef(s)
        return Tangent([(_cmul(k, c), b) for k, b in self.terms])

    def plus(self, other: "Tangent") -> "Tangent":
        terms = list(self.terms)
        for c, b in other.terms:
            for i, (c0, b0) in enumerate(terms):
                if b0 is b:  # same base (or both scalar): add the coefficients
                    terms[i] = (_cadd(c0, c), b0)
                    break
            else:
                terms.append((c, b))
        return Tangent(terms)

    def _scalar(self):
        """The coefficient of a tangent that has no full-size term."""
        total = self.terms[0][0]
        for c, _ in self.terms[1:]:
            total = _cadd(total, c)
        return total

    def materialize(self):
        """Σ coefᵢ·baseᵢ as one tensor (one full-size op per term)."""
        acc, scalar = None, None
        for (k, t), b in self.terms:
            if b is None:
                scalar = (k, t) if scalar is None else _cadd(scalar, (k, t))
            elif acc is None:
                acc = b if (k == 1.0 and t is None) else b * _ctensor((k, t))
            elif t is None:
                acc = torch.add(acc, b, alpha=k)
            else:
                acc = torch.addcmul(acc, b, t, value=k)
        if acc is None:
            return _ctensor(scalar)
        return acc if scalar is None else acc + _ctensor(scalar)

    def split(self):
        """(coefficient, base): the tangent as one scalar times one tensor, computing as little as possible."""
        if len(self.terms) == 1 and self.terms[0][1] is not None:
            return self.terms[0]
        if all(b is None for _, b in self.terms):
            return self._scalar(), None
        return (1.0, None), self.materialize()

    def times(self, x) -> "Tangent":
        """This tangent multiplied by the constant value ``x``."""
        if not _full(x):
            return self.scale(x)
        c, base = self.split()
        return Tangent([(c, x if base is None else base * x)])

    def over(self, x) -> "Tangent":
        """This tangent divided by the constant value ``x``."""
        if not _full(x):
            if isinstance(x, numbers.Number):
                return self.scale(1.0 / x)
            return Tangent([(_cdiv(c, x), b) for c, b in self.terms])
        c, base = self.split()
        return Tangent([(c, 1.0 / x if base is None else base / x)])


def _value(x):
    return x.value if isinstance(x, Dual) else x


def _tangents(x) -> dict:
    return x.tangents if isinstance(x, Dual) else {}


def _combine(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, t in b.items():
        out[k] = out[k].plus(t) if k in out else t
    return out


def _map(tangents: dict, fn) -> dict:
    return {k: fn(t) for k, t in tangents.items()}


class Dual:
    """A value with sparse tangents: ``tangents[key]`` is ∂value/∂(seed ``key``).

    Supports the arithmetic that optimizer rules use: + − × ÷, ``**``, sqrt, tanh, exp, and
    :func:`ema`. Operands may be Duals, tensors or Python numbers; anything that is not a Dual is a
    constant (this is where the paper's *detach* happens: old weights, gradients and state carry no
    tangent).
    """

    __slots__ = ("value", "tangents")

    def __init__(self, value, tangents: dict | None = None):
        self.value = value
        self.tangents = tangents or {}

    @staticmethod
    def seed(value, key) -> "Dual":
        """An independent variable: ∂value/∂value = 1 (elementwise, for a vector of values)."""
        return Dual(value, {key: Tangent([((1.0, None), None)])})

    def __add__(self, other):
        return Dual(self.value + _value(other), _combine(self.tangents, _tangents(other)))

    __radd__ = __add__

    def __sub__(self, other):
        return Dual(self.value - _value(other), _combine(self.tangents, _map(_tangents(other), lambda t: t.scale(-1.0))))

    def __rsub__(self, other):
        return Dual(_value(other) - self.value, _combine(_tangents(other), _map(self.tangents, lambda t: t.scale(-1.0))))

    def __mul__(self, other):
        a, b = self.value, _value(other)
        return Dual(a * b, _combine(_map(self.tangents, lambda t: t.times(b)),
                                    _map(_tangents(other), lambda t: t.times(a))))

    __rmul__ = __mul__

    def __truediv__(self, other):
        return _div(self, other)

    def __rtruediv__(self, other):
        return _div(other, self)

    def __pow__(self, exponent):
        if isinstance(exponent, Dual):
            raise NotImplementedError("Dual ** Dual is not needed by any update rule")
        if isinstance(exponent, numbers.Number):
            if exponent == 0.5:
                return self.sqrt()
            if exponent == 0:
                return Dual(self.value ** 0)
            a = self.value
            dy = a if exponent == 2 else a ** (exponent - 1)
            return Dual(a ** exponent, _map(self.tangents, lambda t: t.times(dy).scale(float(exponent))))
        a = self.value  # a tensor exponent, e.g. the step count t in β^t
        return Dual(a ** exponent, _map(self.tangents, lambda t: t.times(exponent * a ** (exponent - 1))))

    def __rpow__(self, base):
        y = base ** self.value  # constant base: d/dx b^x = b^x ln b
        log_b = torch.log(torch.as_tensor(base, dtype=y.dtype, device=y.device))
        return Dual(y, _map(self.tangents, lambda t: t.times(y * log_b)))

    def __neg__(self):
        return Dual(-self.value, _map(self.tangents, lambda t: t.scale(-1.0)))

    def sqrt(self):
        y = self.value.sqrt()
        return Dual(y, _map(self.tangents, lambda t: t.over(y).scale(0.5)))

    def tanh(self):
        y = self.value.tanh()
        return Dual(y, _map(self.tangents, lambda t: t.times(1.0 - y * y)))

    def exp(self):
        y = self.value.exp()
        return Dual(y, _map(self.tangents, lambda t: t.times(y)))

    def detach(self):
        return self.value

    def tangent(self, key):
        """(coefficient, base) of ∂value/∂(seed key) with the coefficient as a tensor or number,
        or None if the value does not depend on it."""
        t = self.tangents.get(key)
        if t is None:
            return None
        c, base = t.split()
        return _ctensor(c), base

    def __repr__(self):
        return f"Dual({self.value!r}, d/d{sorted(self.tangents)})"


def _div(num, den):
    a, b = _value(num), _value(den)
    q = a / b
    tangents = _map(_tangents(num), lambda t: t.over(b))
    if isinstance(den, Dual):  # d(a/b) = −(a/b)·db/b
        tangents = _combine(tangents, _map(den.tangents, lambda t: t.times(q).over(b).scale(-1.0)))
    return Dual(q, tangents)


def ema(old, new, beta):
    """β·old + (1 − β)·new as one fused op (``torch.lerp``); its tangent in β is (old − new)·dβ."""
    if not isinstance(beta, Dual):
        return beta * old + (1.0 - beta) * new if isinstance(beta, numbers.Number) else torch.lerp(new, old, beta)
    value = torch.lerp(new, old, beta.value)
    diff = old - new
    return Dual(value, _map(beta.tangents, lambda t: t.times(diff)))
