"""The "image-to-text" pipeline: captions from a VisionEncoderDecoderModel, like transformers'
ImageToTextPipeline (4.x).

    cap = visionc.pipeline("image-to-text", model="nlpconnect/vit-gpt2-image-captioning")
    cap("cat.jpg")                                  # [{"generated_text": "a cat sitting on a couch "}]
    cap(["a.jpg", "b.jpg"], max_new_tokens=16, num_beams=4)   # [[{...}], [{...}]]

Captions are the decoded ids with special tokens skipped (no stripping, as transformers).
Generation keywords (num_beams, do_sample, top_p, seed, num_return_sequences, ...) go to
VisionEncoderDecoderModel.generate; return_scores=True adds each caption's score: beam search's
sequences_scores, else the mean log-probability of the chosen tokens under the (processed)
distribution they were picked from."""
from __future__ import annotations

import os

import numpy as np

from .pipelines import Pipeline, _as_list, _batches

DEFAULT_CAPTIONER = "nlpconnect/vit-gpt2-image-captioning"


def _mean_logprob(scores: tuple, sequences: np.ndarray, prompt_len: int, eos) -> np.ndarray:
    """Mean log-probability of each row's generated tokens, up to and including its EOS."""
    eos = set([eos] if isinstance(eos, int) else (eos or []))
    n = sequences.shape[0]
    total, count, done = np.zeros(n), np.zeros(n), np.zeros(n, bool)
    for t, s in enumerate(scores):
        z = s.astype(np.float64)
        m = z.max(axis=1, keepdims=True)
        logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        tok = sequences[:, prompt_len + t]
        live = ~done
        total[live] += logp[np.arange(n), tok][live]
        count[live] += 1
        done |= np.isin(tok, list(eos))
    return total / np.maximum(count, 1)


class ImageToTextPipeline(Pipeline):
    def __init__(self, model, image_processor, tokenizer, batch_size: int = 8, progress=None):
        super().__init__(model, image_processor, batch_size=batch_size, progress=progress)
        self.tokenizer = tokenizer

    def __call__(self, images, max_new_tokens: int | None = None, batch_size: int | None = None, progress=None,
                 generate_kwargs: dict | None = None, return_scores: bool = False, **kwargs):
        items, single = _as_list(images)
        gen = dict(generate_kwargs or {}, **kwargs)
        if max_new_tokens is not None:
            gen["max_new_tokens"] = max_new_tokens
        if return_scores:
            gen.update(return_dict_in_generate=True, output_scores=True)
        bs = batch_size or self.batch_size
        if not isinstance(bs, int) or bs < 1:
            raise ValueError(f"batch_size must be a positive integer, got {bs!r}")
        results = []
        for chunk in _batches(items, bs, self.progress if progress is None else progress, "caption"):
            px = self._pixel_values(chunk)
            out = self.model.generate(px, **gen)
            seqs = out["sequences"] if isinstance(out, dict) else out
            texts = self.tokenizer.batch_decode(seqs, skip_special_tokens=True)
            scores = None
            if return_scores:
                scores = out.get("sequences_scores")
                if scores is None:
                    scores = _mean_logprob(out["scores"], seqs, 1, self.model.generation_config.eos_token_id)
            per = len(texts) // len(px)  # num_return_sequences
            for i in range(len(px)):
                rows = range(i * per, (i + 1) * per)
                results.append([{"generated_text": texts[r], **({"score": float(scores[r])} if return_scores else {})}
                                for r in rows])
        return results[0] if single else results


def image_to_text_pipeline(model, image_processor, tokenizer, batch_size, progress, hub_kw) -> ImageToTextPipeline:
    """pipeline("image-to-text", ...): the model (id, directory or loaded), its image processor and
    tokenizer (from the model's directory unless given)."""
    from . import hub
    from .image_processing import AutoImageProcessor
    from .models.vision_encoder_decoder import VisionEncoderDecoderModel
    from .tokenization import AutoTokenizer
    if model is None:
        model = DEFAULT_CAPTIONER
    if isinstance(model, (str, os.PathLike)):
        model = VisionEncoderDecoderModel.from_pretrained(model, **hub_kw)
    if not hasattr(model, "generate"):
        raise TypeError(f"image-to-text needs a captioning model (VisionEncoderDecoderModel), got "
                        f"{type(model).__name__}")
    where = getattr(model, "local_dir", None)
    for name, value in (("image_processor", image_processor), ("tokenizer", tokenizer)):
        if value is None and where is None:
            raise ValueError(f"cannot find this model's {name} (it was not loaded from a directory): pass {name}=...")
    if image_processor is None:
        image_processor = AutoImageProcessor.from_pretrained(where)
    elif isinstance(image_processor, (str, os.PathLike)):
        image_processor = AutoImageProcessor.from_pretrained(hub.resolve(image_processor, **hub_kw))
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(where)
    elif isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = AutoTokenizer.from_pretrained(hub.resolve(tokenizer, **hub_kw))
    return ImageToTextPipeline(model, image_processor, tokenizer, batch_size=batch_size, progress=progress)
