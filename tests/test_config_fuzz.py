"""Hostile config files: for each family, every numeric field of config.json (and of the
captioner's generation_config.json) set in turn to 0, -1, 2^31, 2^63, 1e308, "12" and null.

Each case must end within seconds, under a 3 GiB address-space limit, in either
- a clear Python exception (ValueError, TypeError, NotImplementedError) whose message names the
  field, or
- a correct model: its logits equal the reference's for the same files (transformers loading the
  same directory; for timm checkpoints, whose config.json does not shape the model, the logits of
  the unmodified checkpoint). Where transformers refuses a value that bears on nothing visionc
  computes (its strict typing of fields such as encoder_stride or atrous_rates, an integer 0 for
  initializer_range), the reference is transformers on the unmodified checkpoint.
Never a crash, a hang, a MemoryError or a quiet multi-GiB allocation. The cases run in one child
process (config_fuzz_child.py) so that a crash or a hang is seen and attributed to its case.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import save_file

import visionc
from helpers import assert_close, subprocess_env
from tolerances import LOGITS_ATOL

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
warnings.filterwarnings("ignore")
torch.set_num_threads(1)

VALUES = {"0": 0, "-1": -1, "2^31": 2 ** 31, "2^63": 2 ** 63, "1e308": 1e308, "str12": "12", "null": None}
CLEAR_ERRORS = ("ValueError", "TypeError", "NotImplementedError")
CASE_SECONDS = 5.0
TIMM_FAMILIES = ("vit-timm", "convnext-timm")


def _randomise(model):
    """Non-trivial biases, scales and BatchNorm statistics, so that a field that changes the
    computation shows in the logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.2)
            elif name.endswith("layer_scale_parameter"):
                p.uniform_(0.2, 1.0)
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _vit(path):
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                 image_size=32, patch_size=8)
    _randomise(transformers.ViTForImageClassification(cfg)).save_pretrained(path)
    return "ViTForImageClassification", 32


def _convnext(path):
    torch.manual_seed(0)
    cfg = transformers.ConvNextConfig(depths=[1, 1, 2, 1], hidden_sizes=[8, 16, 24, 32], image_size=64)
    _randomise(transformers.ConvNextForImageClassification(cfg)).save_pretrained(path)
    return "ConvNextForImageClassification", 64


def _convnext_timm(path):
    from test_convnext import TIMM_CFG, to_timm_layout
    torch.manual_seed(0)
    cfg = transformers.ConvNextConfig(depths=[1, 1, 2, 1], hidden_sizes=[8, 16, 24, 32], num_labels=4)
    save_file(to_timm_layout(_randomise(transformers.ConvNextForImageClassification(cfg))),
              str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(dict(TIMM_CFG, num_classes=4)))
    return "ConvNextForImageClassification", 64


def _mobilevit(path):
    torch.manual_seed(0)
    cfg = transformers.MobileViTConfig(image_size=64, hidden_sizes=[16, 24, 32],
                                       neck_hidden_sizes=[8, 8, 16, 16, 24, 24, 64])
    _randomise(transformers.MobileViTForImageClassification(cfg)).save_pretrained(path)
    return "MobileViTForImageClassification", 64


def _vit_timm(path):
    """The bundled real ViT-Ti/16 (timm's files: config.json with 1000 label names)."""
    src = Path(visionc.hub.default_model_dir())
    for f in src.iterdir():
        (path / f.name).symlink_to(f)
    return "ViTForImageClassification", 224


def _captioner(path):
    from caption_helpers import tiny_captioner
    tiny_captioner().save_pretrained(path)
    return "VisionEncoderDecoderModel", 32


BUILDERS = {"vit": _vit, "vit-timm": _vit_timm, "convnext": _convnext, "convnext-timm": _convnext_timm,
            "mobilevit": _mobilevit, "captioner": _captioner}
FUZZED_FILES = ("config.json", "generation_config.json")


def _sampled(items: list) -> list:
    """All entries of a container, or of a long one (label2id with 1000 classes) the first two
    and the last: one field, the same code reads every entry."""
    return items if len(items) <= 64 else items[:2] + items[-1:]


def numeric_paths(obj, prefix=()):
    """Paths to every number (and every null, a number's stand-in) inside a JSON value."""
    if isinstance(obj, dict):
        for k, v in _sampled(list(obj.items())):
            yield from numeric_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in _sampled(list(enumerate(obj))):
            yield from numeric_paths(v, prefix + (i,))
    elif obj is None or (isinstance(obj, (int, float)) and not isinstance(obj, bool)):
        yield prefix


def set_path(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def field_name(path) -> str:
    """The name a clear message must mention: the innermost key (a list's key for its items)."""
    return next(str(k) for k in reversed(path) if isinstance(k, str))


def make_cases(family: str, base: Path, work: Path) -> list:
    cases = []
    for fname in FUZZED_FILES:
        if not (base / fname).exists():
            continue
        original = json.loads((base / fname).read_text())
        for path in numeric_paths(original):
            for vname, value in VALUES.items():
                cid = f"{family}-{fname.split('.')[0]}-{'.'.join(map(str, path))}-{vname}"
                d = work / cid
                d.mkdir()
                for f in base.iterdir():
                    if f.name != fname:
                        (d / f.name).symlink_to(f.resolve())
                cfg = copy.deepcopy(original)
                set_path(cfg, path, value)
                (d / fname).write_text(json.dumps(cfg))
                cases.append({"id": cid, "dir": str(d), "family": family, "file": fname, "path": list(path),
                              "value": vname})
    return cases


def reference_logits(family, directory, px, ids):
    if family in TIMM_FAMILIES:
        return None
    with torch.inference_mode():
        if family == "captioner":
            m = transformers.VisionEncoderDecoderModel.from_pretrained(directory).eval()
            return m(pixel_values=torch.from_numpy(px), decoder_input_ids=torch.from_numpy(ids)).logits.numpy()
        m = transformers.AutoModelForImageClassification.from_pretrained(directory).eval()
        return m(torch.from_numpy(px)).logits.numpy()


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    """Runs every family's cases in one child; returns (cases, results by id, out dir, inputs)."""
    root = tmp_path_factory.mktemp("fuzz")
    cases, inputs = [], {}
    rng = np.random.default_rng(0)
    ids = np.array([[0, 5, 17, 3]], dtype=np.int64)
    np.save(root / "ids.npy", ids)
    for family, build in BUILDERS.items():
        base = root / f"base-{family}"
        base.mkdir()
        cls, size = build(base)
        px = rng.standard_normal((1, 3, size, size)).astype(np.float32)
        np.save(root / f"px-{family}.npy", px)
        work = root / family
        work.mkdir()
        inputs[family] = (base, px)
        for c in make_cases(family, base, work):
            c.update(cls=cls, kind="captioner" if family == "captioner" else "image",
                     pixels=str(root / f"px-{family}.npy"), ids=str(root / "ids.npy"))
            cases.append(c)
    (root / "cases.json").write_text(json.dumps(cases))
    out = root / "out"
    out.mkdir()
    child = Path(__file__).with_name("config_fuzz_child.py")
    env = dict(subprocess_env(), OMP_NUM_THREADS="1", VISIONC_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(child), str(root / "cases.json"), str(out)], env=env,
                          capture_output=True, text=True, timeout=240 + 0.05 * len(cases))
    started, results = [], {}
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        if "start" in rec:
            started.append(rec["start"])
        else:
            results[rec["id"]] = rec
    unfinished = [s for s in started if s not in results]
    assert proc.returncode == 0 and not unfinished, (
        f"the child died (exit {proc.returncode}) during case {unfinished[:1]}; stderr tail:\n{proc.stderr[-3000:]}")
    assert len(results) == len(cases)
    return cases, results, out, inputs, ids


def test_every_case_is_a_clear_error_or_a_correct_model(fuzz_run):
    cases, results, out, inputs, ids = fuzz_run
    unclear, wrong, slow, counts = [], [], [], {}
    base_refs, accepted_refused = {}, []
    for c in cases:
        r = results[c["id"]]
        fam = c["family"]
        counts.setdefault(fam, {"cases": 0, "errors": 0, "loaded": 0})
        counts[fam]["cases"] += 1
        if r["seconds"] > CASE_SECONDS:
            slow.append((c["id"], r["seconds"]))
        if r["outcome"] == "error":
            counts[fam]["errors"] += 1
            name = field_name(c["path"])
            if r["type"] not in CLEAR_ERRORS or name not in r["message"]:
                unclear.append(f"{c['id']}: {r['type']}: {r['message'][:200]}")
            continue
        counts[fam]["loaded"] += 1
        got = np.load(out / f"{c['id']}.npy")
        base, px = inputs[fam]
        if fam in TIMM_FAMILIES:
            want = _unmodified_logits(fam, base, px)
        else:
            try:
                want = reference_logits(fam, c["dir"], px, ids)
            except Exception:  # a value transformers' strict typing refuses, in a field that shapes nothing
                if fam not in base_refs:
                    base_refs[fam] = reference_logits(fam, str(base), px, ids)
                want = base_refs[fam]
                accepted_refused.append(c["id"])
        if got.shape != want.shape or not np.allclose(got, want, atol=LOGITS_ATOL, rtol=0):
            err = float(np.abs(got - want).max()) if got.shape == want.shape else float("nan")
            wrong.append(f"{c['id']}: logits {got.shape} differ from the reference {want.shape} (max abs {err:.3g})")
    worst = max(results.values(), key=lambda r: r["seconds"])
    total = {k: sum(v[k] for v in counts.values()) for k in ("cases", "errors", "loaded")}
    print(f"config fuzz: {total} (by family {counts}); slowest {worst['id']} {worst['seconds']:.3f} s; "
          f"{len(accepted_refused)} loaded cases that transformers refuses, equal to the unmodified model: "
          f"{accepted_refused}", file=sys.stderr)
    assert not unclear, f"{len(unclear)} cases raised unclear errors:\n" + "\n".join(unclear[:40])
    assert not wrong, f"{len(wrong)} accepted cases are not correct models:\n" + "\n".join(wrong[:40])
    assert not slow, f"cases over {CASE_SECONDS} s: {slow[:10]}"


_UNMODIFIED = {}


def _unmodified_logits(family, base, px):
    if family not in _UNMODIFIED:
        _UNMODIFIED[family] = visionc.AutoModelForImageClassification.from_pretrained(base)(px).logits
    return _UNMODIFIED[family]
