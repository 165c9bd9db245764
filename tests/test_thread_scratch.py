"""Scratch sized by the thread count, plans cached by shape (hardening item 3).

Attention and depthwise-convolution scratch holds one slice per thread. A training step plans
its memory once per batch shape and reuses the plan while the shape repeats; the thread count
sizes that scratch too, so it must be part of the plan's key, and a step (forward, then
backward) must run on the thread count its plan was sized for. Each test changes the count
between steps (or between forward and backward) with the same shapes and checks the gradients
against a fresh model's. Run under AddressSanitizer (`make debug`, see the Makefile's
test-debug) an overflow is a heap-buffer-overflow report: visionc's planner and arena put a
poisoned redzone after every buffer in an ASan build (csrc/core/asan.h).

set_num_threads(4) makes OpenMP run 4 threads even on a 2-core machine, which is all these
tests need. Models are tiny random ones built without torch, so the file runs in seconds."""
import sys
import threading

import numpy as np
import pytest

import visionc
from visionc import _C
from visionc.models.convnext import ConvNextConfig
from visionc.models.mobilevit import MobileViTConfig
from visionc.models.vit import ViTConfig

# Gradient agreement across thread counts, relative to max|grad| of each tensor: the kernels
# split work, not sums, over the threads, so the differences are a few ulps at most.
GRAD_RTOL = 1e-5

# In each config the scratch that grows with the threads outgrows the rest of its kind, and is
# the last buffer of the planned block: with scratch for one thread, the others write past the
# end of the block. Depthwise convolutions split channels statically, so every thread writes its
# slice on every call; attention hands (image, head) pairs out dynamically, so its pairs are made
# large enough that the other threads take some.
FAMILIES = {
    # T = 145 tokens: attention scratch 145^2 floats a thread, 2 images x 4 heads = 8 pairs.
    "vit": (visionc.ViTForImageClassification, ViTConfig,
            dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=48,
                 patch_size=4), 48),
    # 4x4 stage-0 maps: the 7x7 depthwise scratch (one padded plane a thread) outgrows the
    # stem's im2col from two threads on.
    "convnext": (visionc.ConvNextForImageClassification, ConvNextConfig,
                 dict(num_channels=3, patch_size=4, hidden_sizes=[8, 16], depths=[1, 1], image_size=16), 16),
    # One input channel and narrow necks: at 4 threads the 3x3 depthwise scratch of the first
    # inverted residual (16x16 maps) outgrows the stem's and the fusion convs' im2col.
    "mobilevit": (visionc.MobileViTForImageClassification, MobileViTConfig,
                  dict(num_channels=1, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 8, 8, 16, 16, 32],
                       num_attention_heads=2, expand_ratio=2.0, image_size=32, hidden_dropout_prob=0.0,
                       classifier_dropout_prob=0.0), 32),
}
BATCH, LABELS = 2, 3


@pytest.fixture(autouse=True)
def _restore_threads():
    before = visionc.get_num_threads()
    yield
    visionc.set_num_threads(before)


def _random_state(specs, rng):
    """Weights around the scales a trained model has: norms' weights near 1, running variances
    positive, the rest small."""
    state = {}
    for name, shape in specs:
        if name.endswith("running_var"):
            state[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif "norm" in name and name.endswith("weight") or "layer_scale" in name:
            state[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            state[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return state


def _model(family):
    """A fresh random model of the family in train mode (the same weights every call)."""
    cls, config_cls, cfg, _ = FAMILIES[family]
    model = cls(config_cls(**cfg, id2label={i: f"LABEL_{i}" for i in range(LABELS)}))
    rng = np.random.default_rng(0)
    specs = list(model._c.param_specs())
    if family == "mobilevit":
        specs += list(_C.mobilevit_buffer_specs(model._c))
    model._load(_random_state(specs, rng), "random weights")
    return model.train()


def _batch(family):
    _, _, cfg, size = FAMILIES[family]
    rng = np.random.default_rng(1)
    return (rng.standard_normal((BATCH, cfg.get("num_channels", 3), size, size)).astype(np.float32),
            rng.integers(0, LABELS, BATCH).astype(np.int64))


def _grads(model):
    return {n: p.grad.copy() for n, p in model.named_parameters() if p.grad is not None}


def _step(model, px, lab, backward_threads=None):
    """One training step's gradients; backward_threads: set just before backward."""
    model.zero_grad()
    model(px, labels=lab)
    if backward_threads is not None:
        visionc.set_num_threads(backward_threads)
    model.backward()
    return _grads(model)


def _reference(family):
    visionc.set_num_threads(1)
    px, lab = _batch(family)
    return _step(_model(family), px, lab)


def _check(tag, got, want):
    assert set(got) == set(want) and want
    worst = 0.0
    for n, w in want.items():
        scale = max(float(np.abs(w).max()), 1e-30)
        err = float(np.abs(got[n] - w).max()) / scale
        worst = max(worst, err)
        assert err <= GRAD_RTOL, f"{tag}: {n}: rel err {err:.3g} (rtol {GRAD_RTOL:g})"
    print(f"{tag}: {len(want)} gradients, worst rel err {worst:.3g}", file=sys.stderr)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("counts", [(1, 4), (4, 1), (1, 2, 1)], ids=lambda c: "->".join(map(str, c)))
def test_thread_count_changes_between_steps(family, counts):
    """set_num_threads(a), a step, set_num_threads(b), a step with the same shapes, ..."""
    want = _reference(family)
    model = _model(family)
    px, lab = _batch(family)
    for n in counts:
        visionc.set_num_threads(n)
        assert visionc.get_num_threads() == n
        _check(f"{family} step at {n} threads (sequence {counts})", _step(model, px, lab), want)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_thread_count_changes_between_forward_and_backward(family):
    """The backward of a forward planned for one thread runs after set_num_threads(4)."""
    want = _reference(family)
    model = _model(family)
    px, lab = _batch(family)
    visionc.set_num_threads(1)
    _check(f"{family} forward at 1 thread, backward after set_num_threads(4)",
           _step(model, px, lab, backward_threads=4), want)
    _check(f"{family} then a step at 4 threads", _step(model, px, lab), want)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_thread_count_changed_by_another_thread(family):
    """Another Python thread flips the count between 1 and 4 while steps run (the C work runs
    without the GIL): each call reads the count once, so its scratch and its kernels agree."""
    want = _reference(family)
    model = _model(family)
    px, lab = _batch(family)
    stop = threading.Event()

    def flip():
        n = 0
        while not stop.is_set():
            visionc.set_num_threads(1 + 3 * (n % 2))
            n += 1
            stop.wait(0.0005)

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        results = [_step(model, px, lab) for _ in range(6)]
        logits = [model.eval()(px).logits for _ in range(3)]
        model.train()
    finally:
        stop.set()
        flipper.join()
    for i, got in enumerate(results):
        _check(f"{family} step {i} with the count flipping", got, want)
    visionc.set_num_threads(1)
    ref_logits = model.eval()(px).logits
    for got in logits:
        np.testing.assert_allclose(got, ref_logits, rtol=1e-5, atol=1e-6)


def test_inference_and_ops_across_thread_counts():
    """Inference sizes its scratch per call (the arena grows): 1 -> 4 -> 1 gives the same
    outputs, for the models and for the ops whose scratch is per thread."""
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((2, 40, 32)).astype(np.float32) for _ in range(3))
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 1, 7, 7)).astype(np.float32)
    models = {f: _model(f).eval() for f in FAMILIES}
    outs = {}
    for n in (1, 4, 1):
        visionc.set_num_threads(n)
        got = {f: m(_batch(f)[0]).logits for f, m in models.items()}
        got["attention"] = visionc.ops.attention(q, k, v, num_heads=4)
        got["conv2d_depthwise"] = visionc.ops.conv2d(x, w, padding=3, groups=8)
        for key, value in got.items():
            value = value[0] if isinstance(value, tuple) else value
            if key in outs:
                np.testing.assert_allclose(value, outs[key], rtol=1e-5, atol=1e-6, err_msg=f"{key} at {n} threads")
            outs[key] = value
