"""Keep the trajectory of every hyperparameter without a host sync per step."""
from __future__ import annotations

import torch


class Recorder:
    """Snapshot ``opt.hyperparameters()`` every ``every`` steps into a device buffer.

    Attaches to the optimizer as a step post-hook, so the training loop does not change. Values
    stay on the device until :meth:`read`, which copies them once and also checks for NaN/inf
    (raising :class:`~hypernb.optim.NonFiniteError`).
    """

    def __init__(self, opt, every: int = 1, capacity: int = 256, attach: bool = True):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.opt, self.every = opt, every
        values = opt.hyperparameters()
        self.names = list(values)
        first = next(iter(values.values()))
        self._buf = torch.empty(max(capacity, 1), len(self.names), *first.shape, dtype=first.dtype,
                                device=first.device)
        self._n, self._count, self.steps = 0, 0, []
        self._handle = opt.register_step_post_hook(self._hook) if attach else None
        self.record(step=0)

    def _hook(self, opt, args, kwargs) -> None:
        self._count += 1
        if self._count % self.every == 0:
            self.record()

    def record(self, step: int | None = None) -> None:
        """Store the current values (called by the hook; call it yourself with attach=False)."""
        if self._n == self._buf.shape[0]:
            self._buf = torch.cat([self._buf, torch.empty_like(self._buf)])
        self._buf[self._n].copy_(torch.stack(list(self.opt.hyperparameters().values())))
        self._n += 1
        self.steps.append(self._count if step is None else step)

    def read(self, check: bool = True, member: int | None = None) -> dict[str, list[float]]:
        """The trajectory as ``{"step": [...], name: [...]}`` (one device→host copy); with
        several configurations (``batch=K``), that of configuration ``member``."""
        if check:
            self.opt.check_finite()
        data = self._buf[: self._n].double().cpu()
        if data.dim() == 3:
            if member is None:
                raise ValueError("this optimizer trains several configurations: read(member=k)")
            data = data[:, :, member]
        out = {"step": list(self.steps)}
        out.update({name: data[:, j].tolist() for j, name in enumerate(self.names)})
        return out

    def state_dict(self) -> dict:
        return {"steps": list(self.steps), "values": self._buf[: self._n].clone(), "count": self._count}

    def load_state_dict(self, state: dict) -> None:
        values = state["values"]
        self._buf = torch.empty(max(values.shape[0] * 2, 1), *values.shape[1:], dtype=self._buf.dtype,
                                device=self._buf.device)
        self._buf[: values.shape[0]].copy_(values)
        self._n, self.steps, self._count = values.shape[0], list(state["steps"]), state["count"]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
