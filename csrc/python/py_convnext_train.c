/* Training bindings of the C ConvNeXt: gradient binding, the training forward and backward.
 * The C work runs with the GIL released; gradients are the caller's NumPy arrays (bound once,
 * accumulated into by backward, never copied). */
#include "python/py_convnext_train.h"

#include "models/convnext_train.h"
#include "python/py_model.h"
#include "python/py_train_util.h"

/* convnext_bind_grad(model, slot, array | None). The array must stay alive while bound: the
 * caller (Python's model object) keeps it as the parameter's .grad. */
static PyObject *convnext_bind_grad(PyObject *self, PyObject *args) {
    PyObject *mo, *arr;
    int i;
    if (!PyArg_ParseTuple(args, "OiO", &mo, &i, &arr)) return NULL;
    vc_convnext *m = vc_py_model_get(mo, "convnext");
    if (!m) return NULL;
    vc_status st;
    if (arr == Py_None) {
        st = vc_convnext_bind_grad(m, i, NULL);
    } else {
        if (!PyArray_Check(arr) || !PyArray_ISWRITEABLE((PyArrayObject *)arr))
            return PyErr_Format(PyExc_TypeError, "gradient for slot %d must be a writeable float32 array", i);
        vc_tensor t;
        if (vc_py_tensor_view(arr, "gradient", &t)) return NULL;
        st = vc_convnext_bind_grad(m, i, &t);
    }
    if (st) return vc_py_raise(st);
    Py_RETURN_NONE;
}

/* convnext_train_forward(model, px, labels|None, drop_path_rate, label_smoothing, seed, checkpointing,
 * bf16=False) -> (loss | None, logits [B, L]) */
static PyObject *convnext_train_forward(PyObject *self, PyObject *args) {
    PyObject *mo, *pxo, *lo;
    double p, ls;
    unsigned long long seed;
    int ckpt, bf16 = 0;
    if (!PyArg_ParseTuple(args, "OOOddKp|p", &mo, &pxo, &lo, &p, &ls, &seed, &ckpt, &bf16)) return NULL;
    vc_convnext *m = vc_py_model_get(mo, "convnext");
    if (!m) return NULL;
    const vc_convnext_config *c = vc_convnext_get_config(m);
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
        vc_convnext_train_opts o = {(float)p, (float)ls, (uint64_t)seed, ckpt, bf16};
        float loss = 0.f, *lp = PyArray_DATA(logits);
        const float *pd = PyArray_DATA(px);
        vc_status st;
        Py_BEGIN_ALLOW_THREADS st = vc_convnext_train_forward(m, pd, B, H, W, labels, &o, &loss, lp);
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

static PyObject *convnext_backward(PyObject *self, PyObject *mo) {
    vc_convnext *m = vc_py_model_get(mo, "convnext");
    if (!m) return NULL;
    vc_status st;
    Py_BEGIN_ALLOW_THREADS st = vc_convnext_backward(m);
    Py_END_ALLOW_THREADS
    if (st) return vc_py_raise(st);
    Py_RETURN_NONE;
}

static PyObject *convnext_train_memory(PyObject *self, PyObject *mo) {
    vc_convnext *m = vc_py_model_get(mo, "convnext");
    return m ? PyLong_FromSize_t(vc_convnext_train_saved_bytes(m)) : NULL;
}

static PyMethodDef methods[] = {
    {"convnext_bind_grad", convnext_bind_grad, METH_VARARGS, "convnext_bind_grad(model, slot, float32 array | None)"},
    {"convnext_train_forward", convnext_train_forward, METH_VARARGS,
     "convnext_train_forward(model, px, labels, drop_path_rate, label_smoothing, seed, checkpointing, bf16=False) -> "
     "(loss, logits)"},
    {"convnext_backward", convnext_backward, METH_O, "convnext_backward(model): accumulate parameter gradients (GIL released)"},
    {"convnext_train_memory", convnext_train_memory, METH_O, "bytes of training activation memory held by the model"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_convnext_train(PyObject *m) { return PyModule_AddFunctions(m, methods); }
