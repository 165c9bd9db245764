/* Shared by the GPT-2 / decoder binding files (py_gpt2.c, py_decoder_ops.c). */
#ifndef VC_PY_DECODER_H
#define VC_PY_DECODER_H

#include "python/pyutil.h"

/* Token ids of any integer dtype as a new C-contiguous int32 array of `ndim` dimensions, or
 * NULL with TypeError / ValueError naming `what`. */
PyArrayObject *vc_py_int32_ids(PyObject *obj, const char *what, int ndim);

/* The decoder kernels' methods (py_decoder_ops.c), added by vc_py_register_gpt2. */
extern PyMethodDef vc_py_decoder_op_methods[];

#endif
