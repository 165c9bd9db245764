# Named targets for the everyday jobs. `make test` is what CI runs (.ci/run).
PY ?= python3
# torch is pinned: any other version drags in gigabytes of CUDA packages.
TORCH = torch==2.13.0
# The interpreter itself, not a launcher script (pyenv's shims are bash: a preloaded sanitizer would
# instrument the shell instead of Python).
PY_EXE = $$($(PY) -c 'import sys; print(sys.executable)')

.PHONY: install demo test test-deps build debug test-debug sanitize bench clean

install:            ## build and install visionc
	$(PY) -m pip install .

demo: install       ## classify a sample photo with the bundled ViT-Ti/16
	$(PY) -m visionc classify examples/images/chelsea.jpg

test-deps:          ## visionc plus the PyTorch references the tests compare against
	$(PY) -m pip install $(TORCH) ".[test]"

test: test-deps     ## the full test suite
	$(PY) -m pytest tests -q

build:              ## in-place build for development (python/visionc/_C*.so)
	$(PY) setup.py build_ext --inplace -q

# Debug build with AddressSanitizer and UBSan. Python itself is not instrumented, so the
# ASan runtime is preloaded; leak checking is off because CPython keeps objects to exit.
debug:
	VISIONC_DEBUG=1 $(PY) setup.py build_ext --inplace --force -q

test-debug: debug
	LD_PRELOAD=$$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 PYTHONPATH=python $(PY) -m pytest tests -q -x \
	    --ignore=tests/test_vit_large.py

# What CI runs after the tests: the C core built with -Werror and AddressSanitizer + UBSan into
# build/sanitize (the installed package and an in-place build are left alone), the kernel-level
# tests and a representative part of the suite under it, then load/run/free cycles of every
# family and the tokenizer under LeakSanitizer. Any finding fails.
SAN_DIR = build/sanitize
SAN_TESTS = tests/test_ops.py tests/test_ops_conv.py tests/test_ops_backward.py tests/test_ops_backward_conv.py \
            tests/test_gemm_f32.py tests/test_bf16_gemm.py tests/test_io_json.py tests/test_io_safetensors.py \
            tests/test_io_torch_bin.py tests/test_tokenizer_errors.py tests/test_image_resample.py \
            tests/test_generate.py tests/test_caption_model.py tests/test_train_api.py tests/test_config_labels.py \
            $(wildcard tests/test_thread_scratch.py tests/test_input_grad.py)
SAN_ENV = LD_PRELOAD=$$(gcc -print-file-name=libasan.so) PYTHONMALLOC=malloc VISIONC_PKG_DIR=$(SAN_DIR)/lib \
          UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
sanitize:
	rm -rf $(SAN_DIR) && mkdir -p $(SAN_DIR)/lib
	cp -r python/visionc $(SAN_DIR)/lib/ && rm -f $(SAN_DIR)/lib/visionc/_C*.so
	VISIONC_DEBUG=1 VISIONC_WERROR=1 $(PY) setup.py -q build_ext --force --build-lib $(SAN_DIR)/lib \
	    --build-temp $(SAN_DIR)/obj
	$(PY) tests/leak_cycles.py prepare $(SAN_DIR)/checkpoints
	$(SAN_ENV) ASAN_OPTIONS=detect_leaks=0 $(PY_EXE) -m pytest $(SAN_TESTS) -q -x -p no:cacheprovider
	$(SAN_ENV) ASAN_OPTIONS=detect_leaks=1:malloc_context_size=2 LSAN_OPTIONS=suppressions=.ci/lsan.supp \
	    $(PY_EXE) tests/leak_cycles.py run $(SAN_DIR)/checkpoints

bench:              ## benchmarks against PyTorch (see benchmarks/RESULTS.md)
	$(PY) benchmarks/bench_vit.py --onnx
	$(PY) benchmarks/bench_convnets.py --onnx
	$(PY) benchmarks/bench_caption.py
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf build dist python/visionc/_C*.so python/*.egg-info
