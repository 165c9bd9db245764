"""generate() API: argument errors, finished rows leaving the model calls, the C capsule path
(toy reference model), GenerationConfig loading."""
import json
import threading
import warnings

import numpy as np
import pytest
import transformers

from gen_helpers import EOS, PAD, ToyCallback, TorchCallback, prompts, tiny_gpt2
from visionc import _C
from visionc.generation import GenerationConfig, generate

transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", category=UserWarning)
VOCAB = 120
M = tiny_gpt2(seed=3, vocab=VOCAB, eos_boost=0.4)
IDS = prompts(2, 4, VOCAB, seed=2)


@pytest.mark.parametrize("kw,name", [
    ({"num_beams": 0}, "num_beams"),
    ({"do_sample": True, "top_p": 0.0}, "top_p"),
    ({"do_sample": True, "top_p": 1.5}, "top_p"),
    ({"do_sample": True, "top_k": -1}, "top_k"),
    ({"do_sample": True, "temperature": 0.0}, "temperature"),
    ({"max_length": 4}, "max_length"),
    ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences"),
    ({"num_return_sequences": 2}, "num_return_sequences"),
    ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
    ({"early_stopping": "sometimes"}, "early_stopping"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"min_new_tokens": -1}, "min_new_tokens"),
    ({"bad_words_ids": [[500]]}, "bad_words_ids"),
    ({"forced_eos_token_id": 999}, "forced_eos_token_id"),
])
def test_bad_arguments_raise_value_error(kw, name):
    with pytest.raises(ValueError, match=name):
        generate(TorchCallback(M), IDS, eos_token_id=EOS, **kw)


def test_other_errors():
    with pytest.raises(ValueError, match="prompt_ids"):
        generate(TorchCallback(M), -IDS, max_new_tokens=3)
    with pytest.raises(TypeError, match="unknown"):
        generate(TorchCallback(M), IDS, not_an_option=1)
    with pytest.raises(NotImplementedError, match="typical_p"):
        generate(TorchCallback(M), IDS, typical_p=0.5, do_sample=True)
    with pytest.raises(TypeError, match="callable"):
        generate(42, IDS)

    def boom(tokens, parents):
        if parents is not None or tokens.shape[1] == 1:
            raise RuntimeError("boom")
        return np.zeros((len(tokens), 10), np.float32)
    with pytest.raises(RuntimeError, match="boom"):
        generate(boom, IDS, max_new_tokens=3)
    with pytest.raises(ValueError, match="shape"):
        generate(lambda t, p: np.zeros((len(t) + 1, 10), np.float32), IDS, max_new_tokens=3)


def test_finished_rows_stop_requesting_work():
    ids = prompts(4, 3, VOCAB, seed=13)
    cb = TorchCallback(M)
    out = generate(cb, ids, max_new_tokens=10, eos_token_id=EOS, pad_token_id=PAD)
    ref = M.generate(__import__("torch").as_tensor(ids), max_new_tokens=10, do_sample=False).numpy()
    np.testing.assert_array_equal(out, ref)
    gen = out[:, 3:]
    finish = [list(r).index(EOS) if EOS in r else len(r) for r in gen]
    assert len(set(finish)) > 1, "rows should finish at different steps"
    for row, k in zip(gen, finish):
        assert (row[k + 1:] == PAD).all()
    rows = list(range(4))  # rows of each call, as input row ids
    for step, (tokens, parents, _) in enumerate(cb.calls[1:], start=1):
        alive = [r for r in rows if finish[r] >= step]
        assert len(tokens) == len(alive)
        if parents is not None:
            assert [rows[p] for p in parents] == alive
        rows = alive
    kept = TorchCallback(M)
    np.testing.assert_array_equal(generate(kept, ids, max_new_tokens=10, keep_finished=True,
                                           eos_token_id=EOS, pad_token_id=PAD), out)
    assert all(len(c[0]) == 4 for c in kept.calls)


@pytest.mark.parametrize("kw", [{}, {"num_beams": 3, "num_return_sequences": 2}, {"num_beams": 4, "length_penalty": 0.5},
                                {"do_sample": True, "seed": 3, "top_k": 5},
                                {"do_sample": True, "seed": 3, "num_beams": 2, "top_p": 0.9}])
def test_capsule_model_matches_python_twin(kw):
    rng = np.random.default_rng(0)
    V = 40
    A = (rng.standard_normal((V, V)) * 3).astype(np.float32)
    B = (rng.standard_normal((V, V)) * 3).astype(np.float32)
    A[:, EOS] += 2.0
    ids = rng.integers(4, V, (3, 2))
    cap = _C._toy_gen_model(A, B)
    common = dict(max_new_tokens=12, eos_token_id=EOS, pad_token_id=PAD, return_dict_in_generate=True,
                  output_scores=True, **kw)
    a = generate(cap, ids, **common)
    b = generate(ToyCallback(A, B), ids, **common)
    np.testing.assert_array_equal(a.sequences, b.sequences)
    np.testing.assert_array_equal(np.stack(a.scores), np.stack(b.scores))
    assert _C._toy_gen_model_stats(cap)["calls"] == len(a.scores)


def test_capsule_runs_without_the_gil():
    rng = np.random.default_rng(1)
    V = 200
    A, B = (rng.standard_normal((2, V, V)) * 2).astype(np.float32)
    ids = rng.integers(4, V, (16, 3))
    results = {}

    def work(i):
        results[i] = generate(_C._toy_gen_model(A, B), ids, num_beams=4, max_new_tokens=30, eos_token_id=EOS)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(results[0], results[1])


def test_generation_config_loading(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "decoder_start_token_id": 0, "pad_token_id": PAD,
        "decoder": {"eos_token_id": EOS, "bos_token_id": 0, "max_length": 9, "num_beams": 2}}))
    cfg = GenerationConfig.from_pretrained(tmp_path)
    assert (cfg.eos_token_id, cfg.pad_token_id, cfg.max_length, cfg.num_beams) == (EOS, PAD, 9, 2)
    out = generate(TorchCallback(M), None, cfg, batch_size=3, dtype=np.int32)
    assert out.dtype == np.int32 and out.shape[0] == 3 and out.shape[1] <= 9 and (out[:, 0] == 0).all()
    (tmp_path / "generation_config.json").write_text(json.dumps({"max_new_tokens": 5, "eos_token_id": [EOS, 7],
                                                                 "transformers_version": "5.0"}))
    cfg = GenerationConfig.from_pretrained(tmp_path)
    assert cfg.max_new_tokens == 5 and cfg.eos_token_id == [EOS, 7] and cfg.num_beams is None
    assert generate(TorchCallback(M), IDS, cfg).shape[1] <= 4 + 5
