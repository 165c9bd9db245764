/* Helpers shared by the training bindings (py_ops_backward.c, py_ops_train.c): new arrays,
 * shape checks with messages that show both shapes, parameter-gradient accumulators, and
 * result tuples. Internal to the binding layer. */
#ifndef VC_PY_GRAD_UTIL_H
#define VC_PY_GRAD_UTIL_H

#include "ops/backend.h"
#include "python/pyutil.h"

/* New float32 array of shape dims[nd], zero-filled when zero != 0; NULL with an exception. */
PyArrayObject *vc_grad_new(int nd, const npy_intp *dims, int zero);

/* 0 when a has shape dims[nd]; else -1 with ValueError "<what> must have shape (..), got (..)". */
int vc_grad_shape(PyArrayObject *a, const char *what, int nd, const npy_intp *dims);

/* A parameter-gradient accumulator of shape dims[nd]: None gives new zeros; an array must be
 * writeable C-contiguous float32 of that shape and is accumulated into (a new reference). */
PyArrayObject *vc_grad_acc(PyObject *o, const char *what, int nd, const npy_intp *dims);

/* 0 and *out = v when 1 <= v <= INT_MAX (the kernels take int dimensions); else -1, ValueError. */
int vc_grad_dim(npy_intp v, const char *what, int *out);

/* Scratch of `floats` floats (+64 bytes of slack), overflow-checked; NULL with MemoryError.
 * Free with PyMem_RawFree. */
float *vc_grad_scratch(size_t floats);

/* 0 when the product a*b*c fits an int (a GEMM dimension or leading dimension); else -1, ValueError. */
int vc_grad_int_product(size_t a, size_t b, size_t c, const char *what);

/* Tuple of n results given as PyArrayObject ** (NULL entries become None); takes over each
 * reference and clears the caller's pointer, so the caller's cleanup can XDECREF them all. */
PyObject *vc_grad_tuple(int n, ...);

/* Registers py_ops_train.c's functions; called from py_ops_backward.c's hook. */
int vc_py_register_ops_train(PyObject *m);

#endif
