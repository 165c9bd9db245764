"""Checkpoints: exact resume (bit-for-bit losses and weights) and crash safety under SIGKILL."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import visionc
from trainer_double import make_image_folder
from trainer_run import make_trainer
from visionc import checkpoint as ckpt

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data"), per_class=12)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The uninterrupted run: (history, final weights)."""
    t = make_trainer(data, tmp_path_factory.mktemp("ref"))
    h = t.train()
    assert t.steps_per_epoch == 9 and len(h["loss"]) == 27
    return h, {k: np.array(v) for k, v in t.model.named_parameters()}


def _assert_same_run(t, h, reference):
    ref_h, ref_w = reference
    assert h["loss"] == ref_h["loss"]  # Python floats: bit-for-bit
    assert h["lr"] == ref_h["lr"]
    assert [e["eval_accuracy"] for e in h["epochs"]] == [e["eval_accuracy"] for e in ref_h["epochs"]]
    assert [e["eval_loss"] for e in h["epochs"]] == [e["eval_loss"] for e in ref_h["epochs"]]
    for k, v in t.model.named_parameters():
        assert np.array_equal(v, ref_w[k]), k


class Crash(Exception):
    pass


def _crash_at(step):
    def cb(trainer, s, loss):
        if s == step:
            raise Crash
    return cb


def test_resume_after_interruption_repeats_the_uninterrupted_run(data, reference, tmp_path):
    with pytest.raises(Crash):
        make_trainer(data, tmp_path, callbacks=[_crash_at(11)]).train()  # last checkpoint: step 9
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [3, 6, 9]
    t = make_trainer(data, tmp_path, resume=True)
    h = t.train()
    assert t.resumed_from.endswith("checkpoint-9")
    _assert_same_run(t, h, reference)


@pytest.mark.parametrize("step", [3, 9, 15])  # mid-epoch, end of epoch 0 (eval still due), mid-epoch 1
def test_resume_from_a_given_checkpoint(data, reference, tmp_path, step):
    make_trainer(data, tmp_path).train()
    t = make_trainer(data, tmp_path, resume=tmp_path / f"checkpoint-{step}")
    h = t.train()
    _assert_same_run(t, h, reference)


def test_checkpoint_contents(data, tmp_path):
    t = make_trainer(data, tmp_path, keep_checkpoints=2, callbacks=[_crash_at(7)])
    with pytest.raises(Crash):
        t.train()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-3", "checkpoint-6"]  # keep 2, no temporaries
    d = tmp_path / "checkpoint-6"
    assert sorted(os.listdir(d)) == ["config.json", "model.safetensors", "optimizer.safetensors",
                                     "preprocessor_config.json", "rng_state.json", "trainer_state.json"]
    c = ckpt.load_checkpoint(d)
    st = c["state"]
    assert (st["step"], st["epoch"], st["batch_in_epoch"]) == (6, 0, 6)
    assert len(st["history"]["loss"]) == 6 and st["schedule"]["last_epoch"] == 6
    assert st["run"]["seed"] == 7 and st["run"]["classes"] == ["blue", "green", "red"]
    assert c["rng"]["data_order"] == t.train_loader.order(0).tolist()
    assert len(c["rng"]["numpy"][1]) == 624
    opt = c["optimizer"]
    assert {k for s in opt["state"].values() for k in s} == {"step", "exp_avg", "exp_avg_sq"}
    assert all(s["step"] == 6 for s in opt["state"].values())
    w = visionc.load_state_dict(d / "model.safetensors")
    assert set(w) == {"embeddings.channel_scale", "classifier.weight", "classifier.bias"}
    assert visionc.AutoImageProcessor.from_pretrained(d).size == {"height": 8, "width": 8}


def test_resume_refuses_other_settings(data, tmp_path):
    with pytest.raises(Crash):
        make_trainer(data, tmp_path, callbacks=[_crash_at(4)]).train()
    with pytest.raises(ValueError, match="batch_size: checkpoint 4, now 5"):
        make_trainer(data, tmp_path, resume=True, batch_size=5).train()


def _env():
    env = dict(os.environ)
    pkg_root = str(Path(visionc.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), pkg_root, env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("stage", ["model", "state", "rename"])
def test_sigkill_during_a_save_keeps_the_previous_checkpoint(data, reference, tmp_path, stage):
    env = _env()
    env["VISIONC_CHECKPOINT_KILL_AT"] = f"6:{stage}"
    r = subprocess.run([sys.executable, str(TESTS / "trainer_run.py"), str(data), str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    names = sorted(os.listdir(tmp_path))
    assert "checkpoint-3" in names and "checkpoint-6" not in names
    assert any(n.startswith(".tmp-checkpoint-6-") for n in names)  # the half-written one
    assert ckpt.latest_checkpoint(tmp_path).endswith("checkpoint-3")
    t = make_trainer(data, tmp_path, resume=True)
    h = t.train()  # resumes from step 3 and removes the temporary
    assert t.resumed_from.endswith("checkpoint-3")
    assert not any(n.startswith(".tmp") for n in os.listdir(tmp_path))
    _assert_same_run(t, h, reference)
