"""Learning-rate schedules: a multiplier of each group's initial lr, advanced once per
optimizer step.

Semantics of torch.optim.lr_scheduler.LambdaLR (ref: torch/optim/lr_scheduler.py), which the
transformers schedules are built on: creating a schedule records each group's
``initial_lr`` and sets ``lr = initial_lr * f(0)``; every ``step()`` advances the step count t
and sets ``lr = initial_lr * f(t)``. Call it after ``optimizer.step()``.

The multipliers f(t) are those of transformers.optimization (ref: its
``_get_*_schedule_with_warmup_lr_lambda`` functions), computed with the same float
operations, so the lr at every step is equal to transformers':
  constant              1
  constant_with_warmup  t / max(1, W) while t < W, then 1
  linear_with_warmup    t / max(1, W) while t < W,
                        then max(0, (T - t) / max(1, T - W))
  cosine_with_warmup    t / max(1, W) while t < W, then with p = (t - W) / max(1, T - W):
                        c = 0.5 (1 + cos(pi * num_cycles * 2 p)),  max(0, c (1 - r) + r)
                        (r = min_lr_ratio; r = 0 is get_cosine_schedule_with_warmup, r > 0 is
                        get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=r))
with W = warmup_steps and T = total_steps.
"""
from __future__ import annotations

import functools
import math
import numbers

from .optimizer import check_number

__all__ = ["LRSchedule", "constant", "constant_with_warmup", "linear_with_warmup", "cosine_with_warmup"]


class LRSchedule:
    """Sets every param group's lr to initial_lr * multiplier(step) (torch's LambdaLR)."""

    def __init__(self, optimizer, multiplier, name: str = "lambda", config: dict | None = None):
        self.optimizer = optimizer
        self.multiplier = multiplier
        self.name = name
        self.config = dict(config or {})
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = -1
        self._last_lr: list[float] = []
        self.step()

    def step(self) -> None:
        """Advances one step and sets the groups' lr."""
        self.last_epoch += 1
        f = self.multiplier(self.last_epoch)
        self._last_lr = [base * f for base in self.base_lrs]
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """The lr of each group set by the last step() (or the constructor)."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {"name": self.name, "config": dict(self.config), "last_epoch": self.last_epoch,
                "base_lrs": list(self.base_lrs), "last_lr": list(self._last_lr)}

    def load_state_dict(self, state: dict) -> None:
        """Resumes at the saved step (and sets the groups' lr to the saved values)."""
        if state.get("name") != self.name:
            raise ValueError(f"state is for a {state.get('name')!r} schedule, this one is {self.name!r}")
        n = len(self.optimizer.param_groups)
        if len(state["base_lrs"]) != n or len(state["last_lr"]) != n:
            raise ValueError(f"state has lrs for {len(state['base_lrs'])} param groups, the optimizer {n}")
        if state.get("config", self.config) != self.config:
            raise ValueError(f"state was saved with {state['config']}, this schedule has {self.config}")
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = [float(x) for x in state["base_lrs"]]
        self._last_lr = [float(x) for x in state["last_lr"]]
        for g, base, lr in zip(self.optimizer.param_groups, self.base_lrs, self._last_lr):
            g["initial_lr"] = base
            g["lr"] = lr


def _steps(name: str, v, low: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


def _warmup(t: int, warmup: int) -> float:
    return float(t) / float(max(1, warmup))


def _constant(t: int) -> float:
    return 1.0


def _constant_warmup(t: int, *, warmup: int) -> float:
    return _warmup(t, warmup) if t < warmup else 1.0


def _linear_warmup(t: int, *, warmup: int, total: int) -> float:
    if t < warmup:
        return _warmup(t, warmup)
    return max(0.0, float(total - t) / float(max(1, total - warmup)))


def _cosine_warmup(t: int, *, warmup: int, total: int, num_cycles: float, min_lr_ratio: float) -> float:
    if t < warmup:
        return _warmup(t, warmup)
    progress = float(t - warmup) / float(max(1, total - warmup))
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    return max(0, factor * (1 - min_lr_ratio) + min_lr_ratio)


def constant(optimizer) -> LRSchedule:
    """The initial lr throughout (transformers.get_constant_schedule)."""
    return LRSchedule(optimizer, _constant, "constant")


def constant_with_warmup(optimizer, warmup_steps: int) -> LRSchedule:
    """Linear warmup from 0 over warmup_steps, then constant (get_constant_schedule_with_warmup)."""
    w = _steps("warmup_steps", warmup_steps)
    return LRSchedule(optimizer, functools.partial(_constant_warmup, warmup=w), "constant_with_warmup",
                      {"warmup_steps": w})


def _check_total(warmup_steps, total_steps) -> tuple[int, int]:
    w, t = _steps("warmup_steps", warmup_steps), _steps("total_steps", total_steps, low=1)
    if w > t:
        raise ValueError(f"warmup_steps ({w}) must not exceed total_steps ({t})")
    return w, t


def linear_with_warmup(optimizer, warmup_steps: int, total_steps: int) -> LRSchedule:
    """Linear warmup, then linear decay to 0 at total_steps (get_linear_schedule_with_warmup)."""
    w, t = _check_total(warmup_steps, total_steps)
    return LRSchedule(optimizer, functools.partial(_linear_warmup, warmup=w, total=t), "linear_with_warmup",
                      {"warmup_steps": w, "total_steps": t})


def cosine_with_warmup(optimizer, warmup_steps: int, total_steps: int, num_cycles: float = 0.5,
                       min_lr_ratio: float = 0.0) -> LRSchedule:
    """Linear warmup, then cosine decay to min_lr_ratio * lr at total_steps (num_cycles=0.5:
    half a cosine). get_cosine_schedule_with_warmup, or with min_lr_ratio > 0
    get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=min_lr_ratio)."""
    w, t = _check_total(warmup_steps, total_steps)
    c = check_number("num_cycles", num_cycles)
    r = check_number("min_lr_ratio", min_lr_ratio, 0.0, 1.0)
    return LRSchedule(optimizer, functools.partial(_cosine_warmup, warmup=w, total=t, num_cycles=c, min_lr_ratio=r),
                      "cosine_with_warmup", {"warmup_steps": w, "total_steps": t, "num_cycles": c,
                                             "min_lr_ratio": r})
