"""Hyperoptimizers as drop-in ``torch.optim`` optimizers, stackable into towers of any height.

>>> from hypernb import optim
>>> import torch
>>> model = torch.nn.Linear(4, 2)
>>> opt = optim.Adam(model.parameters(), alpha=1e-3, hyper=optim.SGD(alpha=1e-5))
>>> opt
Adam(α=0.001, β1=0.9, β2=0.999) / SGD(α=1e-05)
"""
from .base import HyperOptimizer
from .errors import NonFiniteError
from .optimizers import SGD, AdaGrad, Adam, AdamBaydin, AdamUnclamped, AdamW, RMSProp, RMSPropAlpha, SGDPerParam
from .recorder import Recorder
from .rules import IDENTITY, LOG, SQRT, SQUASH, Hyper, Param, Rule, decayed
from .tower import FAMILIES, KAPPA_RULES, kappa_schedule, parse_tower, tower

__all__ = [
    "HyperOptimizer", "NonFiniteError", "SGD", "AdaGrad", "Adam", "AdamW", "AdamBaydin", "AdamUnclamped", "RMSProp",
    "RMSPropAlpha", "SGDPerParam", "Recorder", "tower", "parse_tower", "kappa_schedule",
    "FAMILIES", "KAPPA_RULES",
    # writing your own rule (README: "Your own update rule")
    "Rule", "Hyper", "Param", "IDENTITY", "LOG", "SQRT", "SQUASH", "decayed",
]
