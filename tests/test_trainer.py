"""Trainer on the NumPy test double: learning, evaluation, accumulation, freezing, bad inputs."""
import math

import numpy as np
import pytest

from helpers import assert_close
from trainer_double import SoftmaxRegression, make_image_folder, processor
from visionc.data import ImageFolder
from visionc.trainer import Trainer

IN = 3 * 8 * 8


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data"), per_class=12)


def _trainer(data, model=None, **kw):
    kw = {"epochs": 3, "batch_size": 4, "lr": 0.003, "progress": False, "processor": processor(8), "seed": 0, **kw}
    return Trainer(model or SoftmaxRegression(3, IN, seed=1), train_dir=data, **kw)


def test_loss_decreases_and_eval_accuracy_is_reported(data):
    t = _trainer(data)
    h = t.train()
    assert t.steps_per_epoch == 9 and len(h["loss"]) == len(h["lr"]) == 27  # 33 train images, batches of 4
    assert np.mean(h["loss"][-5:]) < 0.5 * h["loss"][0], h["loss"]
    assert [e["epoch"] for e in h["epochs"]] == [0, 1, 2]
    for e in h["epochs"]:
        assert e["eval_samples"] == 3 and 0 <= e["eval_accuracy"] <= 1 and math.isfinite(e["eval_loss"])
        assert e["images_per_s"] > 0
    assert h["epochs"][-1]["eval_accuracy"] == 1.0  # the colours are easy to tell apart
    ev = t.evaluate()  # the eval pass agrees with a direct computation over the eval set
    px = processor(8)([t.eval_dataset.load(i) for i in range(len(t.eval_dataset))])["pixel_values"]
    out = t.model.eval()(px, labels=np.array(t.eval_dataset.targets))
    assert ev["eval_accuracy"] == np.mean(out.logits.argmax(1) == t.eval_dataset.targets)
    assert_close("eval loss", ev["eval_loss"], out.loss, atol=1e-6)
    # cosine schedule with 10% warmup (3 steps): 0, lr/3, 2lr/3, lr, then decaying
    assert_close("lr", h["lr"][:4], [0, 0.001, 0.002, 0.003], atol=1e-12)
    assert h["lr"][4] < 0.003 and h["lr"][-1] < 1e-4 and h["skipped_images"] == 0


def test_gradient_accumulation_equals_the_larger_batch(data):
    a = _trainer(data, batch_size=4, grad_accum_steps=2, epochs=2).train()
    b = _trainer(data, batch_size=8, epochs=2).train()
    assert len(a["loss"]) == len(b["loss"]) == 10
    assert_close("accumulated vs large-batch losses", a["loss"], b["loss"], atol=1e-6, rtol=1e-5)


def test_freeze_head_only_and_gradient_checkpointing_flag(data):
    m = SoftmaxRegression(3, IN, seed=1)
    before = {k: np.array(v) for k, v in m.named_parameters()}
    t = _trainer(data, model=m, freeze="head_only", gradient_checkpointing=True, epochs=1)
    t.train()
    assert m.checkpointing
    assert np.array_equal(m._params["embeddings.channel_scale"], before["embeddings.channel_scale"])
    assert not np.array_equal(m._params["classifier.weight"], before["classifier.weight"])
    assert len(t.params) == 2


def test_label_smoothing_raises_the_loss_floor(data):
    plain = _trainer(data, lr=0.05, epochs=2).train()["loss"][-1]
    smooth = _trainer(data, lr=0.05, epochs=2, label_smoothing=0.2).train()["loss"][-1]
    assert smooth > plain + 0.1  # smoothed targets cannot be fitted to zero loss


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    root = make_image_folder(tmp_path, per_class=6)
    (root / "red" / "zz.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="zz.png"):
        h = Trainer(SoftmaxRegression(3, IN), train_dir=root, eval_split=0, epochs=1, batch_size=4,
                    progress=False, processor=processor(8)).train()
    assert h["skipped_images"] == 1 and len(h["loss"]) == 5  # 19 files, 18 readable: 5 batches


@pytest.mark.parametrize("kw, err, match", [
    ({"lr": float("nan")}, ValueError, "lr"),
    ({"lr": 0}, ValueError, "lr"),
    ({"schedule": "step"}, ValueError, "schedule"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"checkpoint_every": 5}, ValueError, "output_dir"),
    ({"label_smoothing": 1.0}, ValueError, "label_smoothing"),
])
def test_bad_settings(data, kw, err, match):
    with pytest.raises(err, match=match):
        _trainer(data, **kw)


def test_labels_out_of_range(data):
    with pytest.raises(ValueError, match=r"label 2, out of range for a model with num_labels=2"):
        _trainer(data, model=SoftmaxRegression(2, IN))


def test_nan_loss_stops_with_a_clear_error(data):
    m = SoftmaxRegression(3, IN)
    m._params["classifier.weight"][0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        _trainer(data, model=m).train()


def test_model_without_label_smoothing_support(data):
    class NoSmoothing(SoftmaxRegression):
        def __call__(self, pixel_values, labels=None):
            return super().__call__(pixel_values, labels)
    with pytest.raises(ValueError, match="takes no label_smoothing"):
        _trainer(data, model=NoSmoothing(3, IN), label_smoothing=0.1)


def test_needs_one_data_source_and_a_processor(data):
    with pytest.raises(ValueError, match="exactly one"):
        Trainer(SoftmaxRegression(3, IN), progress=False)
    with pytest.raises(ValueError, match="processor"):
        Trainer(SoftmaxRegression(3, IN), train_dataset=ImageFolder(data), progress=False)


def test_final_model_saved_and_reloadable(data, tmp_path):
    t = _trainer(data, epochs=1, output_dir=tmp_path)
    t.train()
    back = SoftmaxRegression.from_pretrained(tmp_path)
    for k, v in t.model.named_parameters():
        assert np.array_equal(back._params[k], v)
    assert (tmp_path / "history.json").exists() and (tmp_path / "preprocessor_config.json").exists()
