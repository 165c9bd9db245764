"""Image captioning, fp32: visionc against transformers' generate() in the same run, on the
exact nlpconnect/vit-gpt2-image-captioning architecture (ViT-B/16-224 + GPT-2 small with
cross-attention) with random weights.

    python benchmarks/bench_caption.py [--threads 2] [--batches 1 8] [--rounds 2] [--ckpt DIR]

1. Validates: both frameworks caption the same images (batch 8 and batch 1, greedy and
   4-beam search) and must produce identical token ids.
2. Times greedy and beam-4 at exactly 16 new tokens (min_new_tokens = max_new_tokens = 16),
   each framework in its own process (two OpenMP runtimes spinning on the same cores would
   slow each other down), alternating processes for --rounds rounds so that a busy machine
   affects both alike. Reported: median per-image latency (pixel_values -> token ids, encoder
   included), generated tokens/s, decode ms per token (per step: the latency minus the
   encoder's, over 16 steps), the visionc/transformers speed ratio, and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
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


def loaders(framework: str, ckpt: str, threads: int):
    """(generate(px, beams) -> int64 ids, encode(px)) for one framework."""
    if framework == "visionc":
        import visionc
        visionc.set_num_threads(threads)
        model = visionc.VisionEncoderDecoderModel.from_pretrained(ckpt)
        gen = lambda px, nb: model.generate(px, num_beams=nb, max_new_tokens=NEW_TOKENS,  # noqa: E731
                                            min_new_tokens=NEW_TOKENS)
        return gen, model.encode
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    model = transformers.VisionEncoderDecoderModel.from_pretrained(ckpt).eval()

    def gen(px, nb):
        with torch.inference_mode():
            return model.generate(pixel_values=torch.from_numpy(px), num_beams=nb, max_new_tokens=NEW_TOKENS,
                                  min_new_tokens=NEW_TOKENS).numpy()

    def encode(px):
        with torch.inference_mode():
            return model.encoder(pixel_values=torch.from_numpy(px)).last_hidden_state
    return gen, encode


def worker(framework: str, ckpt: str, threads: int, batches: list[int], reps: int) -> dict:
    import time
    gen, encode = loaders(framework, ckpt, threads)
    out = {}
    for batch in batches:
        px = images(batch)
        encode(px)
        enc_times = []
        for _ in range(reps):
            t = time.perf_counter()
            encode(px)
            enc_times.append(time.perf_counter() - t)
        for mode, nb in MODES.items():
            gen(px, nb)  # warm-up: caches, arenas, thread pools
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                gen(px, nb)
                times.append(time.perf_counter() - t)
            out[f"{batch}/{mode}"] = {"times": times, "encoder": statistics.median(enc_times)}
    return out


def validate(ckpt: str, threads: int, batches: list[int]):
    import numpy as np
    vgen, _ = loaders("visionc", ckpt, threads)
    tgen, _ = loaders("torch", ckpt, threads)
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
    print(f"machine: {machine()}; threads: {a.threads}; load average at start: {os.getloadavg()}")
    print("validating token ids (visionc vs transformers generate):")
    validate(a.ckpt, a.threads, sorted(set(a.batches), reverse=True))
    results = {"visionc": {}, "torch": {}}
    for r in range(a.rounds):
        for fw in ("visionc", "torch"):
            part = run_worker(__file__, [fw, a.ckpt, str(a.threads), str(a.reps), *map(str, a.batches)])
            for key, v in part.items():
                slot = results[fw].setdefault(key, {"times": [], "encoder": []})
                slot["times"] += v["times"]
                slot["encoder"].append(v["encoder"])
    print(f"load average at end: {os.getloadavg()}")
    print(f"\n{'batch/mode':<12} {'visionc ms/img':>15} {'torch ms/img':>13} {'speedup':>8} {'visionc tok/s':>14} "
          f"{'torch tok/s':>12} {'decode ms/step vc / torch':>26}")
    decode = {}
    for key in results["visionc"]:
        batch = int(key.split("/")[0])
        row = {}
        for fw in ("visionc", "torch"):
            t = statistics.median(results[fw][key]["times"])
            enc = statistics.median(results[fw][key]["encoder"])
            row[fw] = (t, (t - enc) / NEW_TOKENS)
        decode[key] = row["visionc"][1]
        (tv, dv), (tt, dt) = row["visionc"], row["torch"]
        print(f"{key:<12} {tv / batch * 1e3:>15.1f} {tt / batch * 1e3:>13.1f} {tt / tv:>7.2f}x "
              f"{batch * NEW_TOKENS / tv:>14.1f} {batch * NEW_TOKENS / tt:>12.1f} {dv * 1e3:>12.1f} / {dt * 1e3:<10.1f}")
    for batch in a.batches:
        g, b = decode.get(f"{batch}/greedy"), decode.get(f"{batch}/beam4")
        if g and b:
            print(f"batch {batch}: visionc beam-4 decode step / greedy decode step = {b / g:.2f} (goal <= 2)")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
