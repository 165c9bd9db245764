/* MobileViT's own training bindings: its BatchNorm running-statistic buffers (the caller's
 * NumPy arrays, bound and written in place) and the memory planner's query. Gradients, the
 * training forward and backward are the Model methods every family shares (py_model_train.c). */
#include "python/py_mobilevit_train.h"

#include "models/mobilevit_train.h"
#include "python/py_model.h"

/* mobilevit_buffer_specs(model) -> [(name, shape)] of the running-statistic buffers. */
static PyObject *mobilevit_buffer_specs(PyObject *self, PyObject *mo) {
    vc_mobilevit *m = vc_py_model_get(mo, "mobilevit");
    if (!m) return NULL;
    const int n = vc_mobilevit_num_buffers(m);
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (int i = 0; i < n; i++) {
        int ndim;
        int64_t shape[4];
        const char *name = vc_mobilevit_buffer_name(m, i, &ndim, shape);
        PyObject *item = Py_BuildValue("(s(L))", name, (long long)shape[0]); /* all buffers are [C] */
        if (!item) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* Writeable float32 array -> tensor view, or NULL with an exception. */
static int writable_view(PyObject *arr, const char *what, int i, vc_tensor *t) {
    if (!PyArray_Check(arr) || !PyArray_ISWRITEABLE((PyArrayObject *)arr)) {
        PyErr_Format(PyExc_TypeError, "%s for slot %d must be a writeable float32 array", what, i);
        return -1;
    }
    return vc_py_tensor_view(arr, what, t);
}

/* mobilevit_bind_buffer(model, slot, array): the caller keeps the array alive (the Python
 * model holds its buffers); training writes the running statistics into it. */
static PyObject *mobilevit_bind_buffer(PyObject *self, PyObject *args) {
    PyObject *mo, *arr;
    int i;
    if (!PyArg_ParseTuple(args, "OiO", &mo, &i, &arr)) return NULL;
    vc_mobilevit *m = vc_py_model_get(mo, "mobilevit");
    if (!m) return NULL;
    if (i < 0 || i >= vc_mobilevit_num_buffers(m)) return PyErr_Format(PyExc_IndexError, "buffer slot %d out of range", i);
    vc_tensor t;
    if (writable_view(arr, "buffer", i, &t)) return NULL;
    vc_status st = vc_mobilevit_bind_buffer(m, i, &t);
    if (st) return vc_py_raise(st);
    Py_RETURN_NONE;
}

/* mobilevit_train_memory_for(model, B, H, W, checkpointing) -> bytes a step of that shape holds */
static PyObject *mobilevit_train_memory_for(PyObject *self, PyObject *args) {
    PyObject *mo;
    int B, H, W, ckpt;
    if (!PyArg_ParseTuple(args, "Oiiip", &mo, &B, &H, &W, &ckpt)) return NULL;
    vc_mobilevit *m = vc_py_model_get(mo, "mobilevit");
    if (!m) return NULL;
    size_t bytes = 0;
    vc_status st = vc_mobilevit_train_plan_bytes(m, B, H, W, ckpt, &bytes);
    if (st) return vc_py_raise(st);
    return PyLong_FromSize_t(bytes);
}

static PyMethodDef methods[] = {
    {"mobilevit_buffer_specs", mobilevit_buffer_specs, METH_O, "[(name, shape)] of the BatchNorm running statistics"},
    {"mobilevit_bind_buffer", mobilevit_bind_buffer, METH_VARARGS, "mobilevit_bind_buffer(model, slot, float32 array)"},
    {"mobilevit_train_memory_for", mobilevit_train_memory_for, METH_VARARGS,
     "mobilevit_train_memory_for(model, B, H, W, checkpointing) -> bytes a training step of that shape holds"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_mobilevit_train(PyObject *m) { return PyModule_AddFunctions(m, methods); }
