"""VisionEncoderDecoderModel (image captioning, e.g. nlpconnect/vit-gpt2-image-captioning): our
C ViT encoder and the C GPT-2 decoder with cross-attention.

    model = VisionEncoderDecoderModel.from_pretrained("nlpconnect/vit-gpt2-image-captioning")
    ids = model.generate(pixel_values, num_beams=4, max_length=16)     # (N, L) int64
    logits = model(pixel_values, decoder_input_ids).logits             # (N, T, V)

The checkpoint's "encoder.*" tensors go to the ViT (pooler dropped: the decoder reads the
final-layer-normed last hidden state), "decoder.*" and "enc_to_dec_proj.*" to the decoder.
Both the names save_pretrained writes and transformers 5's in-memory names (a
torch.save(model.state_dict())) are accepted."""
from __future__ import annotations

import copy

import numpy as np

from ..generation import GenerationConfig, check_generation_fields, generate as _generate
from .base import PreTrainedModel
from .gpt2 import GPT2Config, GPT2LMHeadModel, decoder_state, generation_config_for, generation_hints
from .outputs import ModelOutput
from .vit import ViTConfig, ViTModel, _strip_prefix


class Seq2SeqLMOutput(ModelOutput):
    _fields = ("logits", "encoder_last_hidden_state")


class VisionEncoderDecoderConfig:
    """config.json of a VisionEncoderDecoderModel: the encoder's and decoder's configs plus the
    special token ids (top level first, then the decoder's, as transformers reads them)."""

    def __init__(self, raw: dict, source: str = "config.json"):
        if raw.get("model_type") not in (None, "vision-encoder-decoder"):
            raise ValueError(f"{source}: model_type '{raw.get('model_type')}' is not vision-encoder-decoder")
        enc, dec = raw.get("encoder"), raw.get("decoder")
        if not isinstance(enc, dict) or not isinstance(dec, dict):
            raise ValueError(f"{source}: a vision-encoder-decoder config needs 'encoder' and 'decoder' sections")
        if enc.get("model_type", "vit") != "vit":
            raise NotImplementedError(f"{source}: encoder model_type '{enc.get('model_type')}' is not supported "
                                      "(supported: vit)")
        if dec.get("model_type", "gpt2") != "gpt2":
            raise NotImplementedError(f"{source}: decoder model_type '{dec.get('model_type')}' is not supported "
                                      "(supported: gpt2)")
        self.raw = raw
        self.encoder = ViTConfig.from_dict(enc, f"{source} (encoder)")
        self.decoder = GPT2Config.from_dict(dec, f"{source} (decoder)")
        if not self.decoder.add_cross_attention:
            raise ValueError(f"{source}: the decoder must have add_cross_attention true")
        check_generation_fields(raw, source)
        for k in ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id"):
            v = raw.get(k)
            setattr(self, k, v if v is not None else dec.get(k))
        # VisionEncoderDecoderModel projects the encoder states when the widths differ and the
        # decoder does not declare cross_attention_hidden_size.
        self.has_enc_proj = (self.encoder.hidden_size != self.decoder.n_embd
                             and dec.get("cross_attention_hidden_size") is None)
        if dec.get("cross_attention_hidden_size") not in (None, self.encoder.hidden_size):
            raise ValueError(f"{source}: decoder cross_attention_hidden_size must equal the encoder's hidden_size")
        if not self.has_enc_proj and self.encoder.hidden_size != self.decoder.n_embd:
            raise NotImplementedError(f"{source}: GPT-2 cross-attention needs encoder states of width n_embd "
                                      f"({self.decoder.n_embd}), the encoder gives {self.encoder.hidden_size}")

    def to_dict(self) -> dict:
        return copy.deepcopy(self.raw)


def split_state(state: dict, has_enc_proj: bool) -> tuple[dict, dict]:
    """(encoder state in ViTModel names, decoder state in GPT2LMHeadModel names)."""
    enc, dec = {}, {}
    for k, v in state.items():
        if k.startswith("encoder."):
            enc[k[len("encoder."):]] = v
        elif k.startswith("decoder."):
            dec[k[len("decoder."):]] = v
        elif k.startswith("enc_to_dec_proj.") and has_enc_proj:
            dec[k] = v
    enc = {k: v for k, v in _strip_prefix(enc).items() if not k.startswith("pooler.")}  # the pooler is unused
    return enc, decoder_state(dec)


class VisionEncoderDecoderModel(PreTrainedModel):
    """transformers.VisionEncoderDecoderModel (ViT encoder, GPT-2 decoder) on the C core."""

    main_input_name = "pixel_values"

    def __init__(self, config: VisionEncoderDecoderConfig):
        super().__init__()
        self.config = config
        self.encoder = ViTModel(config.encoder, add_pooling_layer=False)
        self.decoder = GPT2LMHeadModel(config.decoder, encoder_hidden_size=config.encoder.hidden_size,
                                       has_enc_proj=config.has_enc_proj)
        self.generation_config = GenerationConfig.from_model_config(config.raw)
        self._fill_special_tokens()

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs):
        """From a directory or hub id (config.json, model.safetensors or pytorch_model.bin, and
        generation_config.json when there is one), or a bare weights file beside a config.json."""
        model = super().from_pretrained(name_or_path, **kwargs)
        model.generation_config = generation_config_for(model.local_dir, model.config.raw)
        model._fill_special_tokens()
        return model

    def _fill_special_tokens(self):
        """Token ids the generation config leaves unset come from config.json (top level, then
        the decoder section), as the captioner's config declares them."""
        for k in ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id"):
            if getattr(self.generation_config, k, None) is None and getattr(self.config, k) is not None:
                setattr(self.generation_config, k, getattr(self.config, k))

    @classmethod
    def _prepare(cls, state, raw, source):
        if raw is None:
            raise FileNotFoundError(f"{source}: no config.json beside it (needed for a VisionEncoderDecoderModel)")
        config = VisionEncoderDecoderConfig(raw)
        enc, dec = split_state(state, config.has_enc_proj)
        return config, {"encoder": enc, "decoder": dec}, {}

    def _load(self, state: dict, source: str, names: dict | None = None):
        """Binds both C models; tensors are named in messages as the checkpoint names them."""
        label = lambda part, slot: slot if slot.startswith("enc_to_dec_proj.") else f"{part}.{slot}"  # noqa: E731
        for part in ("encoder", "decoder"):
            sub = getattr(self, part)
            sub._load(state[part], source, {n: label(part, n) for n, _ in sub._c.param_specs()})
        self._params = {**self.encoder._params, **self.decoder._params}  # checkpoint names

    @classmethod
    def from_state_dict(cls, config: dict, state: dict) -> "VisionEncoderDecoderModel":
        """From a config.json dict and a checkpoint dict (name -> float32 array)."""
        cfg, parts, names = cls._prepare(state, config, "state_dict")
        model = cls(cfg)
        model._load(parts, "state_dict", names)
        return model

    # Forward --------------------------------------------------------------------------
    def encode(self, pixel_values) -> np.ndarray:
        """The encoder's last hidden state (N, T, C): what the decoder cross-attends to."""
        return self.encoder(pixel_values).last_hidden_state

    def __call__(self, pixel_values, decoder_input_ids, return_dict: bool = True):
        """Logits (N, T, V) of the decoder over decoder_input_ids (N, T), given the images."""
        enc = self.encode(pixel_values)
        ids = np.asarray(decoder_input_ids)
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[0] != enc.shape[0]:
            raise ValueError(f"decoder_input_ids must have shape ({enc.shape[0]}, T), got {ids.shape}")
        out = Seq2SeqLMOutput(logits=self.decoder(ids, encoder_hidden_states=enc).logits,
                              encoder_last_hidden_state=enc)
        return out if return_dict else out.to_tuple()

    forward = __call__

    def generate(self, pixel_values, generation_config: GenerationConfig | None = None, *, seed=None, **kwargs):
        """Captions as token ids, like transformers' generate(pixel_values=..., ...): (N *
        num_return_sequences, L) int64, or a GenerateOutput with return_dict_in_generate=True.
        Greedy, beam search, sampling and beam sampling run in C without the GIL; each image's
        cross-attention keys/values are computed once and shared by its beams. seed: sampling
        seed (each image's samples depend on it alone, not on the batch)."""
        enc = self.encode(pixel_values)
        cfg = generation_config if generation_config is not None else self.generation_config
        rows, length = generation_hints(cfg, kwargs, enc.shape[0], 1, self.config.decoder.n_positions)
        session = self.decoder.session(enc, rows, length)
        return _generate(session, None, cfg, seed=seed, batch_size=enc.shape[0], **kwargs)
