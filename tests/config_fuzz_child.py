"""Child process of test_config_fuzz: loads each hostile checkpoint directory with visionc and
runs it, under an address-space limit, printing one JSON line per case.

    python config_fuzz_child.py CASES.json OUT_DIR

CASES.json: [{"id": str, "dir": str, "cls": visionc class name, "kind": "image" | "captioner",
"pixels": str (.npy), "ids": str (.npy, captioner only)}]. Before each case the child prints
{"start": id}; after it {"id", "outcome": "loaded" | "error", "type", "message", "seconds"}, and
for a loaded model it saves the logits to OUT_DIR/<id>.npy. A hang or a crash therefore shows
up in the parent as a start line without its result. torch is not imported here: the limit is
on visionc's own memory.
"""
import json
import resource
import sys
import time

AS_LIMIT = 3 << 30  # a multi-GiB allocation fails here (MemoryError) instead of succeeding quietly


def run_case(visionc, np, case):
    model = getattr(visionc, case["cls"]).from_pretrained(case["dir"])
    px = np.load(case["pixels"])
    if case["kind"] == "captioner":
        ids = np.load(case["ids"])
        logits = model(px, ids).logits
        model.generate(px, max_new_tokens=2)  # decoding reads the generation config too
    else:
        logits = model(px).logits
    return logits


def main():
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    import numpy as np
    import visionc
    visionc.set_num_threads(1)
    cases = json.load(open(sys.argv[1]))
    out_dir = sys.argv[2]
    for case in cases:
        print(json.dumps({"start": case["id"]}), flush=True)
        t0 = time.perf_counter()
        result = {"id": case["id"]}
        try:
            logits = run_case(visionc, np, case)
            np.save(f"{out_dir}/{case['id']}.npy", logits)
            result["outcome"] = "loaded"
        except Exception as e:  # every exception is reported; the parent judges its type and text
            result.update(outcome="error", type=type(e).__name__, message=str(e)[:500])
        result["seconds"] = time.perf_counter() - t0
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
