#include "python/pyutil.h"

#include "core/tensor.h"

#include <string.h>

PyObject *vc_py_raise(vc_status s) {
    PyObject *type;
    switch (s) {
    case VC_ERR_TYPE: type = PyExc_TypeError; break;
    case VC_ERR_IO: type = PyExc_OSError; break;
    case VC_ERR_MEMORY: type = PyExc_MemoryError; break;
    case VC_ERR_UNSUPPORTED: type = PyExc_NotImplementedError; break;
    case VC_ERR_INTERNAL: type = PyExc_RuntimeError; break;
    default: type = PyExc_ValueError; break;
    }
    /* Messages may quote bytes from a file, or end mid-character where they were cut to
     * length: decode leniently so the real error is never replaced by a UnicodeDecodeError. */
    const char *msg = vc_last_error();
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "backslashreplace");
    if (!text) return NULL;
    PyErr_SetObject(type, text);
    Py_DECREF(text);
    return NULL;
}

PyArrayObject *vc_py_float_array(PyObject *obj, const char *what, int ndim) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a NumPy array, got %s", what, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_FLOAT32) {
        PyErr_Format(PyExc_TypeError, "%s must be float32, got %s", what, PyArray_DESCR(a)->typeobj->tp_name);
        return NULL;
    }
    if (ndim >= 0 && PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must have %d dimensions, got %d", what, ndim, PyArray_NDIM(a));
        return NULL;
    }
    return (PyArrayObject *)PyArray_FromAny(obj, PyArray_DescrFromType(NPY_FLOAT32), 0, 0,
                                            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
}

PyArrayObject *vc_py_out_array(PyObject *obj, const char *what) {
    if (!PyArray_Check(obj) || PyArray_TYPE((PyArrayObject *)obj) != NPY_FLOAT32 ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)obj) || !PyArray_ISWRITEABLE((PyArrayObject *)obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a writeable C-contiguous float32 array", what);
        return NULL;
    }
    Py_INCREF(obj);
    return (PyArrayObject *)obj;
}

int vc_py_tensor_view(PyObject *obj, const char *what, void *tensor_out) {
    vc_tensor *t = tensor_out;
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a NumPy array, got %s", what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    static const struct {
        int npy;
        vc_dtype vc;
    } map[] = {{NPY_FLOAT32, VC_F32}, {NPY_FLOAT16, VC_F16}, {NPY_FLOAT64, VC_F64}, {NPY_INT64, VC_I64},
               {NPY_INT32, VC_I32},   {NPY_INT8, VC_I8},     {NPY_UINT8, VC_U8},     {NPY_BOOL, VC_BOOL}};
    int found = -1;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (PyArray_TYPE(a) == map[i].npy) found = (int)i;
    if (found < 0 || !PyArray_ISALIGNED(a) || !PyArray_ISNOTSWAPPED(a) || PyArray_NDIM(a) > VC_MAX_DIMS) {
        PyErr_Format(PyExc_TypeError, "%s: unsupported array (dtype %s, %d dims; must be aligned, native byte order)",
                     what, PyArray_DESCR(a)->typeobj->tp_name, PyArray_NDIM(a));
        return -1;
    }
    const size_t item = PyArray_ITEMSIZE(a);
    t->data = PyArray_DATA(a);
    t->dtype = map[found].vc;
    t->ndim = PyArray_NDIM(a);
    for (int d = 0; d < t->ndim; d++) {
        t->shape[d] = PyArray_DIM(a, d);
        npy_intp s = PyArray_STRIDE(a, d);
        if (s < 0 || s % (npy_intp)item) {
            PyErr_Format(PyExc_TypeError, "%s: negative or unaligned strides are not supported", what);
            return -1;
        }
        t->strides[d] = s / (npy_intp)item;
    }
    return 0;
}
