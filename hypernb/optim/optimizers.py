"""The public optimizers. Each is a ``torch.optim.Optimizer``; built without parameters it is an
*unbound* hyperoptimizer for ``hyper=``, whose ``alpha`` is κ of the level below.

Common keyword options: ``sign_safe=True`` stores log α so the step size stays positive (the
COMP6258 report saw α cross zero); ``mode`` is ``"traced"`` (default), ``"eager"`` or
``"compiled"`` (inductor-fused step); ``check_every=k`` checks for NaN/inf every k steps;
``capturable`` (default: on CUDA) keeps every buffer at a fixed address, as a CUDA graph needs;
``cuda_graph`` (default: on CUDA) captures the optimizer's own step after two warm-up steps and
replays it, one launch instead of ~100 small kernels; ``host_scalars`` (default: on a CPU) runs the
step's scalar arithmetic as Python numbers rounded like float32 tensors (``False``: 0-d tensors,
bit-identical to ``mode="eager"``).
"""
from __future__ import annotations

from .base import HyperOptimizer
from .rules import AdaGradRule, AdamRule, RMSPropRule, SGDPerParamRule, SGDRule


class SGD(HyperOptimizer):
    r"""SGD with optional momentum; learns α and (when μ₀ ≠ 0) μ.

    .. math:: b_t = μ b_{t-1} + g_t,\quad w_{t+1} = w_t - α b_t

    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> SGD([w], alpha=0.1, hyper=SGD(alpha=1e-3))
    SGD(α=0.1) / SGD(α=0.001)
    """

    def __init__(self, params=None, alpha: float = 0.01, mu: float = 0.0, hyper=None, *,
                 sign_safe: bool = False, **options):
        self._repr_hypers = ("alpha", "mu") if mu != 0.0 else ("alpha",)
        super().__init__(params, SGDRule(momentum=mu != 0.0, sign_safe=sign_safe),
                         {"alpha": alpha, "mu": mu}, hyper, **options)


class SGDPerParam(HyperOptimizer):
    r"""SGD with one step size per parameter tensor (or, as a hyperoptimizer, one κ per
    hyperparameter of the level below). ``alpha`` is a number, a list, or a dict by name.

    .. math:: w^{(s)}_{t+1} = w^{(s)}_t - α_s g^{(s)}_t
    """

    def __init__(self, params=None, alpha=0.01, hyper=None, *, sign_safe: bool = False, **options):
        if isinstance(alpha, tuple):
            alpha = list(alpha)
        super().__init__(params, SGDPerParamRule(sign_safe=sign_safe), {"alpha": alpha}, hyper, **options)


class AdaGrad(HyperOptimizer):
    r"""AdaGrad (G₀ = 0.1, ε = 1e-10 inside the square root, as gdtuo); learns α.

    .. math:: G_t = G_{t-1} + g_t^2,\quad w_{t+1} = w_t - α g_t / \sqrt{G_t + ε}
    """

    def __init__(self, params=None, alpha: float = 0.01, hyper=None, *, eps: float = 1e-10,
                 initial_accumulator: float = 0.1, sign_safe: bool = False, **options):
        super().__init__(params, AdaGradRule(eps, initial_accumulator, sign_safe), {"alpha": alpha}, hyper, **options)


class RMSProp(HyperOptimizer):
    r"""RMSProp (α stored as √α, γ squashed into (0, 1), ε = 1e-8 inside the square root); learns α, γ.

    .. math:: s_t = γ s_{t-1} + (1-γ) g_t^2,\quad w_{t+1} = w_t - α g_t / \sqrt{s_t + ε}
    """

    _repr_hypers = ("alpha", "gamma")

    def __init__(self, params=None, alpha: float = 0.01, gamma: float = 0.99, hyper=None, *,
                 eps: float = 1e-8, sign_safe: bool = False, **options):
        super().__init__(params, RMSPropRule(True, eps, sign_safe), {"alpha": alpha, "gamma": gamma}, hyper, **options)


class RMSPropAlpha(HyperOptimizer):
    """RMSProp that learns only α (the paper's RMSProp_α); γ stays fixed."""

    _repr_hypers = ("alpha", "gamma")

    def __init__(self, params=None, alpha: float = 0.01, gamma: float = 0.99, hyper=None, *,
                 eps: float = 1e-8, sign_safe: bool = False, **options):
        super().__init__(params, RMSPropRule(False, eps, sign_safe), {"alpha": alpha, "gamma": gamma}, hyper, **options)


class Adam(HyperOptimizer):
    r"""Adam (β squashed into (0, 1), v₀ = ε, ε = 10^log_eps fixed); learns α, β1, β2.

    .. math:: w_{t+1} = w_t - α \frac{\hat m_t}{\sqrt{\hat v_t} + ε}
    """

    _repr_hypers = ("alpha", "beta1", "beta2")

    def __init__(self, params=None, alpha: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 log_eps: float = -8.0, hyper=None, *, sign_safe: bool = False, **options):
        _check_log_eps(log_eps)
        super().__init__(params, AdamRule(True, log_eps, sign_safe),
                         {"alpha": alpha, "beta1": beta1, "beta2": beta2}, hyper, **options)


class AdamUnclamped(HyperOptimizer):
    """Adam with β1, β2 stored and used *raw*: the COMP6258 report's modification of the paper's
    package (it removed the tanh squashing). Kept only to demonstrate its failure: a hyperoptimizer
    can push β2 past 1, after which v < 0 and the run turns to NaN. Do not use it to train."""

    _repr_hypers = ("alpha", "beta1", "beta2")

    def __init__(self, params=None, alpha: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 log_eps: float = -8.0, hyper=None, *, sign_safe: bool = False, **options):
        _check_log_eps(log_eps)
        super().__init__(params, AdamRule(True, log_eps, sign_safe, squash_betas=False),
                         {"alpha": alpha, "beta1": beta1, "beta2": beta2}, hyper, **options)


class AdamBaydin(HyperOptimizer):
    """Adam that learns only α (the paper's Adam_α, after Baydin et al.); β1, β2 stay fixed."""

    _repr_hypers = ("alpha", "beta1", "beta2")

    def __init__(self, params=None, alpha: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 log_eps: float = -8.0, hyper=None, *, sign_safe: bool = False, **options):
        _check_log_eps(log_eps)
        super().__init__(params, AdamRule(False, log_eps, sign_safe),
                         {"alpha": alpha, "beta1": beta1, "beta2": beta2}, hyper, **options)


def _check_log_eps(log_eps) -> None:
    if not isinstance(log_eps, (int, float)) or not -400 < log_eps < 0:
        raise ValueError(f"log_eps must be a number in (-400, 0) (ε = 10**log_eps), got {log_eps!r}")
