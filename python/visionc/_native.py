"""Loads the C extension after making OpenBLAS (from the scipy-openblas32 wheel) visible.

The extension links against libscipy_openblas.so by soname; loading that library
globally first lets the dynamic linker resolve it wherever pip put the wheel.
"""
import ctypes
import os

import scipy_openblas32

ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), "lib" + scipy_openblas32.get_library() + ".so"),
            mode=ctypes.RTLD_GLOBAL)

from . import _C  # noqa: E402

__all__ = ["_C"]
