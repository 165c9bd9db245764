/* Training bindings of the C MobileViT: BatchNorm running-statistic buffers, gradient binding,
 * the training forward and backward. The C work runs with the GIL released; gradients and
 * buffers are the caller's NumPy arrays (bound, written in place, never copied). */
#include "python/py_mobilevit_train.h"

#include "models/mobilevit_train.h"
#include "python/py_model.h"
#include "python/py_train_util.h"

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

/* mobilevit_bind_grad(model, slot, array | None); the caller keeps the array alive as .grad. */
static PyObject *mobilevit_bind_grad(PyObject *self, PyObject *args) {
    PyObject *mo, *arr;
    int i;
    if (!PyArg_ParseTuple(args, "OiO", &mo, &i, &arr)) return NULL;
    vc_mobilevit *m = vc_py_model_get(mo, "mobilevit");
    if (!m) return NULL;
    vc_status st;
    if (arr == Py_None) {
        st = vc_mobilevit_bind_grad(m, i, NULL);
    } else {
        vc_tensor t;
        if (writable_view(arr, "gradient", i, &t)) return NULL;
        st = vc_mobilevit_bind_grad(m, i, &t);
    }
    if (st) return vc_py_raise(st);
    Py_RETURN_NONE;
}

/* mobilevit_train_forward(model, px, labels|None, hidden_dropout, classifier_dropout,
 * label_smoothing, seed, checkpointing, attention_dropout=0.0, bf16=False) -> (loss | None, logits [B, L]) */
static PyObject *mobilevit_train_forward(PyObject *self, PyObject *args) {
    PyObject *mo, *pxo, *lo;
    double ph, pc, ls, pa = 0.0;
    unsigned long long seed;
    int ckpt, bf16 = 0;
    if (!PyArg_ParseTuple(args, "OOOdddKp|dp", &mo, &pxo, &lo, &ph, &pc, &ls, &seed, &ckpt, &pa, &bf16)) return NULL;
    vc_mobilevit *m = vc_py_model_get(mo, "mobilevit");
    if (!m) return NULL;
    const vc_mobilevit_config *c = vc_mobilevit_get_config(m);
    int B, H, W;
    PyArrayObject *px = vc_py_train_pixels(pxo, c->num_channels, &B, &H, &W), *lab = NULL, *logits = NULL;
    PyObject *res = NULL;
    const int64_t *labels;
    if (!px || vc_py_train_labels(lo, B, c->num_labels, &lab, &labels)) goto done;
    if (!(ls >= 0.0 && ls <= 1.0)) {
        PyErr_Format(PyExc_ValueError, "label_smoothing must be in [0, 1], got %g", ls);
        goto done;
    }
    npy_intp dims[2] = {B, c->num_labels};
    if (!(logits = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32))) goto done;
    {
        vc_mobilevit_train_opts o = {(float)ph, (float)pc, (float)ls, (uint64_t)seed, ckpt, (float)pa, bf16};
        float loss = 0.f, *lp = PyArray_DATA(logits);
        const float *pd = PyArray_DATA(px);
        vc_status st;
        Py_BEGIN_ALLOW_THREADS st = vc_mobilevit_train_forward(m, pd, B, H, W, labels, &o, &loss, lp);
        Py_END_ALLOW_THREADS
        if (st) {
            vc_py_raise(st);
            goto done;
        }
        if (labels) res = Py_BuildValue("(dO)", (double)loss, (PyObject *)logits);
        else res = Py_BuildValue("(OO)", Py_None, (PyObject *)logits);
    }
done:
    Py_XDECREF(px);
    Py_XDECREF(lab);
    Py_XDECREF(logits);
    return res;
}

static PyObject *mobilevit_backward(PyObject *self, PyObject *mo) {
    vc_mobilevit *m = vc_py_model_get(mo, "mobilevit");
    if (!m) return NULL;
    vc_status st;
    Py_BEGIN_ALLOW_THREADS st = vc_mobilevit_backward(m);
    Py_END_ALLOW_THREADS
    if (st) return vc_py_raise(st);
    Py_RETURN_NONE;
}

static PyObject *mobilevit_train_memory(PyObject *self, PyObject *mo) {
    vc_mobilevit *m = vc_py_model_get(mo, "mobilevit");
    return m ? PyLong_FromSize_t(vc_mobilevit_train_saved_bytes(m)) : NULL;
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
    {"mobilevit_bind_grad", mobilevit_bind_grad, METH_VARARGS, "mobilevit_bind_grad(model, slot, float32 array | None)"},
    {"mobilevit_train_forward", mobilevit_train_forward, METH_VARARGS,
     "mobilevit_train_forward(model, px, labels, hidden_dropout, classifier_dropout, label_smoothing, seed, "
     "checkpointing, attention_dropout=0.0, bf16=False) -> (loss, logits)"},
    {"mobilevit_backward", mobilevit_backward, METH_O, "mobilevit_backward(model): accumulate parameter gradients"},
    {"mobilevit_train_memory", mobilevit_train_memory, METH_O, "bytes of training memory held by the model"},
    {"mobilevit_train_memory_for", mobilevit_train_memory_for, METH_VARARGS,
     "mobilevit_train_memory_for(model, B, H, W, checkpointing) -> bytes a training step of that shape holds"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_mobilevit_train(PyObject *m) { return PyModule_AddFunctions(m, methods); }
