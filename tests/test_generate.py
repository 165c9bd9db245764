"""Greedy and beam-search parity with transformers' generate() on a tiny random GPT-2: same token
ids, sequences_scores within 1e-5, same beam_indices and processed scores."""
import itertools
import warnings

import numpy as np
import pytest
import torch
import transformers

from gen_helpers import EOS, TorchCallback, prompts, tiny_gpt2
from visionc.generation import GenerationConfig, generate

transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", category=UserWarning)

VOCAB = 120
MODELS = {}


def model(eos_boost):
    if eos_boost not in MODELS:
        MODELS[eos_boost] = tiny_gpt2(seed=3, vocab=VOCAB, eos_boost=eos_boost)
    return MODELS[eos_boost]


def run_both(m, ids, keep_finished=False, **kw):
    ref = m.generate(torch.as_tensor(ids), do_sample=False, return_dict_in_generate=True, output_scores=True, **kw)
    cfg = GenerationConfig.from_model_config(m.config.to_dict())
    out = generate(TorchCallback(m), ids, cfg, return_dict_in_generate=True, output_scores=True,
                   keep_finished=keep_finished, **kw)
    return ref, out


def check(ref, out, beams, keep_finished=False):
    np.testing.assert_array_equal(out.sequences, ref.sequences.numpy())
    assert len(out.scores) == len(ref.scores)
    for a, b in zip(ref.scores, out.scores):
        rows = np.ones(len(b), bool) if keep_finished else ~np.isnan(b).all(1)
        np.testing.assert_allclose(b[rows], a.numpy()[rows], rtol=1e-5, atol=2e-5)
    if beams:
        assert np.abs(out.sequences_scores - ref.sequences_scores.numpy()).max() <= 1e-5
        np.testing.assert_array_equal(out.beam_indices, ref.beam_indices.numpy())


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("eos_boost", [0.0, 0.3, 0.4])
@pytest.mark.parametrize("extra", [{}, {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2},
                                   {"min_new_tokens": 4, "bad_words_ids": [[5], [7, 8]], "suppress_tokens": [9]},
                                   {"repetition_penalty": 0.7, "forced_eos_token_id": EOS, "max_length": 12}])
def test_greedy_parity(batch, eos_boost, extra):
    kw = {"max_new_tokens": 12, **extra}
    if "max_length" in kw:
        del kw["max_new_tokens"]
    ids = prompts(batch, 4, VOCAB, seed=batch)
    ref, out = run_both(model(eos_boost), ids, **kw)
    check(ref, out, beams=False)


BEAM_GRID = list(itertools.product([2, 3, 5], [True, False, "never"], [0.5, 1.0, 2.0]))


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("num_beams,early_stopping,length_penalty", BEAM_GRID)
def test_beam_parity(batch, num_beams, early_stopping, length_penalty):
    ids = prompts(batch, 3, VOCAB, seed=10 + num_beams)
    ref, out = run_both(model(0.4), ids, num_beams=num_beams, early_stopping=early_stopping,
                        length_penalty=length_penalty, max_new_tokens=10)
    check(ref, out, beams=True)


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("extra", [
    {"num_beams": 4, "num_return_sequences": 3},
    {"num_beams": 3, "num_return_sequences": 3, "early_stopping": True, "no_repeat_ngram_size": 2},
    {"num_beams": 4, "num_return_sequences": 2, "repetition_penalty": 1.4, "early_stopping": "never"},
    {"num_beams": 3, "min_new_tokens": 5, "length_penalty": 2.0},
    {"num_beams": 5, "num_return_sequences": 3, "forced_eos_token_id": EOS, "max_new_tokens": 1},
    {"num_beams": 2, "bad_words_ids": [[5], [7, 8]], "suppress_tokens": [9], "renormalize_logits": True},
])
@pytest.mark.parametrize("keep_finished", [False, True])
def test_beam_options_parity(batch, extra, keep_finished):
    kw = {"max_new_tokens": 9, **extra}
    ids = prompts(batch, 4, VOCAB, seed=20 + batch)
    ref, out = run_both(model(0.3), ids, keep_finished=keep_finished, **kw)
    check(ref, out, beams=True, keep_finished=keep_finished)


def test_beam_without_eos_boost_runs_to_max_length():
    ids = prompts(4, 2, VOCAB, seed=5)
    ref, out = run_both(model(0.0), ids, num_beams=3, max_new_tokens=8)
    check(ref, out, beams=True)
    assert out.sequences.shape[1] == ref.sequences.shape[1]


def test_default_max_length_is_20_new_tokens():
    m = model(0.0)
    ids = prompts(1, 3, VOCAB, seed=6)
    ref = m.generate(torch.as_tensor(ids), do_sample=False)
    out = generate(TorchCallback(m), ids, GenerationConfig.from_model_config(m.config.to_dict()),
                   max_position_embeddings=m.config.n_positions)
    np.testing.assert_array_equal(out, ref.numpy())
    assert out.shape == (1, 23) and out.dtype == np.int64
