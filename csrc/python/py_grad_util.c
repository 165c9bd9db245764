/* See py_grad_util.h. */
#include "python/py_grad_util.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

PyArrayObject *vc_grad_new(int nd, const npy_intp *dims, int zero) {
    npy_intp d[NPY_MAXDIMS];
    for (int i = 0; i < nd; i++) d[i] = dims[i];
    return (PyArrayObject *)(zero ? PyArray_ZEROS(nd, d, NPY_FLOAT32, 0) : PyArray_SimpleNew(nd, d, NPY_FLOAT32));
}

static void format_shape(char *buf, size_t cap, int nd, const npy_intp *dims) {
    size_t used = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < nd && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ", %ld" : "%ld", (long)dims[i]);
    if (used < cap) snprintf(buf + used, cap - used, nd == 1 ? ",)" : ")");
}

int vc_grad_shape(PyArrayObject *a, const char *what, int nd, const npy_intp *dims) {
    int same = PyArray_NDIM(a) == nd;
    for (int i = 0; same && i < nd; i++) same = PyArray_DIM(a, i) == dims[i];
    if (same) return 0;
    char want[160], got[160];
    format_shape(want, sizeof want, nd, dims);
    format_shape(got, sizeof got, PyArray_NDIM(a), PyArray_DIMS(a));
    PyErr_Format(PyExc_ValueError, "%s must have shape %s, got %s", what, want, got);
    return -1;
}

PyArrayObject *vc_grad_acc(PyObject *o, const char *what, int nd, const npy_intp *dims) {
    if (o == Py_None) return vc_grad_new(nd, dims, 1);
    PyArrayObject *a = vc_py_out_array(o, what);
    if (a && vc_grad_shape(a, what, nd, dims)) Py_CLEAR(a);
    return a;
}

int vc_grad_dim(npy_intp v, const char *what, int *out) {
    if (v < 1 || v > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: size %ld out of range [1, %d]", what, (long)v, INT_MAX);
        return -1;
    }
    *out = (int)v;
    return 0;
}

PyObject *vc_grad_tuple(int n, ...) {
    PyObject *t = PyTuple_New(n);
    if (!t) return NULL;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        PyArrayObject **p = va_arg(ap, PyArrayObject **);
        PyObject *item = p && *p ? (PyObject *)*p : Py_None;
        if (item == Py_None) Py_INCREF(item);
        if (p) *p = NULL;
        PyTuple_SET_ITEM(t, i, item);
    }
    va_end(ap);
    return t;
}

float *vc_grad_scratch(size_t floats) {
    size_t bytes;
    if (!vc_mul_ok(floats, sizeof(float), &bytes) || bytes > SIZE_MAX - 64) {
        PyErr_NoMemory();
        return NULL;
    }
    float *p = PyMem_RawMalloc(bytes + 64);
    if (!p) PyErr_NoMemory();
    return p;
}

int vc_grad_int_product(size_t a, size_t b, size_t c, const char *what) {
    size_t ab, abc;
    if (vc_mul_ok(a, b, &ab) && vc_mul_ok(ab, c, &abc) && abc <= INT_MAX) return 0;
    PyErr_Format(PyExc_ValueError, "%s: too large for one GEMM (more than %d elements in a dimension)", what, INT_MAX);
    return -1;
}
