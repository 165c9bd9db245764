"""Command line: python -m visionc {classify,embed} IMAGE... | finetune DATA_DIR (see --help)."""
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
    p.add_argument("--threads", type=int, default=None, help="threads (default: physical cores)")
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
