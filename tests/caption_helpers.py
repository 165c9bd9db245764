"""Random VisionEncoderDecoder captioners (ViT + GPT-2 with cross-attention) built with
transformers, and the checkpoint layouts visionc must read: save_pretrained's model.safetensors,
a torch.save(model.state_dict()) .bin (transformers 5's in-memory names), and a hub-style .bin
(saved names plus GPT-2's causal-mask buffers, as nlpconnect/vit-gpt2-image-captioning ships)."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import GPT2Config, ViTConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel


transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", category=UserWarning)

GPT2_EOS = 50256


def captioner(enc: dict, dec: dict, seed: int = 0, start=0, eos=3, pad=1, eos_pull: float = 0.0,
              sharpen: float = 1.0) -> VisionEncoderDecoderModel:
    """A seeded random captioner. eos_pull > 0 makes EOS likely after a few tokens (finished rows
    and beams get exercised); sharpen scales the LM head so that decisions are not near-ties
    (both change the head only: with tie_word_embeddings they would change wte too)."""
    torch.manual_seed(seed)
    dec = dict(dict(add_cross_attention=True, is_decoder=True, bos_token_id=start, eos_token_id=eos,
                    pad_token_id=pad), **dec)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(ViTConfig(**enc), GPT2Config(**dec))
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id, cfg.bos_token_id = start, pad, eos, start
    m = VisionEncoderDecoderModel(config=cfg).eval()
    g = m.generation_config
    g.decoder_start_token_id, g.eos_token_id, g.pad_token_id, g.bos_token_id = start, eos, pad, start
    with torch.no_grad():
        head = m.decoder.lm_head.weight
        assert (sharpen == 1.0 and not eos_pull) or head.data_ptr() != m.decoder.transformer.wte.weight.data_ptr()
        head.mul_(sharpen)
        if eos_pull:
            head[eos] += eos_pull * torch.randn(head.shape[1], generator=torch.Generator().manual_seed(seed + 7))
    return m


TINY_ENC = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64)
TINY_DEC = dict(vocab_size=90, n_embd=32, n_layer=2, n_head=2, n_positions=64)
# nlpconnect/vit-gpt2-image-captioning's architecture (model-facts.md section 4).
NLPCONNECT_ENC = dict(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, qkv_bias=True, layer_norm_eps=1e-12)
NLPCONNECT_DEC = dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024, n_ctx=1024,
                      activation_function="gelu_new", layer_norm_epsilon=1e-5)


def tiny_captioner(**kw) -> VisionEncoderDecoderModel:
    """Untied head sharpened, EOS pulled in (as in test_generate_captioner); with
    dec={"tie_word_embeddings": True} the head is wte and left as initialised."""
    enc = dict(TINY_ENC, **kw.pop("enc", {}))
    dec = {**TINY_DEC, "tie_word_embeddings": False, **kw.pop("dec", {})}
    if not dec["tie_word_embeddings"]:
        kw.setdefault("eos_pull", 2.5)
        kw.setdefault("sharpen", 60.0)
    return captioner(enc, dec, **kw)


def save_safetensors(model, path: Path) -> Path:
    model.save_pretrained(path)
    return path


def save_torch_bin(model, path: Path, style: str) -> Path:
    """A directory with config.json and pytorch_model.bin. style "memory": torch.save of
    model.state_dict() (transformers 5's module names); "hub": the names save_pretrained writes,
    lm_head sharing wte's storage, and the uint8 attn.bias / masked_bias buffers old GPT-2
    checkpoints carry."""
    path.mkdir(parents=True, exist_ok=True)
    model.config.to_json_file(str(path / "config.json"))
    if style == "memory":
        torch.save(model.state_dict(), path / "pytorch_model.bin")
        return path
    tmp = path / "_st"
    model.save_pretrained(tmp)
    from safetensors.torch import load_file
    state = load_file(str(tmp / "model.safetensors"))
    shutil.rmtree(tmp)
    dec = model.config.decoder
    n = dec.n_positions
    mask = torch.tril(torch.ones(n, n, dtype=torch.uint8)).view(1, 1, n, n)
    for i in range(dec.n_layer):
        for part in ("attn", "crossattention"):
            state[f"decoder.transformer.h.{i}.{part}.bias"] = mask
            state[f"decoder.transformer.h.{i}.{part}.masked_bias"] = torch.tensor(-1e4)
    if dec.tie_word_embeddings:
        state["decoder.lm_head.weight"] = state["decoder.transformer.wte.weight"]
    torch.save(state, path / "pytorch_model.bin")
    return path


def gpt2_tokenizer_dir() -> Path:
    """The real GPT-2 tokenizer files (shared/weights/gpt2-tokenizer beside the checkout or one of
    its parents, or $VISIONC_SHARED); the test is skipped where that data is absent."""
    from tok_helpers import gpt2_dir
    return gpt2_dir()


def add_processor_and_tokenizer(path: Path, image_size: int) -> Path:
    """preprocessor_config.json as nlpconnect's, and the real GPT-2 tokenizer files."""
    (path / "preprocessor_config.json").write_text(json.dumps(
        {"do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
         "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": image_size}))
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(gpt2_tokenizer_dir() / name, path / name)
    return path


def pixels(n: int, size: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def torch_generate(model, px: np.ndarray, **kw):
    with torch.no_grad():
        return model.generate(pixel_values=torch.from_numpy(px), return_dict_in_generate=True, output_scores=True,
                              **kw)
