"""Encoder-decoder flow of the captioner (ViT encoder + GPT-2 decoder with cross-attention), on a
tiny random VisionEncoderDecoderModel: prompt = decoder_start token, encoder states follow the
rows through parent_rows. Same ids and sequences_scores as transformers' generate()."""
import warnings

import numpy as np
import pytest
import torch
import transformers
from transformers import GPT2Config, ViTConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from gen_helpers import EOS, PAD
from visionc.generation import GenerationConfig, generate

transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", category=UserWarning)
START = 0
EOS_PULL = 1.0


def tiny_captioner():
    torch.manual_seed(0)
    enc = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64)
    dec = GPT2Config(vocab_size=90, n_embd=32, n_layer=2, n_head=2, n_positions=64, add_cross_attention=True,
                     is_decoder=True, bos_token_id=START, eos_token_id=EOS, pad_token_id=PAD,
                    tie_word_embeddings=False)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = START, PAD, EOS
    cfg.tie_word_embeddings = False
    m = VisionEncoderDecoderModel(config=cfg).eval()
    m.generation_config.decoder_start_token_id, m.generation_config.eos_token_id = START, EOS
    m.generation_config.pad_token_id = PAD
    with torch.no_grad():  # a random head, EOS reachable after a few tokens
        m.decoder.lm_head.weight.normal_(0.0, 2.0)
        m.decoder.lm_head.weight[EOS] += EOS_PULL * torch.randn(32)
    return m


class CaptionCallback:
    def __init__(self, model, pixels):
        self.m, self.pixels, self.cache, self.enc = model, pixels, None, None

    def __call__(self, tokens, parents):
        with torch.no_grad():
            if self.cache is None:
                self.enc = self.m.encoder(pixel_values=self.pixels).last_hidden_state
                self.cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            elif parents is not None:
                self.cache.reorder_cache(torch.as_tensor(parents))
                self.enc = self.enc[torch.as_tensor(parents)]
            out = self.m.decoder(input_ids=torch.as_tensor(tokens), encoder_hidden_states=self.enc,
                                 past_key_values=self.cache, use_cache=True)
            return out.logits[:, -1].float().numpy()


@pytest.mark.parametrize("kw", [{}, {"num_beams": 3}, {"num_beams": 4, "num_return_sequences": 2,
                                                       "no_repeat_ngram_size": 2, "early_stopping": True}])
def test_captioner_flow_matches_transformers(kw):
    m = tiny_captioner()
    pixels = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ref = m.generate(pixel_values=pixels, max_new_tokens=8, do_sample=False, return_dict_in_generate=True,
                     output_scores=True, **kw)
    cfg = GenerationConfig.from_model_config(m.config.to_dict())
    out = generate(CaptionCallback(m, pixels), None, cfg, batch_size=3, max_new_tokens=8,
                   return_dict_in_generate=True, output_scores=True, **kw)
    np.testing.assert_array_equal(out.sequences, ref.sequences.numpy())
    if kw:
        assert np.abs(out.sequences_scores - ref.sequences_scores.numpy()).max() <= 1e-5
