"""Build glue for the C core. Everything else lives in pyproject.toml.

VISIONC_DEBUG=1 builds with -O1 -g and address/undefined-behaviour sanitizers
(see the Makefile's `debug` target for how to run Python under them).
"""
import glob
import os

import numpy
import scipy_openblas32
from setuptools import Extension, setup

debug = os.environ.get("VISIONC_DEBUG") == "1"

sources = sorted(glob.glob("csrc/**/*.c", recursive=True))

compile_args = ["-std=c11", "-fopenmp", "-Wall", "-Wextra", "-Wno-unused-parameter",
                "-Wno-missing-field-initializers", "-fvisibility=hidden", "-D_GNU_SOURCE",
                "-DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION"]
link_args = ["-fopenmp"]
if debug:
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    compile_args += ["-O1", "-g", "-UNDEBUG"] + san
    link_args += san
else:
    # Portable baseline only: AVX2 / AVX-512 kernels are compiled per function with
    # target attributes and chosen at run time (csrc/core/cpu_features.c).
    compile_args += ["-O3", "-DNDEBUG"]
if os.environ.get("VISIONC_WERROR") == "1":
    compile_args.append("-Werror")

ext = Extension(
    "visionc._C",
    sources=sources,
    include_dirs=["csrc", numpy.get_include(), scipy_openblas32.get_include_dir()],
    library_dirs=[scipy_openblas32.get_lib_dir()],
    libraries=[scipy_openblas32.get_library()],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

setup(ext_modules=[ext])
