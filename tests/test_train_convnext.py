"""ConvNeXt training parity with PyTorch autograd (transformers and timm layouts): gradients,
loss, AdamW steps, checkpointing, freezing, drop-path seeding, save_pretrained round trip."""
import json
import sys

import numpy as np
import pytest
import torch
import transformers

import visionc
from visionc.models.convnext import hf_to_timm
from helpers import assert_close
from tolerances import LOGITS_ATOL
from train_helpers import LOSS_RTOL, STEP_LOSS_RTOL, compare_grads, convnext_ref

torch.set_num_threads(2)

CFG = dict(num_stages=3, depths=[1, 2, 1], hidden_sizes=[8, 16, 24], image_size=32, num_labels=4,
           layer_norm_eps=1e-6, initializer_range=0.1)
B = 3


def _ref(seed=0, **over):
    return convnext_ref(dict(CFG, **over), seed)


def _batch(seed=0, n=B):
    rng = np.random.RandomState(seed)
    return rng.randn(n, 3, 32, 32).astype(np.float32), rng.randint(0, CFG["num_labels"], n).astype(np.int64)


def _torch_grads(ref, px, lab, label_smoothing=0.0):
    ref.train()
    ref.zero_grad()
    logits = ref(torch.from_numpy(px)).logits
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(lab), label_smoothing=label_smoothing)
    loss.backward()
    return loss.item(), {n: p.grad.numpy().copy() for n, p in ref.named_parameters() if p.grad is not None}


def _grads(model):
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("convnext-hf")
    _ref().save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def timm_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("convnext-timm")
    state, _ = hf_to_timm({n: p.detach().numpy() for n, p in _ref().named_parameters()})
    visionc.io.save_state_dict(d / "model.safetensors", state)
    (d / "config.json").write_text(json.dumps({"architecture": "convnext_test", "num_classes": 4}))
    return d


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_grads_match_torch(hf_dir, label_smoothing):
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train()
    model.label_smoothing = label_smoothing
    px, lab = _batch()
    out = model(px, labels=lab)
    model.backward()
    want_loss, want = _torch_grads(_ref(), px, lab, label_smoothing)
    print(f"loss {out.loss:.8f} vs torch {want_loss:.8f}", file=sys.stderr)
    assert abs(out.loss - want_loss) <= LOSS_RTOL * abs(want_loss)
    compare_grads(f"convnext grads (label_smoothing {label_smoothing})", _grads(model), want)


def test_timm_layout_grads_and_save(timm_dir, tmp_path):
    model = visionc.AutoModelForImageClassification.from_pretrained(timm_dir).train()
    assert "stages.0.blocks.0.conv_dw.weight" in dict(model.named_parameters())
    px, lab = _batch(1)
    out = model(px, labels=lab)
    model.backward()
    want_loss, want = _torch_grads(_ref(), px, lab)
    assert abs(out.loss - want_loss) <= LOSS_RTOL * abs(want_loss)
    compare_grads("convnext timm-layout grads", _grads(model), hf_to_timm(want)[0])
    model.eval()
    logits = model(px).logits
    model.save_pretrained(tmp_path)
    assert set(visionc.load_state_dict(tmp_path / "model.safetensors")) == set(dict(model.named_parameters()))
    again = visionc.AutoModelForImageClassification.from_pretrained(tmp_path)
    assert_close("convnext timm save -> reload logits", again(px).logits, logits, atol=1e-6)


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
        opt.step(), sched.step(), model.zero_grad()
        tloss = ref(torch.from_numpy(px), labels=torch.from_numpy(lab)).loss
        tloss.backward()
        topt.step(), tsched.step(), topt.zero_grad()
        rel = abs(loss - tloss.item()) / abs(tloss.item())
        worst = max(worst, rel)
        assert rel <= STEP_LOSS_RTOL, f"step {step}: loss {loss} vs torch {tloss.item()} (rel {rel:.3g})"
    print(f"convnext 20 AdamW+cosine steps: worst per-step loss rel diff {worst:.3g}", file=sys.stderr)


def test_checkpointing_and_drop_path(hf_dir):
    px, lab = _batch(2, n=4)
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train()
    model.config.drop_path_rate = 0.3
    runs = []
    for ckpt, seed in ((False, 5), (False, 5), (True, 5), (False, 6)):
        (model.gradient_checkpointing_enable if ckpt else model.gradient_checkpointing_disable)()
        model.zero_grad()
        model.seed(seed)
        loss = model(px, labels=lab).loss
        model.backward()
        runs.append((loss, {k: v.copy() for k, v in _grads(model).items()}, model.training_memory()))
    assert runs[0][0] == runs[1][0] and runs[0][0] == runs[2][0]
    compare_grads("convnext drop-path reproducible", runs[1][1], runs[0][1], rtol=0)
    compare_grads("convnext checkpointed vs kept", runs[2][1], runs[0][1], rtol=1e-6)
    full, ck = runs[0][2], runs[2][2]
    print(f"convnext training memory: {full} B kept, {ck} B checkpointed ({1 - ck / full:.0%} less)", file=sys.stderr)
    assert ck < full
    assert any(not np.array_equal(runs[3][1][k], runs[0][1][k]) for k in runs[0][1])


def test_freeze(hf_dir):
    px, lab = _batch(3)
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir).train()
    model.freeze(until="convnext.encoder.stages.1")
    ref = _ref()
    for n, p in ref.named_parameters():
        p.requires_grad = not n.startswith(("convnext.embeddings", "convnext.encoder.stages.0."))
    model(px, labels=lab)
    model.backward()
    _, want = _torch_grads(ref, px, lab)
    compare_grads("convnext frozen below stage 1", _grads(model), want)
    model.unfreeze()
    model.zero_grad(set_to_none=True)
    model.freeze(head_only=True)
    model(px, labels=lab)
    model.backward()
    assert set(_grads(model)) == {"classifier.weight", "classifier.bias"}


def test_new_head_save_roundtrip(hf_dir, tmp_path):
    model = visionc.AutoModelForImageClassification.from_pretrained(hf_dir, num_labels=7,
                                                                    ignore_mismatched_sizes=True).train()
    rng = np.random.RandomState(1)
    opt = visionc.optim.AdamW(model.parameters(), lr=1e-3)
    px = rng.randn(2, 3, 32, 32).astype(np.float32)
    model(px, labels=np.array([6, 0]))
    model.backward()
    opt.step()
    model.eval()
    logits = model(px).logits
    model.save_pretrained(tmp_path)
    ref = transformers.ConvNextForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        want = ref(torch.from_numpy(px)).logits.numpy()
    assert_close("convnext save_pretrained -> transformers logits", logits, want, atol=LOGITS_ATOL)
    model.train()
    with pytest.raises(ValueError, match="label 7"):
        model(px, labels=np.array([7, 0]))
