#include "python/pyutil.h"

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
