"""Token generation (greedy, sampling, beam search) on the C decoders, like transformers' generate().

``generate(next_logits, prompt_ids, generation_config=None, **kwargs)`` resolves the configuration
the way transformers 5.x does (defaults, max_new_tokens / min_new_tokens, pad = eos) and runs the
C loop. ``next_logits`` is either

* a Python callable ``next_logits(tokens, parent_rows) -> (n_rows, V) float array``: ``tokens`` is
  int64 (n_rows, n_tokens) -- the prompts at the first call, then one token per row -- and
  ``parent_rows`` is None at the first call and when the rows are unchanged, else an int64
  (n_rows,) array: row i continues the cache of row ``parent_rows[i]`` of the previous call
  (rows not named are finished). See csrc/generate/generate.h for the full contract;
* or a PyCapsule "visionc.gen_model" from a C model: the loop then runs without the GIL.
"""
from __future__ import annotations

import copy
import json
import os

import numpy as np

from ._native import _C
from .models.config_fields import MAX_POSITIONS, MAX_VOCAB, TOKEN, Float, Int, Ints, check_fields

__all__ = ["GenerationConfig", "GenerateOutput", "generate"]

# transformers' GenerationConfig._get_default_generation_params, for the fields used here.
_DEFAULTS = {
    "max_length": 20, "min_length": 0, "do_sample": False, "use_cache": True, "early_stopping": False,
    "num_beams": 1, "temperature": 1.0, "top_k": 50, "top_p": 1.0, "typical_p": 1.0,
    "repetition_penalty": 1.0, "length_penalty": 1.0, "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0, "num_return_sequences": 1, "output_scores": False,
    "return_dict_in_generate": False, "remove_invalid_values": False, "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0, "encoder_repetition_penalty": 1.0, "num_beam_groups": 1, "diversity_penalty": 0.0,
}

# Fields the C decoders honour.
_SUPPORTED = (
    "max_length", "max_new_tokens", "min_length", "min_new_tokens", "early_stopping", "do_sample", "num_beams",
    "use_cache", "temperature", "top_k", "top_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "bad_words_ids", "renormalize_logits", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "suppress_tokens", "begin_suppress_tokens", "num_return_sequences", "output_scores", "return_dict_in_generate",
    "pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id", "min_tokens_to_keep",
)
# Fields that must keep their neutral value (None, or the default): not implemented here.
_UNSUPPORTED = (
    "typical_p", "epsilon_cutoff", "eta_cutoff", "min_p", "top_h", "encoder_repetition_penalty",
    "encoder_no_repeat_ngram_size", "exponential_decay_length_penalty", "sequence_bias", "guidance_scale",
    "num_beam_groups", "diversity_penalty", "penalty_alpha", "constraints", "force_words_ids", "dola_layers",
    "stop_strings", "max_time", "output_logits", "output_attentions", "output_hidden_states", "token_healing",
    "watermarking_config", "low_memory", "prompt_lookup_num_tokens", "assistant_early_exit", "use_mtp",
)
_FIELDS = _SUPPORTED + _UNSUPPORTED

_LEN = Int(0, MAX_POSITIONS, nullable=True)
_MANY = Int(1, 1 << 12, nullable=True)
# Ranges of the numeric fields (null: unset), checked once the file's values and generate()'s
# arguments are merged and before anything is sized by them.
_RULES = {"max_length": _LEN, "max_new_tokens": _LEN, "min_length": _LEN, "min_new_tokens": _LEN,
          "num_beams": _MANY, "num_return_sequences": _MANY, "top_k": Int(0, MAX_VOCAB, nullable=True),
          "top_p": Float(0.0, 1.0, nullable=True), "temperature": Float(0.0, 1e6, nullable=True),
          "repetition_penalty": Float(0.0, 1e6, lo_open=True, nullable=True),
          "length_penalty": Float(-1e6, 1e6, nullable=True), "no_repeat_ngram_size": _LEN,
          "min_tokens_to_keep": Int(0, MAX_VOCAB, nullable=True), "pad_token_id": TOKEN, "bos_token_id": TOKEN,
          "decoder_start_token_id": TOKEN, "forced_bos_token_id": TOKEN}
_ID_LISTS = ("eos_token_id", "forced_eos_token_id")  # an id or a list of ids


def check_generation_fields(values: dict, source: str):
    check_fields(values, _RULES, source)
    for k in _ID_LISTS:
        v = values.get(k)
        if isinstance(v, list):
            check_fields(values, {k: Ints(0, TOKEN.hi, 0, 1 << 12)}, source)
        else:
            check_fields(values, {k: TOKEN}, source)


class GenerationConfig:
    """Generation parameters, named and defaulted as transformers' GenerationConfig (5.x): every
    field is None until set; generate() fills transformers' defaults (max_length 20 new tokens,
    top_k 50, ...). Unknown keys from JSON files are kept as attributes and ignored."""

    def __init__(self, **kwargs):
        for name in _FIELDS:
            setattr(self, name, kwargs.pop(name, None))
        for name, value in kwargs.items():  # e.g. transformers_version, cache settings
            setattr(self, name, value)

    @classmethod
    def from_dict(cls, d: dict) -> "GenerationConfig":
        return cls(**{k: v for k, v in d.items() if not k.startswith("_")})

    @classmethod
    def from_model_config(cls, model_config: dict) -> "GenerationConfig":
        """From a model's config.json dict: top-level generation fields, then those of its
        decoder / generator / text_config part that are still unset (transformers' rule)."""
        cfg = cls(**{k: v for k, v in model_config.items() if k in _FIELDS and v is not None})
        for sub in ("decoder", "generator", "text_config"):
            part = model_config.get(sub)
            if isinstance(part, dict) and part:
                for k in _FIELDS:
                    if getattr(cfg, k) is None and part.get(k) is not None:
                        setattr(cfg, k, part[k])
                break
        return cfg

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "GenerationConfig":
        """From a model directory: generation_config.json, else config.json (or a JSON file path)."""
        path = os.fspath(path)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            return cls.from_dict(d) if os.path.basename(path) != "config.json" else cls.from_model_config(d)
        gen = os.path.join(path, "generation_config.json")
        if os.path.isfile(gen):
            return cls.from_pretrained(gen)
        conf = os.path.join(path, "config.json")
        if os.path.isfile(conf):
            return cls.from_pretrained(conf)
        raise OSError(f"no generation_config.json or config.json in {path}")

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}

    def update(self, **kwargs) -> dict:
        """Sets the known fields; returns the unknown ones."""
        unused = {}
        for k, v in kwargs.items():
            if k in _FIELDS or hasattr(self, k):
                setattr(self, k, v)
            else:
                unused[k] = v
        return unused

    def __repr__(self):
        return f"GenerationConfig({self.to_dict()})"


class GenerateOutput(dict):
    """generate()'s return_dict_in_generate result: a dict with attribute access
    (sequences, scores, sequences_scores, beam_indices)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _id_list(v, name):
    if v is None:
        return None
    ids = [v] if isinstance(v, (int, np.integer)) else list(v)
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"{name} must be an int or a list of ints, got {v!r}")
    return [int(t) for t in ids]


def _resolve(cfg: GenerationConfig, prompt_len: int, max_position_embeddings):
    """transformers' generate() steps 1 and 6: defaults, then absolute min/max lengths."""
    default_max = cfg.max_length is None
    for k, v in _DEFAULTS.items():
        if getattr(cfg, k, None) is None:
            setattr(cfg, k, v)
    for k in _UNSUPPORTED:
        v = getattr(cfg, k)
        if v is not None and v != _DEFAULTS.get(k, None) and v is not False:
            raise NotImplementedError(f"generation option {k}={v!r} is not supported by visionc")
    if cfg.early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {cfg.early_stopping!r}")
    if cfg.max_new_tokens is not None:
        if cfg.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be greater than 0, got {cfg.max_new_tokens}")
        cfg.max_length = cfg.max_new_tokens + prompt_len
    elif default_max:  # transformers: by default, 20 new tokens
        cfg.max_length = cfg.max_length + prompt_len
        if max_position_embeddings is not None:
            cfg.max_length = min(cfg.max_length, max_position_embeddings)
    if cfg.min_new_tokens is not None:
        if cfg.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must be >= 0, got {cfg.min_new_tokens}")
        cfg.min_length = cfg.min_new_tokens + prompt_len
    return cfg


def generate(next_logits, prompt_ids=None, generation_config: GenerationConfig | None = None, *, seed=None,
             keep_finished: bool = False, max_position_embeddings: int | None = None, batch_size: int = 1,
             dtype=np.int64, **kwargs):
    """Decodes like transformers' ``model.generate(prompt_ids, generation_config, **kwargs)``.

    prompt_ids: (N, P) token ids, prompts of equal length (no attention mask / padding); None:
    ``batch_size`` rows of decoder_start_token_id (else bos_token_id). seed: sampling seed (None:
    a random one); each prompt row's samples depend on the seed only, not on the batch.
    keep_finished: keep running finished rows as transformers does (only changes `scores` of
    finished rows, which are NaN otherwise). max_position_embeddings caps the default
    max_length as transformers does. Returns the (N * num_return_sequences, L) sequences as
    ``dtype``, or with return_dict_in_generate=True a GenerateOutput with sequences, scores
    (tuple of (rows, V) float32 arrays per step, with output_scores), sequences_scores and
    beam_indices (beam search)."""
    cfg = copy.deepcopy(generation_config) if generation_config is not None else GenerationConfig()
    unknown = [k for k in kwargs if k not in _FIELDS]
    if unknown:
        raise TypeError(f"generate() got unknown generation arguments: {unknown}")
    cfg.update(**kwargs)
    check_generation_fields(vars(cfg), "generation config")
    if prompt_ids is None:
        start = cfg.decoder_start_token_id if cfg.decoder_start_token_id is not None else cfg.bos_token_id
        if start is None:
            raise ValueError("prompt_ids is None and neither decoder_start_token_id nor bos_token_id is set")
        prompt_ids = np.full((batch_size, 1), _id_list(start, "decoder_start_token_id")[0], dtype=np.int64)
    prompt = np.asarray(prompt_ids)
    if prompt.ndim == 1:
        prompt = prompt[None, :]
    if prompt.ndim != 2 or not np.issubdtype(prompt.dtype, np.integer):
        raise ValueError(f"prompt_ids must be a (N, P) integer array, got shape {prompt.shape} {prompt.dtype}")
    cfg = _resolve(cfg, prompt.shape[1], max_position_embeddings)
    eos = _id_list(cfg.eos_token_id, "eos_token_id")
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else (eos[0] if eos else None)
    es = {False: 0, True: 1, "never": 2}[cfg.early_stopping]
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "little")
    c = {
        "max_length": cfg.max_length, "min_length": cfg.min_length, "min_new_tokens": cfg.min_new_tokens,
        "do_sample": bool(cfg.do_sample), "num_beams": cfg.num_beams,
        "num_return_sequences": cfg.num_return_sequences, "temperature": cfg.temperature, "top_k": cfg.top_k,
        "top_p": cfg.top_p, "min_tokens_to_keep": cfg.min_tokens_to_keep or 0,
        "repetition_penalty": cfg.repetition_penalty, "no_repeat_ngram_size": cfg.no_repeat_ngram_size,
        "length_penalty": cfg.length_penalty, "early_stopping": es, "eos_token_id": eos, "pad_token_id": pad,
        "bad_words_ids": cfg.bad_words_ids, "suppress_tokens": cfg.suppress_tokens,
        "begin_suppress_tokens": cfg.begin_suppress_tokens,
        "forced_bos_token_id": cfg.forced_bos_token_id if cfg.forced_bos_token_id is not None else -1,
        "forced_eos_token_id": _id_list(cfg.forced_eos_token_id, "forced_eos_token_id"),
        "remove_invalid_values": bool(cfg.remove_invalid_values), "renormalize_logits": bool(cfg.renormalize_logits),
        "seed": int(seed) & (2**64 - 1), "output_scores": bool(cfg.output_scores and cfg.return_dict_in_generate),
        "keep_finished": bool(keep_finished),
    }
    for k in ("num_beams", "num_return_sequences", "top_k", "no_repeat_ngram_size", "min_length", "max_length"):
        if isinstance(c[k], bool) or not isinstance(c[k], (int, np.integer)):
            raise TypeError(f"{k} must be an int, got {c[k]!r}")
    r = _C.generate(next_logits, prompt, c)
    seqs = r["sequences"].astype(dtype, copy=False)
    if not cfg.return_dict_in_generate:
        return seqs
    out = GenerateOutput(sequences=seqs)
    out["scores"] = tuple(r["scores"]) if r["scores"] is not None else None
    if cfg.num_beams > 1:
        out["sequences_scores"] = r["sequences_scores"] if cfg.output_scores else None
        out["beam_indices"] = r["beam_indices"]
    return out
