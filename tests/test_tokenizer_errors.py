"""Bad input to the GPT-2 tokenizer: unknown ids, malformed vocab/merges/tokenizer.json files,
unsupported options; plus the loading paths and small hand-made vocabularies."""
import json

import numpy as np
import pytest

from tok_helpers import gpt2_dir
from visionc import _C
from visionc.tokenization import AutoTokenizer, GPT2Tokenizer


def byte_chars():
    """GPT-2's bytes_to_unicode characters, in byte order."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


BYTES = byte_chars()


def small_vocab(extra=()):
    vocab = {c: i for i, c in enumerate(BYTES)}
    for tok in extra:
        vocab[tok] = len(vocab)
    return vocab


def write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return str(p)


@pytest.fixture(scope="module")
def gpt2():
    return GPT2Tokenizer.from_pretrained(gpt2_dir())


# ---- unknown ids --------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [50257, -1, 10**6, 2**31, -2**31 - 1, 2**70])
def test_unknown_ids_raise(gpt2, bad):
    with pytest.raises(ValueError, match=f"unknown token id {bad}"):
        gpt2.decode([15496, bad])
    with pytest.raises(ValueError, match=f"unknown token id {bad}"):
        gpt2.batch_decode([[1, 2], [15496, bad]])
    with pytest.raises(ValueError, match=f"unknown token id {bad}"):
        gpt2.convert_ids_to_tokens([1, bad])


def test_unknown_ids_numpy(gpt2):
    with pytest.raises(ValueError, match="unknown token id 99999"):
        gpt2.decode(np.array([1, 99999], dtype=np.int64))
    with pytest.raises(ValueError, match="unknown token id -3"):
        gpt2.batch_decode(np.array([[1, 2], [-3, 4]], dtype=np.int32))


def test_bad_id_types(gpt2):
    with pytest.raises(TypeError):
        gpt2.decode([1.5, 2])
    with pytest.raises(TypeError):
        gpt2.decode(np.array([1.0, 2.0]))
    with pytest.raises(TypeError):
        gpt2.decode(["a"])
    with pytest.raises(ValueError, match="1-D"):
        gpt2._tok.decode(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="2-D"):
        gpt2._tok.decode_batch(np.zeros((2, 2, 2), dtype=np.int64))


def test_bad_text(gpt2):
    with pytest.raises(TypeError):
        gpt2(123)
    with pytest.raises(TypeError):
        gpt2(["ok", None])
    with pytest.raises(TypeError):
        gpt2.encode(["a list"])
    with pytest.raises(UnicodeEncodeError):
        gpt2("lone surrogate \ud800")


def test_padding_needs_pad_token(gpt2):
    with pytest.raises(ValueError, match="padding token"):
        gpt2(["a", "b c"], padding=True)
    with pytest.raises(ValueError, match="padding=True"):
        gpt2(["a", "b c"], return_tensors="np")
    with pytest.raises(ValueError, match="not supported"):
        gpt2("a", return_tensors="tf")


# ---- malformed vocab.json -----------------------------------------------------------------

GOOD_MERGES = "#version: 0.2\n" + "h e\n"


@pytest.mark.parametrize("body,where,what", [
    ('{\n  "a": 1,\n  "b" 2\n}', ":3:", "expected ':'"),
    ('{\n  "a": 1,\n  "b": "two"\n}', ":3:", "non-negative integer"),
    ('{\n  "a": -1\n}', ":2:", "non-negative integer"),
    ('{\n  "a": 1.5\n}', ":2:", "non-negative integer"),
    ('{\n  "a": 1,\n  "a": 2\n}', ":3:", "appears twice"),
    ('{\n  "a": 1,\n  "b": 1\n}', ":3:", "given to both"),
    ('["a", "b"]', ":1:1", "expected a JSON object"),
    ('{"a": 1}\n{"b": 2}', ":2:1", "unexpected data"),
    ('{"a\\ud800": 1}', ":1:", "surrogate"),
    ('{"a\\q": 1}', ":1:", "invalid escape"),
    ('{"a": 1,', ":1:", "expected a token string"),
    ('{"a": 99999999999}', ":1:", "too large"),
    ('', ":1:1", "expected a JSON object"),
])
def test_malformed_vocab(tmp_path, body, where, what):
    vocab = write(tmp_path, "vocab.json", body)
    merges = write(tmp_path, "merges.txt", "")
    with pytest.raises(ValueError) as e:
        GPT2Tokenizer(vocab, merges)
    assert "vocab.json" + where in str(e.value) and what in str(e.value)


def test_vocab_invalid_utf8(tmp_path):
    vocab = write(tmp_path, "vocab.json", b'{\n"a\xff": 1}', mode="wb")
    with pytest.raises(ValueError, match=r"vocab\.json:2:.*invalid UTF-8"):
        GPT2Tokenizer(vocab, write(tmp_path, "merges.txt", ""))


def test_missing_files(tmp_path):
    with pytest.raises(OSError, match="nope.json"):
        GPT2Tokenizer(str(tmp_path / "nope.json"), write(tmp_path, "merges.txt", ""))
    vocab = write(tmp_path, "vocab.json", json.dumps(small_vocab()))
    with pytest.raises(OSError, match="nope.txt"):
        GPT2Tokenizer(vocab, str(tmp_path / "nope.txt"))
    with pytest.raises(OSError, match="not a local directory"):
        GPT2Tokenizer.from_pretrained(str(tmp_path / "missing-dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="neither tokenizer.json"):
        GPT2Tokenizer.from_pretrained(str(tmp_path / "empty"))


# ---- malformed merges.txt -----------------------------------------------------------------

@pytest.mark.parametrize("body,line,what", [
    ("#version: 0.2\nh e\nhe\n", 3, "two tokens"),
    ("#version: 0.2\nh e\nh e l\n", 3, "two tokens"),
    ("h e\n\nl l\n", 2, "two tokens"),
    ("#version: 0.2\nh e\nq zz\n", 3, "'zz' is not in the vocabulary"),
    ("h e\nl o\n", 2, "merged token 'lo' is not in the vocabulary"),
])
def test_malformed_merges(tmp_path, body, line, what):
    vocab = write(tmp_path, "vocab.json", json.dumps(small_vocab(["he"])))
    merges = write(tmp_path, "merges.txt", body)
    with pytest.raises(ValueError) as e:
        GPT2Tokenizer(vocab, merges)
    assert f"merges.txt:{line}:" in str(e.value) and what in str(e.value)


def test_merges_invalid_utf8(tmp_path):
    vocab = write(tmp_path, "vocab.json", json.dumps(small_vocab(["he"])))
    merges = write(tmp_path, "merges.txt", b"h e\n\xff e\n", mode="wb")
    with pytest.raises(ValueError, match=r"merges\.txt:2: invalid UTF-8"):
        GPT2Tokenizer(vocab, merges)


# ---- tokenizer.json -----------------------------------------------------------------------

def tokenizer_json(tmp_path, vocab=None, merges=None, added=None, model_type="BPE"):
    data = {"model": {"type": model_type, "vocab": small_vocab(["he"]) if vocab is None else vocab,
                      "merges": ["h e"] if merges is None else merges},
            "added_tokens": added or []}
    return write(tmp_path, "tokenizer.json", json.dumps(data, indent=1))


def test_malformed_tokenizer_json(tmp_path):
    path = write(tmp_path, "tokenizer.json", '{\n "model": {\n  "vocab": {,}\n }\n}')
    with pytest.raises(ValueError, match=r"tokenizer\.json: line 3"):
        GPT2Tokenizer(tokenizer_file=path)
    with pytest.raises(ValueError, match=r"tokenizer\.json: model\.vocab: id of token 'x' is not an integer"):
        GPT2Tokenizer(tokenizer_file=tokenizer_json(tmp_path, vocab={"x": "1"}))
    with pytest.raises(ValueError, match=r"tokenizer\.json: model\.merges\[1\]: .*'zz' is not in the vocabulary"):
        GPT2Tokenizer(tokenizer_file=tokenizer_json(tmp_path, merges=["h e", "q zz"]))
    with pytest.raises(ValueError, match=r"tokenizer\.json: model\.merges\[0\]: expected"):
        GPT2Tokenizer(tokenizer_file=tokenizer_json(tmp_path, merges=["he"]))
    with pytest.raises(ValueError, match=r"model\.merges\[0\]"):
        GPT2Tokenizer(tokenizer_file=tokenizer_json(tmp_path, merges=[["h", "e", "x"]]))
    with pytest.raises(NotImplementedError, match="not BPE"):
        GPT2Tokenizer(tokenizer_file=tokenizer_json(tmp_path, model_type="WordPiece"))
    with pytest.raises(NotImplementedError, match="single_word"):
        GPT2Tokenizer(tokenizer_file=tokenizer_json(tmp_path, added=[{"content": "<x>", "single_word": True}]))


# ---- small vocabularies: BPE details ------------------------------------------------------

def test_merge_ranks_and_ignore_merges():
    g = "\u0120"  # the byte-level character of a space
    vocab = small_vocab(["he", "ll", "lo", "hell", "llo", "hello", g + "w"])
    merges = [["h", "e"], ["l", "l"], ["h", "q"], ["he", "ll"], ["hell", "o"], ["l", "o"], [g, "w"]]
    with pytest.raises(ValueError, match=r"merges\[2\]: merged token 'hq' is not in the vocabulary"):
        _C.BPETokenizer(vocab, merges)
    del merges[2]
    tok = _C.BPETokenizer(vocab, merges)
    ids = {t: i for t, i in vocab.items()}
    assert tok.encode("hello") == [ids["hello"]]
    assert tok.encode("hell") == [ids["hell"]]
    assert tok.encode(" w") == [ids[g + "w"]]
    # "l l" ranks before "l o", and no merge makes "llo": it stays "ll" + "o".
    assert tok.encode("llo") == [ids["ll"], ids["o"]]
    # ignore_merges: a word that is itself a vocabulary token is taken whole.
    tok2 = _C.BPETokenizer(vocab, merges, ignore_merges=True)
    assert tok2.encode("llo") == [ids["llo"]]
    assert tok2.decode(tok2.encode("hello llo")) == "hello llo"


def test_repeated_merge_takes_later_rank():
    vocab = small_vocab(["ab", "bc"])
    # Without the repeat, "a b" (rank 0) wins on "abc"; repeated after "b c" it ranks last.
    assert _C.BPETokenizer(vocab, [["a", "b"], ["b", "c"]]).encode("abc") == [vocab["ab"], vocab["c"]]
    assert _C.BPETokenizer(vocab, [["a", "b"], ["b", "c"], ["a", "b"]]).encode("abc") == [vocab["a"], vocab["bc"]]


def test_id_holes_and_missing_bytes():
    vocab = {c: i for i, c in enumerate(BYTES) if c not in "xyz"}
    vocab["<tok>"] = 300  # ids 256..299 are holes
    tok = _C.BPETokenizer(vocab, [], [{"content": "<s>", "special": True}])
    assert tok.vocab_size == 254 and tok.id_limit == 302 and tok.total_size == 255
    assert tok.token_to_id("<s>") == 301
    # Bytes missing from the vocabulary are dropped, as the reference's BPE does without unk.
    assert tok.decode(tok.encode("axbyc")) == "abc"
    assert tok.encode("<s>") == [301]
    with pytest.raises(ValueError, match="unknown token id 260"):
        tok.decode([1, 260])
    assert tok.id_to_token(260) is None and tok.id_to_token(300) == "<tok>"


def test_added_token_ids():
    vocab = small_vocab()
    tok = _C.BPETokenizer(vocab, [], [{"content": "a"}, {"content": "<x>"}, {"content": "<y>", "id": 400},
                                      {"content": "<z>"}])
    assert tok.token_to_id("a") == vocab["a"]  # known content keeps its id
    assert [tok.token_to_id(t) for t in ("<x>", "<y>", "<z>")] == [256, 400, 401]
    assert tok.encode("b<x>a<z>") == [vocab["b"], 256, vocab["a"], 401]
    with pytest.raises(ValueError, match="two ids"):
        _C.BPETokenizer(vocab, [], [{"content": "<x>", "id": 300}, {"content": "<x>", "id": 301}])
    with pytest.raises(ValueError, match="two added tokens"):
        _C.BPETokenizer(vocab, [], [{"content": "<x>", "id": 300}, {"content": "<y>", "id": 300}])
    with pytest.raises(ValueError, match="empty added token"):
        _C.BPETokenizer(vocab, [], [{"content": ""}])


# ---- AutoTokenizer ------------------------------------------------------------------------

def copy_vocab(dst):
    src = gpt2_dir()
    for name in ("vocab.json", "merges.txt"):
        (dst / name).write_bytes((src / name).read_bytes())


@pytest.mark.parametrize("files", [
    {"tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer"}},
    {"tokenizer_config.json": {"tokenizer_class": "GPT2TokenizerFast"}},
    {"config.json": {"model_type": "gpt2"}},
    {"config.json": {"model_type": "vision-encoder-decoder", "decoder": {"model_type": "gpt2"}}},
])
def test_auto_tokenizer_picks_gpt2(tmp_path, files):
    copy_vocab(tmp_path)
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(tok, GPT2Tokenizer) and tok.encode("Hello world") == [15496, 995]
    assert tok.eos_token_id == 50256 and tok.pad_token_id is None


def test_auto_tokenizer_refuses_others(tmp_path):
    copy_vocab(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    with pytest.raises(ValueError, match="BertTokenizer"):
        AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(OSError, match="not a local directory"):
        AutoTokenizer.from_pretrained(tmp_path / "nope")


def test_config_special_tokens(tmp_path):
    copy_vocab(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "pad_token": {"content": "<|endoftext|>", "__type": "AddedToken"}, "add_bos_token": True,
        "model_max_length": 16, "padding_side": "left"}))
    tok = GPT2Tokenizer.from_pretrained(tmp_path)
    assert tok.pad_token_id == 50256 and tok.model_max_length == 16
    assert tok.encode("Hello") == [50256, 15496]
    assert tok.encode("Hello", add_special_tokens=False) == [15496]
    out = tok(["Hello world", "Hi"], padding=True)
    assert out["input_ids"] == [[50256, 15496, 995], [50256, 50256, 17250]]
    assert out["attention_mask"] == [[1, 1, 1], [0, 1, 1]]
    assert len(tok("word " * 40, truncation=True)["input_ids"]) == 16
