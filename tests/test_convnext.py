"""ConvNeXt parity: transformers ConvNextForImageClassification checkpoints, and the same
weights rewritten in timm's layout (timm does not import here: torchvision has no CPU build),
for the exact convnext_femto architecture and other sizes."""
import json

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import save_file

import visionc
from helpers import assert_close
from tolerances import BATCH_INVARIANCE_ATOL, HIDDEN_ATOL, HIDDEN_RTOL, LOGITS_ATOL

torch.set_num_threads(2)

# convnext_femto.d1_in1k (../shared/reference/model-facts.md): depths (2,2,6,2), dims (48,96,192,384),
# LayerNorm eps 1e-6 everywhere including the head norm, 1000 classes.
FEMTO = dict(depths=[2, 2, 6, 2], hidden_sizes=[48, 96, 192, 384], layer_norm_eps=1e-6, num_labels=1000)
CONFIGS = {
    "femto": FEMTO,
    "atto-3stage-k5": dict(depths=[1, 2, 1], hidden_sizes=[40, 80, 160], num_stages=3, layer_norm_eps=1e-6,
                           num_labels=7),
    "tiny-no-layerscale": dict(depths=[1, 1, 2, 1], hidden_sizes=[32, 64, 96, 128], layer_scale_init_value=0.0,
                               num_labels=3),
}

TIMM_CFG = {"architecture": "convnext_femto", "num_classes": 1000, "num_features": 384,
            "pretrained_cfg": {"tag": "d1_in1k", "input_size": [3, 224, 224], "test_input_size": [3, 288, 288],
                               "interpolation": "bicubic", "crop_pct": 0.875, "test_crop_pct": 0.95,
                               "crop_mode": "center", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                               "num_classes": 1000, "pool_size": [7, 7], "first_conv": "stem.0",
                               "classifier": "head.fc"}}


def _reference(cfg, seed=0):
    torch.manual_seed(seed)
    model = transformers.ConvNextForImageClassification(transformers.ConvNextConfig(**cfg)).eval()
    with torch.no_grad():  # non-trivial layer scales and biases (defaults are 1e-6 and 0)
        for name, p in model.named_parameters():
            if name.endswith("layer_scale_parameter"):
                p.uniform_(0.2, 1.0)
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
    return model


def to_timm_layout(model) -> dict:
    """transformers ConvNext -> timm ConvNeXt keys, MLPs as 1x1 convs (conv_mlp, as femto stores them)."""
    out = {}
    for k, v in model.state_dict().items():
        v = v.numpy()
        k = k.replace("convnext.layernorm.", "head.norm.")
        k = k.replace("convnext.embeddings.patch_embeddings.", "stem.0.").replace("convnext.embeddings.layernorm.",
                                                                                  "stem.1.")
        k = k.replace("convnext.encoder.stages.", "stages.").replace(".downsampling_layer.", ".downsample.")
        k = k.replace(".layers.", ".blocks.").replace(".dwconv.", ".conv_dw.").replace(".layernorm.", ".norm.")
        k = k.replace(".layer_scale_parameter", ".gamma")
        k = k.replace("classifier.", "head.fc.")
        if ".pwconv" in k:
            k = k.replace(".pwconv1.", ".mlp.fc1.").replace(".pwconv2.", ".mlp.fc2.")
            if k.endswith("weight"):
                v = v[:, :, None, None]
        out[k] = np.ascontiguousarray(v)
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    made = {}

    def get(name, layout="transformers"):
        if (name, layout) not in made:
            ref = _reference(CONFIGS[name])
            path = tmp_path_factory.mktemp(f"cnx-{name}-{layout}")
            if layout == "transformers":
                ref.save_pretrained(path)
            elif layout == "bin":
                ref.config.save_pretrained(path)
                torch.save(ref.state_dict(), path / "pytorch_model.bin")
            else:
                save_file(to_timm_layout(ref), str(path / "model.safetensors"))
                cfg = dict(TIMM_CFG, num_classes=CONFIGS[name]["num_labels"])
                (path / "config.json").write_text(json.dumps(cfg))
            made[(name, layout)] = (ref, path)
        return made[(name, layout)]

    return get


def _px(batch, size=224, seed=0):
    return np.random.RandomState(seed).randn(batch, 3, size, size).astype(np.float32)


@pytest.mark.parametrize("name,layout,batch,size", [
    ("femto", "transformers", 1, 224), ("femto", "transformers", 8, 224), ("femto", "timm", 1, 224),
    ("femto", "timm", 8, 224), ("femto", "timm", 2, 288), ("femto", "bin", 2, 224),
    ("atto-3stage-k5", "transformers", 3, 100), ("tiny-no-layerscale", "transformers", 2, 67),
])
def test_logits_and_stage_maps(checkpoints, name, layout, batch, size):
    ref, path = checkpoints(name, layout)
    model = visionc.AutoModelForImageClassification.from_pretrained(path)
    assert type(model).__name__ == "ConvNextForImageClassification"
    assert model.source_format == ("timm" if layout == "timm" else "transformers")
    px = _px(batch, size)
    out = model(px, output_hidden_states=True)
    with torch.inference_mode():
        r = ref(torch.from_numpy(px), output_hidden_states=True)
    assert_close(f"{name}/{layout} b{batch} {size}px logits", out.logits, r.logits.numpy(), LOGITS_ATOL)
    assert len(out.hidden_states) == len(r.hidden_states)
    for i, (a, b) in enumerate(zip(out.hidden_states, r.hidden_states)):
        assert_close(f"hidden_states[{i}]", a, b.numpy(), HIDDEN_ATOL, HIDDEN_RTOL)


def test_base_model_pooler(checkpoints):
    ref, path = checkpoints("femto")
    model = visionc.AutoModel.from_pretrained(path)
    px = _px(2, seed=4)
    out = model(px)
    with torch.inference_mode():
        r = ref.convnext(torch.from_numpy(px))
    assert_close("last_hidden_state", out.last_hidden_state, r.last_hidden_state.numpy(), HIDDEN_ATOL, HIDDEN_RTOL)
    assert_close("pooler_output", out.pooler_output, r.pooler_output.numpy(), HIDDEN_ATOL)
    assert_close("embed", model.embed(px), r.pooler_output.numpy(), HIDDEN_ATOL)


def test_backbone_features_like_features_only(checkpoints):
    ref, path = checkpoints("femto", "timm")
    bb = visionc.AutoBackbone.from_pretrained(path, out_indices=(0, 1, 2, 3))
    px = _px(2, seed=5)
    feats = bb(px)
    assert [f.shape for f in feats] == [(2, 48, 56, 56), (2, 96, 28, 28), (2, 192, 14, 14), (2, 384, 7, 7)]
    with torch.inference_mode():
        r = ref(torch.from_numpy(px), output_hidden_states=True).hidden_states[1:]
    for i, (a, b) in enumerate(zip(feats, r)):
        assert_close(f"stage {i}", a, b.numpy(), HIDDEN_ATOL, HIDDEN_RTOL)
    some = visionc.AutoBackbone.from_pretrained(path, out_indices=(3, 1))(px)
    np.testing.assert_array_equal(some[0], feats[3])
    np.testing.assert_array_equal(some[1], feats[1])


def test_batch_invariance(checkpoints):
    _, path = checkpoints("femto", "timm")
    model = visionc.AutoModelForImageClassification.from_pretrained(path)
    px = _px(8, seed=6)
    together = model(px).logits
    for i in range(8):
        assert_close(f"image {i}", model(px[i:i + 1]).logits[0], together[i], BATCH_INVARIANCE_ATOL)


def test_shape_disagreeing_with_config_is_named(checkpoints, tmp_path):
    ref, path = checkpoints("femto")
    cfg = json.loads((path / "config.json").read_text())
    cfg["depths"] = [2, 2, 5, 2]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").symlink_to(path / "model.safetensors")
    with pytest.raises(ValueError, match="depths"):
        visionc.AutoModelForImageClassification.from_pretrained(tmp_path)


def test_bad_tensor_shape_is_named(checkpoints, tmp_path):
    ref, path = checkpoints("femto", "timm")
    from safetensors.numpy import load_file
    state = load_file(str(path / "model.safetensors"))
    state["stages.2.blocks.3.mlp.fc2.bias"] = np.zeros(191, np.float32)
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(ValueError, match=r"stages\.2\.blocks\.3\.mlp\.fc2\.bias"):
        visionc.AutoModelForImageClassification.from_pretrained(tmp_path)


def test_too_small_input(checkpoints):
    _, path = checkpoints("femto")
    model = visionc.AutoModelForImageClassification.from_pretrained(path)
    with pytest.raises(ValueError, match="too small"):
        model(_px(1, size=16))
