"""SGD with momentum, dampening, Nesterov and weight decay; the update runs in C
(csrc/train/optim_sgd.c).

ref: torch.optim.SGD (torch 2.13, _single_tensor_sgd, the CPU default). Same defaults and
checks; the state is "momentum_buffer" (None when momentum is 0), set to the gradient on a
parameter's first step and decayed with momentum / dampening afterwards.
"""
from __future__ import annotations

import numpy as np

from .._native import _C
from .optimizer import Optimizer, check_number

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent (torch.optim.SGD)."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    def _check_group(self, group: dict) -> None:
        group["lr"] = check_number("lr", group["lr"])
        group["momentum"] = check_number("momentum", group["momentum"])
        group["dampening"] = check_number("dampening", group["dampening"], low=-float("inf"))
        group["weight_decay"] = check_number("weight_decay", group["weight_decay"])
        group["nesterov"] = bool(group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def step(self, closure=None):
        """One update of every parameter that has a gradient. Returns closure() if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            momentum = group["momentum"]
            params, grads, bufs, fresh, new_bufs = [], [], [], [], []
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                params.append(p)
                grads.append(self._grad(group, i, p))
                st = self.state.get(p)
                if st is None:
                    st = {"momentum_buffer": None}
                    self.state.set(p, st)
                if momentum != 0:
                    buf = st.get("momentum_buffer")
                    fresh.append(buf is None)
                    if buf is None:  # torch's first step: the buffer becomes a copy of the gradient
                        buf = np.empty(p.shape, np.float32)
                        new_bufs.append((st, buf))
                    bufs.append(buf)
            if not params:
                continue
            _C.optim_sgd(params, grads, bufs if momentum != 0 else None, fresh if momentum != 0 else None,
                         float(group["lr"]), float(momentum), float(group["dampening"]),
                         float(group["weight_decay"]), group["nesterov"])
            for st, buf in new_bufs:
                st["momentum_buffer"] = buf
        return loss
