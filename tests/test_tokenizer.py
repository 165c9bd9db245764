"""Parity of visionc's GPT-2 tokenizer with transformers' GPT2TokenizerFast on the real vocabulary.

Every test compares against the reference: identical ids, identical decoded strings.
"""
import random
import threading

import numpy as np
import pytest

from tok_helpers import CORPUS, POOLS, gpt2_dir, random_strings
from visionc import _C
from visionc.tokenization import AutoTokenizer, GPT2Tokenizer

transformers = pytest.importorskip("transformers")

EOT = 50256


@pytest.fixture(scope="module")
def vocab_dir():
    return gpt2_dir()


@pytest.fixture(scope="module")
def ours(vocab_dir):
    return GPT2Tokenizer.from_pretrained(vocab_dir)


@pytest.fixture(scope="module")
def ref(vocab_dir):
    return transformers.AutoTokenizer.from_pretrained(vocab_dir)


def assert_same_ids(ours, ref, texts):
    got = ours(texts)["input_ids"]
    want = ref(texts)["input_ids"]
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(texts)} differ, first: {bad[0]!r}"


def assert_same_text(ours, ref, seqs, **kw):
    got = ours.batch_decode(seqs, **kw)
    want = ref.batch_decode(seqs, **kw)
    bad = [(s, g, w) for s, g, w in zip(seqs, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(seqs)} differ, first: {bad[0]!r}"


def test_properties_match(ours, ref):
    assert ours.vocab_size == ref.vocab_size == 50257
    assert len(ours) == len(ref) == 50257
    assert ours.eos_token_id == ref.eos_token_id == EOT
    assert ours.bos_token_id == ref.bos_token_id == EOT
    assert ours.unk_token_id == ref.unk_token_id == EOT
    assert ours.pad_token_id is None and ref.pad_token_id is None
    assert ours.all_special_tokens == ref.all_special_tokens
    assert ours.all_special_ids == ref.all_special_ids
    assert ours.clean_up_tokenization_spaces is False and ref.clean_up_tokenization_spaces is False


def test_corpus_ids(ours, ref):
    assert_same_ids(ours, ref, CORPUS)
    for text in CORPUS[:50]:  # the single-string path too
        assert ours(text)["input_ids"] == ref(text)["input_ids"]
        assert ours.encode(text) == ref.encode(text)


def test_known_ids(ours):
    assert ours.encode("Hello world") == [15496, 995]
    assert ours.encode(" Hello world") == [18435, 995]
    assert ours.encode("<|endoftext|>") == [EOT]
    assert ours.encode("") == []


def test_random_strings_ids(ours, ref):
    texts = random_strings(4000, seed=1234)
    assert_same_ids(ours, ref, texts)


def test_random_pool_runs(ours, ref):
    # Long runs from one or two pools stress BPE merging over long words.
    rng = random.Random(7)
    texts = ["".join(rng.choice(rng.choice(POOLS[:3] + [p])) for _ in range(rng.randint(50, 400)))
             for p in POOLS for _ in range(8)]
    assert_same_ids(ours, ref, texts)


def test_pre_tokenizer_every_code_point(ref):
    # All code points, shuffled, through both pre-tokenizers: any class disagreement
    # (letter / number / whitespace / other) moves a piece boundary.
    pre = ref.backend_tokenizer.pre_tokenizer
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    random.Random(0).shuffle(chars)
    for i in range(0, len(chars), 16384):
        text = "".join(chars[i:i + 16384])
        want = [text[a:b] for _, (a, b) in pre.pre_tokenize_str(text)]
        assert _C.gpt2_pre_tokenize(text) == want, f"chunk at {i}"


def test_pre_tokenizer_corpus(ref):
    pre = ref.backend_tokenizer.pre_tokenizer
    for text in CORPUS + random_strings(500, seed=5):
        text = text.replace("<|endoftext|>", "<|x|>")
        want = [text[a:b] for _, (a, b) in pre.pre_tokenize_str(text)]
        assert _C.gpt2_pre_tokenize(text) == want, repr(text)


def test_decode_corpus(ours, ref):
    seqs = ref(CORPUS + random_strings(1000, seed=99))["input_ids"]
    assert_same_text(ours, ref, seqs)
    assert_same_text(ours, ref, seqs, skip_special_tokens=True)
    for s in seqs[:50]:
        assert ours.decode(s) == ref.decode(s)
        assert ours.decode(s, skip_special_tokens=True) == ref.decode(s, skip_special_tokens=True)


def test_decode_round_trip(ours):
    for text in CORPUS:
        assert ours.decode(ours.encode(text)) == text


def test_decode_split_multibyte(ours, ref):
    # Prefixes, suffixes and slices of id sequences cut characters in the middle; the
    # reference replaces each ill-formed part with U+FFFD, and so must we.
    seqs = []
    for text in ["😀👨‍👩‍👧", "日本語のテキスト", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "café ñ", "🇫🇷🇺🇸", "\U00031350\U0001e030"]:
        ids = ref.encode(text)
        seqs += [ids[:k] for k in range(len(ids) + 1)] + [ids[k:] for k in range(len(ids))]
        seqs += [ids[a:b] for a in range(len(ids)) for b in range(a, len(ids) + 1)]
        seqs += [ids[:k] + [EOT] + ids[k:] for k in range(len(ids))]
    assert_same_text(ours, ref, seqs)
    assert_same_text(ours, ref, seqs, skip_special_tokens=True)
    assert ours.decode(ref.encode("😀")[:1]) == "\ufffd"


def test_decode_random_ids(ours, ref):
    rng = random.Random(3)
    byte_ids = [ours.convert_tokens_to_ids(t) for t in ours.convert_ids_to_tokens(list(range(256)))]
    seqs = [[rng.randrange(50257) for _ in range(rng.randint(0, 16))] for _ in range(2000)]
    seqs += [[rng.choice(byte_ids) for _ in range(rng.randint(0, 12))] for _ in range(2000)]  # raw bytes
    seqs += [[rng.choice(byte_ids + [EOT]) for _ in range(rng.randint(0, 12))] for _ in range(500)]
    assert_same_text(ours, ref, seqs)
    assert_same_text(ours, ref, seqs, skip_special_tokens=True)


def test_decode_inputs(ours, ref):
    ids = ref.encode("Hello there <|endoftext|> general Kenobi")
    arr = np.array(ids, dtype=np.int64)
    assert ours.decode(arr) == ref.decode(ids)
    assert ours.decode(arr.astype(np.int32)) == ref.decode(ids)
    assert ours.decode(ids[0]) == ref.decode(ids[0])
    batch = np.array([ids, ids[::-1]])
    assert ours.batch_decode(batch) == ref.batch_decode(batch)
    assert ours.batch_decode(batch, skip_special_tokens=True) == ref.batch_decode(batch, skip_special_tokens=True)
    assert ours.batch_decode([ids, []]) == ref.batch_decode([ids, []])
    assert ours.decode([]) == ref.decode([]) == ""
    assert ours.decode([ids, ids[:2]]) == ref.decode([ids, ids[:2]])


CLEANUP_TEXTS = [
    "Hello , world . How are you ? Fine ! I 'm here , you 're there , we 've been , it 's done .",
    "They do n't know . Is n't it ? ' quoted ' text . . . end !", " . ? ! , ' ' n't 'm 's 've 're",
    "a .b ,c", "  ..  ,,  !!", "x ' y ' z", "can n't won n't", "",
]


def test_cleanup_default_and_ignored(ours, ref):
    # transformers 5 ignores clean_up_tokenization_spaces=True for BPE tokenizers (with a
    # warning) unless forced: the text comes back unchanged.
    seqs = ref(CLEANUP_TEXTS)["input_ids"]
    for s, text in zip(seqs, CLEANUP_TEXTS):
        assert ours.decode(s) == ref.decode(s) == text
        assert ours.decode(s, clean_up_tokenization_spaces=True) == ref.decode(s, clean_up_tokenization_spaces=True)


def test_cleanup_forced(vocab_dir):
    kw = dict(clean_up_tokenization_spaces=True,
              clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output=True)
    ours = GPT2Tokenizer.from_pretrained(vocab_dir, **kw)
    ref = transformers.AutoTokenizer.from_pretrained(vocab_dir, **kw)
    texts = CLEANUP_TEXTS + random_strings(500, seed=11) + [
        "".join(random.Random(i).choice([" ", ".", "?", "!", ",", "'", "n't", "m", "s", "ve", "re", "a"])
                for _ in range(30)) for i in range(500)]
    seqs = ref(texts)["input_ids"]
    assert_same_text(ours, ref, seqs)
    assert_same_text(ours, ref, seqs, skip_special_tokens=True)
    assert ours.decode(seqs[0]) != CLEANUP_TEXTS[0]  # the rules did apply
    for text in texts:
        assert ours.clean_up_tokenization(text) == ref.clean_up_tokenization(text)
    assert ours.decode(seqs[0], clean_up_tokenization_spaces=False) == CLEANUP_TEXTS[0]


def test_call_batch_and_numpy(vocab_dir):
    ours = GPT2Tokenizer.from_pretrained(vocab_dir, pad_token="<|endoftext|>")
    ref = transformers.AutoTokenizer.from_pretrained(vocab_dir, pad_token="<|endoftext|>")
    texts = ["a photo of a cat", "two dogs", ""]
    for kw in [{}, {"padding": True}, {"padding": "max_length", "max_length": 8},
               {"padding": True, "truncation": True, "max_length": 3}, {"padding": True, "padding_side": "left"}]:
        got, want = ours(texts, **kw), ref(texts, **kw)
        assert got["input_ids"] == want["input_ids"] and got["attention_mask"] == want["attention_mask"], kw
    got, want = ours(texts, padding=True, return_tensors="np"), ref(texts, padding=True, return_tensors="np")
    for key in ("input_ids", "attention_mask"):
        assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key])
    got, want = ours("one text", return_tensors="np"), ref("one text", return_tensors="np")
    assert np.array_equal(got["input_ids"], want["input_ids"]) and got["input_ids"].shape == (1, 2)
    assert np.array_equal(ours.encode("x y", return_tensors="np"), ref.encode("x y", return_tensors="np"))


def test_token_conversions(ours, ref):
    ids = ref.encode("Hello world, <|endoftext|> café 😀")
    assert ours.convert_ids_to_tokens(ids) == ref.convert_ids_to_tokens(ids)
    assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == ref.convert_ids_to_tokens(
        ids, skip_special_tokens=True)
    assert ours.convert_ids_to_tokens(EOT) == ref.convert_ids_to_tokens(EOT) == "<|endoftext|>"
    toks = ref.convert_ids_to_tokens(ids) + ["not-a-token-xyz", "Ġthe"]
    assert ours.convert_tokens_to_ids(toks) == ref.convert_tokens_to_ids(toks)
    assert ours.convert_tokens_to_ids("Ġthe") == ref.convert_tokens_to_ids("Ġthe") == 262
    assert ours.tokenize("Hello world's") == ref.tokenize("Hello world's")
    assert ours.get_vocab() == ref.get_vocab()


def test_tokenizer_json_and_added_tokens(ref, tmp_path):
    # A tokenizer.json with added tokens of every kind (lstrip / rstrip, normalized or not,
    # special or not, non-ASCII content, overlapping contents), saved by transformers itself.
    from transformers import AddedToken
    r = transformers.AutoTokenizer.from_pretrained(gpt2_dir())
    r.add_tokens([AddedToken("<ls>", lstrip=True), AddedToken("<rs>", rstrip=True),
                  AddedToken("<both>", lstrip=True, rstrip=True), AddedToken("é€", normalized=False),
                  AddedToken("Ġfoo", normalized=False), AddedToken("hello", normalized=True),
                  AddedToken("hell", normalized=False), AddedToken("<|end", normalized=False),
                  AddedToken("é", normalized=False), AddedToken("ÿx"), AddedToken("Āā", special=True, normalized=False)])
    r.add_special_tokens({"pad_token": "<pad>", "additional_special_tokens": ["<sp>"]})
    r.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file() and not (tmp_path / "vocab.json").exists()
    ref2 = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ours = AutoTokenizer.from_pretrained(tmp_path)
    assert len(ours) == len(ref2) and ours.vocab_size == ref2.vocab_size
    assert ours.pad_token_id == ref2.pad_token_id and ours.all_special_ids == ref2.all_special_ids
    rng = random.Random(1)
    parts = ["<ls>", "<rs>", "<both>", "é€", "Ġfoo", "hello", "hell", "<|end", "é", "ÿx", "Āā", "<|endoftext|>",
             "<pad>", "<sp>", " ", "  ", "\n", "\u3000", "a", "x y", "€", "'s"]
    texts = ["".join(rng.choice(parts) for _ in range(rng.randint(0, 10))) for _ in range(3000)]
    assert_same_ids(ours, ref2, texts)
    seqs = ref2(texts)["input_ids"]
    assert_same_text(ours, ref2, seqs)
    assert_same_text(ours, ref2, seqs, skip_special_tokens=True)
    assert ours.convert_ids_to_tokens(seqs[5]) == ref2.convert_ids_to_tokens(seqs[5])


def test_merges_as_lists(ref, tmp_path):
    # tokenizer.json merges appear both as "a b" strings (older files) and [a, b] lists.
    import json
    ref.backend_tokenizer.save(str(tmp_path / "tokenizer.json"))
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    texts = random_strings(300, seed=8) + CORPUS
    for form in ("list", "str"):
        data["model"]["merges"] = [(m.split(" ") if isinstance(m, str) else m) if form == "list"
                                   else (" ".join(m) if isinstance(m, list) else m) for m in data["model"]["merges"]]
        (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
        assert_same_ids(GPT2Tokenizer(tokenizer_file=str(tmp_path / "tokenizer.json")), ref, texts)


def test_add_prefix_space(vocab_dir):
    ours = GPT2Tokenizer.from_pretrained(vocab_dir, add_prefix_space=True)
    ref = transformers.AutoTokenizer.from_pretrained(vocab_dir, add_prefix_space=True)
    rng = random.Random(2)
    parts = ["<|endoftext|>", " ", "  ", "a", "Hello", "\n", "'s", "1", "é"]
    texts = ["".join(rng.choice(parts) for _ in range(rng.randint(0, 6))) for _ in range(1000)] + CORPUS
    assert_same_ids(ours, ref, texts)


def test_invalid_utf8_bytes(ours):
    # The C API takes bytes; ill-formed UTF-8 is tokenized byte-wise without reading past
    # the end, and byte-level BPE gives every byte back on decode.
    rng = random.Random(4)
    tok = ours._tok
    samples = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 24))) for _ in range(3000)]
    samples += [b"\xf0", b"\xf0\x9f", b"\xf0\x9f\x98", b"a\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xff\xfe",
                b"\xf4\x90\x80\x80", b"'s\xff", b" \x80abc", b"\xe0\x80\x80"]
    for b in samples:
        ids = tok.encode(b)
        assert tok.decode(ids) == b.decode("utf-8", "replace"), b
    for text in CORPUS:
        assert tok.encode(text.encode("utf-8")) == tok.encode(text)


def test_threads_share_a_tokenizer(ours, ref):
    # encode_batch / decode_batch release the GIL; the word cache is shared and locked.
    texts = random_strings(600, seed=21)
    want = ref(texts)["input_ids"]
    want_text = ref.batch_decode(want)
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(3):
                got = ours(texts[k::4])["input_ids"]
                assert got == want[k::4]
                assert ours.batch_decode(got) == want_text[k::4]
            results[k] = True
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
