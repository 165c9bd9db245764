"""Shared pieces of the optimizer tests: random parameters with a torch twin, one random
gradient sequence fed to both, and the parity measure.

Parity measure, per element: |visionc - torch| / (|torch| + path), where path is the distance
the torch element has travelled so far (the sum of |update| over the steps). Relative to the
parameter, or, for one that crossed zero, to the size of the updates that took it there.
torch's CPU sqrt (MKL VML) is not correctly rounded (1 ulp off on ~20% of inputs; ours is),
so Adam's denominators differ by an ulp now and then and those differences compound to a few
ulps of the path; measured ~2e-7 at worst. Where every operation rounds as torch's does the
difference is exactly 0 (SGD): the tests print how many element-steps are bit-identical.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from visionc import nn

TOL = 1e-6  # bound on the parity measure above

# Odd sizes exercise the scalar tails of the vector loops; (160, 250) spans 3 chunks of 16384.
SHAPES = [(7,), (33, 5), (160, 250), (1,)]


@pytest.fixture
def torch_one_thread():
    """torch on one thread for the test (its elementwise results do not depend on it): with 2
    shared cores, torch's spinning OpenMP team is 100x slower on small tensors."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_params(seed: int, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    ours = [nn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    theirs = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in ours]
    return ours, theirs


def random_grads(rng, shapes):
    """Gradients of random scale (1e-4 .. 10), some tiny enough for eps to matter."""
    out = []
    for s in shapes:
        g = rng.standard_normal(s).astype(np.float32) * np.float32(10.0 ** rng.uniform(-4, 1))
        if rng.random() < 0.2:
            g *= np.float32(1e-7)
        out.append(g)
    return out


def set_grads(ours, theirs, grads, skip=()):
    for i, (p, t, g) in enumerate(zip(ours, theirs, grads)):
        if i in skip:
            p.grad, t.grad = None, None
        else:
            p.grad, t.grad = g.copy(), torch.from_numpy(g.copy())


class Parity:
    """Accumulates the parity measure over steps; check() raises at the first step over TOL.
    Create it before the first step: it records the initial torch values."""

    def __init__(self, name: str, theirs):
        self.name = name
        self.worst = 0.0
        self.identical = self.total = 0
        self.prev = [t.detach().numpy().astype(np.float64) for t in theirs]
        self.path = [np.zeros(p.shape) for p in self.prev]

    def check(self, step: int, ours, theirs):
        for i, (p, t) in enumerate(zip(ours, theirs)):
            want = t.detach().numpy()
            w64 = want.astype(np.float64)
            self.path[i] += np.abs(w64 - self.prev[i])
            self.prev[i] = w64
            got = np.asarray(p)
            d = np.abs(got.astype(np.float64) - w64) / (np.abs(w64) + self.path[i] + 1e-30)
            m = float(d.max())
            self.worst = max(self.worst, m)
            self.identical += int((got == want).sum())
            self.total += got.size
            assert m <= TOL, f"{self.name}: step {step}, tensor {i}: |diff|/(|torch|+path) = {m:.3g} > {TOL:g}"

    def report(self):
        print(f"{self.name}: max |diff|/(|torch|+path) = {self.worst:.3g} (tol {TOL:g}); "
              f"{self.identical}/{self.total} element-steps bit-identical", file=sys.stderr)
