"""`python -m visionc finetune`: argument wiring, output, resume (with the test double as model)."""
import json

import pytest

from trainer_double import SoftmaxRegression, make_image_folder, processor
from visionc import __main__ as cli
from visionc import cli_finetune


@pytest.fixture
def double(tmp_path, monkeypatch):
    """load_model returns the test double, 'loaded' from a directory with an 8x8 processor."""
    src = tmp_path / "model"
    src.mkdir()
    (src / "preprocessor_config.json").write_text(json.dumps(processor(8).to_dict()))
    made = []

    def load_model(name, classes):
        assert name == str(src)
        m = SoftmaxRegression(len(classes), 3 * 8 * 8, id2label=dict(enumerate(classes)))
        m.local_dir = src
        made.append(m)
        return m
    monkeypatch.setattr(cli_finetune, "load_model", load_model)
    return src, made


def test_finetune_command(tmp_path, double, capsys):
    data = make_image_folder(tmp_path / "data", per_class=10)
    out = tmp_path / "out"
    args = [str(data), "--model", str(double[0]), "--out", str(out), "--epochs", "2", "--batch-size", "4",
            "--lr", "0.01", "--eval-split", "0.2", "--seed", "3", "--checkpoint-every", "5", "--no-progress"]
    assert cli.main(["finetune"] + args) == 0
    text = capsys.readouterr().out
    assert "30 images, 3 classes; 24 train / 6 eval; 12 steps" in text
    assert "epoch 2: train loss" in text and "eval accuracy" in text
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-5"]
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["loss"]) == 12
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "blue", "1": "green", "2": "red"}
    # --resume from an earlier checkpoint repeats the same steps
    assert cli.main(["finetune"] + args + ["--resume", str(out / "checkpoint-5")]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert json.loads((out / "history.json").read_text())["loss"] == hist["loss"]


def test_finetune_errors_exit_2(tmp_path, double, capsys):
    assert cli.main(["finetune", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such directory" in capsys.readouterr().err
