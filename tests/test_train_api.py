"""The training methods every C model shares (csrc/python/py_model_train.c): one binding for all
families, options checked by the family that knows them, errors that name the argument."""
import numpy as np
import pytest

import visionc


@pytest.fixture(scope="module")
def vit():
    model = visionc.AutoModelForImageClassification.from_pretrained(visionc.hub.default_model_dir(), image_size=32)
    return model


def _px(n=2, size=32):
    return np.random.default_rng(0).standard_normal((n, 3, size, size), dtype=np.float32)


def test_train_forward_keywords_and_loss(vit):
    loss, logits = vit._c.train_forward(_px(), np.array([1, 2]), seed=3)
    assert logits.shape == (2, 1000) and np.isfinite(loss) and loss > 0
    again, _ = vit._c.train_forward(_px(), np.array([1, 2]), seed=3)
    assert again == loss
    none, logits2 = vit._c.train_forward(_px(), None)
    assert none is None and np.array_equal(logits2, logits)
    with pytest.raises(TypeError):  # options are keyword-only
        vit._c.train_forward(_px(), None, 0.1)


@pytest.mark.parametrize("option,value,message", [
    ("classifier_dropout", 0.1, "no classifier dropout"),
    ("drop_path_rate", 0.1, "no classifier dropout or drop path"),
    ("hidden_dropout", 1.0, r"hidden dropout must be in \[0, 1\), got 1"),
    ("attention_dropout", -0.5, r"attention dropout must be in \[0, 1\), got -0.5"),
    ("label_smoothing", 1.5, r"label_smoothing must be in \[0, 1\], got 1.5"),
])
def test_options_the_family_lacks_or_out_of_range(vit, option, value, message):
    with pytest.raises(ValueError, match=message):
        vit._c.train_forward(_px(), np.array([0, 1]), **{option: value})


def test_bad_pixels_and_labels_name_the_argument(vit):
    with pytest.raises(ValueError, match="pixel_values has 1 channels"):
        vit._c.train_forward(_px()[:, :1].copy(), None)
    with pytest.raises(ValueError, match="label 1000 .* out of range"):
        vit._c.train_forward(_px(), np.array([0, 1000]))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        vit._c.train_forward(_px(), np.array([0]))


def test_grad_binding_checks(vit):
    with pytest.raises(TypeError, match="writeable float32"):
        vit._c.bind_grad(0, [1.0])
    with pytest.raises(ValueError, match="slot 10000 out of range"):
        vit._c.bind_grad(10000, None)
    assert vit._c.train_memory() > 0  # the forwards above kept their activations' block
