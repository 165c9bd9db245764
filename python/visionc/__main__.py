"""Command line: python -m visionc {classify,embed,caption} IMAGE... | finetune DATA_DIR (see --help)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile


def _common(p: argparse.ArgumentParser):
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--model", default=None,
                   help="hub id or local directory (default: the ViT-Ti/16 ImageNet classifier shipped with visionc)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads (default: VISIONC_NUM_THREADS, OMP_NUM_THREADS or the CPUs it may use)")
    p.add_argument("--batch-size", type=int, default=8)


def _classify(args) -> int:
    import visionc
    clf = visionc.pipeline("image-classification", model=args.model, batch_size=args.batch_size,
                           num_threads=args.threads)
    results = clf(list(args.images), top_k=args.top_k)
    if args.json:
        print(json.dumps([{"image": img, "predictions": preds} for img, preds in zip(args.images, results)],
                         indent=2))
        return 0
    for img, preds in zip(args.images, results):
        print(img)
        for p in preds:
            print(f"  {p['score']:7.4f}  {p['label']}")
    return 0


def _embed(args) -> int:
    import numpy as np

    import visionc
    fe = visionc.pipeline("image-feature-extraction", model=args.model, batch_size=args.batch_size,
                          num_threads=args.threads)
    embs = np.concatenate(fe(list(args.images), pooling=args.pooling, normalize=args.normalize))
    # Write to a temporary file beside the target, then rename: never a half-written .npy.
    out = os.path.abspath(args.out)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, embs)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {embs.shape[0]} embeddings of size {embs.shape[1]} to {args.out}")
    return 0


def _caption(args) -> int:
    import visionc
    from .pipeline_image_to_text import DEFAULT_CAPTIONER
    cap = visionc.pipeline("image-to-text", model=args.model or DEFAULT_CAPTIONER, batch_size=args.batch_size,
                           num_threads=args.threads)
    gen = dict(max_new_tokens=args.max_new_tokens, num_beams=args.beams)
    if args.sample:
        gen.update(do_sample=True, top_p=args.top_p, top_k=args.top_k, temperature=args.temperature, seed=args.seed)
    results = cap(list(args.images), return_scores=True, **gen)
    if args.json:
        print(json.dumps([{"image": img, "captions": caps} for img, caps in zip(args.images, results)], indent=2))
        return 0
    for img, caps in zip(args.images, results):
        for c in caps:
            print(f"{img}\t{c['score']:.4f}\t{c['generated_text'].strip()}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m visionc", description="visionc: vision models on a C core")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("classify", help="top-k labels for each image")
    _common(p)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_classify)
    p = sub.add_parser("embed", help="one embedding per image, saved as a .npy (N, C) array")
    _common(p)
    p.add_argument("--out", required=True, help="output .npy file")
    p.add_argument("--pooling", choices=("cls", "mean", "pooler"), default="cls")
    p.add_argument("--normalize", action="store_true", help="L2-normalise each embedding")
    p.set_defaults(run=_embed)
    p = sub.add_parser("caption", help="a caption for each image")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--model", default=None,
                   help="hub id or local directory of an image captioner (default: nlpconnect/vit-gpt2-image-captioning)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads (default: VISIONC_NUM_THREADS, OMP_NUM_THREADS or the CPUs it may use)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--beams", type=int, default=1, help="beam search width (default 1: greedy)")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy / beam search")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the top tokens of this mass")
    p.add_argument("--top-k", type=int, default=50, help="sampling: keep the k likeliest tokens (0: all)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="sampling seed (the caption depends on it alone)")
    p.add_argument("--json", action="store_true", help="print JSON (with scores)")
    p.set_defaults(run=_caption)
    from .cli_finetune import add_parser as _add_finetune
    _add_finetune(sub)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError, TypeError, NotImplementedError) as e:
        print(f"visionc: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
