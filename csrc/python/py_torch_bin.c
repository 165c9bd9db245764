/* _C.torch_bin_load: torch.save checkpoints as a dict of NumPy arrays, without torch and
 * without Python's pickle. All parsing and checking happens in C (io/torch_bin.c) with the
 * GIL released; this file builds the arrays. */
#include "io/torch_bin.h"
#include "python/py_io.h"

static PyObject *load(PyObject *self, PyObject *arg) {
    PyObject *pathb = NULL;
    if (!PyUnicode_FSConverter(arg, &pathb)) return NULL;
    vc_torch_bin *tb = NULL;
    vc_status s;
    Py_BEGIN_ALLOW_THREADS
    s = vc_tb_open(PyBytes_AS_STRING(pathb), &tb);
    Py_END_ALLOW_THREADS
    if (s) {
        Py_DECREF(pathb);
        return vc_py_io_raise(s);
    }
    size_t n = vc_tb_count(tb);
    PyObject *owner = vc_py_mapped_file_new(vc_tb_take_mapping(tb)), *dict = PyDict_New(), *result = NULL;
    PyObject **arrays = PyMem_Calloc(n + 1, sizeof *arrays); /* borrowed from dict, for aliases */
    vc_py_io_jobs jobs = {0};
    if (!owner || !dict || !arrays) goto done;
    for (size_t i = 0; i < n; i++) {
        const vc_tb_tensor *t = vc_tb_tensor_at(tb, i);
        PyObject *a;
        if (t->alias_of < i) {
            /* The same tensor object under two names: one array, as torch.load gives. */
            a = Py_NewRef(arrays[t->alias_of]);
        } else {
            a = vc_py_io_array(owner, t->data, t->dtype, t->ndim, t->shape, t->stride, t->contiguous, &jobs);
            if (!a) goto done;
        }
        arrays[i] = a;
        PyObject *k = PyUnicode_DecodeUTF8(t->name, (Py_ssize_t)t->name_len, "strict");
        if (!k) {
            PyErr_Format(PyExc_ValueError, "%s: tensor name '%s' is not valid UTF-8", PyBytes_AS_STRING(pathb), t->name);
            Py_DECREF(a);
            goto done;
        }
        int bad = PyDict_SetItem(dict, k, a) < 0;
        Py_DECREF(k);
        Py_DECREF(a);
        if (bad) goto done;
    }
    vc_py_io_run_jobs(&jobs);
    result = Py_NewRef(dict);
done:
    vc_py_io_jobs_free(&jobs);
    PyMem_Free(arrays);
    Py_XDECREF(dict);
    Py_XDECREF(owner);
    Py_DECREF(pathb);
    vc_tb_close(tb);
    return result;
}

PyMethodDef vc_py_torch_bin_methods[] = {
    {"torch_bin_load", load, METH_O,
     "torch_bin_load(path) -> dict[str, ndarray]\n\n"
     "Reads a torch.save (zip) checkpoint without torch and without running pickle code: only tensor,\n"
     "storage and OrderedDict globals are accepted. Nested dicts are flattened with dotted names. float32\n"
     "(and other NumPy-native) contiguous tensors are zero-copy views of a copy-on-write mapping; F16/BF16\n"
     "become float32; strided tensors are copied."},
    {NULL, NULL, 0, NULL},
};
