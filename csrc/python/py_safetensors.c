/* _C.safetensors_load / _C.safetensors_save. Parsing, validation, conversion and writing
 * run in C with the GIL released; this file only moves data between C and Python objects. */
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "python/py_io.h"

static PyObject *load(PyObject *self, PyObject *arg) {
    PyObject *pathb = NULL;
    if (!PyUnicode_FSConverter(arg, &pathb)) return NULL;
    const char *path = PyBytes_AS_STRING(pathb);
    vc_safetensors *st = NULL;
    vc_status s;
    Py_BEGIN_ALLOW_THREADS
    s = vc_st_open(path, &st);
    Py_END_ALLOW_THREADS
    Py_DECREF(pathb);
    if (s) return vc_py_io_raise(s);

    vc_mapfile *map = vc_st_take_mapping(st);
    const unsigned char *base = map->addr;
    PyObject *owner = vc_py_mapped_file_new(map), *tensors = PyDict_New(), *meta = PyDict_New(), *result = NULL;
    vc_py_io_jobs jobs = {0};
    if (!owner || !tensors || !meta) goto done;
    for (size_t i = 0; i < vc_st_count(st); i++) {
        const vc_st_tensor *t = vc_st_tensor_at(st, i);
        PyObject *a = vc_py_io_array(owner, base + t->offset, t->dtype, t->ndim, t->shape, NULL, 1, &jobs);
        if (!a) goto done;
        PyObject *k = PyUnicode_DecodeUTF8(t->name, (Py_ssize_t)t->name_len, "strict");
        int bad = !k || PyDict_SetItem(tensors, k, a) < 0;
        Py_XDECREF(k);
        Py_DECREF(a);
        if (bad) goto done;
    }
    for (size_t i = 0; i < vc_st_meta_count(st); i++) {
        const vc_st_meta *m = vc_st_meta_at(st, i);
        PyObject *k = PyUnicode_DecodeUTF8(m->key, (Py_ssize_t)m->key_len, "strict");
        PyObject *v = PyUnicode_DecodeUTF8(m->value, (Py_ssize_t)m->value_len, "strict");
        int bad = !k || !v || PyDict_SetItem(meta, k, v) < 0;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (bad) goto done;
    }
    vc_py_io_run_jobs(&jobs);
    result = PyTuple_Pack(2, tensors, meta);
done:
    vc_py_io_jobs_free(&jobs);
    Py_XDECREF(tensors);
    Py_XDECREF(meta);
    Py_XDECREF(owner); /* the zero-copy arrays hold their own references */
    vc_st_close(st);
    return result;
}

/* safetensors dtype of a NumPy array, by kind and size (so int64 works whatever C type
 * NumPy maps it to). Returns 0 if there is none. */
static int st_dtype(PyArray_Descr *d, vc_io_dtype *out, int *typenum) {
    static const struct { char kind; int size; vc_io_dtype dt; int npy; } map[] = {
        {'f', 8, VC_IO_F64, NPY_FLOAT64}, {'f', 4, VC_IO_F32, NPY_FLOAT32}, {'f', 2, VC_IO_F16, NPY_FLOAT16},
        {'i', 8, VC_IO_I64, NPY_INT64},   {'i', 4, VC_IO_I32, NPY_INT32},   {'i', 2, VC_IO_I16, NPY_INT16},
        {'i', 1, VC_IO_I8, NPY_INT8},     {'u', 1, VC_IO_U8, NPY_UINT8},    {'b', 1, VC_IO_BOOL, NPY_BOOL},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (d->kind == map[i].kind && PyDataType_ELSIZE(d) == map[i].size) {
            *out = map[i].dt;
            *typenum = map[i].npy;
            return 1;
        }
    }
    return 0;
}

static PyObject *save(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", "tensors", "metadata", NULL};
    PyObject *pathb = NULL, *dict, *metadata = Py_None, *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O|O:safetensors_save", kwlist, PyUnicode_FSConverter, &pathb, &dict,
                                     &metadata))
        return NULL;
    const char *path = PyBytes_AS_STRING(pathb);
    if (!PyDict_Check(dict) || (metadata != Py_None && !PyDict_Check(metadata))) {
        PyErr_Format(PyExc_TypeError, "%s: tensors must be a dict of name -> numpy array and metadata a dict of str -> str "
                     "or None", path);
        Py_DECREF(pathb);
        return NULL;
    }
    /* Snapshots (new lists) keep every key and value alive while the GIL is released, even
     * if another thread mutates the dicts meanwhile. */
    PyObject *items = PyDict_Items(dict), *mitems = metadata != Py_None ? PyDict_Items(metadata) : PyList_New(0);
    Py_ssize_t n = items ? PyList_GET_SIZE(items) : 0, nm = mitems ? PyList_GET_SIZE(mitems) : 0;
    vc_st_entry *e = calloc((size_t)n + 1, sizeof *e);
    vc_st_meta *m = calloc((size_t)nm + 1, sizeof *m);
    PyObject **keep = calloc((size_t)n + 1, sizeof *keep); /* contiguous arrays, alive while writing */
    int64_t *shapes = calloc((size_t)n * VC_IO_MAX_DIMS + 1, sizeof *shapes);
    Py_ssize_t i = 0, j = 0;
    PyObject *k, *v;
    if (!items || !mitems) goto done;
    if (!e || !m || !keep || !shapes) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t q = 0; q < n; q++) {
        k = PyTuple_GET_ITEM(PyList_GET_ITEM(items, q), 0);
        v = PyTuple_GET_ITEM(PyList_GET_ITEM(items, q), 1);
        Py_ssize_t klen;
        const char *name = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &klen) : NULL;
        if (!name) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s: tensor names must be str, got %R", path, k);
            goto done;
        }
        vc_io_dtype dt;
        int typenum;
        if (!PyArray_Check(v)) {
            PyErr_Format(PyExc_TypeError, "%s: tensor '%s' must be a numpy.ndarray, got %s", path, name, Py_TYPE(v)->tp_name);
            goto done;
        }
        if (!st_dtype(PyArray_DESCR((PyArrayObject *)v), &dt, &typenum)) {
            PyErr_Format(PyExc_TypeError, "%s: tensor '%s' has dtype %R; supported: float64/32/16, int64/32/16/8, "
                         "uint8, bool", path, name, (PyObject *)PyArray_DESCR((PyArrayObject *)v));
            goto done;
        }
        /* Native byte order, C order (copies only when the array is not already so). */
        PyObject *c = PyArray_FromAny(v, PyArray_DescrFromType(typenum), 0, 0, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED,
                                      NULL);
        if (!c) goto done;
        keep[i] = c;
        PyArrayObject *a = (PyArrayObject *)c;
        if (PyArray_NDIM(a) > VC_IO_MAX_DIMS) {
            PyErr_Format(PyExc_ValueError, "%s: tensor '%s' has too many dimensions", path, name);
            goto done;
        }
        int64_t *shape = shapes + (size_t)i * VC_IO_MAX_DIMS;
        for (int d = 0; d < PyArray_NDIM(a); d++) shape[d] = (int64_t)PyArray_DIM(a, d);
        e[i] = (vc_st_entry){name, (size_t)klen, dt, PyArray_NDIM(a), shape, PyArray_DATA(a), (size_t)PyArray_NBYTES(a)};
        i++;
    }
    for (Py_ssize_t q = 0; q < nm; q++) {
        k = PyTuple_GET_ITEM(PyList_GET_ITEM(mitems, q), 0);
        v = PyTuple_GET_ITEM(PyList_GET_ITEM(mitems, q), 1);
        Py_ssize_t kl, vl;
        const char *ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &kl) : NULL;
        const char *vs = ks && PyUnicode_Check(v) ? PyUnicode_AsUTF8AndSize(v, &vl) : NULL;
        if (!ks || !vs) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s: metadata must map str to str", path);
            goto done;
        }
        m[j++] = (vc_st_meta){ks, vs, (size_t)kl, (size_t)vl};
    }
    vc_status s;
    Py_BEGIN_ALLOW_THREADS
    s = vc_st_save(path, e, (size_t)i, m, (size_t)j);
    Py_END_ALLOW_THREADS
    if (s) vc_py_io_raise(s);
    else result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t q = 0; keep && q < n; q++) Py_XDECREF(keep[q]);
    Py_XDECREF(items);
    Py_XDECREF(mitems);
    free(keep);
    free(e);
    free(m);
    free(shapes);
    Py_DECREF(pathb);
    return result;
}

PyMethodDef vc_py_safetensors_methods[] = {
    {"safetensors_load", load, METH_O,
     "safetensors_load(path) -> (dict[str, ndarray], dict[str, str])\n\n"
     "Tensors in file order. float32 and other NumPy-native dtypes are zero-copy, writeable views of a\n"
     "copy-on-write mapping (writes never reach the file); F16/BF16 are converted to float32."},
    {"safetensors_save", (PyCFunction)(void (*)(void))save, METH_VARARGS | METH_KEYWORDS,
     "safetensors_save(path, tensors, metadata=None) -> None\n\n"
     "Writes atomically (temporary file, fsync, rename). Supported dtypes: float64/32/16, int64/32/16/8,\n"
     "uint8, bool."},
    {NULL, NULL, 0, NULL},
};
