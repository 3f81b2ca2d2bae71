"""The exception raised when a value in a hyperoptimizer stops being finite."""


class NonFiniteError(FloatingPointError):
    """A gradient, hypergradient or hyperparameter became NaN or infinite.

    Detected on the device without a host sync, and raised where values are read anyway
    (``check_finite()``, a :class:`~hypernb.optim.Recorder` read, or every ``check_every`` steps).
    ``level`` is 0 for the optimizer that trains the model, 1 for its hyperoptimizer, and so on.
    """

    def __init__(self, level: int, optimizer: str, name: str, step: int, what: str):
        self.level, self.optimizer, self.name, self.step, self.what = level, optimizer, name, step, what
        super().__init__(
            f"non-finite {what} '{name}' at level {level} ({optimizer}), first at step {step}. "
            "Lower the hyper-step size κ of the level above, or the initial value, "
            "or keep α positive with sign_safe=True; a NaN gradient usually means the model diverged."
        )
