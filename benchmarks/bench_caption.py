"""Image captioning, fp32: visionc against transformers' generate() in the same run, on the
exact nlpconnect/vit-gpt2-image-captioning architecture (ViT-B/16-224 + GPT-2 small with
cross-attention) with random weights.

    python benchmarks/bench_caption.py [--threads 2] [--batches 1 8] [--rounds 2] [--ckpt DIR]

1. Validates: both frameworks caption the same images (batch 8 and batch 1, greedy and
   4-beam search) and must produce identical token ids.
2. Times greedy and beam-4 at exactly 16 new tokens (min_new_tokens = max_new_tokens = 16),
   each framework in its own process (two OpenMP runtimes spinning on the same cores would
   slow each other down), alternating processes for --rounds rounds so that a busy machine
   affects both alike. Every figure is the fastest of all repetitions (other jobs on a shared
   machine only ever add time). Reported: per-image latency (pixel_values -> token ids,
   encoder included), generated tokens/s, the decode step time ((time for 16 new tokens - time
   for 1) / 15: everything but the encoder and the first step), the visionc/transformers speed
   ratio, and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, run_worker  # noqa: E402

NEW_TOKENS = 16
MODES = {"greedy": 1, "beam4": 4}
START = 50256  # nlpconnect's decoder_start / bos / eos / pad token


def make_checkpoint(path: Path):
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    enc = transformers.ViTConfig(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
                                 num_attention_heads=12, intermediate_size=3072)
    dec = transformers.GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                                  add_cross_attention=True, is_decoder=True, bos_token_id=START, eos_token_id=START,
                                  pad_token_id=START)
    cfg = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id = cfg.pad_token_id = cfg.eos_token_id = cfg.bos_token_id = START
    transformers.VisionEncoderDecoderModel(config=cfg).save_pretrained(path)


def images(batch: int):
    import numpy as np
    return np.random.RandomState(0).randn(batch, 3, 224, 224).astype(np.float32)


def loader(framework: str, ckpt: str, threads: int):
    """generate(px, beams, new_tokens) -> int64 ids, for one framework."""
    if framework == "visionc":
        import visionc
        visionc.set_num_threads(threads)
        model = visionc.VisionEncoderDecoderModel.from_pretrained(ckpt)
        return lambda px, nb, n=NEW_TOKENS: model.generate(px, num_beams=nb, max_new_tokens=n, min_new_tokens=n)
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    model = transformers.VisionEncoderDecoderModel.from_pretrained(ckpt).eval()

    def gen(px, nb, n=NEW_TOKENS):
        with torch.inference_mode():
            return model.generate(pixel_values=torch.from_numpy(px), num_beams=nb, max_new_tokens=n,
                                  min_new_tokens=n).numpy()
    return gen


def worker(framework: str, ckpt: str, threads: int, batches: list[int], reps: int) -> dict:
    import time
    gen = loader(framework, ckpt, threads)
    out = {}
    for batch in batches:
        px = images(batch)
        for mode, nb in MODES.items():
            gen(px, nb)  # warm-up: caches, arenas, thread pools
            res = {}
            for n in (NEW_TOKENS, 1):
                times = []
                for _ in range(reps):
                    t = time.perf_counter()
                    gen(px, nb, n)
                    times.append(time.perf_counter() - t)
                res[str(n)] = times
            out[f"{batch}/{mode}"] = res
    return out


def validate(ckpt: str, threads: int, batches: list[int]):
    import numpy as np
    vgen, tgen = loader("visionc", ckpt, threads), loader("torch", ckpt, threads)
    for batch in batches:
        px = images(batch)
        for mode, nb in MODES.items():
            a, b = vgen(px, nb), tgen(px, nb)
            if a.shape != b.shape or not np.array_equal(a, b):
                raise SystemExit(f"token ids differ at batch {batch} {mode}:\nvisionc {a}\ntransformers {b}")
            assert a.shape == (batch, 1 + NEW_TOKENS)
            print(f"  batch {batch} {mode}: {batch} captions of {NEW_TOKENS} tokens, identical ids")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=2, help="alternating visionc / transformers processes")
    ap.add_argument("--reps", type=int, default=3, help="timed calls per configuration and process")
    ap.add_argument("--ckpt", default=None, help="checkpoint directory (default: a temporary one)")
    ap.add_argument("--worker", nargs="*")
    a = ap.parse_args()
    if a.worker is not None:
        fw, ckpt, threads, reps, *batches = a.worker
        print(json.dumps(worker(fw, ckpt, int(threads), [int(b) for b in batches], int(reps))))
        return
    tmp = None
    if a.ckpt is None:
        tmp = tempfile.TemporaryDirectory()
        a.ckpt = tmp.name
    if not (Path(a.ckpt) / "config.json").exists():
        make_checkpoint(Path(a.ckpt))
    print(f"machine: {machine()}; threads: {a.threads}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"(visionc's ViT encoder GEMMs run on OpenBLAS); load average at start: {os.getloadavg()}")
    print("validating token ids (visionc vs transformers generate):")
    validate(a.ckpt, a.threads, sorted(set(a.batches), reverse=True))
    results = {"visionc": {}, "torch": {}}
    for r in range(a.rounds):
        for fw in ("visionc", "torch"):
            part = run_worker(__file__, [fw, a.ckpt, str(a.threads), str(a.reps), *map(str, a.batches)])
            for key, v in part.items():
                slot = results[fw].setdefault(key, {})
                for n, times in v.items():
                    slot.setdefault(n, []).extend(times)
    print(f"load average at end: {os.getloadavg()}")
    print(f"\n{'batch/mode':<12} {'visionc ms/img':>15} {'torch ms/img':>13} {'speedup':>8} {'visionc tok/s':>14} "
          f"{'torch tok/s':>12} {'decode ms/step vc / torch':>26} {'speedup':>8}")
    step = {}
    for key in results["visionc"]:
        batch = int(key.split("/")[0])
        row = {}
        for fw in ("visionc", "torch"):
            full, one = min(results[fw][key][str(NEW_TOKENS)]), min(results[fw][key]["1"])
            row[fw] = (full, (full - one) / (NEW_TOKENS - 1))
        step[key] = {fw: row[fw][1] for fw in row}
        (tv, dv), (tt, dt) = row["visionc"], row["torch"]
        print(f"{key:<12} {tv / batch * 1e3:>15.1f} {tt / batch * 1e3:>13.1f} {tt / tv:>7.2f}x "
              f"{batch * NEW_TOKENS / tv:>14.1f} {batch * NEW_TOKENS / tt:>12.1f} {dv * 1e3:>12.1f} / {dt * 1e3:<11.1f}"
              f" {dt / dv:>6.2f}x")
    for batch in a.batches:
        g, b = step.get(f"{batch}/greedy"), step.get(f"{batch}/beam4")
        if g and b:
            print(f"batch {batch}: beam-4 decode step / greedy decode step = {b['visionc'] / g['visionc']:.2f} "
                  f"visionc (goal <= 2), {b['torch'] / g['torch']:.2f} transformers")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
