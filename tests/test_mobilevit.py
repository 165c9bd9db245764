"""MobileViT parity with transformers on random-initialised checkpoints of all three sizes,
with non-trivial BatchNorm statistics (folded into the convolutions at load)."""
import json

import numpy as np
import pytest
import torch
import transformers

import visionc
from helpers import assert_close
from tolerances import BATCH_INVARIANCE_ATOL, HIDDEN_ATOL, HIDDEN_RTOL, LOGITS_ATOL

torch.set_num_threads(2)

# The three released sizes (apple/mobilevit-{small,x-small,xx-small} configs).
SIZES = {
    "small": dict(hidden_sizes=[144, 192, 240], neck_hidden_sizes=[16, 32, 64, 96, 128, 160, 640]),
    "x-small": dict(hidden_sizes=[96, 120, 144], neck_hidden_sizes=[16, 32, 48, 64, 80, 96, 384]),
    "xx-small": dict(hidden_sizes=[64, 80, 96], neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320], expand_ratio=2.0),
}


def _reference(size, num_labels=1000, seed=0):
    torch.manual_seed(seed)
    model = transformers.MobileViTForImageClassification(
        transformers.MobileViTConfig(num_labels=num_labels, **SIZES[size])).eval()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    return model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    made = {}

    def get(size, fmt="safetensors"):
        if (size, fmt) not in made:
            ref = _reference(size)
            path = tmp_path_factory.mktemp(f"mvit-{size}-{fmt}")
            ref.save_pretrained(path)
            if fmt == "bin":  # the hub's apple/mobilevit-small has only pytorch_model.bin (with int64 counters)
                (path / "model.safetensors").unlink()
                torch.save(ref.state_dict(), path / "pytorch_model.bin")
            made[(size, fmt)] = (ref, path)
        return made[(size, fmt)]

    return get


def _px(batch, size=256, seed=0):
    return np.random.RandomState(seed).rand(batch, 3, size, size).astype(np.float32)


@pytest.mark.parametrize("size,fmt,batch,res", [
    ("small", "safetensors", 1, 256), ("small", "safetensors", 8, 256), ("small", "bin", 2, 256),
    ("x-small", "safetensors", 2, 256), ("xx-small", "safetensors", 2, 256),
    ("small", "safetensors", 2, 200),  # 25x25 map at layer 2: bilinear to 26x26 and back, as transformers does
    ("xx-small", "safetensors", 1, 97),
])
def test_logits_and_hidden_states(checkpoints, size, fmt, batch, res):
    ref, path = checkpoints(size, fmt)
    model = visionc.AutoModelForImageClassification.from_pretrained(path)
    assert type(model).__name__ == "MobileViTForImageClassification"
    px = _px(batch, res)
    out = model(px, output_hidden_states=True)
    with torch.inference_mode():
        r = ref(torch.from_numpy(px), output_hidden_states=True)
    assert_close(f"{size} b{batch} {res}px logits", out.logits, r.logits.numpy(), LOGITS_ATOL)
    assert len(out.hidden_states) == len(r.hidden_states) == 5
    for i, (a, b) in enumerate(zip(out.hidden_states, r.hidden_states)):
        assert_close(f"hidden_states[{i}]", a, b.numpy(), HIDDEN_ATOL, HIDDEN_RTOL)


def test_base_model_and_backbone(checkpoints):
    ref, path = checkpoints("small")
    base = visionc.AutoModel.from_pretrained(path)
    px = _px(2, seed=3)
    out = base(px)
    with torch.inference_mode():
        r = ref.mobilevit(torch.from_numpy(px), output_hidden_states=True)
    assert_close("last_hidden_state", out.last_hidden_state, r.last_hidden_state.numpy(), HIDDEN_ATOL, HIDDEN_RTOL)
    assert_close("pooler_output", out.pooler_output, r.pooler_output.numpy(), HIDDEN_ATOL)
    feats = visionc.AutoBackbone.from_pretrained(path, out_indices=(1, 2, 3, 4))(px)
    assert [f.shape for f in feats] == [(2, 64, 64, 64), (2, 96, 32, 32), (2, 128, 16, 16), (2, 160, 8, 8)]
    for i, (a, b) in enumerate(zip(feats, r.hidden_states[1:])):
        assert_close(f"feature map {i + 1}", a, b.numpy(), HIDDEN_ATOL, HIDDEN_RTOL)


def test_batch_invariance(checkpoints):
    _, path = checkpoints("small")
    model = visionc.AutoModelForImageClassification.from_pretrained(path)
    px = _px(8, seed=7)
    together = model(px).logits
    for i in range(8):
        assert_close(f"image {i}", model(px[i:i + 1]).logits[0], together[i], BATCH_INVARIANCE_ATOL)


def test_config_disagreeing_with_weights_names_the_tensor(checkpoints, tmp_path):
    _, path = checkpoints("small")
    cfg = json.loads((path / "config.json").read_text())
    cfg["hidden_sizes"] = [144, 192, 256]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").symlink_to(path / "model.safetensors")
    with pytest.raises(ValueError, match=r"encoder\.layer\.4\.conv_1x1\.convolution\.weight"):
        visionc.AutoModelForImageClassification.from_pretrained(tmp_path)


def test_segmentation_output_stride_is_refused(checkpoints, tmp_path):
    _, path = checkpoints("small")
    cfg = json.loads((path / "config.json").read_text())
    cfg["output_stride"] = 16
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").symlink_to(path / "model.safetensors")
    with pytest.raises(NotImplementedError, match="output_stride"):
        visionc.AutoModelForImageClassification.from_pretrained(tmp_path)


def test_small_images_are_refused(checkpoints):
    _, path = checkpoints("xx-small")
    model = visionc.AutoModelForImageClassification.from_pretrained(path)
    with pytest.raises(ValueError, match="32x32"):
        model(_px(1, 16))
