/* Shared helpers for the CPython layer: status -> exception, NumPy argument checks. */
#ifndef VC_PYUTIL_H
#define VC_PYUTIL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL visionc_ARRAY_API
#include <numpy/arrayobject.h>

#include "vc.h"

/* Sets a Python exception from a failed status and the thread's last message; returns NULL. */
PyObject *vc_py_raise(vc_status s);

/* Returns a new reference to `obj` as a C-contiguous float32 array (no copy when it already
 * is one), or NULL with TypeError/ValueError naming `what`. ndim < 0 accepts any rank. */
PyArrayObject *vc_py_float_array(PyObject *obj, const char *what, int ndim);

/* Same, but the array must already be C-contiguous float32 and writeable: it is an output. */
PyArrayObject *vc_py_out_array(PyObject *obj, const char *what);

/* A vc_tensor view of a NumPy array (no copy; the array must stay alive). Non-NumPy objects
 * and misaligned or byte-swapped arrays raise TypeError naming `what`. Returns 0 or -1. */
int vc_py_tensor_view(PyObject *obj, const char *what, void *tensor_out);

/* Registration hooks, one per binding file. Each returns 0, or -1 with an exception set. */
int vc_py_register_core(PyObject *m);
int vc_py_register_io(PyObject *m);
int vc_py_register_image(PyObject *m);
int vc_py_register_text(PyObject *m);
int vc_py_register_generate(PyObject *m);
int vc_py_register_vit(PyObject *m);
int vc_py_register_ops(PyObject *m);
int vc_py_register_convnext(PyObject *m);
int vc_py_register_mobilevit(PyObject *m);
int vc_py_register_optim(PyObject *m);
int vc_py_register_ops_backward(PyObject *m);
int vc_py_register_bf16(PyObject *m);
int vc_py_register_gemm(PyObject *m);
int vc_py_register_gpt2(PyObject *m);

#endif
