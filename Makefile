# Named targets for the everyday jobs. `make test` is what CI runs (.ci/run).
PY ?= python3
# torch is pinned: any other version drags in gigabytes of CUDA packages.
TORCH = torch==2.13.0

.PHONY: install demo test test-deps build debug test-debug bench clean

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

bench:              ## benchmarks against PyTorch (see benchmarks/RESULTS.md)
	$(PY) benchmarks/bench_vit.py --onnx
	$(PY) benchmarks/bench_convnets.py --onnx
	$(PY) benchmarks/bench_caption.py
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf build dist python/visionc/_C*.so python/*.egg-info
