/* Threads and CPU features. */
#include "python/pyutil.h"

static PyObject *set_num_threads(PyObject *self, PyObject *arg) {
    long n = 0;
    if (arg != Py_None && (n = PyLong_AsLong(arg)) == -1 && PyErr_Occurred()) return NULL;
    if (n < 0 || n > VC_MAX_THREADS)
        return PyErr_Format(PyExc_ValueError, "num_threads must be 0 or None (the default) .. %d, got %ld",
                            VC_MAX_THREADS, n);
    vc_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *get_num_threads(PyObject *self, PyObject *noargs) { return PyLong_FromLong(vc_get_num_threads()); }

static PyObject *physical_cores(PyObject *self, PyObject *noargs) { return PyLong_FromLong(vc_physical_cores()); }
static PyObject *affinity_cpus(PyObject *self, PyObject *noargs) { return PyLong_FromLong(vc_affinity_cpus()); }
static PyObject *default_num_threads(PyObject *self, PyObject *noargs) {
    return PyLong_FromLong(vc_default_num_threads());
}

/* cgroup_cpu_limit(root=None): the cgroup quota in whole CPUs (0: none); root: a directory
 * holding proc/self/cgroup, proc/self/mountinfo and the hierarchy (tests), None: the real ones. */
static PyObject *cgroup_cpu_limit(PyObject *self, PyObject *args) {
    const char *root = NULL;
    if (!PyArg_ParseTuple(args, "|z", &root)) return NULL;
    int n;
    Py_BEGIN_ALLOW_THREADS n = vc_cgroup_cpu_limit(root);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(n);
}

/* parse_num_threads(text, list): the count, 0 for unset/blank, -1 for malformed (tests). */
static PyObject *parse_num_threads(PyObject *self, PyObject *args) {
    const char *s;
    int list;
    if (!PyArg_ParseTuple(args, "zp", &s, &list)) return NULL;
    return PyLong_FromLong(vc_parse_num_threads(s, list));
}

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
    {"set_num_threads", set_num_threads, METH_O, "Threads for visionc's kernels and BLAS (0 or None: the default)."},
    {"get_num_threads", get_num_threads, METH_NOARGS, "Current thread count."},
    {"default_num_threads", default_num_threads, METH_NOARGS,
     "VISIONC_NUM_THREADS, else OMP_NUM_THREADS, else min(physical cores, affinity mask, cgroup quota)."},
    {"physical_cores", physical_cores, METH_NOARGS, "Physical cores this process may use."},
    {"affinity_cpus", affinity_cpus, METH_NOARGS, "CPUs in this process's affinity mask."},
    {"cgroup_cpu_limit", cgroup_cpu_limit, METH_VARARGS, "cgroup_cpu_limit(root=None): the cgroup CPU quota, rounded "
                                                         "up (0: none)."},
    {"parse_num_threads", parse_num_threads, METH_VARARGS,
     "parse_num_threads(text, list): a thread-count variable's value (0: unset, -1: malformed)."},
    {"cpu_features", cpu_features, METH_NOARGS, "Instruction-set extensions detected at run time."},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_core(PyObject *m) {
    vc_set_num_threads(0); /* the default (environment, CPUs we may use); OpenBLAS pinned to one thread */
    return PyModule_AddFunctions(m, methods);
}
