"""ViT training parity with PyTorch autograd: gradients, loss, AdamW steps, checkpointing,
freezing, dropout seeding, save_pretrained round trips (transformers and timm layouts)."""
import json
import sys

import numpy as np
import pytest
import torch
import transformers

import visionc
from helpers import assert_close
from tolerances import LOGITS_ATOL
from train_helpers import LOSS_RTOL, STEP_LOSS_RTOL, compare_grads, vit_ckpt_name, vit_timm_state

torch.set_num_threads(2)

CFG = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=16,
           patch_size=4, initializer_range=0.1, num_labels=5, layer_norm_eps=1e-6)
B = 4


def _ref(seed=0, **over):
    torch.manual_seed(seed)
    return transformers.ViTForImageClassification(transformers.ViTConfig(**dict(CFG, **over)))


def _batch(seed=0, n=B):
    rng = np.random.RandomState(seed)
    return rng.randn(n, 3, 16, 16).astype(np.float32), rng.randint(0, CFG["num_labels"], n).astype(np.int64)


def _torch_grads(ref, px, lab, label_smoothing=0.0):
    ref.train()
    ref.zero_grad()
    logits = ref(torch.from_numpy(px)).logits
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(lab), label_smoothing=label_smoothing)
    loss.backward()
    return loss.item(), {vit_ckpt_name(n): p.grad.numpy().copy() for n, p in ref.named_parameters()
                         if p.grad is not None}


def _grads(model):
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("vit-hf")
    _ref().save_pretrained(d)
    (d / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "ViTImageProcessor",
                                                             "size": {"height": 16, "width": 16}}))
    return d


def _timm_grads(torch_grads):
    """torch gradients (checkpoint names) under timm names, qkv fused as timm stores it."""
    g = {n[4:] if n.startswith("vit.") else n: v for n, v in torch_grads.items()}
    fake = {}
    for k, v in g.items():
        fake[k] = v
    out = {}
    for i in range(CFG["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{kind}"] = np.concatenate(
                [g[f"{p}attention.attention.{x}.{kind}"] for x in ("query", "key", "value")])
            for a, b in (("norm1", "layernorm_before"), ("attn.proj", "attention.output.dense"),
                         ("norm2", "layernorm_after"), ("mlp.fc1", "intermediate.dense"),
                         ("mlp.fc2", "output.dense")):
                out[f"blocks.{i}.{a}.{kind}"] = g[f"{p}{b}.{kind}"]
    out.update({"cls_token": g["embeddings.cls_token"], "pos_embed": g["embeddings.position_embeddings"],
                "patch_embed.proj.weight": g["embeddings.patch_embeddings.projection.weight"],
                "patch_embed.proj.bias": g["embeddings.patch_embeddings.projection.bias"],
                "norm.weight": g["layernorm.weight"], "norm.bias": g["layernorm.bias"],
                "head.weight": g["classifier.weight"], "head.bias": g["classifier.bias"]})
    return out


@pytest.fixture(scope="module")
def timm_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("vit-timm")
    visionc.io.save_state_dict(d / "model.safetensors", vit_timm_state(_ref(), CFG["num_hidden_layers"]))
    (d / "config.json").write_text(json.dumps({"architecture": "vit_tiny_patch4_16", "num_classes": 5}))
    return d


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_grads_match_torch(hf_dir, label_smoothing):
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train()
    model.label_smoothing = label_smoothing
    px, lab = _batch()
    out = model(px, labels=lab)
    model.backward()
    want_loss, want = _torch_grads(_ref(), px, lab, label_smoothing)
    assert abs(out.loss - want_loss) <= LOSS_RTOL * abs(want_loss), (out.loss, want_loss)
    print(f"loss {out.loss:.8f} vs torch {want_loss:.8f}", file=sys.stderr)
    compare_grads(f"vit grads (label_smoothing {label_smoothing})", _grads(model), want)
    # a second backward of one forward is refused; a second forward+backward accumulates
    with pytest.raises(RuntimeError):
        model.backward()
    model(px, labels=lab)
    model.backward()
    compare_grads("vit grads accumulated twice", _grads(model), {k: 2 * v for k, v in want.items()})


def test_timm_layout_grads_and_save(timm_dir, tmp_path):
    model = visionc.AutoModelForImageClassification.from_pretrained(timm_dir).train()
    names = [n for n, _ in model.named_parameters()]
    assert "blocks.0.attn.qkv.weight" in names and not any(n.startswith("encoder.") for n in names)
    qkv = dict(model.named_parameters())["blocks.0.attn.qkv.weight"]
    assert qkv.shape == (3 * CFG["hidden_size"], CFG["hidden_size"])
    px, lab = _batch(1)
    out = model(px, labels=lab)
    model.backward()
    want_loss, want = _torch_grads(_ref(), px, lab)
    assert abs(out.loss - want_loss) <= LOSS_RTOL * abs(want_loss)
    compare_grads("vit timm-layout grads (fused qkv)", _grads(model), _timm_grads(want))
    # an optimizer step updates the fused array the C core reads through its q/k/v views
    visionc.optim.SGD(model.parameters(), lr=0.5).step()
    model.eval()
    logits = model(px).logits
    model.save_pretrained(tmp_path)
    saved = visionc.load_state_dict(tmp_path / "model.safetensors")
    assert set(saved) == set(vit_timm_state(_ref(), CFG["num_hidden_layers"]))
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["architecture"] == "vit_tiny_patch4_16" and cfg["num_classes"] == 5
    again = visionc.AutoModelForImageClassification.from_pretrained(tmp_path)
    assert_close("timm save -> reload logits", again(px).logits, logits, atol=1e-6)


def test_adamw_cosine_20_steps(hf_dir):
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train()
    ref = _ref().train()
    opt = visionc.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    sched = visionc.optim.cosine_with_warmup(opt, warmup_steps=3, total_steps=20)
    topt = torch.optim.AdamW(ref.parameters(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    tsched = transformers.get_cosine_schedule_with_warmup(topt, 3, 20)
    worst = 0.0
    for step in range(20):
        px, lab = _batch(100 + step)
        loss = model(px, labels=lab).loss
        model.backward()
        opt.step()
        sched.step()
        model.zero_grad()
        tloss = ref(torch.from_numpy(px), labels=torch.from_numpy(lab)).loss
        tloss.backward()
        topt.step()
        tsched.step()
        topt.zero_grad()
        rel = abs(loss - tloss.item()) / abs(tloss.item())
        worst = max(worst, rel)
        assert rel <= STEP_LOSS_RTOL, f"step {step}: loss {loss} vs torch {tloss.item()} (rel {rel:.3g})"
    print(f"20 AdamW+cosine steps: worst per-step loss rel diff {worst:.3g} (final {loss:.6f})", file=sys.stderr)


def test_gradient_checkpointing(hf_dir):
    px, lab = _batch(2, n=8)
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train()
    model.config.hidden_dropout_prob = 0.1  # masks must regenerate identically in the recompute
    model.seed(7)
    loss = model(px, labels=lab).loss
    model.backward()
    full_mem = model.training_memory()
    base = {k: v.copy() for k, v in _grads(model).items()}
    model.zero_grad()
    model.gradient_checkpointing_enable()
    model.seed(7)
    loss2 = model(px, labels=lab).loss
    model.backward()
    ckpt_mem = model.training_memory()
    assert loss2 == loss
    compare_grads("checkpointed vs kept activations", _grads(model), base, rtol=1e-6)
    saving = 1 - ckpt_mem / full_mem
    print(f"training activation memory: {full_mem} B kept, {ckpt_mem} B checkpointed ({saving:.0%} less)",
          file=sys.stderr)
    assert ckpt_mem < 0.8 * full_mem


def test_freeze(hf_dir):
    px, lab = _batch(3)
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train()
    model.freeze(until="vit.encoder.layer.1")
    ref = _ref()
    for n, p in ref.named_parameters():
        name = vit_ckpt_name(n)
        p.requires_grad = not (name.startswith("vit.embeddings") or name.startswith("vit.encoder.layer.0."))
    model(px, labels=lab)
    model.backward()
    _, want = _torch_grads(ref, px, lab)
    got = _grads(model)
    assert not any(n.startswith(("vit.embeddings", "vit.encoder.layer.0.")) for n in got)
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    compare_grads("vit frozen below layer 1", got, want)

    model.unfreeze()
    model.zero_grad(set_to_none=True)
    model.freeze(head_only=True)
    model(px, labels=lab)
    model.backward()
    assert set(_grads(model)) == {"classifier.weight", "classifier.bias"}
    model.unfreeze()
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="no parameter"):
        model.freeze(until="nope.")


def test_dropout_seeded(hf_dir):
    px, lab = _batch(4)
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train()
    clean = model(px, labels=lab).loss
    model.config.hidden_dropout_prob = 0.2
    runs = []
    for seed in (3, 3, 4):
        model.zero_grad()
        model.seed(seed)
        loss = model(px, labels=lab).loss
        model.backward()
        runs.append((loss, model.named_parameters()[0][1].grad.copy()))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0] and runs[0][0] != clean
    model.eval()  # no dropout in eval mode: the clean loss again
    assert abs(model(px, labels=lab).loss - clean) < 1e-5


def test_save_pretrained_new_head_roundtrip(hf_dir, tmp_path):
    id2label = {i: f"c{i}" for i in range(10)}
    with pytest.raises(ValueError, match="classifier.weight"):
        visionc.AutoModelForImageClassification.from_pretrained(hf_dir, num_labels=10, id2label=id2label)
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir, num_labels=10, id2label=id2label,
                                                                    ignore_mismatched_sizes=True)
    w = dict(model.named_parameters())["classifier.weight"]
    assert w.shape == (10, CFG["hidden_size"]) and abs(float(w.std()) - CFG["initializer_range"]) < 0.02
    assert not dict(model.named_parameters())["classifier.bias"].any()
    model.train()
    opt = visionc.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.RandomState(5)
    for _ in range(2):
        px = rng.randn(B, 3, 16, 16).astype(np.float32)
        model(px, labels=rng.randint(0, 10, B))
        model.backward()
        opt.step()
        model.zero_grad()
    model.eval()
    px = rng.randn(2, 3, 16, 16).astype(np.float32)
    logits = model(px).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "preprocessor_config.json").exists()
    ref = transformers.ViTForImageClassification.from_pretrained(tmp_path).eval()
    assert ref.config.id2label[3] == "c3"
    with torch.no_grad():
        want = ref(torch.from_numpy(px)).logits.numpy()
    assert_close("save_pretrained -> transformers logits", logits, want, atol=LOGITS_ATOL)


def test_label_errors(hf_dir):
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train()
    px, lab = _batch()
    lab[2] = 5
    with pytest.raises(ValueError, match="label 5"):
        model(px, labels=lab)
    with pytest.raises(RuntimeError, match="backward"):
        model.backward()
    lab[2] = -1
    with pytest.raises(ValueError, match="label -1"):
        model(px, labels=lab)
