"""Keep the trajectory of every hyperparameter without a host sync per step."""
from __future__ import annotations

import warnings

import torch

from .base import _positive_int


class Recorder:
    """Snapshot ``opt.hyperparameters()`` every ``every`` steps into a device buffer.

    Attaches to the optimizer as a step post-hook, so the training loop does not change. Values
    stay on the device until :meth:`read`, which copies them once and also checks for NaN/inf
    (raising :class:`~hypernb.optim.NonFiniteError`). Steps are labelled with the optimizer's own
    step count (a recorder attached after 5 steps starts at 5); a step call without any gradient,
    which does nothing, records nothing. If the optimizer's hyperparameters change (a parameter
    group added), the recorder stops with a warning and keeps what it recorded.
    """

    def __init__(self, opt, every: int = 1, capacity: int = 256, attach: bool = True):
        _positive_int(every, "every")
        self.opt, self.every = opt, every
        values = opt.hyperparameters()
        self.names = list(values)
        first = next(iter(values.values()))
        self._buf = torch.empty(max(capacity, 1), len(self.names), *first.shape, dtype=first.dtype,
                                device=first.device)
        self._n, self._count, self.steps = 0, self._steps_taken() or 0, []
        self._handle = opt.register_step_post_hook(self._hook) if attach else None
        self.record()

    def _steps_taken(self) -> int | None:
        """The optimizer's own step count, kept on the host (no sync); None for an optimizer without
        one (a peer's), whose every step call then counts."""
        engine = getattr(self.opt, "_engine", None)
        return None if engine is None else engine.count

    def _hook(self, opt, args, kwargs) -> None:
        count = self._steps_taken()
        count = self._count + 1 if count is None else count
        if count != self._count:  # (a step without any gradient did nothing)
            self._count = count
            if count % self.every == 0:
                self.record()

    def record(self, step: int | None = None) -> None:
        """Store the current values (called by the hook; call it yourself with attach=False)."""
        values = self.opt.hyperparameters()
        if list(values) != self.names:
            warnings.warn(f"Recorder: the optimizer's hyperparameters changed at step {self._count} (now "
                          f"{list(values)}, e.g. after add_param_group); this recorder stops here and keeps what it "
                          "recorded: attach a new Recorder for what follows", stacklevel=2)
            self.close()
            return
        if self._n == self._buf.shape[0]:
            self._buf = torch.cat([self._buf, torch.empty_like(self._buf)])
        self._buf[self._n].copy_(torch.stack(list(values.values())))
        self._n += 1
        self.steps.append(self._count if step is None else step)

    def read(self, check: bool = True, member: int | None = None) -> dict[str, list[float]]:
        """The trajectory as ``{"step": [...], name: [...]}`` (one device→host copy); with
        several configurations (``batch=K``), that of configuration ``member``."""
        batch = getattr(self.opt, "_batch", None)
        if batch is None and member is not None:
            raise ValueError("read(member=…) is for an optimizer with batch=K; this one trains one configuration")
        if batch is not None and (member is None or not isinstance(member, int) or not 0 <= member < batch):
            raise ValueError(f"this optimizer trains {batch} configurations: read(member=k) with k in 0…{batch - 1}, "
                             f"got {member!r}")
        if check:  # only the configuration read: another one's NaN does not hide this one's values
            bad = self.opt.nonfinite().get(member if batch is not None else 0)
            if bad is not None:
                raise bad
        data = self._buf[: self._n].double().cpu()
        if data.dim() == 3:
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

    @staticmethod
    def select(state: dict, rows: list[int]) -> dict:
        """A batch=K recorder's :meth:`state_dict` for configurations ``rows`` only (see
        :func:`hypernb.optim.base.select_configurations`)."""
        return {**state, "values": state["values"][:, :, rows].clone()}

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
