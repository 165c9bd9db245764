"""GPT-2: transformers' GPT2LMHeadModel (plain, or with cross-attention as the decoder of a
VisionEncoderDecoderModel) on the C decoder (csrc/models/gpt2.c).

Weights are bound zero-copy in their stored layout (Conv1D weights stay [in, out]); the
language-model head is tied to wte unless tie_word_embeddings is false. Decoding runs in C
through a session capsule handed to visionc.generation.generate, without the GIL."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .._native import _C
from ..generation import GenerationConfig, check_generation_fields, generate as _generate
from .config_fields import (EPS, LAYERS, MAX_POSITIONS, MAX_VOCAB, PROB, SIZE, STD, Bool, Int, check_fields)
from .base import PreTrainedModel


@dataclass
class GPT2Config:
    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    add_cross_attention: bool = False
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False  # a mixed-precision detail: float32 runs the same either way
    tie_word_embeddings: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | list | None = None
    pad_token_id: int | None = None
    decoder_start_token_id: int | None = None
    model_type: str = "gpt2"
    extra: dict = field(default_factory=dict)  # the rest of the config, kept for generation defaults

    _RULES = {"vocab_size": Int(1, MAX_VOCAB), "n_positions": Int(1, MAX_POSITIONS), "n_embd": SIZE,
              "n_layer": LAYERS, "n_head": SIZE, "n_inner": Int(1, 1 << 18, nullable=True),
              "layer_norm_epsilon": EPS, "initializer_range": STD, "resid_pdrop": PROB, "embd_pdrop": PROB,
              "attn_pdrop": PROB, "summary_first_dropout": PROB, "add_cross_attention": Bool(),
              "scale_attn_weights": Bool(), "scale_attn_by_inverse_layer_idx": Bool(),
              "reorder_and_upcast_attn": Bool(), "tie_word_embeddings": Bool()}

    # transformers' attribute_map: the generic names GPT2Config also accepts
    _ALIASES = {"hidden_size": "n_embd", "num_hidden_layers": "n_layer", "num_attention_heads": "n_head",
                "max_position_embeddings": "n_positions"}

    @classmethod
    def from_dict(cls, d: dict, source: str = "config.json") -> "GPT2Config":
        d = {cls._ALIASES.get(k, k): v for k, v in d.items()}
        known = {f.name for f in fields(cls)} - {"extra"}
        check_fields(d, cls._RULES, source)
        check_generation_fields(d, source)  # token ids and the legacy generation fields
        kw = {k: d[k] for k in known if d.get(k) is not None}
        if kw.get("n_embd", cls.n_embd) % kw.get("n_head", cls.n_head):
            raise ValueError(f"{source}: n_embd {kw.get('n_embd', cls.n_embd)} is not a multiple of n_head "
                             f"{kw.get('n_head', cls.n_head)}")
        cfg = cls(**kw)
        cfg.extra = {k: v for k, v in d.items() if k not in known}
        return cfg

    @property
    def inner_size(self) -> int:
        return int(self.n_inner) if self.n_inner else 4 * self.n_embd

    def to_dict(self) -> dict:
        d = dict(self.extra)
        d.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"})
        return d


_MASK_BUFFER = re.compile(r"(^|\.)(attn|crossattention)\.(bias|masked_bias)$")


def decoder_state(state: dict) -> dict:
    """GPT2LMHeadModel names for a GPT-2 state dict: GPT2Model checkpoints (no 'transformer.'
    prefix) are prefixed, and the causal-mask buffers old checkpoints carry (attn.bias,
    attn.masked_bias: not parameters) are dropped."""
    out = {}
    for k, v in state.items():
        if _MASK_BUFFER.search(k):
            continue
        if not k.startswith(("transformer.", "lm_head.", "enc_to_dec_proj.")):
            k = "transformer." + k
        out[k] = v
    return out


class CausalLMOutput:
    def __init__(self, logits):
        self.logits = logits

    def __getitem__(self, key):
        if key in ("logits", 0):
            return self.logits
        raise KeyError(key)


class GPT2LMHeadModel(PreTrainedModel):
    """transformers.GPT2LMHeadModel on the C core: logits and generation, NumPy in and out.

    encoder_hidden_size / has_enc_proj describe the encoder a cross-attention decoder reads
    (VisionEncoderDecoderModel passes them; enc_to_dec_proj is then one of its slots)."""

    main_input_name = "input_ids"

    def __init__(self, config: GPT2Config, encoder_hidden_size: int | None = None, has_enc_proj: bool = False):
        super().__init__()
        if config.activation_function not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu", "relu", "silu",
                                              "swish"):
            raise NotImplementedError(f"activation_function '{config.activation_function}' is not supported")
        self.config = config
        cross = bool(config.add_cross_attention)
        self._c = _C.gpt2_new(config.vocab_size, config.n_positions, config.n_embd, config.n_layer, config.n_head,
                              config.inner_size, cross, int(encoder_hidden_size or config.n_embd) if cross else 0,
                              bool(has_enc_proj and cross), bool(config.tie_word_embeddings),
                              bool(config.scale_attn_weights), bool(config.scale_attn_by_inverse_layer_idx),
                              str(config.activation_function), float(config.layer_norm_epsilon))
        self.generation_config = GenerationConfig.from_model_config(config.to_dict())

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs):
        model = super().from_pretrained(name_or_path, **kwargs)
        model.generation_config = generation_config_for(model.local_dir, model.config.to_dict())
        return model

    @classmethod
    def _prepare(cls, state, raw, source):
        if raw is None:
            raise FileNotFoundError(f"{source}: no config.json beside it (needed for GPT-2 checkpoints)")
        if raw.get("model_type") not in (None, "gpt2"):
            raise ValueError(f"{source}: config.json model_type '{raw.get('model_type')}' is not GPT-2")
        return GPT2Config.from_dict(raw), decoder_state(state), {}

    # Forward --------------------------------------------------------------------------
    @staticmethod
    def _encoder_states(encoder_hidden_states):
        if encoder_hidden_states is None:
            return None
        e = encoder_hidden_states
        if hasattr(e, "detach") and hasattr(e, "numpy"):
            e = e.detach().cpu().numpy()
        if not isinstance(e, np.ndarray) or e.dtype != np.float32 or e.ndim != 3:
            raise TypeError("encoder_hidden_states must be a float32 array of shape (N, T, C)")
        return np.ascontiguousarray(e)

    def __call__(self, input_ids, encoder_hidden_states=None):
        """Logits (N, T, V) for every position of input_ids (N, T) (position ids 0..T-1)."""
        ids = np.asarray(input_ids)
        if ids.ndim == 1:
            ids = ids[None]
        return CausalLMOutput(_C.gpt2_forward(self._c, self._encoder_states(encoder_hidden_states), ids))

    forward = __call__

    def session(self, encoder_hidden_states=None, max_rows: int = 1, max_len: int = 1):
        """A decoding session: the "visionc.gen_model" capsule generation.generate runs in C.
        Cross-attention keys/values of the encoder states are computed here, once."""
        return _C.gpt2_session(self._c, self._encoder_states(encoder_hidden_states), int(max_rows), int(max_len))

    def generate(self, input_ids=None, generation_config: GenerationConfig | None = None, *,
                 encoder_hidden_states=None, seed=None, **kwargs):
        """transformers' generate() on prompts input_ids (N, P) of equal length (None: one start
        token per row of encoder_hidden_states, or batch_size rows)."""
        enc = self._encoder_states(encoder_hidden_states)
        cfg = generation_config if generation_config is not None else self.generation_config
        prompt = None if input_ids is None else np.atleast_2d(np.asarray(input_ids))
        if enc is not None:
            n = enc.shape[0]
        elif prompt is not None:
            n = prompt.shape[0]
        else:
            n = int(kwargs.pop("batch_size", 1))
        rows, length = generation_hints(cfg, kwargs, n, prompt.shape[1] if prompt is not None else 1,
                                        self.config.n_positions)
        return _generate(self.session(enc, rows, length), prompt, cfg, seed=seed, batch_size=n,
                         max_position_embeddings=self.config.n_positions, **kwargs)


def generation_hints(cfg: GenerationConfig, kwargs: dict, n_inputs: int, prompt_len: int,
                     max_positions: int) -> tuple[int, int]:
    """(rows, tokens per row) a generation will need, to size the caches up front, after the
    merged values are range-checked. Only a hint: the caches grow if it falls short, and no
    row is longer than the decoder's positions."""
    check_generation_fields({**vars(cfg), **kwargs}, "generation config")

    def pick(name, default):
        v = kwargs.get(name, getattr(cfg, name, None))
        return default if v is None else v
    try:
        beams = max(int(pick("num_beams", 1)), int(pick("num_return_sequences", 1)), 1)
        new = pick("max_new_tokens", None)
        length = prompt_len + int(new) if new is not None else int(pick("max_length", 20 + prompt_len))
    except (TypeError, ValueError):  # generate() reports bad values with a proper message
        return n_inputs, min(prompt_len + 20, max_positions)
    return max(1, n_inputs * beams), min(max(prompt_len + 1, length), max_positions)


def generation_config_for(directory, model_config: dict) -> GenerationConfig:
    """What transformers' from_pretrained uses: generation_config.json when the checkpoint has
    one, else the generation fields of config.json (decoder section included)."""
    if directory is not None and (Path(directory) / "generation_config.json").is_file():
        return GenerationConfig.from_pretrained(Path(directory) / "generation_config.json")
    return GenerationConfig.from_model_config(model_config)
