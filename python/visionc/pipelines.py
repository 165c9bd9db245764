"""pipeline(): transformers-style task pipelines over visionc models.

    clf = visionc.pipeline("image-classification", model="google/vit-base-patch16-224")
    clf(["cat.jpg", pil_image, uint8_hwc_array], top_k=5)  # -> [[{"label", "score"}, ...], ...]

Without `model`, image tasks use the real ViT-Ti/16 ImageNet classifier carried in the package.
"""
from __future__ import annotations

import os

import numpy as np

from . import hub
from .image_processing import AutoImageProcessor
from .models.auto import AutoModel, AutoModelForImageClassification

SUPPORTED_TASKS = ("image-classification", "image-feature-extraction", "image-to-text")


def _batches(items: list, batch_size: int, progress, desc: str):
    show = progress if progress is not None else len(items) > 4 * batch_size
    starts = range(0, len(items), batch_size)
    if show:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(items), desc=desc, unit="img")
        for s in starts:
            yield items[s:s + batch_size]
            bar.update(min(batch_size, len(items) - s))
        bar.close()
    else:
        for s in starts:
            yield items[s:s + batch_size]


def _as_list(images) -> tuple[list, bool]:
    """(list of images, whether one image was given). A 4-D float array is a batch."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images[i:i + 1] for i in range(images.shape[0])), False
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("images: the list is empty")
        return list(images), False
    return [images], True


class Pipeline:
    def __init__(self, model, image_processor, batch_size: int = 8, progress=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.image_processor = image_processor
        self.batch_size = batch_size
        self.progress = progress

    def _pixel_values(self, chunk: list) -> np.ndarray:
        if len(chunk) == 1 and isinstance(chunk[0], np.ndarray) and chunk[0].ndim == 4:
            return self.image_processor(chunk[0])["pixel_values"]
        if all(isinstance(x, np.ndarray) and x.ndim == 4 for x in chunk):
            return self.image_processor(np.concatenate(chunk))["pixel_values"]
        return self.image_processor(chunk)["pixel_values"]


class ImageClassificationPipeline(Pipeline):
    def __call__(self, images, top_k: int = 5, batch_size: int | None = None, function_to_apply: str | None = None,
                 progress=None):
        items, single = _as_list(images)
        labels = self.model.config.id2label
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        top_k = min(top_k, len(labels))
        fn = function_to_apply or ("sigmoid" if self.model.config.extra.get("problem_type") ==
                                   "multi_label_classification" else "softmax")
        if fn not in ("softmax", "sigmoid", "none"):
            raise ValueError(f"function_to_apply must be 'softmax', 'sigmoid' or 'none', got {fn!r}")
        results = []
        bs = batch_size or self.batch_size
        for chunk in _batches(items, bs, self.progress if progress is None else progress, "classify"):
            logits = self.model(self._pixel_values(chunk)).logits.astype(np.float64)
            if fn == "softmax":
                z = np.exp(logits - logits.max(axis=1, keepdims=True))
                scores = z / z.sum(axis=1, keepdims=True)
            elif fn == "sigmoid":
                scores = 1.0 / (1.0 + np.exp(-logits))
            else:
                scores = logits
            for row in scores:
                order = np.argsort(-row, kind="stable")[:top_k]
                results.append([{"label": labels[int(i)], "score": float(row[i])} for i in order])
        return results[0] if single else results


class ImageFeatureExtractionPipeline(Pipeline):
    """Per image: the last hidden state (1, T, C), as transformers returns it; with pool=True the
    pooled vector (1, C): the pooler output where the model has one, else `pooling`."""

    def __call__(self, images, pool: bool = False, pooling: str | None = None, normalize: bool = False,
                 batch_size: int | None = None, progress=None):
        items, single = _as_list(images)
        results = []
        bs = batch_size or self.batch_size
        for chunk in _batches(items, bs, self.progress if progress is None else progress, "embed"):
            px = self._pixel_values(chunk)
            if pool or pooling:
                how = pooling or ("pooler" if getattr(self.model, "add_pooling_layer", False) else "cls")
                emb = self.model.embed(px, pooling=how, normalize=normalize)
                results.extend(emb[i:i + 1] for i in range(len(emb)))
            else:
                last = self.model(px).last_hidden_state
                results.extend(last[i:i + 1] for i in range(len(last)))
        return results[0] if single else results


def pipeline(task: str, model=None, *, image_processor=None, tokenizer=None, batch_size: int = 8,
             num_threads: int | None = None, progress=None, revision=None, cache_dir=None, token=None,
             local_files_only=None):
    """Builds a pipeline for `task` from a model id or directory (or a loaded model).
    tokenizer: image-to-text only (default: the model directory's)."""
    if task not in SUPPORTED_TASKS:
        raise ValueError(f"unknown task {task!r}; supported: {', '.join(SUPPORTED_TASKS)}")
    if num_threads is not None:
        from ._native import _C
        _C.set_num_threads(int(num_threads))
    hub_kw = dict(revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
    if task == "image-to-text":
        from .pipeline_image_to_text import image_to_text_pipeline
        return image_to_text_pipeline(model, image_processor, tokenizer, batch_size, progress, hub_kw)
    if model is None:
        model = hub.default_model_dir()
    if isinstance(model, (str, os.PathLike)):
        loader = AutoModelForImageClassification if task == "image-classification" else AutoModel
        model = loader.from_pretrained(model, **hub_kw)
    if image_processor is None:
        where = getattr(model, "local_dir", None)
        if where is None:
            raise ValueError("cannot tell this model's preprocessing (it was not loaded from a model directory): "
                             "pass image_processor=...")
        image_processor = AutoImageProcessor.from_pretrained(where)
    elif isinstance(image_processor, (str, os.PathLike)):
        image_processor = AutoImageProcessor.from_pretrained(hub.resolve(image_processor, **hub_kw))
    cls = ImageClassificationPipeline if task == "image-classification" else ImageFeatureExtractionPipeline
    return cls(model, image_processor, batch_size=batch_size, progress=progress)
