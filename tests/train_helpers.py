"""Helpers of the training tests: torch-name mapping and gradient comparison with evidence."""
from __future__ import annotations

import re
import sys

import numpy as np

# Gradient parity bound, relative to max|grad| of each tensor: fp32 GEMMs in another blocking
# order give ~1e-6; 1e-4 leaves two orders of margin.
GRAD_RTOL = 1e-4
LOSS_RTOL = 1e-5
# 20 AdamW steps: Adam divides by sqrt(v) so tiny gradient differences become O(lr) updates on
# near-zero gradients; loss curves still agree to ~1e-6 relative.
STEP_LOSS_RTOL = 1e-4

_TF5 = [
    (r"layers\.(\d+)\.attention\.q_proj\.", r"encoder.layer.\1.attention.attention.query."),
    (r"layers\.(\d+)\.attention\.k_proj\.", r"encoder.layer.\1.attention.attention.key."),
    (r"layers\.(\d+)\.attention\.v_proj\.", r"encoder.layer.\1.attention.attention.value."),
    (r"layers\.(\d+)\.attention\.o_proj\.", r"encoder.layer.\1.attention.output.dense."),
    (r"layers\.(\d+)\.mlp\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
    (r"layers\.(\d+)\.mlp\.fc2\.", r"encoder.layer.\1.output.dense."),
    (r"layers\.(\d+)\.layernorm_(before|after)\.", r"encoder.layer.\1.layernorm_\2."),
]


def convnext_ref(cfg: dict, seed: int = 0):
    """A random-init transformers ConvNeXt classifier whose layer scales are drawn from
    U(0.5, 1.5): they start at 1e-6, which would make the blocks (and their gradients) vanish."""
    import torch
    import transformers
    torch.manual_seed(seed)
    ref = transformers.ConvNextForImageClassification(transformers.ConvNextConfig(**cfg))
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if n.endswith("layer_scale_parameter"):
                p.uniform_(0.5, 1.5)
    return ref


def vit_ckpt_name(name: str) -> str:
    """transformers 5 in-memory ViT names -> the names its checkpoints (and visionc) use."""
    for pat, rep in _TF5:
        name = re.sub(r"^vit\." + pat, "vit." + rep, name)
    return name


def vit_timm_state(ref, num_layers: int) -> dict:
    """A transformers ViT classifier's weights under timm's VisionTransformer names (qkv fused)."""
    sd = {vit_ckpt_name(n)[4:] if n.startswith("vit.") else n: p.detach().numpy() for n, p in ref.named_parameters()}
    out = {"cls_token": sd["embeddings.cls_token"], "pos_embed": sd["embeddings.position_embeddings"],
           "patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
           "norm.weight": sd["layernorm.weight"], "norm.bias": sd["layernorm.bias"],
           "head.weight": sd["classifier.weight"], "head.bias": sd["classifier.bias"]}
    for i in range(num_layers):
        p = f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{kind}"] = np.concatenate(
                [sd[f"{p}attention.attention.{x}.{kind}"] for x in ("query", "key", "value")])
            out[f"blocks.{i}.norm1.{kind}"] = sd[f"{p}layernorm_before.{kind}"]
            out[f"blocks.{i}.attn.proj.{kind}"] = sd[f"{p}attention.output.dense.{kind}"]
            out[f"blocks.{i}.norm2.{kind}"] = sd[f"{p}layernorm_after.{kind}"]
            out[f"blocks.{i}.mlp.fc1.{kind}"] = sd[f"{p}intermediate.dense.{kind}"]
            out[f"blocks.{i}.mlp.fc2.{kind}"] = sd[f"{p}output.dense.{kind}"]
    return out


def compare_grads(tag: str, got: dict, want: dict, rtol: float = GRAD_RTOL) -> float:
    """max over tensors of max|got - want| / max|want|; prints the worst tensor.

    A gradient that is zero in exact arithmetic (the key bias: softmax ignores a per-row
    shift) is rounding noise in both libraries, so the scale has a floor of 1e-3 x the
    largest gradient of the model."""
    assert set(got) == set(want), f"{tag}: names differ: {sorted(set(got) ^ set(want))[:5]}"
    worst, worst_name = 0.0, ""
    floor = 1e-3 * max(float(np.abs(w).max()) for w in want.values())
    for n, w in want.items():
        g = got[n]
        assert g is not None, f"{tag}: {n} has no gradient"
        assert g.shape == w.shape, f"{tag}: {n} shape {g.shape} vs {w.shape}"
        scale = max(float(np.abs(w).max()), floor)
        err = float(np.abs(g - w).max()) / scale
        if err > worst:
            worst, worst_name = err, n
        assert err <= rtol, f"{tag}: {n}: max err {err:.3g} of max|grad| {scale:.3g} (rtol {rtol:g})"
    print(f"{tag}: {len(want)} tensors, worst {worst_name} rel err {worst:.3g} (rtol {rtol:g})", file=sys.stderr)
    return worst
