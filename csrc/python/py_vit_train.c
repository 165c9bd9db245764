/* Training bindings of the C ViT: gradient binding, the training forward and backward.
 * The C work runs with the GIL released; gradients are the caller's NumPy arrays (bound once,
 * accumulated into by backward, never copied). */
#include "python/py_vit_train.h"

#include "models/vit_train.h"
#include "python/py_model.h"
#include "python/py_train_util.h"

/* vit_bind_grad(model, slot, array | None). The array must stay alive while bound: the
 * caller (Python's model object) keeps it as the parameter's .grad. */
static PyObject *vit_bind_grad(PyObject *self, PyObject *args) {
    PyObject *mo, *arr;
    int i;
    if (!PyArg_ParseTuple(args, "OiO", &mo, &i, &arr)) return NULL;
    vc_vit *m = vc_py_model_get(mo, "vit");
    if (!m) return NULL;
    vc_status st;
    if (arr == Py_None) {
        st = vc_vit_bind_grad(m, i, NULL);
    } else {
        if (!PyArray_Check(arr) || !PyArray_ISWRITEABLE((PyArrayObject *)arr))
            return PyErr_Format(PyExc_TypeError, "gradient for slot %d must be a writeable float32 array", i);
        vc_tensor t;
        if (vc_py_tensor_view(arr, "gradient", &t)) return NULL;
        st = vc_vit_bind_grad(m, i, &t);
    }
    if (st) return vc_py_raise(st);
    Py_RETURN_NONE;
}

/* vit_train_forward(model, px, labels|None, hidden_dropout, label_smoothing, seed, checkpointing,
 * bf16=False, attention_dropout=0.0) -> (loss | None, logits [B, L]) */
static PyObject *vit_train_forward(PyObject *self, PyObject *args) {
    PyObject *mo, *pxo, *lo;
    double p, ls, pa = 0.0;
    unsigned long long seed;
    int ckpt, bf16 = 0;
    if (!PyArg_ParseTuple(args, "OOOddKp|pd", &mo, &pxo, &lo, &p, &ls, &seed, &ckpt, &bf16, &pa)) return NULL;
    vc_vit *m = vc_py_model_get(mo, "vit");
    if (!m) return NULL;
    const vc_vit_config *c = vc_vit_get_config(m);
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
        vc_vit_train_opts o = {(float)p, (float)ls, (uint64_t)seed, ckpt, bf16, (float)pa};
        float loss = 0.f, *lp = PyArray_DATA(logits);
        const float *pd = PyArray_DATA(px);
        vc_status st;
        Py_BEGIN_ALLOW_THREADS st = vc_vit_train_forward(m, pd, B, H, W, labels, &o, &loss, lp);
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

static PyObject *vit_backward(PyObject *self, PyObject *mo) {
    vc_vit *m = vc_py_model_get(mo, "vit");
    if (!m) return NULL;
    vc_status st;
    Py_BEGIN_ALLOW_THREADS st = vc_vit_backward(m);
    Py_END_ALLOW_THREADS
    if (st) return vc_py_raise(st);
    Py_RETURN_NONE;
}

static PyObject *vit_train_memory(PyObject *self, PyObject *mo) {
    vc_vit *m = vc_py_model_get(mo, "vit");
    return m ? PyLong_FromSize_t(vc_vit_train_saved_bytes(m)) : NULL;
}

static PyMethodDef methods[] = {
    {"vit_bind_grad", vit_bind_grad, METH_VARARGS, "vit_bind_grad(model, slot, float32 array | None)"},
    {"vit_train_forward", vit_train_forward, METH_VARARGS,
     "vit_train_forward(model, px, labels, hidden_dropout, label_smoothing, seed, checkpointing, bf16=False, "
     "attention_dropout=0.0) -> "
     "(loss, logits)"},
    {"vit_backward", vit_backward, METH_O, "vit_backward(model): accumulate parameter gradients (GIL released)"},
    {"vit_train_memory", vit_train_memory, METH_O, "bytes of training activation memory held by the model"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_vit_train(PyObject *m) { return PyModule_AddFunctions(m, methods); }
