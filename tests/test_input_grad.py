"""Input gradients (saliency, attribution, adversarial examples): model.backward(grad_logits=g,
input_grad=True) against torch autograd on every family that trains (ViT in transformers' and
timm's layouts, ConvNeXt in both, MobileViT), in eval mode (grad enabled: no dropout, BatchNorm
on running statistics left untouched), in train mode, from a loss or from a logits gradient,
frozen, checkpointed, in bf16; and what an eval forward without grad enabled keeps (nothing)."""
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

import visionc
from visionc.models.convnext import hf_to_timm
from train_helpers import GRAD_RTOL, LOSS_RTOL, compare_grads, convnext_ref, vit_ckpt_name, vit_timm_state

torch.set_num_threads(2)
B = 3
VIT = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=16,
           patch_size=4, initializer_range=0.1, num_labels=5, layer_norm_eps=1e-6)
CONVNEXT = dict(num_stages=3, depths=[1, 2, 1], hidden_sizes=[8, 16, 24], image_size=32, num_labels=4,
                layer_norm_eps=1e-6, initializer_range=0.1)
MOBILEVIT = dict(hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], num_attention_heads=2,
                 expand_ratio=2.0, image_size=64, num_labels=4, hidden_dropout_prob=0.0, classifier_dropout_prob=0.0)


def vit_ref():
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(transformers.ViTConfig(**VIT))


def mobilevit_ref():
    torch.manual_seed(0)
    ref = transformers.MobileViTForImageClassification(transformers.MobileViTConfig(**MOBILEVIT))
    with torch.no_grad():  # non-trivial BatchNorm affine and running statistics
        for mod in ref.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    return ref


@dataclass
class Family:
    make_ref: object       # () -> a torch model with the weights saved in `dir`
    size: int              # input height = width
    labels: int
    torch_name: object     # torch parameter name -> visionc name (None: parameter gradients not compared)
    layout: str = "hf"


FAMILIES = {
    "vit-hf": Family(vit_ref, 16, VIT["num_labels"], vit_ckpt_name),
    "vit-timm": Family(vit_ref, 16, VIT["num_labels"], None, "timm"),
    "convnext-hf": Family(lambda: convnext_ref(CONVNEXT), 32, CONVNEXT["num_labels"], lambda n: n),
    "convnext-timm": Family(lambda: convnext_ref(CONVNEXT), 32, CONVNEXT["num_labels"], None, "timm"),
    "mobilevit": Family(mobilevit_ref, 64, MOBILEVIT["num_labels"], lambda n: n),
    "mobilevit-odd": Family(mobilevit_ref, 72, MOBILEVIT["num_labels"], lambda n: n),  # resized MobileViT blocks
}
WORST: dict = {}  # family -> worst dx relative error seen (printed at the end of the module)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """One checkpoint directory per family key, saved from its torch reference."""
    out = {}
    for key, fam in FAMILIES.items():
        d = tmp_path_factory.mktemp(key)
        ref = fam.make_ref()
        if fam.layout == "hf":
            ref.save_pretrained(d)
        elif key.startswith("vit"):
            visionc.io.save_state_dict(d / "model.safetensors", vit_timm_state(ref, VIT["num_hidden_layers"]))
            (d / "config.json").write_text(json.dumps({"architecture": "vit_tiny_patch4_16", "num_classes": 5}))
        else:
            state, _ = hf_to_timm({n: p.detach().numpy() for n, p in ref.named_parameters()})
            visionc.io.save_state_dict(d / "model.safetensors", state)
            (d / "config.json").write_text(json.dumps({"architecture": "convnext_test", "num_classes": 4}))
        out[key] = d
    yield out
    print("worst input-gradient relative errors: " + ", ".join(f"{k} {v:.3g}" for k, v in WORST.items()),
          file=sys.stderr)


def load(dirs, key):
    return visionc.AutoModelForImageClassification.from_pretrained(dirs[key])


def batch(key, seed=0):
    rng = np.random.RandomState(seed)
    fam = FAMILIES[key]
    px = rng.randn(B, 3, fam.size, fam.size).astype(np.float32)
    return px, rng.randint(0, fam.labels, B).astype(np.int64), rng.randn(B, fam.labels).astype(np.float32)


def torch_grads(ref, px, train, labels=None, g=None):
    """(logits, objective, d objective / d px, {torch name: parameter gradient}) of torch autograd."""
    ref.train(train)
    ref.zero_grad()
    x = torch.from_numpy(px.copy()).requires_grad_(True)
    logits = ref(pixel_values=x).logits
    if g is not None:
        obj = (logits * torch.from_numpy(g)).sum()
    else:
        obj = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
    obj.backward()
    grads = {n: p.grad.numpy().copy() for n, p in ref.named_parameters() if p.grad is not None}
    return logits.detach().numpy(), obj.item(), x.grad.numpy(), grads


def rel_err(got, want) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def check_dx(tag, key, dx, want, rtol=GRAD_RTOL):
    assert dx is not None and dx.dtype == np.float32 and dx.shape == want.shape, (tag, None if dx is None else dx.shape)
    err = rel_err(dx, want)
    if rtol == GRAD_RTOL:  # fp32 runs
        WORST[key] = max(WORST.get(key, 0.0), err)
    print(f"{tag}: dx max|err|/max|dx| {err:.3g} (rtol {rtol:g})", file=sys.stderr)
    assert err <= rtol, f"{tag}: input gradient relative error {err:.3g} > {rtol:g}"


def check_params(tag, key, model, want):
    conv = FAMILIES[key].torch_name
    if conv is not None:
        got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        compare_grads(tag, got, {conv(n): v for n, v in want.items()})


def buffers(model):
    return {n: b.copy() for n, b in getattr(model, "named_buffers", lambda: [])()}


@pytest.mark.parametrize("key", FAMILIES)
def test_eval_logits_gradient_matches_torch(dirs, key):
    """d sum(logits * g) / d px and / d p in eval mode; parameters and running statistics untouched."""
    model = load(dirs, key).eval().set_grad_enabled()
    px, _, g = batch(key)
    before = {n: p.copy() for n, p in model.named_parameters()}
    stats = buffers(model)
    out = model(px)
    assert out.loss is None
    dx = model.backward(grad_logits=g, input_grad=True)
    ref = FAMILIES[key].make_ref()
    logits, _, want_dx, want = torch_grads(ref, px, train=False, g=g)
    assert rel_err(out.logits, logits) <= 1e-5
    check_dx(f"{key} eval grad_logits", key, dx, want_dx)
    check_params(f"{key} eval grad_logits params", key, model, want)
    assert all(np.array_equal(p, before[n]) for n, p in model.named_parameters())
    assert all(np.array_equal(b, stats[n]) for n, b in buffers(model).items()), "eval changed BatchNorm statistics"
    # the inference path (grad disabled) gives the same logits
    assert rel_err(model.set_grad_enabled(False)(px).logits, out.logits) <= 1e-5


@pytest.mark.parametrize("key", ["vit-hf", "convnext-timm", "mobilevit"])
def test_eval_loss_gradient_matches_torch(dirs, key):
    """With labels and no grad_logits: d loss / d px (and the loss) in eval mode."""
    model = load(dirs, key).eval().set_grad_enabled()
    px, lab, _ = batch(key, 1)
    out = model(px, labels=lab)
    dx = model.backward(input_grad=True)
    _, loss, want_dx, want = torch_grads(FAMILIES[key].make_ref(), px, train=False, labels=lab)
    assert abs(out.loss - loss) <= LOSS_RTOL * abs(loss), (out.loss, loss)
    check_dx(f"{key} eval loss", key, dx, want_dx)
    check_params(f"{key} eval loss params", key, model, want)


@pytest.mark.parametrize("objective", ["loss", "grad_logits"])
@pytest.mark.parametrize("key", ["vit-hf", "vit-timm", "convnext-hf", "mobilevit", "mobilevit-odd"])
def test_train_mode_matches_torch(dirs, key, objective):
    """Train mode (no dropout configured: deterministic; MobileViT's BatchNorm on batch
    statistics, as torch's train mode): dx returned and parameter gradients accumulated. A
    train-mode forward without labels is kept too, for a logits gradient."""
    model = load(dirs, key).train()
    px, lab, g = batch(key, 2)
    if objective == "loss":
        model(px, labels=lab)
        dx = model.backward(input_grad=True)
        _, _, want_dx, want = torch_grads(FAMILIES[key].make_ref(), px, train=True, labels=lab)
    else:
        model(px)
        dx = model.backward(grad_logits=g, input_grad=True)
        _, _, want_dx, want = torch_grads(FAMILIES[key].make_ref(), px, train=True, g=g)
    check_dx(f"{key} train {objective}", key, dx, want_dx)
    check_params(f"{key} train {objective} params", key, model, want)


@pytest.mark.parametrize("key", ["vit-timm", "convnext-hf", "mobilevit"])
def test_frozen_model_gives_dx_only(dirs, key):
    """Every parameter frozen: only dx is computed; no .grad appears, parameters and BatchNorm
    statistics (and num_batches_tracked) stay as they were."""
    model = load(dirs, key).eval().set_grad_enabled()
    model.freeze()
    px, _, g = batch(key, 3)
    before = {n: p.copy() for n, p in model.named_parameters()}
    stats = buffers(model)
    model(px)
    dx = model.backward(grad_logits=g, input_grad=True)
    _, _, want_dx, _ = torch_grads(FAMILIES[key].make_ref(), px, train=False, g=g)
    check_dx(f"{key} frozen", key, dx, want_dx)
    assert all(p.grad is None for p in model.parameters())
    assert all(np.array_equal(p, before[n]) for n, p in model.named_parameters())
    assert all(np.array_equal(b, stats[n]) for n, b in buffers(model).items())


@pytest.mark.parametrize("key", ["vit-hf", "convnext-timm", "mobilevit-odd"])
def test_checkpointing_gives_the_same_dx(dirs, key):
    """Gradient checkpointing recomputes each block in backward: the same input gradient, bit for bit."""
    px, _, g = batch(key, 4)
    dxs = []
    for ckpt in (False, True):
        model = load(dirs, key).eval().set_grad_enabled()
        model.freeze()
        if ckpt:
            model.gradient_checkpointing_enable()
        model(px)
        dxs.append(model.backward(grad_logits=g, input_grad=True))
    assert np.array_equal(dxs[0], dxs[1])
    _, _, want_dx, _ = torch_grads(FAMILIES[key].make_ref(), px, train=False, g=g)
    check_dx(f"{key} checkpointing", key, dxs[1], want_dx)


@pytest.mark.parametrize("key", ["vit-hf", "convnext-hf", "mobilevit"])
def test_bf16_input_grad_runs_and_is_close(dirs, key):
    """bf16 mixed precision (bf16 GEMMs, fp32 accumulation): dx is fp32 and near fp32's."""
    model = load(dirs, key).eval().set_grad_enabled().set_precision("bf16")
    px, _, g = batch(key, 5)
    model(px)
    dx = model.backward(grad_logits=g, input_grad=True)
    _, _, want_dx, _ = torch_grads(FAMILIES[key].make_ref(), px, train=False, g=g)
    check_dx(f"{key} bf16", key, dx, want_dx, rtol=3e-2)


@pytest.mark.parametrize("key", ["vit-hf", "convnext-hf", "mobilevit"])
def test_eval_forward_without_grad_keeps_nothing_and_backward_replays_it(dirs, key):
    """Plain inference (eval, grad disabled: the default) keeps no activations; the issue's own
    snippet `model.eval(); out = model(px); dx = model.backward(grad_logits=g, input_grad=True)`
    still works: backward re-runs that forward as a kept one, and gives torch's gradients."""
    model = load(dirs, key).eval()
    assert not model.grad_enabled
    px, lab, g = batch(key)
    stats = buffers(model)
    out = model(px)
    assert model.training_memory() == 0
    dx = model.backward(grad_logits=g, input_grad=True)
    logits, _, want_dx, want = torch_grads(FAMILIES[key].make_ref(), px, train=False, g=g)
    assert rel_err(out.logits, logits) <= 1e-5
    check_dx(f"{key} eval replayed grad_logits", key, dx, want_dx)
    check_params(f"{key} eval replayed params", key, model, want)
    assert all(np.array_equal(b, stats[n]) for n, b in buffers(model).items()), "eval changed BatchNorm statistics"
    with pytest.raises(RuntimeError, match="one backward"):
        model.backward(grad_logits=g)
    # with labels and no grad_logits: d loss / d px
    model.zero_grad()
    model(px, labels=lab)
    _, _, want_dx, _ = torch_grads(FAMILIES[key].make_ref(), px, train=False, labels=lab)
    check_dx(f"{key} eval replayed loss", key, model.backward(input_grad=True), want_dx)


def test_old_backward_and_accumulation(dirs):
    """backward() as before (train mode, labels, returns None); eval-mode gradients accumulate
    into p.grad across backwards as torch's do."""
    model = load(dirs, "vit-hf").train()
    px, lab, g = batch("vit-hf")
    model(px, labels=lab)
    assert model.backward() is None
    model.zero_grad()
    model.eval().set_grad_enabled()
    grads = []
    for _ in range(2):
        model(px)
        model.backward(grad_logits=g)
        grads.append(model.parameters()[-1].grad.copy())
    np.testing.assert_allclose(grads[1], 2 * grads[0], rtol=1e-6)


def test_bad_arguments(dirs):
    model = load(dirs, "convnext-hf").eval().set_grad_enabled()
    px, lab, g = batch("convnext-hf")
    model(px)
    with pytest.raises(ValueError, match=r"grad_logits must have the logits' shape \(3, 4\), got \(3, 5\)"):
        model.backward(grad_logits=np.zeros((B, 5), np.float32))
    with pytest.raises(ValueError, match="grad_logits must be a float32 array .* float64"):
        model.backward(grad_logits=g.astype(np.float64))
    with pytest.raises(ValueError, match="grad_logits must be a float32 array .* list"):
        model.backward(grad_logits=g.tolist())
    with pytest.raises(ValueError, match="no labels"):
        model.backward(input_grad=True)
    dx = model.backward(grad_logits=torch.from_numpy(g), input_grad=True)  # the bad calls did not use it up
    assert dx.shape == px.shape
    with pytest.raises(RuntimeError, match="one backward"):
        model.backward(grad_logits=g)
    with pytest.raises(NotImplementedError, match="loss and logits only"):
        model(px, output_hidden_states=True)
    # the C binding checks the arrays against the kept forward itself
    model(px, labels=lab)
    with pytest.raises(ValueError, match="batch of 4, the kept forward had 3"):
        model._c.backward(None, np.zeros((4, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="sized for 16x32 images"):
        model._c.backward(None, np.zeros((3, 3, 16, 32), np.float32))
    with pytest.raises(ValueError, match="grad_logits has 3 rows but input_grad a batch of 2"):
        model._c.backward(g, np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):
        model._c.backward(np.zeros((3, 2), np.float32), None)
    with pytest.raises(TypeError, match="input_grad must be a writeable"):
        model._c.backward(None, np.zeros((3, 3, 32, 32)))
    with pytest.raises(NotImplementedError, match="has no backward"):
        visionc.ConvNextModel.from_pretrained(dirs["convnext-hf"]).set_grad_enabled()


def test_saliency_example_highlights_the_cat(tmp_path):
    """examples/saliency.py on the bundled ViT-Ti and examples/images/chelsea.jpg: the top class
    is a cat; the SmoothGrad map peaks between the eyes and the face outweighs the blurred
    background at the right, where the raw gradient peaks (checked against torch on this photo)."""
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "examples"))
    try:
        import saliency
    finally:
        sys.path.pop(0)
    label, raw, smooth = saliency.saliency_map(root / "examples" / "images" / "chelsea.jpg", tmp_path / "s.png")
    assert "cat" in label.lower(), label
    assert (tmp_path / "s.png").stat().st_size > 10000
    h, w = smooth.shape
    face = smooth[int(.2 * h):int(.9 * h), int(.1 * w):int(.75 * w)].mean()
    background = smooth[int(.35 * h):, int(.82 * w):].mean()
    y, x = np.unravel_index(saliency.heatmap(smooth).argmax(), smooth.shape)
    print(f"saliency of {label}: SmoothGrad face / background {face / background:.2f}, peak at ({y}, {x})",
          file=sys.stderr)
    assert face > 1.4 * background
    assert .25 * h <= y <= .6 * h and .25 * w <= x <= .8 * w, (y, x)
