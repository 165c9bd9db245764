"""Sampling: the filtered distribution of every step equals transformers' warpers on the same
logits; seeded streams make results reproducible and independent of the batch."""
import warnings

import numpy as np
import pytest
import torch
import transformers
from transformers.generation.logits_process import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor,
                                                    TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

from gen_helpers import EOS, PAD, TorchCallback, prompts, tiny_gpt2
from visionc.generation import generate

transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", category=UserWarning)
VOCAB = 120
M0 = tiny_gpt2(seed=4, vocab=VOCAB, sharp=4.0)             # flat enough for top-p to matter, no EOS
M_EOS = tiny_gpt2(seed=3, vocab=VOCAB, eos_boost=0.3)      # rows finish at different steps


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("temperature,top_k,top_p,rep", [
    (0.7, 0, 0.9, 1.0), (1.3, 20, 1.0, 1.0), (1.0, 10, 0.8, 1.2), (0.5, 50, 0.95, 1.0), (2.0, 0, 0.5, 1.0)])
def test_filtered_distribution_matches_transformers(temperature, top_k, top_p, rep):
    N, R, P = 3, 2, 4
    ids = prompts(N, P, VOCAB, seed=7)
    cb = TorchCallback(M0)
    out = generate(cb, ids, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                   repetition_penalty=rep, num_return_sequences=R, max_new_tokens=6, seed=5,
                   eos_token_id=None, pad_token_id=PAD, return_dict_in_generate=True, output_scores=True)
    procs = LogitsProcessorList()
    if rep != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(rep))
    procs.append(TemperatureLogitsWarper(temperature))
    if top_k:
        procs.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        procs.append(TopPLogitsWarper(top_p))
    assert len(out.scores) == 6
    for step, mine in enumerate(out.scores):
        raw = cb.calls[step][2]
        if step == 0:
            raw = np.repeat(raw, R, axis=0)  # the prefill row of each prompt, for its R samples
        seqs = torch.as_tensor(out.sequences[:, :P + step])
        ref = procs(seqs, torch.as_tensor(raw).clone()).numpy()
        np.testing.assert_array_equal(np.isneginf(mine), np.isneginf(ref))
        np.testing.assert_allclose(softmax(mine), softmax(ref), atol=1e-6)
        chosen = out.sequences[:, P + step]
        assert np.isfinite(mine[np.arange(len(chosen)), chosen]).all()


def run(ids, seed, **kw):
    kw = {"do_sample": True, "max_new_tokens": 10, "top_k": 30, "temperature": 1.5, **kw}
    return generate(TorchCallback(M_EOS), ids, seed=seed, eos_token_id=EOS, pad_token_id=PAD, **kw)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_same_seed_same_tokens_alone_or_in_batch(num_beams):
    ids = prompts(4, 3, VOCAB, seed=8)
    batch = run(ids, 123, num_beams=num_beams)
    np.testing.assert_array_equal(batch, run(ids, 123, num_beams=num_beams))
    for i in range(4):
        alone = run(ids[i:i + 1], 123, num_beams=num_beams)[0]
        np.testing.assert_array_equal(batch[i, :len(alone)], alone)
        assert (batch[i, len(alone):] == PAD).all()
    assert (batch == EOS).any(), "EOS should be reachable"


def test_different_seeds_differ_and_return_sequences_are_distinct():
    ids = prompts(4, 3, VOCAB, seed=8)
    a, b = run(ids, 1), run(ids, 2)
    assert a.shape != b.shape or (a != b).any()
    r = run(ids[:1], 7, num_return_sequences=3, max_new_tokens=8)
    assert r.shape[0] == 3 and len({tuple(x) for x in r}) > 1


def test_sampling_with_finished_rows_padded():
    ids = prompts(4, 3, VOCAB, seed=9)
    out = run(ids, 11, max_new_tokens=12)
    for row in out[:, 3:]:
        if EOS in row:
            k = list(row).index(EOS)
            assert (row[k + 1:] == PAD).all()


def test_beam_sampling_scores_match_transformers_warpers():
    N, K, P = 2, 3, 4
    ids = prompts(N, P, VOCAB, seed=12)
    cb = TorchCallback(M0)
    out = generate(cb, ids, do_sample=True, num_beams=K, temperature=0.8, top_k=15, top_p=0.9, max_new_tokens=5,
                   seed=3, eos_token_id=None, pad_token_id=PAD, keep_finished=True, return_dict_in_generate=True,
                   output_scores=True)
    # beams: log_softmax first; warpers keep at least 2 tokens (transformers' min_tokens_to_keep without EOS)
    procs = LogitsProcessorList([TemperatureLogitsWarper(0.8), TopKLogitsWarper(15, min_tokens_to_keep=2),
                                 TopPLogitsWarper(0.9, min_tokens_to_keep=2)])
    assert out.sequences.shape == (N, P + 5) and len(out.scores) == 5
    for step, mine in enumerate(out.scores):
        raw = cb.calls[step][2]
        if step == 0:
            raw = np.repeat(raw, K, axis=0)
        ref = procs(torch.zeros((N * K, 1), dtype=torch.long), torch.log_softmax(torch.as_tensor(raw), -1)).numpy()
        np.testing.assert_array_equal(np.isneginf(mine), np.isneginf(ref))
        np.testing.assert_allclose(softmax(mine), softmax(ref), atol=1e-6)
