"""Attention-probability dropout (attention_probs_dropout_prob) in training, ViT and MobileViT.

Our masks come from a counter-based generator, not torch's, so parity is tested in parts:
(a) the kernel's mask: what `ops.dropout` draws over the (B, H, T, T) probabilities, dropping
    a fraction ~p and scaling kept values by 1/(1-p); (b) exact gradient parity with torch
    autograd when torch's attention is handed our masks (kernel, then whole models);
(c) seeds reproduce, eval mode has no dropout, checkpointing gives bit-identical gradients."""
import sys

import numpy as np
import pytest
import torch
import transformers
from transformers import AttentionInterface

import visionc
from helpers import assert_close
from train_helpers import LOSS_RTOL, compare_grads, vit_ckpt_name

torch.set_num_threads(2)

P_ATTN = 0.25
# Kernel outputs against torch autograd in fp32: the same products summed in another order (BLAS
# blocking), ~1e-7 of the largest value measured; 1e-5 of it leaves margin.
KERNEL_RTOL = 1e-5

# The step seed -> per-layer mask seed derivation of the C core (models/vit_train.c layer_seed,
# models/mobilevit_train.c layer_seed, models/train_mem.h vc_site_seed with the layer's site
# SITE_ATTN_PROBS = 2 in models/encoder_layer_train.c). A change there fails the parity tests.
_M64 = (1 << 64) - 1
_LAYER_STRIDE = 0x632BE59BD9B4E019
_SITE_STRIDE = 0x9E3779B97F4A7C15
_SITE_ATTN_PROBS = 2


def _site_seed(layer_seed: int) -> int:
    return layer_seed ^ ((_SITE_STRIDE * (_SITE_ATTN_PROBS + 1)) & _M64)


def vit_attn_seed(step_seed: int, layer: int) -> int:
    return _site_seed((step_seed + (layer + 1) * _LAYER_STRIDE) & _M64)


def mobilevit_attn_seed(step_seed: int, block: int, layer: int) -> int:
    return _site_seed((step_seed + (block * 64 + layer + 1) * _LAYER_STRIDE) & _M64)


def our_mask(shape, seed: int, p: float = P_ATTN) -> np.ndarray:
    """The multiplier our dropout applies: 1/(1-p) where kept, 0 where dropped."""
    return visionc.ops.dropout(np.ones(shape, np.float32), p, seed)


# ---- kernel ----

def _qkv(B=2, T=50, C=32, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randn(B, T, C).astype(np.float32) for _ in range(3)]


def test_kernel_mask_statistics_and_scaling():
    H, seed = 4, 123
    q, k, v = _qkv()
    B, T, C = q.shape
    out, probs = visionc.ops.attention(q, k, v, H, dropout_p=P_ATTN, seed=seed)
    out0, probs0 = visionc.ops.attention(q, k, v, H)
    assert np.array_equal(probs, probs0)  # probabilities are returned before dropout
    mask = our_mask((B, H, T, T), seed)
    kept = np.float32(1) / (np.float32(1) - np.float32(P_ATTN))
    assert set(np.unique(mask).tolist()) == {0.0, float(kept)}
    dropped = float((mask == 0).mean())
    sigma = np.sqrt(P_ATTN * (1 - P_ATTN) / mask.size)
    print(f"attention dropout p={P_ATTN}: dropped fraction {dropped:.4f} over {mask.size} probabilities "
          f"(4 sigma = {4 * sigma:.4f}); kept scaled by {kept:.6f}", file=sys.stderr)
    assert abs(dropped - P_ATTN) <= 4 * sigma
    # out is drop(P) V with exactly that mask: another mask would be off by O(|V|).
    D = C // H
    vh = v.reshape(B, T, H, D).transpose(0, 2, 1, 3)
    want = np.einsum("bhts,bhsd->bhtd", probs * mask, vh).transpose(0, 2, 1, 3).reshape(B, T, C)
    assert_close("attention with dropout vs drop(P) V", out, want, atol=KERNEL_RTOL * np.abs(want).max())
    assert np.abs(out - out0).max() > 0.1
    with pytest.raises(ValueError, match="dropout"):
        visionc.ops.attention(q, k, v, H, dropout_p=1.0)


def test_kernel_grads_match_torch_autograd_with_our_mask():
    H, seed = 4, 77
    q, k, v = _qkv(seed=1)
    B, T, C = q.shape
    D = C // H
    g = np.random.RandomState(2).randn(B, T, C).astype(np.float32)
    out, probs = visionc.ops.attention(q, k, v, H, dropout_p=P_ATTN, seed=seed)
    dq, dk, dv = visionc.ops.attention_backward(q, k, v, probs, g, H, dropout_p=P_ATTN, seed=seed)

    tq, tk, tv = (torch.from_numpy(x).requires_grad_() for x in (q, k, v))
    heads = lambda x: x.view(B, T, H, D).transpose(1, 2)  # noqa: E731
    tp = torch.softmax(heads(tq) @ heads(tk).transpose(-1, -2) / D ** 0.5, dim=-1)
    tout = ((tp * torch.from_numpy(our_mask((B, H, T, T), seed))) @ heads(tv)).transpose(1, 2).reshape(B, T, C)
    (tout * torch.from_numpy(g)).sum().backward()
    for name, got, want in (("out", out, tout), ("probs", probs, tp), ("dq", dq, tq.grad), ("dk", dk, tk.grad),
                            ("dv", dv, tv.grad)):
        want = want.detach().numpy()
        assert_close(f"attention dropout kernel {name} vs torch autograd (our mask)", got, want,
                     atol=KERNEL_RTOL * np.abs(want).max())


# ---- models, with torch given our masks ----

VIT_CFG = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=16,
               patch_size=4, initializer_range=0.1, num_labels=5, layer_norm_eps=1e-6)
MVT_CFG = dict(hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], num_attention_heads=2,
               expand_ratio=2.0, image_size=64, num_labels=4, hidden_dropout_prob=0.0, classifier_dropout_prob=0.0)
STEP_SEED = 0x1234_5678_9ABC_DEF0
# Model gradients against torch in float64 (given our masks). A few bias gradients are sums over
# all tokens with heavy cancellation, where fp32 rounding shows: MobileViT block 0's attention
# output bias is 1.5e-4 from float64 in torch's own fp32 run, 9e-5 in ours (seed as below).
MODEL_GRAD_RTOL = 3e-4


def _masked_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' eager attention with our mask in place of torch's dropout."""
    weights = torch.softmax(torch.matmul(query, key.transpose(2, 3)) * scaling, dim=-1)
    if dropout > 0:
        weights = weights * torch.from_numpy(our_mask(tuple(weights.shape), module._vc_seed, dropout)).to(weights)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


AttentionInterface.register("visionc_masks", _masked_attention)


class _OurMaskDropout(torch.nn.Module):
    """Stands in for MobileViTSelfAttention.dropout: multiplies by our mask of that layer."""

    def __init__(self, seed, p):
        super().__init__()
        self.seed, self.p = seed, p

    def forward(self, x):
        return x * torch.from_numpy(our_mask(tuple(x.shape), self.seed, self.p)).to(x) if self.training else x


def _vit_ref():
    torch.manual_seed(0)
    ref = transformers.ViTForImageClassification(transformers.ViTConfig(**VIT_CFG))
    return ref


def _mvt_ref():
    torch.manual_seed(0)
    return transformers.MobileViTForImageClassification(transformers.MobileViTConfig(**MVT_CFG))


def _give_vit_our_masks(ref, step_seed):
    ref.config.attention_probs_dropout_prob = P_ATTN
    ref.set_attn_implementation("visionc_masks")
    for i, layer in enumerate(ref.vit.layers):
        layer.attention.attention_dropout = P_ATTN
        layer.attention._vc_seed = vit_attn_seed(step_seed, i)


def _give_mobilevit_our_masks(ref, step_seed):
    for b in range(3):  # MobileViT blocks are encoder layers 2, 3, 4
        for j, layer in enumerate(ref.mobilevit.encoder.layer[2 + b].transformer.layer):
            layer.attention.attention.dropout = _OurMaskDropout(mobilevit_attn_seed(step_seed, b, j), P_ATTN)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("attn-dropout")
    _vit_ref().save_pretrained(d / "vit")
    _mvt_ref().save_pretrained(d / "mobilevit")
    return d


def _batch(family, seed=0, n=3):
    rng = np.random.RandomState(seed)
    size, labels = (16, VIT_CFG["num_labels"]) if family == "vit" else (72, MVT_CFG["num_labels"])
    return rng.randn(n, 3, size, size).astype(np.float32), rng.randint(0, labels, n).astype(np.int64)


def _ours(ckpts, family, px, lab, seed=STEP_SEED, p=P_ATTN, ckpt=False):
    model = visionc.AutoModelForImageClassification.from_pretrained(ckpts / family).train()
    model.config.attention_probs_dropout_prob = p
    if ckpt:
        model.gradient_checkpointing_enable()
    loss = model(px, labels=lab, seed=seed).loss
    model.backward()
    return loss, {n: p.grad.copy() for n, p in model.named_parameters() if p.grad is not None}, model


def _torch_with_our_masks(family, px, lab, dtype):
    """(loss, grads by checkpoint name) of torch's training step, our masks in its attention."""
    ref = (_vit_ref() if family == "vit" else _mvt_ref()).to(dtype)
    (_give_vit_our_masks if family == "vit" else _give_mobilevit_our_masks)(ref, STEP_SEED)
    ref.train()
    loss = ref(torch.from_numpy(px).to(dtype), labels=torch.from_numpy(lab)).loss
    loss.backward()
    grads = {n: p.grad.double().numpy() for n, p in ref.named_parameters() if p.grad is not None}
    return loss.item(), {vit_ckpt_name(n): g for n, g in grads.items()} if family == "vit" else grads


@pytest.mark.parametrize("family", ["vit", "mobilevit"])
def test_matches_torch_given_our_masks(ckpts, family):
    px, lab = _batch(family)
    loss, grads, _ = _ours(ckpts, family, px, lab)
    want_loss, want = _torch_with_our_masks(family, px, lab, torch.float64)
    print(f"{family} attention dropout {P_ATTN}: loss {loss:.8f} vs torch float64 with our masks {want_loss:.8f}",
          file=sys.stderr)
    assert abs(loss - want_loss) <= LOSS_RTOL * abs(want_loss)
    _, torch32 = _torch_with_our_masks(family, px, lab, torch.float32)
    compare_grads(f"{family} (evidence) torch float32 vs float64, same masks", torch32, want, rtol=float("inf"))
    compare_grads(f"{family} attention dropout grads vs torch float64 (our masks)", grads, want,
                  rtol=MODEL_GRAD_RTOL)
    # the masks matter: without them the gradients move far beyond the tolerance
    _, clean, _ = _ours(ckpts, family, px, lab, p=0.0)
    off = compare_grads(f"{family} (contrast) no attention dropout vs torch with our masks", clean, want,
                        rtol=float("inf"))
    assert off > 30 * MODEL_GRAD_RTOL


@pytest.mark.parametrize("family", ["vit", "mobilevit"])
def test_seeds_checkpointing_and_eval(ckpts, family):
    px, lab = _batch(family, seed=1)
    loss, grads, model = _ours(ckpts, family, px, lab, seed=11)
    again, grads2, _ = _ours(ckpts, family, px, lab, seed=11)
    other, _, _ = _ours(ckpts, family, px, lab, seed=12)
    ck, grads_ck, _ = _ours(ckpts, family, px, lab, seed=11, ckpt=True)
    assert again == loss and other != loss
    compare_grads(f"{family} attention dropout, same seed", grads2, grads, rtol=0)
    assert ck == loss
    compare_grads(f"{family} attention dropout, checkpointed vs kept", grads_ck, grads, rtol=0)
    model.eval()  # eval: no dropout at all, whatever the config says
    logits = model(px).logits
    model.config.attention_probs_dropout_prob = 0.0
    assert np.array_equal(model(px).logits, logits)
