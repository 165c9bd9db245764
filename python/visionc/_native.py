"""Loads the C extension after making OpenBLAS (from the scipy-openblas32 wheel) visible.

The extension links against libscipy_openblas.so by soname; loading that library
globally first lets the dynamic linker resolve it wherever pip put the wheel.

OpenBLAS picks its GEMM kernels from the CPU when it loads; the OPENBLAS_CORETYPE environment
variable overrides that choice (e.g. "Haswell" pins the AVX2 kernels on an AVX-512 machine, at
about half the GEMM speed). visionc leaves that choice to the user, and does not depend on it: on
CPUs with AVX-512F its fp32 GEMMs run on its own kernel (csrc/backends/cpu/gemm_f32.c), OpenBLAS
serving the other CPUs. The environment variable VISIONC_GEMM=openblas, read when the first GEMM
runs, sends every fp32 GEMM to OpenBLAS (comparisons; an escape hatch); _C.gemm_f32_backend()
reports "avx512" or "openblas".
"""
import ctypes
import os

import scipy_openblas32

ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), "lib" + scipy_openblas32.get_library() + ".so"),
            mode=ctypes.RTLD_GLOBAL)

from . import _C  # noqa: E402

__all__ = ["_C"]
