"""Numbers from the paper (as far as they could be sourced) and from the COMP6258 report.

Sources, per shared/research/paper.md: the NeurIPS tables could not be retrieved, so the "paper"
MNIST column is the calibration of the paper's own code by Huang et al. (JH, 3 runs, MLP 128 tanh,
batch 256); the report's numbers are its committed logs (.out files).
"""

# test error % of the paper's official code (JH); (optimizer, hyperoptimizer) → (error %, κ, epochs)
PAPER_MNIST = {
    ("sgd", "none"): (8.96, None, 30),
    ("sgd", "sgd"): (4.90, 0.01, 30),
    ("adam", "none"): (4.63, None, 5),
    ("adam", "sgd"): (3.14, 1e-5, 5),
    ("rmsprop", "none"): (3.91, None, 5),
    ("rmsprop", "sgd"): (3.36, 1e-4, 5),
    ("adagrad", "none"): (7.38, None, 30),
    ("adagrad", "sgd"): (6.92, 0.01, 30),
}

# the report's MNIST MLP (ReLU, 30 epochs, one seed): test accuracy % from its .out logs
REPORT_MNIST_ACC = {
    ("sgd", "none"): 92.41, ("sgd", "sgd"): 93.45, ("sgd", "adam"): 93.29, ("sgd", "rmsprop"): 97.23,
    ("sgd", "adagrad"): 95.22,
    ("adagrad", "none"): 94.74, ("adagrad", "adagrad"): 93.65, ("adagrad", "adam"): 93.92,
    ("adagrad", "rmsprop"): 96.10, ("adagrad", "sgd"): 93.62,
    ("adam", "none"): 97.78, ("adam", "adam"): 9.80, ("adam", "sgd"): 98.16, ("adam", "rmsprop"): 97.37,
    ("adam", "adagrad"): 97.75,
    ("rmsprop", "none"): 97.76, ("rmsprop", "sgd"): 98.00, ("rmsprop", "rmsprop"): 98.20,
    ("rmsprop", "adam"): 97.36, ("rmsprop", "adagrad"): 97.83,
}

# the report's κ table (optimizer row, hyperoptimizer column), used where no calibration exists
REPORT_MNIST_KAPPA = {
    "adagrad": {"adagrad": 0.01, "adam": 0.001, "rmsprop": 0.01, "sgd": 0.01},
    "adam": {"adagrad": 1e-5, "adam": 1e-3, "rmsprop": 1e-5, "sgd": 1e-5},
    "rmsprop": {"adagrad": 1e-4, "adam": 1e-3, "rmsprop": 1e-4, "sgd": 1e-4},
    "sgd": {"adagrad": 0.01, "adam": 0.001, "rmsprop": 0.1, "sgd": 0.01},
}
MNIST_ALPHA = {"sgd": 0.01, "adagrad": 0.01, "rmsprop": 0.01, "adam": 0.001}

# ResNet-20 / CIFAR-10: the report's committed logs are κ = 0 runs (plain SGD with momentum),
# test accuracy % at 50 epochs, no augmentation; (alpha0, mu0) → accuracy
REPORT_CNN_FIXED = {
    (0.01, 0.09): 64.53, (0.01, 0.9): 81.48, (0.01, 0.99): 81.71,
    (0.1, 0.09): 81.43, (0.1, 0.9): 82.06, (0.1, 0.99): 80.70,
    (1.0, 0.09): 79.36, (1.0, 0.9): 79.32, (1.0, 0.99): 9.97,
}
# its summary CSV (uncommitted 200-epoch hyperoptimized runs)
REPORT_CNN_HYPER = {
    (0.01, 0.09): 70.90, (0.01, 0.9): 81.88, (0.01, 0.99): 82.45,
    (0.1, 0.09): 79.97, (0.1, 0.9): 83.73, (0.1, 0.99): 82.05,
    (1.0, 0.09): 80.68, (1.0, 0.9): 79.55, (1.0, 0.99): 21.66,
}
HE_RESNET20_ACC = 91.25  # He et al. (2016), with crop + flip augmentation

REPORT_RNN_LOSS = 3.12  # nats/char: the unigram plateau of its shuffled-character data

# the report's towers (MNIST ReLU MLP, batch 1024, 20 epochs, RMSProp levels, κ_ℓ = α0/(100(1+ℓ)))
REPORT_TOWERS_ACC = {  # alpha0 → {height: test acc %}; heights beyond the last listed equal it
    1.0: {0: 97.72, 1: 95.72, 2: 94.42, 3: 95.05, 4: 94.95, 5: 95.06, 6: 95.01, 7: 95.03},
    0.01: {0: 87.70, 1: 90.76, 2: 91.92, 3: 91.66, 4: 91.67},
    1e-4: {0: 19.98, 1: 44.84, 2: 50.99, 3: 51.01},
    1e-6: {0: 13.25, 1: 13.43, 2: 13.43},
}


def report_tower_acc(alpha0: float, height: int) -> float | None:
    table = REPORT_TOWERS_ACC.get(alpha0)
    if not table:
        return None
    return table[min(height, max(table))]
