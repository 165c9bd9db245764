#include "python/py_train_util.h"

int vc_py_train_labels(PyObject *obj, int B, int num_labels, PyArrayObject **keep, const int64_t **out) {
    *keep = NULL;
    *out = NULL;
    if (obj == Py_None) return 0;
    if (!PyArray_Check(obj) || !PyArray_ISINTEGER((PyArrayObject *)obj)) {
        PyErr_SetString(PyExc_TypeError, "labels must be an integer NumPy array of class indices");
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_INT64, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!a) return -1;
    if (PyArray_NDIM(a) != 1 || PyArray_DIM(a, 0) != B) {
        PyErr_Format(PyExc_ValueError, "labels must have shape (%d,) (one per image)", B);
        Py_DECREF(a);
        return -1;
    }
    const int64_t *v = PyArray_DATA(a);
    for (int i = 0; i < B; i++)
        if (v[i] < 0 || v[i] >= num_labels) {
            PyErr_Format(PyExc_ValueError, "label %lld (at position %d) is out of range: the model has %d labels "
                         "(0..%d)", (long long)v[i], i, num_labels, num_labels - 1);
            Py_DECREF(a);
            return -1;
        }
    *keep = a;
    *out = v;
    return 0;
}

PyArrayObject *vc_py_train_pixels(PyObject *obj, int channels, int *B, int *H, int *W) {
    PyArrayObject *px = vc_py_float_array(obj, "pixel_values", 4);
    if (!px) return NULL;
    npy_intp *d = PyArray_DIMS(px);
    if (d[1] != channels) {
        PyErr_Format(PyExc_ValueError, "pixel_values has %ld channels but the model expects %d (shape (N, C, H, W))",
                     (long)d[1], channels);
    } else if (d[0] <= 0 || d[0] > (1 << 20) || d[2] <= 0 || d[2] > (1 << 16) || d[3] <= 0 || d[3] > (1 << 16)) {
        PyErr_SetString(PyExc_ValueError, "pixel_values: empty or too large");
    } else {
        *B = (int)d[0], *H = (int)d[2], *W = (int)d[3];
        return px;
    }
    Py_DECREF(px);
    return NULL;
}
