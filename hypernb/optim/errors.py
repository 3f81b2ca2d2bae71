"""The exception raised when a value in a hyperoptimizer stops being finite."""


class NonFiniteError(FloatingPointError):
    """A gradient, hypergradient or hyperparameter became NaN or infinite.

    Detected on the device without a host sync, and raised where values are read anyway
    (``check_finite()``, a :class:`~hypernb.optim.Recorder` read, or every ``check_every`` steps).
    ``level`` is 0 for the optimizer that trains the model, 1 for its hyperoptimizer, and so on;
    ``member`` is the configuration's index when several are trained together (``batch=K``).
    """

    def __init__(self, level: int, optimizer: str, name: str, step: int, what: str, member: int | None = None):
        self.level, self.optimizer, self.name, self.step, self.what = level, optimizer, name, step, what
        self.member = member
        who = "" if member is None else f" of configuration {member}"
        subject = what if name == what else f"{what} '{name}'"  # the model's gradient has no other name
        super().__init__(
            f"non-finite {subject}{who} at level {level} ({optimizer}), first at step {step}. "
            "Usually a step size is too large: lower the initial α0 if the training loss grew from the first steps, "
            "or the hyper-step size κ of the level above if a learned value ran away first; sign_safe=True keeps "
            "α positive."
        )

    def __reduce__(self):  # picklable (sweep workers pass it between processes)
        return (NonFiniteError, (self.level, self.optimizer, self.name, self.step, self.what, self.member))
