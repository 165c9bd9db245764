/* Checkpoint I/O bindings: registration, the MappedFile owner type and ndarray helpers.
 * The loaders themselves are in py_safetensors.c, py_torch_bin.c and py_json.c. */
#include "python/py_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---- */

/* Length of the valid UTF-8 sequence at p, or 0 (overlongs, surrogates, > U+10FFFF, cut). */
static size_t utf8_len(const unsigned char *p, size_t avail) {
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return 0;
    if (avail < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

PyObject *vc_py_io_raise(vc_status s) {
    const unsigned char *m = (const unsigned char *)vc_last_error();
    size_t len = strlen((const char *)m), o = 0;
    char out[1024];
    for (size_t i = 0; i < len && o + 5 < sizeof out;) {
        size_t k = utf8_len(m + i, len - i);
        if (k) {
            if (o + k >= sizeof out) break;
            memcpy(out + o, m + i, k);
            o += k;
            i += k;
        } else {
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", m[i]);
            i++;
        }
    }
    out[o] = 0;
    vc_fail(s, "%s", out);
    return vc_py_raise(s);
}

/* ---- MappedFile: keeps a copy-on-write mapping alive while arrays view it ---- */

typedef struct {
    PyObject_HEAD
    vc_mapfile *map;
} MappedFile;

static void mf_dealloc(PyObject *o) {
    vc_mapfile_close(((MappedFile *)o)->map);
    Py_TYPE(o)->tp_free(o);
}

static PyObject *mf_path(PyObject *o, void *c) { return PyUnicode_DecodeFSDefault(((MappedFile *)o)->map->path); }
static PyObject *mf_size(PyObject *o, void *c) { return PyLong_FromSize_t(((MappedFile *)o)->map->size); }

static PyObject *mf_repr(PyObject *o) {
    PyObject *p = mf_path(o, NULL);
    if (!p) return NULL;
    PyObject *r = PyUnicode_FromFormat("<visionc MappedFile %R, %zu bytes, copy-on-write>", p, ((MappedFile *)o)->map->size);
    Py_DECREF(p);
    return r;
}

static PyGetSetDef mf_getset[] = {
    {"path", mf_path, NULL, "Path of the mapped file.", NULL},
    {"size", mf_size, NULL, "Mapped bytes.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject MappedFileType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "visionc._C.MappedFile",
    .tp_basicsize = sizeof(MappedFile),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A checkpoint file mapped copy-on-write; the base of zero-copy weight arrays. "
              "Writes to those arrays stay in memory and never reach the file.",
    .tp_dealloc = mf_dealloc,
    .tp_repr = mf_repr,
    .tp_getset = mf_getset,
};

PyObject *vc_py_mapped_file_new(vc_mapfile *m) {
    MappedFile *o = PyObject_New(MappedFile, &MappedFileType);
    if (!o) {
        vc_mapfile_close(m);
        return NULL;
    }
    o->map = m;
    return (PyObject *)o;
}

/* ---- arrays ---- */

static int npy_type(vc_io_dtype t) {
    switch (t) {
    case VC_IO_F64: return NPY_FLOAT64;
    case VC_IO_F32: case VC_IO_F16: case VC_IO_BF16: return NPY_FLOAT32;
    case VC_IO_I64: return NPY_INT64;
    case VC_IO_I32: return NPY_INT32;
    case VC_IO_I16: return NPY_INT16;
    case VC_IO_I8: return NPY_INT8;
    case VC_IO_U8: return NPY_UINT8;
    case VC_IO_BOOL: return NPY_BOOL;
    default: return NPY_NOTYPE;
    }
}

PyObject *vc_py_io_array(PyObject *owner, const void *data, vc_io_dtype dt, int ndim, const int64_t *shape,
                         const int64_t *stride, int contiguous, vc_py_io_jobs *jobs) {
    npy_intp dims[VC_IO_MAX_DIMS];
    if (ndim < 0 || ndim > VC_IO_MAX_DIMS) return PyErr_Format(PyExc_ValueError, "tensor rank %d unsupported", ndim);
    for (int i = 0; i < ndim; i++) dims[i] = (npy_intp)shape[i];
    int typenum = npy_type(dt);
    int dense = !stride || contiguous;
    int aligned = ((uintptr_t)data % vc_io_dtype_size(dt)) == 0;
    if (dt != VC_IO_F16 && dt != VC_IO_BF16 && dense && aligned) {
        PyObject *a = PyArray_NewFromDescr(&PyArray_Type, PyArray_DescrFromType(typenum), ndim, dims, NULL, (void *)data,
                                           NPY_ARRAY_CARRAY, NULL);
        if (!a) return NULL;
        Py_INCREF(owner);
        if (PyArray_SetBaseObject((PyArrayObject *)a, owner) < 0) { /* steals owner even on failure */
            Py_DECREF(a);
            return NULL;
        }
        return a;
    }
    if (jobs->n == jobs->cap) {
        size_t cap = jobs->cap ? jobs->cap * 2 : 16;
        vc_py_io_job *j = realloc(jobs->jobs, cap * sizeof *j);
        if (!j) return PyErr_NoMemory();
        jobs->jobs = j;
        jobs->cap = cap;
    }
    PyObject *a = PyArray_SimpleNew(ndim, dims, typenum);
    if (!a) return NULL;
    jobs->jobs[jobs->n++] = (vc_py_io_job){(PyArrayObject *)a, data, dt, ndim, shape, dense ? NULL : stride};
    return a;
}

void vc_py_io_run_jobs(vc_py_io_jobs *jobs) {
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < jobs->n; i++) {
        const vc_py_io_job *j = &jobs->jobs[i];
        if (j->stride) {
            vc_io_gather(j->src, j->dtype, j->ndim, j->shape, j->stride, PyArray_DATA(j->arr));
        } else {
            /* Dense: one run of numel elements. */
            int64_t n = 1, one = 1;
            for (int d = 0; d < j->ndim; d++) n *= j->shape[d];
            vc_io_gather(j->src, j->dtype, 1, &n, &one, PyArray_DATA(j->arr));
        }
    }
    Py_END_ALLOW_THREADS
    jobs->n = 0;
}

void vc_py_io_jobs_free(vc_py_io_jobs *jobs) {
    free(jobs->jobs);
    jobs->jobs = NULL;
    jobs->n = jobs->cap = 0;
}

int vc_py_register_io(PyObject *m) {
    if (PyType_Ready(&MappedFileType) < 0) return -1;
    if (PyModule_AddObjectRef(m, "MappedFile", (PyObject *)&MappedFileType) < 0) return -1;
    if (PyModule_AddFunctions(m, vc_py_safetensors_methods) < 0) return -1;
    if (PyModule_AddFunctions(m, vc_py_json_methods) < 0) return -1;
    return PyModule_AddFunctions(m, vc_py_torch_bin_methods);
}
