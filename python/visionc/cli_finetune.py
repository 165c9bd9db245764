"""`python -m visionc finetune DATA_DIR --out DIR ...`: the Trainer from the command line.

DATA_DIR holds one folder of images per class. The model (default: the bundled ViT-Ti/16)
gets a new classification head with one output per class folder; the fine-tuned model,
its processor and history.json end up in --out, checkpoints in --out/checkpoint-<step>/.
"""
from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune an image classifier on a folder of class folders",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data_dir", help="DATA_DIR/<class>/<image>...")
    p.add_argument("--model", default=None, help="hub id or local directory (default: bundled ViT-Ti/16)")
    p.add_argument("--out", required=True, help="output directory (model, checkpoints, history.json)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--schedule", choices=("cosine", "linear", "constant"), default="cosine")
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--eval-split", type=float, default=0.1, help="fraction of each class held out for evaluation")
    p.add_argument("--freeze", default=None,
                   help="'head_only' (train the new head only) or a parameter-name prefix to freeze up to")
    p.add_argument("--image-size", type=int, default=None, help="train at this square size (default: the model's)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="save a checkpoint every N steps")
    p.add_argument("--keep-checkpoints", type=int, default=2)
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue from the newest checkpoint in --out (or the one given)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="threads (default: VISIONC_NUM_THREADS, OMP_NUM_THREADS or the CPUs it may use)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="less activation memory, more compute")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def load_model(name_or_path, classes: list[str]):
    """The classifier with a fresh head of len(classes) outputs labelled by the class names."""
    import visionc
    model = visionc.AutoModelForImageClassification.from_pretrained(
        name_or_path or visionc.hub.default_model_dir(), num_labels=len(classes),
        id2label=dict(enumerate(classes)), ignore_mismatched_sizes=True)
    if not hasattr(model, "backward"):
        raise NotImplementedError(f"{type(model).__name__} cannot be trained by this visionc build (no backward)")
    return model


def run(args) -> int:
    import visionc
    from visionc.data import ImageFolder
    from visionc.trainer import Trainer

    if args.threads:
        visionc.set_num_threads(args.threads)
    dataset = ImageFolder(args.data_dir)
    model = load_model(args.model, dataset.classes)
    trainer = Trainer(model, train_dataset=dataset, eval_split=args.eval_split, epochs=args.epochs,
                      batch_size=args.batch_size, grad_accum_steps=args.grad_accum, lr=args.lr,
                      weight_decay=args.weight_decay, schedule=args.schedule, warmup_ratio=args.warmup_ratio,
                      label_smoothing=args.label_smoothing, freeze=args.freeze, image_size=args.image_size,
                      checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                      output_dir=args.out, resume=args.resume, seed=args.seed, progress=not args.no_progress,
                      gradient_checkpointing=args.gradient_checkpointing)
    print(f"{len(dataset)} images, {len(dataset.classes)} classes; {len(trainer.train_dataset)} train / "
          f"{len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0} eval; "
          f"{trainer.total_steps} steps", flush=True)
    try:
        history = trainer.train()
    except FloatingPointError as e:
        print(f"visionc: error: {e}", file=sys.stderr)
        return 2
    if trainer.resumed_from:
        print(f"resumed from {trainer.resumed_from}")
    for e in history["epochs"]:
        acc = f"eval accuracy {e['eval_accuracy']:.4f}, eval loss {e['eval_loss']:.4f}" if "eval_accuracy" in e else ""
        print(f"epoch {e['epoch'] + 1}: train loss {e['train_loss']:.4f} {acc}".rstrip())
    if history["skipped_images"]:
        print(f"skipped {history['skipped_images']} unreadable images")
    print(f"saved the fine-tuned model to {args.out}")
    return 0
