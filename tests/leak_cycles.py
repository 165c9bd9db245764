"""Load / run / free cycles of every family, training steps, decoding and the tokenizer, for
LeakSanitizer (`make sanitize` runs it in the AddressSanitizer build; .ci/lsan.supp lists the
CPython-internal allocations it ignores). Any block the C core allocates and never frees is
reported at exit, with its allocating frame, and fails the run.

    python tests/leak_cycles.py prepare DIR   # random checkpoints, with transformers (normal build)
    python tests/leak_cycles.py run DIR       # the cycles, without torch (sanitizer build)
"""
import json
import sys
from pathlib import Path

CYCLES = 3
HERE = Path(__file__).resolve().parent


def prepare(out: Path):
    sys.path.insert(0, str(HERE))
    import torch
    import transformers
    from safetensors.numpy import save_file
    from caption_helpers import tiny_captioner
    from test_convnext import TIMM_CFG, to_timm_layout
    from test_tokenizer_errors import small_vocab
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8,
        num_labels=3)).save_pretrained(out / "vit")
    convnext = transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        depths=[1, 1, 2, 1], hidden_sizes=[8, 16, 24, 32], num_labels=3))
    convnext.save_pretrained(out / "convnext")
    (out / "convnext-timm").mkdir()
    save_file(to_timm_layout(convnext), str(out / "convnext-timm" / "model.safetensors"))
    (out / "convnext-timm" / "config.json").write_text(json.dumps(dict(TIMM_CFG, num_classes=3)))
    transformers.MobileViTForImageClassification(transformers.MobileViTConfig(
        image_size=64, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 24, 64],
        num_labels=3)).save_pretrained(out / "mobilevit")
    tiny_captioner().save_pretrained(out / "captioner")
    tok = out / "tokenizer"
    tok.mkdir()
    (tok / "vocab.json").write_text(json.dumps(small_vocab(["Ġa", "Ġc", "at", "Ġcat", "<|endoftext|>"])))
    (tok / "merges.txt").write_text("#version: 0.2\nĠ a\nĠ c\na t\nĠc at\n")
    (tok / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))


def run(root: Path):
    import os
    if os.environ.get("VISIONC_PKG_DIR"):  # the sanitizer build (make sanitize)
        sys.path.insert(0, os.environ["VISIONC_PKG_DIR"])
    import numpy as np
    import visionc
    rng = np.random.default_rng(0)
    images = {"vit": 32, "convnext": 64, "convnext-timm": 64, "mobilevit": 64}
    for _ in range(CYCLES):
        for name, size in images.items():
            px = rng.standard_normal((2, 3, size, size)).astype(np.float32)
            model = visionc.AutoModelForImageClassification.from_pretrained(root / name)
            model(px, output_hidden_states=True)
            model.embed(px) if hasattr(model, "embed") else None
            model.train()
            for ckpt in (False, True):
                model.gradient_checkpointing_enable() if ckpt else model.gradient_checkpointing_disable()
                model(px, labels=np.array([0, 2]))
                model.backward()
                model.zero_grad()
            opt = visionc.optim.AdamW(model.parameters(), lr=1e-3)
            opt.step()
            del model, opt
        cap = visionc.VisionEncoderDecoderModel.from_pretrained(root / "captioner")
        px = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
        cap.generate(px, max_new_tokens=4)
        cap.generate(px, max_new_tokens=4, num_beams=3, num_return_sequences=2)
        cap.generate(px, max_new_tokens=4, do_sample=True, top_k=5, top_p=0.9, seed=1)
        del cap
        tok = visionc.AutoTokenizer.from_pretrained(root / "tokenizer")
        ids = tok("a cat at a cat")["input_ids"]
        tok.decode(ids)
        tok.batch_decode([ids, ids[:2]])
        del tok
    print(f"leak cycles: {CYCLES} load/run/free cycles of vit, convnext (transformers and timm), mobilevit, "
          f"the captioner and the tokenizer done")


if __name__ == "__main__":
    mode, where = sys.argv[1], Path(sys.argv[2])
    prepare(where) if mode == "prepare" else run(where)
