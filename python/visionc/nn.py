"""Trainable parameters: `Parameter`, a NumPy array that can carry a gradient.

A model exposes its weights through `model.parameters()` / `model.named_parameters()` as
Parameters. A Parameter is a *view* of the model's weight memory (the C model and the array
share one buffer), so an optimizer that updates it in place updates the model itself::

    w = np.zeros((4, 3), np.float32)      # memory owned by the model
    p = Parameter(w)                      # no copy: np.shares_memory(p, w) is True
    p.grad = np.ones_like(w)              # set by the backward pass
    visionc.optim.SGD([p], lr=0.1).step() # w is now -0.1 everywhere

Attributes (the whole API, on top of np.ndarray):
    grad           np.ndarray of p's shape, or None (no gradient yet / after zero_grad())
    requires_grad  bool; models skip computing gradients for frozen parameters

Semantics kept deliberately small:
  * Parameter(x) never copies an ndarray (a list or other array-like is converted first).
  * Ufunc results and indexing give plain ndarrays (``p * 2``, ``p[0]``, ``p.sum()``), as a
    sliced or computed torch Parameter is no longer a Parameter. In-place operations
    (``p *= 0.5``, ``p[...] = x``) write through to the shared memory.
  * Arrays NumPy derives by methods (``p.reshape(..)``, ``p.copy()``) are Parameter-typed but
    start with ``grad = None``.
  * Parameters are not hashable (they are arrays); optimizers key their state by identity.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Parameter"]


class Parameter(np.ndarray):
    """A NumPy view of weight memory with ``.grad`` and ``.requires_grad`` (see module doc)."""

    def __new__(cls, data, requires_grad: bool = True):
        arr = data if isinstance(data, np.ndarray) else np.asarray(data)
        obj = arr.view(cls)
        obj.grad = None
        obj.requires_grad = bool(requires_grad)
        return obj

    def __array_finalize__(self, obj):
        # Views and copies NumPy makes from a Parameter: no gradient of their own.
        self.grad = None
        self.requires_grad = getattr(obj, "requires_grad", True)

    def __array_wrap__(self, array, context=None, return_scalar=False):
        # Results of ufuncs are plain arrays (or scalars); an in-place result stays `self`.
        if array is self:
            return self
        out = array.view(np.ndarray) if isinstance(array, np.ndarray) else array
        return out[()] if return_scalar and isinstance(out, np.ndarray) else out

    def __getitem__(self, key):
        item = super().__getitem__(key)
        return item.view(np.ndarray) if isinstance(item, np.ndarray) else item

    def __repr__(self):
        return f"Parameter({np.asarray(self)!r}, requires_grad={self.requires_grad})"
