"""Fine-tuning on the C core: train/eval modes, gradients, freezing, checkpointing, saving.

    model = visionc.AutoModelForImageClassification.from_pretrained(path, num_labels=10,
                                                                    ignore_mismatched_sizes=True)
    model.train()
    opt = visionc.optim.AdamW(model.parameters(), lr=1e-4)
    for px, labels in batches:
        out = model(px, labels=labels)   # keeps activations (in C) for one backward
        model.backward()                 # p.grad += d out.loss / d p, for p.requires_grad
        opt.step(); model.zero_grad()
    model.save_pretrained("out/")

Gradients live in NumPy arrays (`p.grad`, float32, p's shape) that the C core accumulates
into directly: they are bound to the C model at each backward(), never copied. A parameter
with requires_grad=False gets no gradient and costs no work; when every parameter below
some block is frozen, backward stops at that block.

Gradients in eval mode, input gradients (saliency maps, attribution, adversarial examples;
docs/saliency.md):

    model.eval()                         # optionally .set_grad_enabled(True): see below
    model.freeze()                       # optional: no parameter gradients, d/d pixels only
    out = model(px)                      # no dropout / drop path, BatchNorm on its running statistics
    dx = model.backward(grad_logits=g, input_grad=True)  # d sum(out.logits * g) / d px, float32, px's shape

backward(grad_logits=g) (float32, the logits' shape) differentiates sum(logits * g) instead of
the loss; without it the forward needs labels (d loss / d px). input_grad=True returns the
gradient with respect to pixel_values in train mode too. Parameter gradients accumulate as above
for every parameter with requires_grad, as torch's do; freeze the model when only dx is wanted
(the weight-gradient GEMMs are then skipped). Eval-mode forwards and backwards never change a
parameter or a BatchNorm running statistic.
Which forwards are kept: in train mode every one (with or without labels); in eval mode only
with set_grad_enabled(True). torch keeps a graph whenever a parameter requires grad and
inference opts out with torch.no_grad(); here an eval forward is inference: the plain C
forward, nothing kept but references to its inputs, no cost. A backward after it re-runs that
forward as a kept one (one extra forward; set_grad_enabled(True) avoids it, for loops that
always differentiate). A kept eval forward runs the training forward
instead (logits and loss only, at the config's image size; training_memory() of a training
step; gradient checkpointing and set_precision("bf16") apply, dx stays fp32).

Training is one step at a time per model: the kept activations belong to the model (the C
core refuses a second concurrent training call). Inference calls may run concurrently.

Mixed precision (ViT, ConvNeXt, MobileViT): `model.set_precision("bf16")` makes training
forwards and backwards run the big GEMMs as bf16 GEMMs with fp32 accumulation (AVX512_BF16 when
the CPU has it, else an exact emulation): for ViT the encoder layers' linear layers (QKV,
attention output, MLP); for ConvNeXt the stem, the downsampling convs and the blocks' pointwise
convs (fc1, fc2); for MobileViT every conv but the depthwise ones, and the transformer layers'
linear layers. Parameters stay fp32 (the optimizer's master copy); norms (BatchNorm included),
softmax, activations, residuals, the depthwise convs, ViT's patch embedding, the classifier, the
loss and all gradients are fp32.
`set_precision("fp32")` (the default) goes back. Inference forwards (eval mode without
set_grad_enabled) are unaffected.

Dropout masks (hidden, classifier, attention probabilities from the config's
attention_probs_dropout_prob: softmax -> dropout -> . V, as transformers) come from a
counter-based generator keyed by the model's seed (`model.seed(n)`) and a step counter, so a
run is reproducible; backward and checkpointing regenerate them instead of keeping them. They
do not reproduce torch's masks.
`model.label_smoothing` (default: config's label_smoothing if present, else 0.0) is used by
the training loss, as torch's CrossEntropyLoss(label_smoothing=...).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .._native import _C
from ..io import save_state_dict
from ..nn import Parameter

_MASK64 = (1 << 64) - 1


class TrainingMixin:
    """Training API shared by every family (the C side: the Model methods bind_grad,
    train_forward, backward, train_memory); the family supplies `_regularisers()` (its train-mode
    dropout / drop-path options for the C training forward), `_with_head`, `_head_prefixes` (C
    slot names of the classifier) and `_save_layout()` -> (state, config dict)."""

    _head_prefixes: tuple = ("classifier.",)
    _precisions: tuple = ("fp32",)  # training precisions the family supports
    _precision: str = "fp32"
    _with_head: bool = False  # the families' ...ForImageClassification set it: only they train
    training: bool = False
    _grad_enabled: bool = False

    def _init_training(self):
        self.training = False
        self.label_smoothing = 0.0
        self._seed = 0
        self._step = 0
        self._checkpointing = False
        self._precision = "fp32"
        self._grad_enabled = False
        self._kept = False          # the C model holds a forward for one backward
        self._eval_input = None     # (pixel_values, labels) of the last plain eval forward, for backward
        self._kept_loss = False     # ... that had labels (a loss to differentiate)
        self._kept_shape = None     # ... on pixel_values of this shape
        self._slots: list = []       # per C slot: (parameter name, row slice or None)
        self._grad_views: list = []  # what each C gradient slot is bound to (kept alive here)

    # Modes ----------------------------------------------------------------------------
    def train(self, mode: bool = True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def set_grad_enabled(self, mode: bool = True):
        """Whether eval-mode forwards keep what a backward needs (default False; train-mode
        forwards always do). On: `model(px)` runs the training forward in eval semantics (no
        dropout or drop path, BatchNorm on its running statistics, which stay as they are) and
        keeps its activations, so that `model.backward(...)` can follow, as after a torch
        forward with gradients enabled. Off: an eval forward is plain inference, nothing kept.
        Only the classification models have a backward."""
        if mode and not self._with_head:
            raise NotImplementedError(f"{type(self).__name__} has no backward (the ...ForImageClassification "
                                      f"models have one)")
        self._grad_enabled = bool(mode)
        return self

    @property
    def grad_enabled(self) -> bool:
        return self._grad_enabled

    def set_precision(self, precision: str):
        """"fp32" (default) or "bf16": bf16 GEMMs with fp32 accumulation for the GEMM-shaped layers
        of training forwards/backwards (families listing "bf16" in `_precisions`), fp32 master
        weights and everything else fp32."""
        p = {"float32": "fp32", "bfloat16": "bf16"}.get(precision, precision)
        if p not in self._precisions:
            raise ValueError(f"precision must be one of {self._precisions} for {type(self).__name__}, "
                             f"got {precision!r}")
        self._precision = p
        return self

    @property
    def precision(self) -> str:
        return self._precision

    def seed(self, n: int):
        """Seeds dropout / drop-path masks: the same seed and call sequence give the same masks."""
        self._seed = int(n) & _MASK64
        self._step = 0
        return self

    def _next_seed(self) -> int:
        s = (self._seed * 0x9E3779B97F4A7C15 + self._step * 0xD1B54A32D192ED03 + 1) & _MASK64
        self._step += 1
        return s

    def gradient_checkpointing_enable(self):
        """Keep only each block's input in training forwards; backward recomputes the block
        (MobileViT: the stem, each MV2 block, each MobileViT block body, conv_1x1_exp). Gradients
        are bit-identical to a step without it; BatchNorm running statistics are updated once."""
        self._checkpointing = True

    def gradient_checkpointing_disable(self):
        self._checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self._checkpointing

    def training_memory(self) -> int:
        """Bytes of activation memory the C core holds for training (saved tensors + scratch)."""
        return int(self._c.train_memory())

    # Gradients ------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = False):
        for p in self._params.values():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.fill(0)

    def _bind_grads(self):
        """Points every C gradient slot at its parameter's .grad (made when None); frozen -> unbound."""
        views = []
        for i, (name, rows) in enumerate(self._slots):
            p = self._params[name]
            g = None
            if p.requires_grad:
                if not (isinstance(p.grad, np.ndarray) and p.grad.dtype == np.float32 and p.grad.shape == p.shape
                        and p.grad.flags.c_contiguous and p.grad.flags.writeable):
                    old = p.grad
                    p.grad = np.zeros(p.shape, np.float32)
                    if old is not None:
                        p.grad += np.asarray(old, dtype=np.float32)
                g = p.grad if rows is None else p.grad[rows]
            else:
                p.grad = None
            self._c.bind_grad(i, g)
            views.append(g)
        self._grad_views = views

    def backward(self, grad_logits=None, input_grad: bool = False):
        """Backward of the last kept forward (train mode, or eval mode with set_grad_enabled(True)):
        adds d objective / d p into p.grad for every parameter with requires_grad. The objective
        is the forward's loss (it had labels), or sum(logits * grad_logits) when grad_logits (a
        float32 array of the logits' shape) is given. input_grad=True also returns d objective /
        d pixel_values, float32, shaped like them (else None). One backward per forward."""
        if not self._kept and self._eval_input is not None:
            # After a plain eval forward: run it again as a kept one on the same arrays (torch
            # would have kept a graph; inference pays nothing for the possibility).
            px, labels = self._eval_input
            self._kept_call(px, labels)
        self._eval_input = None
        if not self._kept:
            raise RuntimeError("backward() needs a forward kept for it first: model.train() (or model.eval() with "
                               "model.set_grad_enabled(True)), then model(px) or model(px, labels=labels); each "
                               "forward allows one backward")
        g = self._check_grad_logits(grad_logits)
        if g is None and not self._kept_loss:
            raise ValueError("backward(): the last forward had no labels, so there is no loss to differentiate; pass "
                             "grad_logits (d objective / d logits, float32 of the logits' shape) or call the model "
                             "with labels=")
        dx = np.empty(self._kept_shape, np.float32) if input_grad else None
        self._bind_grads()
        self._kept = False
        self._c.backward(g, dx)
        return dx

    def _check_grad_logits(self, grad_logits):
        if grad_logits is None:
            return None
        g = grad_logits
        if hasattr(g, "detach") and hasattr(g, "numpy"):  # a torch tensor
            g = g.detach().cpu().numpy()
        want = (self._kept_shape[0], self.config.num_labels)
        if not isinstance(g, np.ndarray) or g.dtype != np.float32:
            kind = f"dtype {g.dtype}" if isinstance(g, np.ndarray) else type(grad_logits).__name__
            raise ValueError(f"grad_logits must be a float32 array of the logits' shape {want}, got {kind}")
        if g.shape != want:
            raise ValueError(f"grad_logits must have the logits' shape {want}, got {g.shape}")
        return np.ascontiguousarray(g)

    # Freezing -------------------------------------------------------------------------
    def freeze(self, until: str | None = None, head_only: bool = False):
        """head_only=True: train only the classifier. until=prefix: freeze every parameter
        before the first one whose name starts with `prefix` (model order), e.g.
        "vit.encoder.layer.8". Frozen parameters lose their .grad."""
        names = list(self._params)
        if head_only:
            head = self._head_names()
            if not head:
                raise ValueError("this model has no classifier to train alone")
            frozen = [n for n in names if n not in head]
        elif until is not None:
            idx = next((i for i, n in enumerate(names) if n.startswith(until)), None)
            if idx is None:
                raise ValueError(f"freeze(until={until!r}): no parameter name starts with it "
                                 f"(names look like {names[min(4, len(names) - 1)]!r})")
            frozen = names[:idx]
        else:
            frozen = names
        for n in frozen:
            self._params[n].requires_grad = False
            self._params[n].grad = None

    def unfreeze(self):
        for p in self._params.values():
            p.requires_grad = True

    def _head_names(self) -> set:
        return {name for (name, _), (slot, _) in zip(self._slots, self._c.param_specs())
                if slot.startswith(self._head_prefixes)}

    # Training forward -----------------------------------------------------------------
    def _keeps_graph(self) -> bool:
        """Whether a forward now goes through the C training forward and is kept for a backward."""
        return self.training or self._grad_enabled

    def _remember_eval_input(self, pixel_values, labels):
        """A plain eval forward keeps references (no copies) to its inputs: backward() after it
        re-runs it as a kept forward. Modified in place in between, the gradient is of the new
        values."""
        self._kept = False
        self._eval_input = (pixel_values, labels) if self._with_head else None

    def _kept_call(self, pixel_values, labels, seed=None, other_outputs: bool = False):
        """(loss or None, logits) of a forward kept for one backward: train mode, or eval mode
        with grad enabled (no regularisers, BatchNorm on running statistics; seeds untouched)."""
        if other_outputs:
            raise NotImplementedError("a forward kept for backward (train mode, or eval mode with grad enabled) "
                                      "returns loss and logits only, at the config's image size; use "
                                      "model.eval() with set_grad_enabled(False) for the other outputs")
        self._kept, self._eval_input = False, None
        px = self._pixel_values(pixel_values, self.config.num_channels)
        lab = None
        if labels is not None:
            lab = self._check_labels(labels, px.shape[0])
        if self.training:
            s = self._next_seed() if seed is None else int(seed) & _MASK64
        else:
            s = 0  # no dropout in eval mode: the training seed sequence is left as it is
        loss, logits = self._train_forward(px, lab, s)
        self._kept, self._kept_loss, self._kept_shape = True, lab is not None, px.shape
        return loss, logits

    def _train_forward(self, px, labels, seed):
        if not self._with_head:
            raise NotImplementedError(f"{type(self).__name__} cannot be trained (the ...ForImageClassification "
                                      f"models can: they have a classifier head)")
        regs = self._regularisers() if self.training else {}
        return self._c.train_forward(px, labels, **regs, **self._step_options(seed))

    def _regularisers(self) -> dict:
        """The family's train-mode dropout / drop-path options of the C training forward."""
        return {}

    def _step_options(self, seed: int) -> dict:
        """The training-forward options every family shares."""
        return dict(label_smoothing=float(self.label_smoothing), seed=seed, checkpointing=self._checkpointing,
                    bf16=self._precision == "bf16", eval=not self.training)

    def _check_labels(self, labels, batch: int) -> np.ndarray:
        if hasattr(labels, "detach") and hasattr(labels, "numpy"):
            labels = labels.detach().cpu().numpy()
        lab = np.asarray(labels)
        if lab.dtype.kind not in "iu" or lab.shape != (batch,):
            raise ValueError(f"labels must be integers of shape ({batch},), got {lab.dtype} {lab.shape}")
        n = self.config.num_labels
        bad = np.flatnonzero((lab < 0) | (lab >= n))
        if bad.size:
            raise ValueError(f"label {int(lab[bad[0]])} (at position {int(bad[0])}) is out of range: the model has "
                             f"{n} labels (0..{n - 1})")
        return lab.astype(np.int64)

    # Saving ---------------------------------------------------------------------------
    def save_pretrained(self, save_directory):
        """config.json + model.safetensors in the checkpoint's own naming (+ the processor
        config when the model was loaded from a directory that has one). Each file is written
        to a temporary name and renamed, so a crash never leaves a half-written file."""
        d = Path(save_directory)
        d.mkdir(parents=True, exist_ok=True)
        state, config = self._save_layout()
        save_state_dict(d / "model.safetensors", state)
        _write_json_atomic(d / "config.json", config)
        src = Path(self.local_dir) / "preprocessor_config.json" if self.local_dir else None
        if src is not None and src.exists() and src.resolve() != (d / "preprocessor_config.json").resolve():
            tmp = d / ".preprocessor_config.json.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, d / "preprocessor_config.json")


def _write_json_atomic(path: Path, obj: dict):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def init_head(shape: tuple, is_bias: bool, std: float, rng: np.random.Generator) -> np.ndarray:
    """A re-initialised classifier tensor as transformers does it: N(0, std) weights, zero bias."""
    if is_bias:
        return np.zeros(shape, np.float32)
    return (rng.standard_normal(shape) * std).astype(np.float32)


def as_parameter(arr: np.ndarray) -> Parameter:
    return arr if isinstance(arr, Parameter) else Parameter(arr)
