"""Trainer: fine-tunes an image classifier on an image folder (or any visionc.data dataset).

    model = visionc.AutoModelForImageClassification.from_pretrained(path, num_labels=10, ...)
    history = Trainer(model, train_dir="data/", epochs=3, output_dir="out/", checkpoint_every=100).train()

The model contract (the only thing used; no model-specific code here):
    model(pixel_values, labels=labels, **model_kwargs) -> out with .loss (float) and .logits
    model.backward()  (adds into p.grad)    model.zero_grad(set_to_none=False)
    model.train(mode) / model.eval()        model.named_parameters() -> (name, visionc.nn.Parameter)
    model.save_pretrained(dir)              model.config.num_labels, model.local_dir
    model.freeze(until=...|head_only=True), model.gradient_checkpointing_enable()  (when asked for)

One *step* is one optimizer update = grad_accum_steps micro-batches of batch_size images. The
accumulated gradients are scaled by 1 / (micro-batches in the window) (the mean loss over
the window), clipped to max_grad_norm, then AdamW (decay on weight matrices only) and the lr
schedule step. A partial window at the end of an epoch still steps.

Exact resume: a checkpoint records the step, epoch, next batch, history, optimizer and schedule
state and RNG states; the data order and augmentation are pure functions of (seed, epoch,
sample) (visionc.loader / visionc.augment). Continuing from a checkpoint therefore performs the
same arithmetic on the same batches as the uninterrupted run. Dropout inside the model draws
from the model's own generator, which the contract does not expose; models with dropout are
exact only if they derive it from the step.
"""
from __future__ import annotations

import inspect
import json
import math
import os
import time

import numpy as np

from . import checkpoint as ckpt
from . import optim
from ._native import _C
from .data import ImageFolder, split
from .loader import DataLoader

__all__ = ["Trainer"]

SCHEDULES = ("cosine", "linear", "constant")
# Settings that must match between a checkpoint and the run resuming from it.
RESUME_KEYS = ("seed", "batch_size", "grad_accum_steps", "epochs", "train_size", "eval_size", "schedule",
               "warmup_steps", "total_steps", "lr", "weight_decay", "max_grad_norm", "label_smoothing",
               "image_size", "augment", "num_labels")


def _positive_int(name, v, low=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


def _finite(name, v, low=0.0, positive=False):
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {v!r}") from None
    if not math.isfinite(x) or x < low or (positive and x == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else f'>= {low:g}'}, got {v!r}")
    return x


class Trainer:
    def __init__(self, model, train_dir=None, train_dataset=None, eval_dataset=None, eval_split: float = 0.1,
                 epochs: int = 5, batch_size: int = 32, lr: float = 1e-4, weight_decay: float = 0.05,
                 warmup_steps: int | None = None, warmup_ratio: float = 0.1, schedule: str = "cosine",
                 grad_accum_steps: int = 1, max_grad_norm: float | None = 1.0, label_smoothing: float = 0.0,
                 freeze: str | None = None, checkpoint_every: int | None = None, keep_checkpoints: int = 2,
                 output_dir=None, resume=False, seed: int = 0, progress: bool = True,
                 gradient_checkpointing: bool = False, processor=None, image_size: int | None = None,
                 augment: bool | dict = True, eval_batch_size: int | None = None, num_workers: int = 2,
                 model_kwargs: dict | None = None, callbacks=()):
        self.model = model
        self.epochs = _positive_int("epochs", epochs)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.grad_accum_steps = _positive_int("grad_accum_steps", grad_accum_steps)
        self.lr = _finite("lr (learning rate)", lr, positive=True)
        self.weight_decay = _finite("weight_decay", weight_decay)
        self.max_grad_norm = None if max_grad_norm is None else _finite("max_grad_norm", max_grad_norm, positive=True)
        self.label_smoothing = _finite("label_smoothing", label_smoothing)
        if self.label_smoothing >= 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        self.schedule_name = schedule
        if checkpoint_every is not None:
            checkpoint_every = _positive_int("checkpoint_every", checkpoint_every)
            if output_dir is None:
                raise ValueError("checkpoint_every needs an output_dir to write checkpoints to")
        if resume and output_dir is None and resume is True:
            raise ValueError("resume=True looks for checkpoints in output_dir: give output_dir (or a checkpoint path)")
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.output_dir = None if output_dir is None else os.fspath(output_dir)
        self.resume, self.seed, self.progress = resume, int(seed), bool(progress)
        # augment: True / False, or DataLoader options such as {"scale": (0.5, 1), "flip_p": 0}
        # (mirroring is wrong for digits and text, tiny crops for small objects).
        self.augment_options = dict(augment) if isinstance(augment, dict) else {}
        self.image_size, self.augment = image_size, bool(augment)
        self.model_kwargs = dict(model_kwargs or {})
        self.callbacks = list(callbacks)
        if self.label_smoothing > 0:
            if not self._accepts(model, "label_smoothing"):
                raise ValueError(f"label_smoothing={label_smoothing}: {type(model).__name__}'s forward takes no "
                                 "label_smoothing argument")
            self.model_kwargs["label_smoothing"] = self.label_smoothing

        # Data.
        if (train_dir is None) == (train_dataset is None):
            raise ValueError("give exactly one of train_dir (an image folder) and train_dataset")
        train_ds = ImageFolder(train_dir) if train_dir is not None else train_dataset
        if eval_dataset is None and eval_split:
            train_ds, eval_dataset = split(train_ds, eval_split, seed=self.seed)
        self.train_dataset, self.eval_dataset = train_ds, eval_dataset
        self.num_labels = int(model.config.num_labels)
        for name, ds in (("train", train_ds), ("eval", eval_dataset)):
            if ds is not None and len(ds):
                self._check_labels(np.asarray(ds.targets), f"the {name} dataset")
        if processor is None:
            if getattr(model, "local_dir", None) is None:
                raise ValueError("the model was not loaded from a directory: pass processor=<image processor>")
            from .image_processing import AutoImageProcessor
            processor = AutoImageProcessor.from_pretrained(model.local_dir)
        self.train_loader = DataLoader(train_ds, processor, self.batch_size, train=True, augment=self.augment,
                                       seed=self.seed, image_size=image_size, num_workers=num_workers,
                                       **self.augment_options)
        self.processor = self.train_loader.processor
        self.eval_loader = None
        if eval_dataset is not None and len(eval_dataset):
            self.eval_loader = DataLoader(eval_dataset, processor, eval_batch_size or self.batch_size, train=False,
                                          image_size=image_size, num_workers=num_workers)

        # Model set-up, then the optimizer over what is left trainable.
        if freeze:
            model.freeze(head_only=True) if freeze in ("head", "head_only") else model.freeze(until=freeze)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
        groups = optim.param_groups_for_weight_decay(model.named_parameters(), self.weight_decay)
        if not groups:
            raise ValueError("no trainable parameters (everything is frozen)")
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / self.grad_accum_steps)
        self.total_steps = self.epochs * self.steps_per_epoch
        if warmup_steps is None:
            warmup_steps = math.ceil(_finite("warmup_ratio", warmup_ratio) * self.total_steps)
        self.warmup_steps = min(_positive_int("warmup_steps", warmup_steps, low=0), self.total_steps)
        if schedule == "cosine":
            self.schedule = optim.cosine_with_warmup(self.optimizer, self.warmup_steps, self.total_steps)
        elif schedule == "linear":
            self.schedule = optim.linear_with_warmup(self.optimizer, self.warmup_steps, self.total_steps)
        else:
            self.schedule = optim.constant_with_warmup(self.optimizer, self.warmup_steps)

        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.history = {"loss": [], "lr": [], "epochs": []}
        self.resumed_from = None

    # ---- checks -------------------------------------------------------------------------

    @staticmethod
    def _accepts(model, name: str) -> bool:
        try:
            params = inspect.signature(model.__call__).parameters.values()
        except (TypeError, ValueError):
            return True
        return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)

    def _check_labels(self, labels: np.ndarray, where: str) -> None:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= self.num_labels:
            raise ValueError(f"{where} has label {hi if hi >= self.num_labels else lo}, out of range for a model with "
                             f"num_labels={self.num_labels} (labels must be 0..{self.num_labels - 1}); load the model "
                             "with num_labels=<number of classes> and ignore_mismatched_sizes=True")

    def run_config(self) -> dict:
        return {"seed": self.seed, "batch_size": self.batch_size, "grad_accum_steps": self.grad_accum_steps,
                "epochs": self.epochs, "train_size": len(self.train_dataset),
                "eval_size": len(self.eval_dataset) if self.eval_dataset is not None else 0,
                "schedule": self.schedule_name, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "lr": self.lr, "weight_decay": self.weight_decay, "max_grad_norm": self.max_grad_norm,
                "label_smoothing": self.label_smoothing, "image_size": list(self.train_loader.size),
                "augment": json.loads(json.dumps(self.augment_options)) if self.augment_options else self.augment,
                "num_labels": self.num_labels, "classes": list(self.train_dataset.classes)}

    # ---- checkpoints --------------------------------------------------------------------

    def save_checkpoint(self) -> str:
        state = {"format": 1, "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                 "run": self.run_config(), "history": self.history}
        data_rng = {"data_seed": self.seed, "data_order_epoch": self.epoch,
                    "data_order": self.train_loader.order(self.epoch).tolist(),
                    "augment_rng": "numpy default_rng([seed, 1, epoch, sample index])"}
        return ckpt.save_checkpoint(self.output_dir, self.step, self.model, self.processor, self.optimizer,
                                    self.schedule, state, data_rng, keep=self.keep_checkpoints)

    def _resume_path(self):
        if not self.resume:
            return None
        if self.resume is True:
            return ckpt.latest_checkpoint(self.output_dir)  # none yet: a fresh start
        path = os.fspath(self.resume)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"resume: {path} is not a checkpoint directory")
        return path

    def _load_checkpoint(self, path: str) -> None:
        ck = ckpt.load_checkpoint(path)
        st, rng = ck["state"], ck["rng"]
        saved, now = st["run"], self.run_config()
        diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {now[k]!r}" for k in RESUME_KEYS + ("classes",)
                 if saved.get(k) != now[k]]
        if diffs:
            raise ValueError(f"{path} was saved by a run with other settings, so it cannot be continued "
                             "exactly: " + "; ".join(diffs))
        if rng["data_order"] != self.train_loader.order(st["epoch"]).tolist():
            raise ValueError(f"{path}: the training data order differs from the checkpoint's (the dataset changed)")
        ckpt.restore_model_weights(self.model, path)
        self.optimizer.load_state_dict(ck["optimizer"])
        self.schedule.load_state_dict(st["schedule"])
        ckpt.restore_rng(rng)
        self.step, self.epoch, self.batch_in_epoch = st["step"], st["epoch"], st["batch_in_epoch"]
        self.history = st["history"]
        self.resumed_from = path

    # ---- training -----------------------------------------------------------------------

    def _zero_grad(self) -> None:
        if hasattr(self.model, "zero_grad"):
            self.model.zero_grad(set_to_none=False)
        else:
            self.optimizer.zero_grad()

    def _update(self, micro_batches: int) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        if micro_batches > 1 and grads:
            _C.optim_grad_scale_(grads, 1.0 / micro_batches)
        if self.max_grad_norm is not None:
            norm = optim.clip_grad_norm(self.params, self.max_grad_norm)
            if not math.isfinite(norm):
                raise FloatingPointError(f"gradient norm is {norm} at step {self.step + 1}: the loss diverged "
                                         f"(lower the learning rate, now {self.schedule.get_last_lr()[0]:.3g})")
        self.optimizer.step()
        self.schedule.step()
        self._zero_grad()

    def evaluate(self) -> dict | None:
        """{"eval_loss", "eval_accuracy", "eval_samples"} over the eval set (None without one)."""
        if self.eval_loader is None:
            return None
        was_training = getattr(self.model, "training", True)
        self.model.eval()
        loss_sum, correct, n = 0.0, 0, 0
        try:
            for _, px, labels in self.eval_loader.batches(0):
                out = self.model(px, labels=labels, **self.model_kwargs)
                loss_sum += float(out.loss) * len(labels)
                correct += int((np.asarray(out.logits).argmax(-1) == labels).sum())
                n += len(labels)
        finally:
            self.model.train(was_training)
        return {"eval_loss": loss_sum / max(n, 1), "eval_accuracy": correct / max(n, 1), "eval_samples": n}

    def _progress_bar(self):
        from tqdm.auto import tqdm
        return tqdm(total=self.total_steps, initial=self.step, disable=not self.progress, unit="step",
                    dynamic_ncols=True)

    def train(self) -> dict:
        """Runs (or continues) training; returns the history:
        {"loss": [per step], "lr": [per step], "epochs": [{epoch, train_loss, eval_loss,
        eval_accuracy, eval_samples, images_per_s, seconds}], "skipped_images": n}."""
        if self.output_dir is not None:
            os.makedirs(self.output_dir, exist_ok=True)
            ckpt.remove_stale_temporaries(self.output_dir)
        path = self._resume_path()
        if path is not None:
            self._load_checkpoint(path)
        self.model.train(True)
        self._zero_grad()
        nb = len(self.train_loader)
        with self._progress_bar() as bar:
            while self.epoch < self.epochs:
                self._train_epoch(self.epoch, nb, bar)
                metrics = self.evaluate() or {}
                steps = self.history["loss"][-self.steps_per_epoch:]
                self.history["epochs"][-1].update(metrics, train_loss=float(np.mean(steps)) if steps else None)
                if metrics and self.progress:
                    bar.write(f"epoch {self.epoch + 1}/{self.epochs}: eval accuracy {metrics['eval_accuracy']:.4f}, "
                              f"eval loss {metrics['eval_loss']:.4f}")
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        # Unreadable images met so far, counted once per underlying dataset (splits share one).
        bases = {id(getattr(d, "dataset", d)): getattr(d, "dataset", d)
                 for d in (self.train_dataset, self.eval_dataset) if d is not None}
        self.history["skipped_images"] = sum(int(getattr(d, "skipped", 0)) for d in bases.values())
        if self.output_dir is not None:
            self._save_final()
        return self.history

    def _train_epoch(self, epoch: int, nb: int, bar) -> None:
        start = self.batch_in_epoch
        t0, images, pending, loss_sum, n_sum = time.perf_counter(), 0, 0, 0.0, 0
        if start == 0 or not self.history["epochs"] or self.history["epochs"][-1]["epoch"] != epoch:
            self.history["epochs"].append({"epoch": epoch})
        for b, px, labels in self.train_loader.batches(epoch, start):
            self._check_labels(labels, f"batch {b} of epoch {epoch}")
            out = self.model(px, labels=labels, **self.model_kwargs)
            loss = float(out.loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss is {loss} at step {self.step + 1} (epoch {epoch}, batch {b}): training "
                                         f"diverged; lower the learning rate (now {self.schedule.get_last_lr()[0]:.3g})")
            self.model.backward()
            pending, images = pending + 1, images + len(labels)
            loss_sum, n_sum = loss_sum + loss * len(labels), n_sum + len(labels)
            if pending == self.grad_accum_steps or b == nb - 1:
                self._finish_step(pending, loss_sum / n_sum, b + 1, images / (time.perf_counter() - t0), bar)
                pending, loss_sum, n_sum = 0, 0.0, 0
        if pending:  # the epoch's last batches were unreadable: step on what was accumulated
            self._finish_step(pending, loss_sum / n_sum, nb, images / (time.perf_counter() - t0), bar)
        if images:  # (a run resumed at the end of an epoch keeps the figures it had)
            ep = self.history["epochs"][-1]
            ep["seconds"] = time.perf_counter() - t0
            ep["images_per_s"] = images / ep["seconds"]

    def _finish_step(self, micro_batches: int, loss: float, next_batch: int, rate: float, bar) -> None:
        lr = self.schedule.get_last_lr()[0]
        self._update(micro_batches)
        self.step += 1
        self.batch_in_epoch = next_batch
        self.history["loss"].append(loss)
        self.history["lr"].append(lr)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.1f}", lr=f"{lr:.2e}", refresh=False)
        if self.checkpoint_every and self.step % self.checkpoint_every == 0:
            self.save_checkpoint()
        for cb in self.callbacks:
            cb(self, self.step, loss)

    def _save_final(self) -> None:
        """The trained model (and its processor) in output_dir itself: usable with --model output_dir."""
        self.model.save_pretrained(self.output_dir)
        tmp = os.path.join(self.output_dir, ".preprocessor_config.json.tmp")
        for name, obj in (("preprocessor_config.json", self.processor.to_dict()), ("history.json", self.history)):
            with open(tmp, "w") as f:
                json.dump(obj, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(self.output_dir, name))
