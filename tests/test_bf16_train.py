"""Mixed-precision (bf16) ViT training: model.set_precision("bf16").

References:
  * emulation: torch with every encoder nn.Linear replaced by the same arithmetic (bf16-rounded
    inputs, fp32 sums, forward and both backward GEMMs). Each op agrees to fp32 summation order
    (tests/test_bf16_gemm.py), but an activation a few fp32 ulp off rounds to the other bf16
    neighbour now and then (a jump of 2^-8 relative in that element), and the layer norms of
    this small random-init model amplify such jumps: measured 1e-4 on the loss and 7e-3 of
    max|grad|, the same order as bf16 vs fp32 itself (1e-2): EMU_*.
  * fp32 (visionc's fp32 path == torch fp32): bf16 inputs carry 2^-8 relative error, so
    gradients differ by ~1% of max|grad|: FP32_GRAD_RTOL, loss FP32_LOSS_RTOL.
  * torch.autocast("cpu", bfloat16): rounds the patch embedding, classifier and every linear
    OUTPUT to bf16 as well, so it is further away (autocast vs fp32 measures 7e-2 of max|grad|
    on the key bias, whose exact gradient is 0): AUTOCAST_*.
Tolerances leave >= 2x margin over the measured figures (printed with -s)."""
import sys
import time

import numpy as np
import pytest
import torch
import transformers

import visionc
from bf16_helpers import BF16Linear
from train_helpers import compare_grads, vit_ckpt_name

torch.set_num_threads(2)

CFG = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256, image_size=32,
           patch_size=4, initializer_range=0.05, num_labels=5, layer_norm_eps=1e-6)
B = 4
EMU_GRAD_RTOL, EMU_LOSS_RTOL = 2e-2, 5e-4
FP32_GRAD_RTOL, FP32_LOSS_RTOL = 5e-2, 5e-3
AUTOCAST_GRAD_RTOL, AUTOCAST_LOSS_RTOL = 1.5e-1, 2e-2
STEPS_LOSS_RTOL = 0.03  # 20 AdamW steps: bf16 run's losses vs the fp32 run's


def _ref(seed=0):
    torch.manual_seed(seed)
    return transformers.ViTForImageClassification(transformers.ViTConfig(**CFG))


def _batch(seed=0, n=B):
    rng = np.random.RandomState(seed)
    return rng.randn(n, 3, 32, 32).astype(np.float32), rng.randint(0, CFG["num_labels"], n).astype(np.int64)


class _Emu(torch.nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.lin = lin

    def forward(self, x):
        return BF16Linear.apply(x, self.lin.weight, self.lin.bias)


def _emulated(ref):
    enc = ref.vit.layers if hasattr(ref.vit, "layers") else ref.vit.encoder  # transformers 5 / 4
    for name, mod in list(enc.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(mod, cname, _Emu(child))
    return ref


def _torch_grads(ref, px, lab, autocast=False):
    ref.train()
    ref.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = ref(torch.from_numpy(px)).logits
    loss = torch.nn.functional.cross_entropy(logits.float(), torch.from_numpy(lab))
    loss.backward()
    return loss.item(), {vit_ckpt_name(n.replace(".lin.", ".")): p.grad.float().numpy().copy()
                         for n, p in ref.named_parameters() if p.grad is not None}


def _grads(model):
    return {n: p.grad.copy() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("vit-bf16")
    _ref().save_pretrained(d)
    return d


def _run(hf_dir, precision, px, lab, **kw):
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train().set_precision(precision)
    if kw.get("ckpt"):
        model.gradient_checkpointing_enable()
    out = model(px, labels=lab)
    model.backward()
    return out.loss, _grads(model)


def _rel(a, b):
    return abs(a - b) / abs(b)


def test_precision_switch(hf_dir):
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir)
    assert model.precision == "fp32"
    assert model.set_precision("bfloat16").precision == "bf16"
    with pytest.raises(ValueError):
        model.set_precision("fp16")
    model.set_precision("fp32")
    px, lab = _batch()
    # inference is unaffected by the switch
    model.eval()
    a = model(px).logits
    model.set_precision("bf16")
    np.testing.assert_array_equal(model(px).logits, a)


@pytest.mark.parametrize("ckpt", [False, True])
def test_grads_vs_emulation_fp32_autocast(hf_dir, ckpt):
    px, lab = _batch()
    loss, got = _run(hf_dir, "bf16", px, lab, ckpt=ckpt)
    loss32, got32 = _run(hf_dir, "fp32", px, lab)
    emu_loss, emu = _torch_grads(_emulated(_ref()), px, lab)
    ac_loss, ac = _torch_grads(_ref(), px, lab, autocast=True)
    t32_loss, t32 = _torch_grads(_ref(), px, lab)
    print(f"loss: bf16 {loss:.7f}, emulation {emu_loss:.7f}, fp32 {loss32:.7f}, torch fp32 {t32_loss:.7f}, "
          f"autocast {ac_loss:.7f}", file=sys.stderr)
    assert _rel(loss, emu_loss) <= EMU_LOSS_RTOL
    assert _rel(loss, loss32) <= FP32_LOSS_RTOL
    assert _rel(loss, ac_loss) <= AUTOCAST_LOSS_RTOL
    compare_grads("bf16 vs torch emulation", got, emu, EMU_GRAD_RTOL)
    compare_grads("bf16 vs visionc fp32", got, got32, FP32_GRAD_RTOL)
    compare_grads("bf16 vs torch fp32", got, t32, FP32_GRAD_RTOL)
    compare_grads("bf16 vs torch autocast(bf16)", got, ac, AUTOCAST_GRAD_RTOL)
    compare_grads("torch autocast vs torch fp32 (for scale)", ac, t32, 1.0)


def test_fallback_path_same_grads(hf_dir):
    """The plain-C path (CPUs without AVX512_BF16) computes the same values."""
    px, lab = _batch(1)
    loss, got = _run(hf_dir, "bf16", px, lab)
    visionc._C.bf16_set_native(False)
    try:
        loss_f, got_f = _run(hf_dir, "bf16", px, lab)
    finally:
        visionc._C.bf16_set_native(True)
    assert _rel(loss_f, loss) <= EMU_LOSS_RTOL
    compare_grads("bf16 native vs fallback", got_f, got, EMU_GRAD_RTOL)


def _train(hf_dir, precision, steps=20):
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train().set_precision(precision)
    opt = visionc.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    losses, t = [], 0.0
    for step in range(steps):
        px, lab = _batch(100 + step % 4, n=8)
        t0 = time.perf_counter()
        losses.append(model(px, labels=lab).loss)
        model.backward()
        t += time.perf_counter() - t0
        opt.step()
        model.zero_grad()
    return np.array(losses), t / steps


def test_adamw_20_steps_tracks_fp32(hf_dir):
    l16, t16 = _train(hf_dir, "bf16")
    l32, t32 = _train(hf_dir, "fp32")
    rel = np.abs(l16 - l32) / np.abs(l32)
    print(f"20 AdamW steps: loss fp32 {l32[0]:.4f} -> {l32[-1]:.4f}, bf16 {l16[0]:.4f} -> {l16[-1]:.4f}; "
          f"worst per-step rel diff {rel.max():.3g}; step time fp32 {t32 * 1e3:.1f} ms, bf16 {t16 * 1e3:.1f} ms",
          file=sys.stderr)
    assert l16[-1] < 0.8 * l16[0], "bf16 run did not learn"
    assert rel.max() <= STEPS_LOSS_RTOL
