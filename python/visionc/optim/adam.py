"""Adam and AdamW over NumPy parameters; the update runs in C (csrc/train/optim_adam.c).

ref: torch.optim.Adam / torch.optim.AdamW (torch 2.13, _single_tensor_adam, the CPU default).
Same defaults, argument checks, state ("step", "exp_avg", "exp_avg_sq", and
"max_exp_avg_sq" with amsgrad) and per-parameter step counts: a parameter whose grad is
None is skipped and its step count does not advance.
"""
from __future__ import annotations

import numpy as np

from .._native import _C
from .optimizer import Optimizer, check_number

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (torch.optim.Adam)."""

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "amsgrad": amsgrad})

    def _check_group(self, group: dict) -> None:
        group["lr"] = check_number("lr", group["lr"])
        betas = group["betas"]
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (check_number("betas[0]", betas[0], 0.0, 1.0, high_open=True),
                          check_number("betas[1]", betas[1], 0.0, 1.0, high_open=True))
        group["eps"] = check_number("eps", group["eps"])
        group["weight_decay"] = check_number("weight_decay", group["weight_decay"])
        group["amsgrad"] = bool(group["amsgrad"])

    def step(self, closure=None):
        """One update of every parameter that has a gradient. Returns closure() if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            amsgrad = group["amsgrad"]
            params, grads, m, v, vmax, steps, states = [], [], [], [], [], [], []
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                grads.append(self._grad(group, i, p))
                st = self.state.get(p)
                if st is None:
                    st = {"step": 0, "exp_avg": np.zeros(p.shape, np.float32),
                          "exp_avg_sq": np.zeros(p.shape, np.float32)}
                    if amsgrad:
                        st["max_exp_avg_sq"] = np.zeros(p.shape, np.float32)
                    self.state.set(p, st)
                elif amsgrad and st.get("max_exp_avg_sq") is None:
                    raise ValueError(f"parameter {self._param_name(group, i)} has no max_exp_avg_sq state "
                                     "(it was created with amsgrad=False)")
                params.append(p)
                m.append(st["exp_avg"])
                v.append(st["exp_avg_sq"])
                if amsgrad:
                    vmax.append(st["max_exp_avg_sq"])
                steps.append(st["step"] + 1)
                states.append(st)
            if not params:
                continue
            beta1, beta2 = group["betas"]
            _C.optim_adam(params, grads, m, v, vmax if amsgrad else None, steps, float(group["lr"]), float(beta1),
                          float(beta2), float(group["eps"]), float(group["weight_decay"]), amsgrad,
                          self._decoupled)
            for st in states:
                st["step"] += 1
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay, p *= 1 - lr * weight_decay (torch.optim.AdamW)."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
