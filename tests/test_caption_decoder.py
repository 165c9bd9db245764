"""The C GPT-2 decoder: a decoding session's cached steps (KV cache appended per step, rows
re-pointed, copied and dropped through parent_rows, cache and row storage grown past their
hints) give the logits of a full recomputation without a cache; a plain GPT-2 LM (no
cross-attention) matches transformers' GPT2LMHeadModel; bad calls raise clear errors.

Tolerance: logits atol 1e-4 + rtol 1e-5 (float32 GEMMs in another order; the sharpened test
heads give logits up to ~100; observed max abs <= 1e-5)."""
import numpy as np
import pytest
import torch
from transformers import GPT2Config as TGPT2Config, GPT2LMHeadModel as TGPT2

import visionc
from caption_helpers import pixels, save_safetensors, tiny_captioner
from helpers import assert_close
from visionc import _C

ATOL, RTOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tm = tiny_captioner()
    path = save_safetensors(tm, tmp_path_factory.mktemp("tiny_cap"))
    return tm, visionc.VisionEncoderDecoderModel.from_pretrained(path)


def full_logits(decoder, history, enc, inputs):
    """Last-position logits of each row's whole history, recomputed without a cache."""
    return decoder(np.array(history), encoder_hidden_states=enc[np.array(inputs)]).logits[:, -1]


# (parent_rows or None, one new token per row): identity, beam expansion (parents shared, so
# slots are copied), a reorder that drops rows and duplicates one, a reversal, one survivor.
STEPS = [(None, [5, 6, 7]), ([0, 0, 0, 1, 2, 2], [8, 9, 10, 11, 12, 13]), ([5, 4, 1, 1], [14, 15, 16, 17]),
         (None, [18, 19, 20, 21]), ([3, 2, 1, 0], [22, 23, 24, 25]), ([1, 1, 2, 0, 3], [26, 27, 28, 29, 30]),
         ([4], [31]), (None, [32])]


@pytest.mark.parametrize("prompt_len", [1, 3])
def test_cached_steps_equal_full_recomputation(tiny, prompt_len):
    _, vm = tiny
    enc = vm.encode(pixels(3, 32))
    # hints far below what the steps need: the cache regrows (rows and tokens) and must keep its contents
    session = vm.decoder.session(enc, max_rows=1, max_len=2)
    history = [list(range(1, 1 + prompt_len)) for _ in range(3)]
    inputs = [0, 1, 2]
    got = _C.gpt2_session_step(session, np.array(history), None, True)
    assert_close("prefill", got, full_logits(vm.decoder, history, enc, inputs), ATOL, RTOL)
    for parents, tokens in STEPS:
        rows = range(len(history)) if parents is None else parents
        history = [history[p] + [t] for p, t in zip(rows, tokens)]
        inputs = [inputs[p] for p in rows]
        got = _C.gpt2_session_step(session, np.array(tokens)[:, None], parents, False)
        assert_close(f"step parents={parents}", got, full_logits(vm.decoder, history, enc, inputs), ATOL, RTOL)


def test_a_new_prefill_forgets_the_previous_generation(tiny):
    _, vm = tiny
    enc = vm.encode(pixels(2, 32))
    session = vm.decoder.session(enc, 2, 4)
    _C.gpt2_session_step(session, np.array([[0], [0]]), None, True)
    _C.gpt2_session_step(session, np.array([[4], [5]]), [1, 0], False)
    again = _C.gpt2_session_step(session, np.array([[0], [0]]), None, True)
    fresh = _C.gpt2_session_step(vm.decoder.session(enc, 2, 4), np.array([[0], [0]]), None, True)
    np.testing.assert_array_equal(again, fresh)


def test_session_errors_are_clear(tiny):
    _, vm = tiny
    enc = vm.encode(pixels(2, 32))
    s = vm.decoder.session(enc, 2, 4)
    with pytest.raises(ValueError, match="changes the rows"):  # a step before any prefill
        _C.gpt2_session_step(s, np.array([[1], [2]]), None, False)
    with pytest.raises(ValueError, match="prefill has 3 rows but the encoder states hold 2"):
        _C.gpt2_session_step(s, np.zeros((3, 1), np.int64), None, True)
    with pytest.raises(ValueError, match="token id 90 .* outside the vocabulary"):
        _C.gpt2_session_step(s, np.array([[0], [90]]), None, True)
    _C.gpt2_session_step(s, np.array([[0], [0]]), None, True)
    with pytest.raises(ValueError, match=r"parent_rows\[1\] = 2 is not a row of the previous call \(2 rows\)"):
        _C.gpt2_session_step(s, np.array([[1], [2]]), [0, 2], False)
    with pytest.raises(ValueError, match="n_positions"):
        _C.gpt2_session_step(s, np.zeros((2, 65), np.int64), None, True)
    with pytest.raises(ValueError, match="encoder_hidden_states must have shape"):
        vm.decoder(np.zeros((1, 2), np.int64), encoder_hidden_states=np.zeros((1, 4, 7), np.float32))
    with pytest.raises(ValueError, match="encoder_hidden_states are required"):
        vm.decoder(np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match="has 2 rows but decoder_input_ids has 1"):
        vm.decoder(np.zeros((1, 2), np.int64), encoder_hidden_states=enc)
    with pytest.raises(TypeError, match="expected a session"):
        _C.gpt2_session_step(object(), np.zeros((1, 1), np.int64), None, True)


# ---- GPT-2 without cross-attention --------------------------------------------------------------

LM_VARIANTS = {
    "tied": {},
    "untied_relu_inner": dict(tie_word_embeddings=False, activation_function="relu", n_inner=40),
    "layer_scaled_gelu": dict(scale_attn_by_inverse_layer_idx=True, activation_function="gelu"),
}


def tiny_lm(**kw):
    torch.manual_seed(3)
    cfg = TGPT2Config(**dict(dict(vocab_size=70, n_embd=24, n_layer=2, n_head=3, n_positions=32, bos_token_id=0,
                                  eos_token_id=2, pad_token_id=1), **kw))
    m = TGPT2(cfg).eval()
    with torch.no_grad():
        m.lm_head.weight.mul_(40.0)  # peaked distributions: no near-ties between candidates
    return m


@pytest.mark.parametrize("variant", sorted(LM_VARIANTS))
def test_plain_gpt2_matches_transformers(variant, tmp_path):
    tm = tiny_lm(**LM_VARIANTS[variant])
    tm.save_pretrained(tmp_path)
    vm = visionc.GPT2LMHeadModel.from_pretrained(tmp_path)
    ids = np.random.default_rng(0).integers(3, 70, (3, 6))
    with torch.no_grad():
        ref = tm(torch.from_numpy(ids)).logits.numpy()
    assert_close(f"gpt2 {variant} logits", vm(ids).logits, ref, ATOL, RTOL)
    for kw in ({}, {"num_beams": 3, "length_penalty": 0.7}):
        with torch.no_grad():
            want = tm.generate(torch.from_numpy(ids[:, :3]), attention_mask=torch.ones(3, 3, dtype=torch.long),
                               max_new_tokens=6, do_sample=False, **kw).numpy()
        got = vm.generate(ids[:, :3], max_new_tokens=6, **kw)
        np.testing.assert_array_equal(got, want, err_msg=f"{variant} {kw}")


def test_plain_gpt2_refuses_encoder_states(tmp_path):
    tiny_lm().save_pretrained(tmp_path)
    vm = visionc.GPT2LMHeadModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no cross-attention"):
        vm(np.zeros((1, 2), np.int64), encoder_hidden_states=np.zeros((1, 3, 24), np.float32))
