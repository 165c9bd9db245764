"""visionc.optim.clip_grad_norm against torch.nn.utils.clip_grad_norm_: the total norm and the
clipped gradients, for several norm types, max_norm above and below the norm, and NaN / inf
gradients with and without error_if_nonfinite.

Both are also checked against a float64 computation: visionc accumulates the norm in double
(exact to ~1e-15) and scales in float32 (within 2 ulps of the exact product); torch
accumulates in float32, hence the per-norm tolerances against torch below."""
import math

import numpy as np
import pytest
import torch
from helpers import assert_close
from optim_helpers import torch_one_thread  # noqa: F401 (fixture)

from visionc import nn, optim

pytestmark = pytest.mark.usefixtures("torch_one_thread")
SHAPES = [(7,), (33, 5), (160, 250), (1,), (4, 4)]


def _pair(seed, poison=None):
    rng = np.random.default_rng(seed)
    ours, theirs = [], []
    for i, s in enumerate(SHAPES):
        p = nn.Parameter(rng.standard_normal(s).astype(np.float32))
        t = torch.nn.Parameter(torch.from_numpy(p.copy()))
        if i != 4:  # the last parameter has no gradient
            g = (rng.standard_normal(s) * 10.0 ** rng.uniform(-3, 1)).astype(np.float32)
            if poison is not None and i == 2:
                g[17, 3] = poison
            p.grad, t.grad = g, torch.from_numpy(g.copy())
        ours.append(p)
        theirs.append(t)
    return ours, theirs


# torch sums |g|^p in float32: measured 3e-7 relative error for p = 2 on these 41k elements,
# 3e-6 for p = 1 and 1.6e-6 for p = 3 (visionc's double sums are exact to 1e-15).
TORCH_RTOL = {2.0: 1e-6, float("inf"): 1e-6, 1.0: 1e-5, 3.0: 1e-5}


@pytest.mark.parametrize("norm_type", [2.0, float("inf"), 1.0, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_matches_torch(norm_type, max_norm):
    ours, theirs = _pair(0)
    before = [p.grad.astype(np.float64) for p in ours[:4]]
    flat = np.abs(np.concatenate([g.ravel() for g in before]))
    exact = flat.max() if math.isinf(norm_type) else (flat ** norm_type).sum() ** (1 / norm_type)
    total = optim.clip_grad_norm(ours, max_norm, norm_type)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, float)
    assert_close(f"norm (p={norm_type}) vs float64", total, exact, atol=0, rtol=1e-12)
    assert_close(f"norm (p={norm_type}) vs torch", total, float(want), atol=0, rtol=TORCH_RTOL[norm_type])
    coef = min(max_norm / (exact + 1e-6), 1.0)
    for i, (p, t) in enumerate(zip(ours[:4], theirs[:4])):
        if coef == 1.0:  # no clipping: gradients untouched, bit for bit, as torch's
            assert np.array_equal(p.grad, before[i]) and np.array_equal(p.grad, t.grad.numpy())
            continue
        assert_close(f"clipped grad {i} (p={norm_type}) vs float64", p.grad, before[i] * coef, atol=0, rtol=2.5e-7)
        assert_close(f"clipped grad {i} (p={norm_type}) vs torch", p.grad, t.grad.numpy(), atol=0,
                     rtol=TORCH_RTOL[norm_type])
    assert ours[4].grad is None
    if coef < 1.0:
        assert optim.grad_norm(ours, norm_type) == pytest.approx(max_norm, rel=1e-5)


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("norm_type", [2.0, float("inf")])
def test_nonfinite(poison, norm_type):
    ours, theirs = _pair(1, poison)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm(ours, 1.0, norm_type, error_if_nonfinite=True)
    # the refusal leaves the gradients alone
    assert all(np.array_equal(p.grad, t.grad.numpy(), equal_nan=True) for p, t in zip(ours[:4], theirs[:4]))
    total = optim.clip_grad_norm(ours, 1.0, norm_type)
    want = float(torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type))
    assert (math.isnan(total) and math.isnan(want)) or total == want
    for p, t in zip(ours[:4], theirs[:4]):  # NaN coefficient -> all NaN; inf norm -> 0 (NaN where inf)
        assert np.array_equal(p.grad, t.grad.numpy(), equal_nan=True)
    print(f"poison {poison}, p={norm_type}: norm {total} == torch {want}; clipped grads equal (NaN where torch's)")


def test_arguments():
    ours, _ = _pair(2)
    with pytest.raises(ValueError, match="norm_type"):
        optim.clip_grad_norm(ours, 1.0, norm_type=0)
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm(ours, float("nan"))
    assert optim.clip_grad_norm([nn.Parameter(np.zeros(3, np.float32))], 1.0) == 0.0  # no gradients
    single = ours[0]
    assert optim.clip_grad_norm(single, 1e9) == pytest.approx(float(np.linalg.norm(single.grad)), rel=1e-6)
