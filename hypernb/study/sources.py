"""Every number the study cites, once, with its exact source.

Nothing here is labelled "paper" unless it is the paper. What each source is (see
``shared/research/paper.md`` §0 of the project's research notes):

* **NeurIPS 2022** — Chandra, Xie, Ragan-Kelley, Meijer, *Gradient Descent: The Ultimate Optimizer*.
  Its numeric tables could not be retrieved; its claims are cited from its text as reproduced by
  secondary reviews, and no number of it appears here.
* **arXiv v1 (2019)** — the first preprint (different setting: MNIST, batch 300, one epoch).
* **Huang et al.** — *Gradient clipping for automatic hyperparameter tuning*: a re-run of the
  paper's official code (MLP 128 tanh, batch 256, mean of 3 trials).
* **COMP6258 report** — the student reproduction (ben-sanati/COMP6258): its committed ``.out``
  logs, its summary CSVs (other, uncommitted runs) and its PDF.
* **He et al. 2016** — *Deep Residual Learning*, ResNet-20 on CIFAR-10 with crop + flip.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    tag: str  # how tables name it
    cite: str  # the exact place


NEURIPS = Source("NeurIPS 2022", "Chandra et al., NeurIPS 2022 (text and figures; numbers not retrieved)")
ARXIV_V1 = Source("arXiv v1 (2019)", "Chandra et al., arXiv:1909.13371v1, Tables 1–2 (MNIST, batch 300, 1 epoch)")
HUANG = Source("Huang et al. (official code)", "Huang et al., Gradient clipping for automatic hyperparameter "
                                               "tuning, §4.1 (the paper's code, MLP 128 tanh, batch 256, 3 trials)")
REPORT_LOGS = Source("report .out logs", "COMP6258 report, committed MAKE/OUT/**/*.out (single seed)")
REPORT_CSV = Source("report CSV", "COMP6258 report, MAKE/OUT/*_summary.csv (uncommitted runs, single seed)")
REPORT_PDF = Source("report PDF", "COMP6258 report, COMP6258__Reproducibility_Challenge.pdf")
REPORT_SCRIPTS = Source("report scripts", "COMP6258 report, MAKE/*_init.sh (the settings its runs were launched with)")
HE2016 = Source("He et al. 2016", "He et al., Deep Residual Learning, CVPR 2016, Table 6 (ResNet-20, crop + flip)")


@dataclass(frozen=True)
class Cited:
    """A number from a source, with the setting it was measured in."""

    value: float
    unit: str
    source: Source
    setting: str = ""

    def __str__(self) -> str:
        return f"{self.value:g}{self.unit}"

    def cite(self) -> str:
        return f"{self}{' (' + self.setting + ')' if self.setting else ''} — {self.source.tag}"


# -- MNIST --------------------------------------------------------------------------------------------
def _huang(error, epochs, kappa=None):
    setting = f"{epochs} epochs" + (f", κ = {kappa:g}" if kappa is not None else "")
    return Cited(error, " %", HUANG, setting)


# test error %: (optimizer, hyperoptimizer) → Cited; "none" = the optimizer alone
HUANG_MNIST_ERROR = {
    ("sgd", "none"): _huang(8.96, 30), ("sgd", "sgd"): _huang(4.90, 30, 0.01),
    ("adam", "none"): _huang(4.63, 5), ("adam", "sgd"): _huang(3.14, 5, 1e-5),
    ("rmsprop", "none"): _huang(3.91, 5), ("rmsprop", "sgd"): _huang(3.36, 5, 1e-4),
    ("adagrad", "none"): _huang(7.38, 30), ("adagrad", "sgd"): _huang(6.92, 30, 0.01),
}
HUANG_KAPPA = {k[0]: float(v.setting.split("κ = ")[1]) for k, v in HUANG_MNIST_ERROR.items() if "κ" in v.setting}
# the best of the seven κ Huang et al. ran for Adam/SGD (10⁻⁵ … 10⁻²); the table above pairs Adam with 10⁻⁵
HUANG_ADAM_SGD_BEST = _huang(3.05, 5, 1e-4)

# the report's MNIST grid: ReLU MLP, 30 epochs, one seed; test accuracy % (its .out logs)
_REPORT_ACC = {
    ("sgd", "none"): 92.41, ("sgd", "sgd"): 93.45, ("sgd", "adam"): 93.29, ("sgd", "rmsprop"): 97.23,
    ("sgd", "adagrad"): 95.22,
    ("adagrad", "none"): 94.74, ("adagrad", "adagrad"): 93.65, ("adagrad", "adam"): 93.92,
    ("adagrad", "rmsprop"): 96.10, ("adagrad", "sgd"): 93.62,
    ("adam", "none"): 97.78, ("adam", "adam"): 9.80, ("adam", "sgd"): 98.16, ("adam", "rmsprop"): 97.37,
    ("adam", "adagrad"): 97.75,
    ("rmsprop", "none"): 97.76, ("rmsprop", "sgd"): 98.00, ("rmsprop", "rmsprop"): 98.20,
    ("rmsprop", "adam"): 97.36, ("rmsprop", "adagrad"): 97.83,
}
REPORT_MNIST_ERROR = {k: Cited(round(100 - v, 2), " %", REPORT_LOGS, "ReLU MLP, 30 epochs, 1 seed")
                      for k, v in _REPORT_ACC.items()}
# the report's κ table (optimizer → hyperoptimizer → κ), its MAKE/NN_init.sh
REPORT_MNIST_KAPPA = {
    "adagrad": {"adagrad": 0.01, "adam": 0.001, "rmsprop": 0.01, "sgd": 0.01},
    "adam": {"adagrad": 1e-5, "adam": 1e-3, "rmsprop": 1e-5, "sgd": 1e-5},
    "rmsprop": {"adagrad": 1e-4, "adam": 1e-3, "rmsprop": 1e-4, "sgd": 1e-4},
    "sgd": {"adagrad": 0.01, "adam": 0.001, "rmsprop": 0.1, "sgd": 0.01},
}
# the paper's package defaults (α0 of each optimizer)
DEFAULT_ALPHA = {"sgd": 0.01, "adagrad": 0.01, "rmsprop": 0.01, "adam": 0.001}

# arXiv v1 Tables 1–2 (test accuracy %, MNIST, batch 300, one epoch)
V1_MNIST_ACC = {
    "SGD(0.01)": Cited(77.48, " %", ARXIV_V1), "SGD/SGD": Cited(88.35, " %", ARXIV_V1),
    "SGD(0.145), learned α": Cited(88.81, " %", ARXIV_V1),
    "Adam": Cited(91.09, " %", ARXIV_V1), "Adam/Adam": Cited(94.35, " %", ARXIV_V1),
    "Adam(0.013, 0.892, 0.998), learned": Cited(94.75, " %", ARXIV_V1),
}

# -- ResNet-20 / CIFAR-10 ----------------------------------------------------------------------------
HE_RESNET20_ACC = Cited(91.25, " %", HE2016, "full CIFAR-10, crop + flip")
_CNN_LOGS = {(0.01, 0.09): 64.53, (0.01, 0.9): 81.48, (0.01, 0.99): 81.71, (0.1, 0.09): 81.43, (0.1, 0.9): 82.06,
             (0.1, 0.99): 80.70, (1.0, 0.09): 79.36, (1.0, 0.9): 79.32, (1.0, 0.99): 9.97}
# its committed logs: κ = 0 (plain SGD with momentum), 50 epochs, no augmentation
REPORT_CNN_KAPPA0_ACC = {k: Cited(v, " %", REPORT_LOGS, "full CIFAR-10, κ = 0, 50 epochs, no augmentation")
                         for k, v in _CNN_LOGS.items()}
_CNN_CSV = {(0.01, 0.09): 70.90, (0.01, 0.9): 81.88, (0.01, 0.99): 82.45, (0.1, 0.09): 79.97, (0.1, 0.9): 83.73,
            (0.1, 0.99): 82.05, (1.0, 0.09): 80.68, (1.0, 0.9): 79.55, (1.0, 0.99): 21.66}
REPORT_CNN_HYPER_ACC = {k: Cited(v, " %", REPORT_CSV, "full CIFAR-10, hyperoptimized, 200 epochs, no augmentation"
                              + ("; which of μ0 = 0.09 and 0.9 this cell is was read from the CSV's file order only"
                                 if k in ((1.0, 0.09), (1.0, 0.9)) else ""))
                        for k, v in _CNN_CSV.items()}

# -- char-RNN ----------------------------------------------------------------------------------------
REPORT_RNN_LOSS = Cited(3.12, " nats/char", REPORT_LOGS, "War and Peace, shuffled characters")
REPORT_RNN_ALPHA = Cited(2e-3, "", REPORT_SCRIPTS, "its char-LSTM baseline Adam's α, MAKE/RNN_init.sh")

# -- towers (the report's rule: MNIST ReLU MLP, batch 1024, 20 epochs, RMSProp levels) ----------------
_TOWERS = {1.0: {0: 97.72, 1: 95.72, 2: 94.42, 3: 95.05, 4: 94.95, 5: 95.06, 6: 95.01, 7: 95.03},
           0.01: {0: 87.70, 1: 90.76, 2: 91.92, 3: 91.66, 4: 91.67},
           1e-4: {0: 19.98, 1: 44.84, 2: 50.99, 3: 51.01},
           1e-6: {0: 13.25, 1: 13.43, 2: 13.43}}


def report_tower_acc(alpha0: float, height: int) -> Cited | None:
    """The report's test accuracy for (α0, height); heights beyond its last listed one equal it."""
    table = _TOWERS.get(alpha0)
    if not table:
        return None
    return Cited(table[min(height, max(table))], " %", REPORT_LOGS, "κ_ℓ = α0/(100(1+ℓ)), 1 seed")
