/* Threads and CPU features. */
#include "python/pyutil.h"

static PyObject *set_num_threads(PyObject *self, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0 || n > 4096) return PyErr_Format(PyExc_ValueError, "num_threads must be 0 (auto) .. 4096, got %ld", n);
    vc_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *get_num_threads(PyObject *self, PyObject *noargs) { return PyLong_FromLong(vc_get_num_threads()); }

static PyObject *physical_cores(PyObject *self, PyObject *noargs) { return PyLong_FromLong(vc_physical_cores()); }

static PyObject *cpu_features(PyObject *self, PyObject *noargs) {
    const vc_cpu_features *c = vc_cpu();
    return Py_BuildValue("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "avx2", c->avx2 ? Py_True : Py_False, "fma",
                         c->fma ? Py_True : Py_False, "f16c", c->f16c ? Py_True : Py_False, "avx512f",
                         c->avx512f ? Py_True : Py_False, "avx512bw", c->avx512bw ? Py_True : Py_False, "avx512vl",
                         c->avx512vl ? Py_True : Py_False, "avx512_bf16", c->avx512_bf16 ? Py_True : Py_False,
                         "avx512_vnni", c->avx512_vnni ? Py_True : Py_False, "avx_vnni",
                         c->avx_vnni ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"set_num_threads", set_num_threads, METH_O, "Threads for visionc's kernels and BLAS (0: physical cores)."},
    {"get_num_threads", get_num_threads, METH_NOARGS, "Current thread count."},
    {"physical_cores", physical_cores, METH_NOARGS, "Physical cores this process may use."},
    {"cpu_features", cpu_features, METH_NOARGS, "Instruction-set extensions detected at run time."},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_core(PyObject *m) {
    vc_set_num_threads(0); /* physical cores, and OpenBLAS pinned to one thread */
    return PyModule_AddFunctions(m, methods);
}
