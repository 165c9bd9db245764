"""ViT parity with transformers on random-initialised checkpoints saved with save_pretrained."""
import threading

import numpy as np
import pytest
import torch
import transformers

import visionc
from helpers import assert_close
from tolerances import ATTN_ATOL, BATCH_INVARIANCE_ATOL, EMBED_ATOL, HIDDEN_ATOL, HIDDEN_RTOL, LOGITS_ATOL

torch.set_num_threads(2)

SMALL = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128, image_size=32,
             patch_size=8, initializer_range=0.1)
# The exact architecture fields of the served checkpoints (../shared/reference/model-facts.md).
VIT_B_224 = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 image_size=224, patch_size=16, qkv_bias=True, hidden_act="gelu", layer_norm_eps=1e-12)
VIT_L_384 = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                 image_size=384, patch_size=16, qkv_bias=True, hidden_act="gelu", layer_norm_eps=1e-12)

CONFIGS = {
    "small": dict(SMALL, num_labels=5),
    "small-no-qkv-bias-tanh": dict(SMALL, qkv_bias=False, hidden_act="gelu_new", num_labels=3, layer_norm_eps=1e-6),
    "odd-sizes": dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=80,
                      image_size=30, patch_size=6, num_channels=4, initializer_range=0.1, num_labels=7),
    "vit-base-patch16-224": dict(VIT_B_224, num_labels=1000),
    "vit-large-patch16-384": dict(VIT_L_384, num_labels=1000),
}


def _reference(kind: str, cfg: dict, seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.ViTConfig(**cfg)
    config._attn_implementation = "eager"  # so that attentions are returned
    cls = transformers.ViTForImageClassification if kind == "cls" else transformers.ViTModel
    return cls(config).eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    made = {}

    def get(name, kind="cls", safe=True):
        key = (name, kind, safe)
        if key not in made:
            ref = _reference(kind, CONFIGS[name])
            path = tmp_path_factory.mktemp(f"{name}-{kind}")
            ref.save_pretrained(path)
            if not safe:  # the .bin twin, written by torch.save as older transformers did
                (path / "model.safetensors").unlink()
                torch.save(ref.state_dict(), path / "pytorch_model.bin")
            made[key] = (ref, path)
        return made[key]

    return get


def _pixels(cfg, batch, seed=0, size=None):
    rng = np.random.RandomState(seed)
    h = w = size or cfg.get("image_size", 224)
    return rng.randn(batch, cfg.get("num_channels", 3), h, w).astype(np.float32)


def _run_ref(ref, px, **kw):
    with torch.inference_mode():
        return ref(torch.from_numpy(px), **kw)


@pytest.mark.parametrize("name,batch", [("small", 1), ("small", 8), ("small-no-qkv-bias-tanh", 3), ("odd-sizes", 2),
                                        ("vit-base-patch16-224", 1), ("vit-base-patch16-224", 8),
                                        ("vit-large-patch16-384", 1), ("vit-large-patch16-384", 8)])
def test_classifier_parity(checkpoints, name, batch):
    ref, path = checkpoints(name)
    model = visionc.AutoModelForImageClassification.from_pretrained(path)
    assert isinstance(model, visionc.ViTForImageClassification)
    px = _pixels(CONFIGS[name], batch)
    want_all = name.startswith("small") or name == "odd-sizes" or batch == 1
    out = model(px, output_hidden_states=want_all, output_attentions=want_all)
    r = _run_ref(ref, px, output_hidden_states=want_all, output_attentions=want_all)
    assert_close(f"{name} b{batch} logits", out.logits, r.logits.numpy(), LOGITS_ATOL)
    if want_all:
        assert len(out.hidden_states) == len(r.hidden_states) == CONFIGS[name]["num_hidden_layers"] + 1
        for i, (a, b) in enumerate(zip(out.hidden_states, r.hidden_states)):
            assert_close(f"{name} hidden_states[{i}]", a, b.numpy(), HIDDEN_ATOL, HIDDEN_RTOL)
        assert len(out.attentions) == len(r.attentions)
        for i, (a, b) in enumerate(zip(out.attentions, r.attentions)):
            assert_close(f"{name} attentions[{i}]", a, b.numpy(), ATTN_ATOL)


@pytest.mark.parametrize("name", ["small", "vit-base-patch16-224"])
def test_batch_invariance(checkpoints, name):
    _, path = checkpoints(name)
    model = visionc.ViTForImageClassification.from_pretrained(path)
    px = _pixels(CONFIGS[name], 8, seed=3)
    together = model(px).logits
    for i in range(8):
        alone = model(px[i:i + 1]).logits
        assert_close(f"{name} image {i} alone vs batch", alone[0], together[i], BATCH_INVARIANCE_ATOL)


def test_base_model_with_pooler_and_embeddings(checkpoints):
    ref, path = checkpoints("small", kind="base")
    model = visionc.AutoModel.from_pretrained(path)
    assert isinstance(model, visionc.ViTModel) and model.add_pooling_layer
    px = _pixels(CONFIGS["small"], 4, seed=1)
    out = model(px)
    r = _run_ref(ref, px)
    assert_close("last_hidden_state", out.last_hidden_state, r.last_hidden_state.numpy(), HIDDEN_ATOL, HIDDEN_RTOL)
    assert_close("pooler_output", out.pooler_output, r.pooler_output.numpy(), HIDDEN_ATOL)
    last = r.last_hidden_state.numpy()
    cls = last[:, 0] / np.linalg.norm(last[:, 0], axis=1, keepdims=True)
    assert_close("embed cls normalized", model.embed(px, pooling="cls", normalize=True), cls, EMBED_ATOL)
    assert_close("embed mean", model.embed(px, pooling="mean"), last[:, 1:].mean(1), HIDDEN_ATOL)
    assert_close("embed pooler", model.embed(px, pooling="pooler"), r.pooler_output.numpy(), HIDDEN_ATOL)
    norms = np.linalg.norm(model.embed(px, pooling="mean", normalize=True), axis=1)
    assert_close("unit norms", norms, np.ones(4), 1e-6)


def test_classifier_checkpoint_as_base_model(checkpoints):
    """A ViTForImageClassification checkpoint ("vit." prefix, no pooler) loads as ViTModel."""
    ref, path = checkpoints("small")
    model = visionc.AutoModel.from_pretrained(path)
    assert not model.add_pooling_layer
    px = _pixels(CONFIGS["small"], 2)
    r = _run_ref(ref.vit, px)
    assert_close("last_hidden_state", model(px).last_hidden_state, r.last_hidden_state.numpy(), HIDDEN_ATOL,
                 HIDDEN_RTOL)
    with pytest.raises(ValueError, match="pooler"):
        model.embed(px, pooling="pooler")


@pytest.mark.parametrize("size", [(48, 48), (40, 56), (16, 24), (35, 33)])
def test_interpolate_pos_encoding(checkpoints, size):
    ref, path = checkpoints("small")
    model = visionc.ViTForImageClassification.from_pretrained(path)
    rng = np.random.RandomState(5)
    px = rng.randn(2, 3, *size).astype(np.float32)
    out = model(px, interpolate_pos_encoding=True, output_hidden_states=True)
    r = _run_ref(ref, px, interpolate_pos_encoding=True, output_hidden_states=True)
    assert_close(f"interpolated {size} logits", out.logits, r.logits.numpy(), LOGITS_ATOL)
    assert_close(f"interpolated {size} embeddings", out.hidden_states[0], r.hidden_states[0].numpy(), HIDDEN_ATOL)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(px)


def test_bin_and_safetensors_twins_agree(checkpoints):
    _, st_path = checkpoints("small", safe=True)
    _, bin_path = checkpoints("small", safe=False)
    assert (bin_path / "pytorch_model.bin").exists()
    px = _pixels(CONFIGS["small"], 2)
    a = visionc.ViTForImageClassification.from_pretrained(st_path)(px).logits
    b = visionc.ViTForImageClassification.from_pretrained(bin_path)(px).logits
    np.testing.assert_array_equal(a, b)


def test_two_threads_share_one_model(checkpoints):
    ref, path = checkpoints("small")
    model = visionc.ViTForImageClassification.from_pretrained(path)
    inputs = [_pixels(CONFIGS["small"], b, seed=10 + b) for b in (1, 5)]
    want = [_run_ref(ref, px).logits.numpy() for px in inputs]
    errors, results = [], {}

    def work(i):
        try:
            for _ in range(20):
                results[i] = model(inputs[i]).logits
                assert_close(f"thread {i}", results[i], want[i], LOGITS_ATOL)
        except Exception as e:  # collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert set(results) == {0, 1}


def test_parameters_share_memory_with_the_model(checkpoints):
    _, path = checkpoints("small")
    model = visionc.ViTForImageClassification.from_pretrained(path)
    names = [n for n, _ in model.named_parameters()]
    assert "vit.embeddings.cls_token" in names and "classifier.weight" in names
    assert len(names) == len(set(names))
    px = _pixels(CONFIGS["small"], 1)
    before = model(px).logits.copy()
    params = dict(model.named_parameters())
    params["classifier.bias"][:] += 1.0  # written in place: the C core sees it at once
    assert_close("bias shift", model(px).logits, before + 1.0, 1e-5)


@pytest.mark.parametrize("bad,exc,msg", [
    (np.zeros((1, 3, 32, 32), np.float64), TypeError, "float32"),
    (np.zeros((3, 32, 32), np.float32), ValueError, "4 dimensions"),
    (np.zeros((1, 1, 32, 32), np.float32), ValueError, "channels"),
    (np.zeros((0, 3, 32, 32), np.float32), ValueError, "empty"),
    (np.full((1, 3, 32, 32), np.nan, np.float32), ValueError, "NaN"),
    (np.zeros((1, 3, 40, 32), np.float32), ValueError, "doesn't match"),
    ([[1.0]], TypeError, "array"),
    ("image.jpg", TypeError, "NumPy"),
])
def test_bad_pixel_values(checkpoints, bad, exc, msg):
    _, path = checkpoints("small")
    model = visionc.ViTForImageClassification.from_pretrained(path)
    with pytest.raises(exc, match=msg):
        model(bad)


def test_labels_give_a_loss_and_are_checked(checkpoints):
    ref, path = checkpoints("small")
    model = visionc.ViTForImageClassification.from_pretrained(path)
    px = _pixels(CONFIGS["small"], 3)
    labels = np.array([0, 4, 2])
    want = _run_ref(ref, px, labels=torch.from_numpy(labels)).loss.item()
    assert abs(model(px, labels=labels).loss - want) < 1e-5
    with pytest.raises(ValueError, match="labels"):
        model(px, labels=np.array([0, 5, 1]))


def test_checkpoint_shape_disagrees_with_config(checkpoints, tmp_path):
    import json
    import shutil
    _, path = checkpoints("small")
    shutil.copytree(path, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["intermediate_size"] = 96
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"intermediate_size is 96.*intermediate\.dense\.weight"):
        visionc.ViTForImageClassification.from_pretrained(tmp_path / "m")


def test_missing_tensor_is_named(checkpoints, tmp_path):
    from safetensors.numpy import load_file, save_file
    _, path = checkpoints("small")
    state = load_file(path / "model.safetensors")
    del state["vit.encoder.layer.1.output.dense.bias"]
    (tmp_path / "m").mkdir()
    save_file(state, tmp_path / "m" / "model.safetensors")
    (tmp_path / "m" / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.output\.dense\.bias"):
        visionc.ViTForImageClassification.from_pretrained(tmp_path / "m")


def test_c_core_checks_bound_tensors(checkpoints):
    """The C core validates dtype, shape and layout of every tensor it is given (vc_tensor)."""
    _, path = checkpoints("small")
    model = visionc.ViTForImageClassification.from_pretrained(path)
    name, shape = model._c.param_specs()[0]
    with pytest.raises(TypeError, match="float32"):
        model._c.bind(0, np.zeros(shape, np.float64))
    with pytest.raises(ValueError, match=r"expected shape"):
        model._c.bind(0, np.zeros((2,) + tuple(shape), np.float32))
    strided = np.zeros(tuple(shape[:-1]) + (shape[-1] * 2,), np.float32)[..., ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        model._c.bind(0, strided)
    with pytest.raises(IndexError):
        model._c.bind(10_000, np.zeros(shape, np.float32))


def test_loading_at_another_image_size_resamples_position_embeddings():
    """from_pretrained(..., image_size=112) equals transformers' interpolate_pos_encoding at 112."""
    d = visionc.hub.default_model_dir()
    model = visionc.AutoModelForImageClassification.from_pretrained(d, image_size=112)
    assert model.config.image_size == 112
    assert dict(model.named_parameters())["vit.embeddings.position_embeddings"].shape == (1, 50, 192)
    ref = transformers.ViTForImageClassification.from_pretrained(d).eval()
    px = np.random.RandomState(0).randn(2, 3, 112, 112).astype(np.float32)
    want = _run_ref(ref, px, interpolate_pos_encoding=True).logits.numpy()
    # bicubic weights in float64 here vs float32 in torch: a few 1e-6 on the embeddings
    assert_close("image_size=112 logits", model(px).logits, want, LOGITS_ATOL)
