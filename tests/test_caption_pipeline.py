"""The image-to-text pipeline and `python -m visionc caption` on a tiny random captioner saved with
the real GPT-2 tokenizer files and nlpconnect's preprocessor config. Random weights give
arbitrary but deterministic text: the tests check the structure, and that the text is exactly
tokenizer.batch_decode(generate(...), skip_special_tokens=True)."""
import json

import numpy as np
import pytest

import visionc
from caption_helpers import GPT2_EOS, add_processor_and_tokenizer, save_safetensors, tiny_captioner
from helpers import ROOT
from visionc.__main__ import main

IMAGES = sorted(str(p) for p in (ROOT / "examples" / "images").glob("*.jpg"))


@pytest.fixture(scope="module")
def captioner_dir(tmp_path_factory):
    tm = tiny_captioner(dec={"vocab_size": 50257}, start=GPT2_EOS, eos=GPT2_EOS, pad=GPT2_EOS, eos_pull=0.0)
    path = save_safetensors(tm, tmp_path_factory.mktemp("captioner"))
    return add_processor_and_tokenizer(path, image_size=32)


@pytest.fixture(scope="module")
def parts(captioner_dir):
    model = visionc.VisionEncoderDecoderModel.from_pretrained(captioner_dir)
    proc = visionc.AutoImageProcessor.from_pretrained(captioner_dir)
    tok = visionc.AutoTokenizer.from_pretrained(captioner_dir)
    return model, proc, tok


def expected(parts, images, **kw):
    model, proc, tok = parts
    return tok.batch_decode(model.generate(proc(images)["pixel_values"], **kw), skip_special_tokens=True)


def test_images_are_there():
    assert len(IMAGES) >= 3, f"sample photos missing under {ROOT / 'examples' / 'images'}"


@pytest.mark.parametrize("kw", [dict(max_new_tokens=6), dict(max_new_tokens=5, num_beams=3)], ids=["greedy", "beam3"])
def test_pipeline_captions_equal_decoded_generate(captioner_dir, parts, kw):
    cap = visionc.pipeline("image-to-text", model=captioner_dir, batch_size=2)
    out = cap(IMAGES, **kw)
    want = expected(parts, IMAGES, **kw)
    assert isinstance(out, list) and len(out) == len(IMAGES)
    for caps, text in zip(out, want):
        assert isinstance(caps, list) and len(caps) == 1 and set(caps[0]) == {"generated_text"}
        assert caps[0]["generated_text"] == text and isinstance(text, str) and text
    # one image: a list of one dict, as transformers' pipeline returns it
    single = cap(IMAGES[0], **kw)
    assert single == out[0]
    # batch size does not change the captions
    assert cap(IMAGES, batch_size=1, **kw) == out


def test_pipeline_return_sequences_scores_and_sampling(captioner_dir, parts):
    cap = visionc.pipeline("image-to-text", model=captioner_dir)
    out = cap(IMAGES[:2], max_new_tokens=5, num_beams=3, num_return_sequences=2, return_scores=True)
    assert [len(c) for c in out] == [2, 2]
    model, proc, _ = parts
    ref = model.generate(proc(IMAGES[:2])["pixel_values"], max_new_tokens=5, num_beams=3, num_return_sequences=2,
                         return_dict_in_generate=True, output_scores=True)
    np.testing.assert_allclose([d["score"] for c in out for d in c], ref.sequences_scores, rtol=1e-6)
    greedy = cap(IMAGES[:2], max_new_tokens=5, return_scores=True)
    assert all(np.isfinite(c[0]["score"]) and c[0]["score"] <= 0 for c in greedy)
    sampled = cap(IMAGES, max_new_tokens=6, do_sample=True, top_p=0.9, seed=3)
    assert sampled == cap(IMAGES, max_new_tokens=6, do_sample=True, top_p=0.9, seed=3, batch_size=1)
    assert [c[0]["generated_text"] for c in sampled] == expected(parts, IMAGES, max_new_tokens=6, do_sample=True,
                                                                  top_p=0.9, seed=3)


def test_pipeline_errors(captioner_dir):
    with pytest.raises(ValueError, match="unknown task"):
        visionc.pipeline("image-to-txt", model=captioner_dir)
    cap = visionc.pipeline("image-to-text", model=captioner_dir)
    with pytest.raises(ValueError, match="empty"):
        cap([])
    with pytest.raises(ValueError, match="num_beams"):
        cap(IMAGES[0], num_beams=0)
    with pytest.raises(FileNotFoundError):
        cap("no/such/image.jpg")
    tok = visionc.AutoTokenizer.from_pretrained(captioner_dir)
    with pytest.raises((ValueError, IndexError, KeyError), match="50257|range|unknown|invalid"):
        tok.decode([50257 + 10])


def test_cli_caption(captioner_dir, parts, capsys):
    assert main(["caption", *IMAGES, "--model", str(captioner_dir), "--beams", "2", "--max-new-tokens", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    want = expected(parts, IMAGES, max_new_tokens=5, num_beams=2)
    assert len(lines) == len(IMAGES)
    for line, img, text in zip(lines, IMAGES, want):
        name, score, caption = line.split("\t")
        assert name == img and float(score) <= 0 and caption == text.strip()
    args = ["caption", *IMAGES[:2], "--model", str(captioner_dir), "--max-new-tokens", "4", "--sample", "--top-p",
            "0.9", "--top-k", "30", "--temperature", "0.7", "--seed", "5", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert [r["image"] for r in first] == IMAGES[:2]
    assert [r["captions"][0]["generated_text"] for r in first] == expected(
        parts, IMAGES[:2], max_new_tokens=4, do_sample=True, top_p=0.9, top_k=30, temperature=0.7, seed=5)


def test_cli_reports_errors(captioner_dir, capsys):
    assert main(["caption", IMAGES[0], "--model", str(captioner_dir), "--beams", "0"]) == 2
    assert "num_beams" in capsys.readouterr().err
