"""Shared helpers for the generation tests: a tiny random GPT-2 and next_logits callbacks."""
import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.cache_utils import DynamicCache

EOS, PAD, BOS = 3, 1, 0


def tiny_gpt2(seed=0, vocab=120, eos_boost=0.0, sharp=20.0):
    """A seeded 2-layer GPT-2 (n_embd 32). eos_boost > 0 makes EOS likely after a few tokens;
    `sharp` scales the lm_head so that distributions are peaked (few near-ties)."""
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=128, bos_token_id=BOS,
                     eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=False)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(sharp)
        if eos_boost:
            u = torch.randn(32)
            model.transformer.ln_f.bias.copy_(u * 0.5)
            model.lm_head.weight[EOS] = u * eos_boost
    return model


class TorchCallback:
    """next_logits for a transformers causal LM: a DynamicCache reordered by parent_rows.
    Records every call (tokens, parent_rows, raw logits)."""

    def __init__(self, model):
        self.model, self.cache, self.calls = model, None, []

    def __call__(self, tokens, parent_rows):
        with torch.no_grad():
            if self.cache is None or tokens.shape[1] > 1 or not self.calls:
                self.cache = DynamicCache(config=self.model.config)
            elif parent_rows is not None:
                self.cache.reorder_cache(torch.as_tensor(parent_rows))
            out = self.model(input_ids=torch.as_tensor(tokens), past_key_values=self.cache, use_cache=True)
            logits = out.logits[:, -1].float().numpy()
        self.calls.append((tokens.copy(), None if parent_rows is None else parent_rows.copy(), logits))
        return logits


class ToyCallback:
    """The Python twin of _C._toy_gen_model: logits = A[last] + B[token before]."""

    def __init__(self, A, B):
        self.A, self.B, self.last, self.n_rows = A, B, None, []

    def __call__(self, tokens, parent_rows):
        self.n_rows.append(len(tokens))
        if tokens.shape[1] > 1 or self.last is None or len(self.n_rows) == 1:
            last, prev = tokens[:, -1], tokens[:, -2] if tokens.shape[1] > 1 else tokens[:, -1]
        else:
            prev = self.last if parent_rows is None else self.last[parent_rows]
            last = tokens[:, 0]
        self.last = last.copy()
        return self.A[last] + self.B[prev]


def prompts(n, p, vocab, seed=1):
    return np.random.default_rng(seed).integers(4, vocab, (n, p))
