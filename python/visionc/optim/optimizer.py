"""The optimizer base class: parameter groups, per-parameter state, zero_grad, state_dict.

Mirrors torch.optim.Optimizer's contract (ref: torch/optim/optimizer.py): ``params`` is a list
of parameters or of param-group dicts; every group gets the optimizer's defaults for the keys
it does not set; ``state_dict()`` numbers parameters in group order and
``load_state_dict()`` restores state and group hyper-parameters onto the same layout.

Parameters are float32, C-contiguous, writeable NumPy arrays carrying ``.grad``
(`visionc.nn.Parameter`). A group's ``params`` may also list ``(name, parameter)`` pairs
(``model.named_parameters()``) or ``(name, array, grad)`` triples: a triple's array is wrapped
in a zero-copy Parameter whose gradient buffer is the given ``grad`` array, which
``zero_grad()`` then zeroes in place instead of dropping.
"""
from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from ..nn import Parameter

__all__ = ["Optimizer"]


class _StateByParam:
    """``opt.state[p]``: the state dict of parameter ``p``, keyed by identity (arrays are unhashable)."""

    def __init__(self):
        self._params = {}
        self._states = {}

    def __getitem__(self, p):
        return self._states[id(p)]

    def __contains__(self, p):
        return id(p) in self._states

    def __len__(self):
        return len(self._states)

    def __iter__(self):
        return iter(self._params[k] for k in self._states)

    def get(self, p, default=None):
        return self._states.get(id(p), default)

    def set(self, p, state: dict):
        self._params[id(p)] = p
        self._states[id(p)] = state

    def items(self):
        return [(self._params[k], s) for k, s in self._states.items()]

    def clear(self):
        self._params.clear()
        self._states.clear()


def check_number(name: str, value, low: float = 0.0, high: float | None = None, high_open: bool = False) -> float:
    """float(value) when it is a real number in [low, high] (or [low, high)); ValueError otherwise.
    NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    ok = math.isfinite(v) and v >= low and (high is None or (v < high if high_open else v <= high))
    if not ok:
        bound = f"[{low:g}, {high:g}{')' if high_open else ']'}" if high is not None else f">= {low:g}"
        what = "learning rate lr" if name == "lr" else name
        raise ValueError(f"Invalid {what}: {value!r} (must be finite and {bound})")
    return v


def _as_parameter(entry, where: str):
    """(name or None, Parameter, has_grad_buffer) from a parameter, a pair or a triple."""
    name, grad, buffer = None, None, False
    if isinstance(entry, tuple):
        if len(entry) == 2:
            name, p = entry
        elif len(entry) == 3:
            name, p, grad = entry
            buffer = True
        else:
            raise TypeError(f"{where}: expected a parameter, (name, parameter) or (name, array, grad), "
                            f"got a tuple of {len(entry)}")
        if not isinstance(name, str):
            raise TypeError(f"{where}: parameter names must be str, got {type(name).__name__}")
    else:
        p = entry
    label = f"{where} ({name!r})" if name else where
    if not isinstance(p, np.ndarray):
        raise TypeError(f"{label} must be a visionc.nn.Parameter, got {type(p).__name__}")
    if buffer:
        p = Parameter(p)  # zero-copy view; the triple's grad array is its gradient buffer
        if grad is not None and not isinstance(grad, np.ndarray):
            raise TypeError(f"{label}: grad must be a NumPy array or None, got {type(grad).__name__}")
        p.grad = grad
    elif not isinstance(p, Parameter):
        raise TypeError(f"{label} is a plain ndarray: wrap it as visionc.nn.Parameter(array) (zero-copy) so it "
                        "can carry .grad, or pass a (name, array, grad) triple")
    if p.dtype != np.float32:
        raise TypeError(f"{label} must be float32, got {p.dtype}")
    if not p.flags.c_contiguous or not p.flags.writeable:
        raise TypeError(f"{label} must be a C-contiguous, writeable array (it is updated in place)")
    return name, p, buffer


class Optimizer:
    """Base class. Subclasses define ``_check_group(group)`` and ``step()``."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state = _StateByParam()
        self.param_groups: list[dict] = []
        self._grad_buffers: set[int] = set()
        self._check_group(dict(self.defaults))  # the constructor's own arguments
        if isinstance(params, (np.ndarray, dict)):
            raise TypeError("params must be an iterable of Parameters or of param-group dicts, got "
                            f"{type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k not in ("params", "param_names")]
        return "\n".join(lines + [")"])

    def _check_group(self, group: dict) -> None:  # overridden: validates hyper-parameters in place
        pass

    def add_param_group(self, group: dict) -> None:
        """Adds a group ({"params": [...], hyper-parameter overrides}); missing keys take the defaults."""
        if not isinstance(group, dict):
            raise TypeError(f"param groups must be dicts, got {type(group).__name__}")
        if "params" not in group:
            raise ValueError("a param group needs a 'params' entry")
        entries = group["params"]
        if isinstance(entries, np.ndarray):
            entries = [entries]
        elif isinstance(entries, set):
            raise TypeError("params must be an ordered collection (a list), not a set")
        entries = list(entries)
        where = f"param group {len(self.param_groups)}"
        parsed = [_as_parameter(e, f"{where}, parameter {i}") for i, e in enumerate(entries)]
        names = [n for n, _, _ in parsed]
        if any(n is not None for n in names) and any(n is None for n in names):
            raise ValueError(f"{where}: either all parameters or none must be named")
        new = {k: v for k, v in group.items() if k not in ("params", "param_names")}
        for k, v in self.defaults.items():
            new.setdefault(k, v)
        new["params"] = [p for _, p, _ in parsed]
        if names and names[0] is not None:
            new["param_names"] = names
        elif "param_names" in group:
            new["param_names"] = list(group["param_names"])
            if len(new["param_names"]) != len(entries):
                raise ValueError(f"{where}: param_names has {len(new['param_names'])} entries for {len(entries)} params")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in new["params"]]
        if len(set(ids)) != len(ids) or seen.intersection(ids):
            raise ValueError("some parameters appear more than once (in this group or in another group)")
        self._check_group(new)
        self._grad_buffers.update(id(p) for _, p, b in parsed if b)
        self.param_groups.append(new)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drops every gradient (grad = None), or zeroes it in place with set_to_none=False.
        Gradient buffers given as (name, array, grad) triples are always zeroed in place."""
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none and id(p) not in self._grad_buffers:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def _param_name(self, group: dict, i: int) -> str:
        names = group.get("param_names")
        gi = next((k for k, g in enumerate(self.param_groups) if g is group), "?")
        return repr(names[i]) if names else f"{i} of group {gi}"

    def _grad(self, group: dict, i: int, p) -> np.ndarray:
        """p.grad checked against p: a float32 array of p's shape."""
        g = p.grad
        if not isinstance(g, np.ndarray):
            raise TypeError(f"gradient of parameter {self._param_name(group, i)} must be a NumPy array, got "
                            f"{type(g).__name__}")
        if g.shape != p.shape:
            raise ValueError(f"gradient of parameter {self._param_name(group, i)} has shape {g.shape}, "
                             f"the parameter {p.shape}")
        if g.dtype != np.float32:
            raise TypeError(f"gradient of parameter {self._param_name(group, i)} must be float32, got {g.dtype}")
        return g

    # ---- state save / restore ----

    def state_dict(self) -> dict:
        """{"state": {index: {name: array copy or step count}}, "param_groups": [{hyper-params,
        "params": [index, ...]}]}: plain NumPy arrays and Python numbers (copies: later steps do
        not change it), indices numbering the parameters in group order, as torch does."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in g["params"]]
            groups.append(packed)
        state = {}
        for p, st in self.state.items():
            state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v))
                                   for k, v in st.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores state and hyper-parameters saved by state_dict() from an optimizer with the same
        groups of parameters of the same shapes. Arrays are copied in; continuing is bit-identical."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("expected a dict with 'state' and 'param_groups' (from Optimizer.state_dict())")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, the optimizer "
                             f"{len(self.param_groups)}")
        by_index = {}
        for gi, (g, sg) in enumerate(zip(self.param_groups, saved_groups)):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(f"loaded state dict's group {gi} has {len(sg['params'])} parameters, the "
                                 f"optimizer's {len(g['params'])}")
            by_index.update(zip(sg["params"], g["params"]))
        new_groups = []
        for g, sg in zip(self.param_groups, saved_groups):
            ng = {k: copy.deepcopy(v) for k, v in sg.items() if k != "params"}
            ng["params"] = g["params"]
            if "param_names" in g and "param_names" not in ng:
                ng["param_names"] = g["param_names"]
            self._check_group(ng)
            new_groups.append(ng)
        new_state = _StateByParam()
        for key, st in state_dict["state"].items():
            if key not in by_index:
                raise ValueError(f"loaded state refers to parameter {key!r}, which no group lists")
            p = by_index[key]
            new_state.set(p, {k: self._load_value(k, v, p) for k, v in st.items()})
        self.param_groups = new_groups
        self.state = new_state

    @staticmethod
    def _load_value(key: str, v, p):
        if key == "step":
            s = float(np.asarray(v))
            if not (s >= 0 and s == int(s)):
                raise ValueError(f"invalid step count {v!r} in loaded state")
            return int(s)
        if v is None:
            return None
        a = np.asarray(v)
        if a.shape != p.shape:
            raise ValueError(f"loaded state {key!r} has shape {a.shape}, its parameter {p.shape}")
        return np.array(a, dtype=np.float32, order="C", copy=True)
