"""Benchmark plumbing: each measurement runs in its own process (so peak RSS belongs to one
framework), results come back as JSON, and the table is printed with ratios."""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: on Linux ru_maxrss survives
    exec and so reports the parent's peak when the parent was larger."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_calls(fn, min_seconds: float = 3.0, min_calls: int = 3, warmup: int = 1) -> float:
    """Median seconds per call over at least min_calls calls and min_seconds."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def run_worker(script: str, args: list[str]) -> dict:
    out = subprocess.run([sys.executable, script, "--worker", *args], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if out.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}"


def export_onnx(ckpt: Path, size: int) -> bool:
    """Exports the transformers checkpoint at `ckpt` to ckpt/model.onnx (dynamic batch)."""
    try:
        import torch
        import transformers
        model = transformers.AutoModelForImageClassification.from_pretrained(ckpt).eval()
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(Path(ckpt) / "model.onnx"),
                          input_names=["pixel_values"], output_names=["logits"],
                          dynamic_axes={"pixel_values": {0: "batch"}}, dynamo=False, opset_version=17)
        return True
    except Exception as e:  # exporter extras missing: report, carry on without ONNX
        print(f"(ONNX export failed, skipping ONNX Runtime: {type(e).__name__}: {e})", file=sys.stderr)
        return False


def onnx_runner(ckpt: str, px, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(Path(ckpt) / "model.onnx"), so, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"pixel_values": px})[0]
