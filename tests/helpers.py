"""Shared test helpers: comparisons that print their evidence, and reference checkpoints."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VIT_TINY = SHARED / "weights" / "vit_tiny_patch16_224-timm"
GPT2_VOCAB = SHARED / "weights" / "gpt2-tokenizer"


def assert_close(name: str, got, want, atol: float, rtol: float = 0.0):
    """Fails with max abs/rel error, the tolerance and the first differing elements."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != reference {want.shape}"
    diff = np.abs(got - want)
    bound = atol + rtol * np.abs(want)
    bad = diff > bound
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(want), 1e-12)).max()) if diff.size else 0.0
    if bad.any():
        idx = np.argwhere(bad)[:5]
        samples = ", ".join(f"{tuple(i)}: {got[tuple(i)]:.7g} vs {want[tuple(i)]:.7g}" for i in idx)
        raise AssertionError(f"{name}: {int(bad.sum())} of {diff.size} elements off (max abs {max_abs:.3g}, "
                             f"max rel {max_rel:.3g}, atol {atol:g}, rtol {rtol:g}); first: {samples}")
    print(f"{name}: max abs {max_abs:.3g}, max rel {max_rel:.3g} (atol {atol:g}, rtol {rtol:g})", file=sys.stderr)
    return max_abs


def subprocess_env() -> dict:
    """Environment for a child interpreter that imports the same visionc as the tests
    (installed, or the source tree's in-place build)."""
    import visionc
    pkg_parent = str(Path(visionc.__file__).resolve().parent.parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [pkg_parent, os.environ.get("PYTHONPATH")])))
