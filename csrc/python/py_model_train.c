/* Training methods of visionc._C.Model, one implementation for every family through the
 * family's training table (vc_model_train_vtable): gradient binding, the training forward and
 * backward. The C work runs with the GIL released; gradients are the caller's NumPy arrays
 * (bound once, accumulated into by backward, never copied). */
#include <stdio.h>

#include "python/py_model.h"
#include "python/py_train_util.h"

static const vc_model_train_vtable *trainable(PyModel *self) {
    if (!self->vt->train) PyErr_Format(PyExc_TypeError, "%s models cannot be trained", self->vt->family);
    return self->vt->train;
}

/* bind_grad(slot, array | None). The array must stay alive while bound: the Python model keeps
 * it as the parameter's .grad. */
PyObject *vc_py_model_bind_grad(PyModel *self, PyObject *args) {
    const vc_model_train_vtable *tv = trainable(self);
    PyObject *arr;
    int i;
    if (!tv || !PyArg_ParseTuple(args, "iO", &i, &arr)) return NULL;
    vc_status st;
    if (arr == Py_None) {
        st = tv->bind_grad(self->model, i, NULL);
    } else {
        if (!PyArray_Check(arr) || !PyArray_ISWRITEABLE((PyArrayObject *)arr))
            return PyErr_Format(PyExc_TypeError, "gradient for slot %d must be a writeable float32 array", i);
        vc_tensor t;
        if (vc_py_tensor_view(arr, "gradient", &t)) return NULL;
        st = tv->bind_grad(self->model, i, &t);
    }
    if (st) return vc_py_raise(st);
    Py_RETURN_NONE;
}

PyObject *vc_py_model_train_forward(PyModel *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"pixel_values", "labels", "hidden_dropout", "attention_dropout", "classifier_dropout",
                             "drop_path_rate", "label_smoothing", "seed", "checkpointing", "bf16", NULL};
    const vc_model_train_vtable *tv = trainable(self);
    PyObject *pxo, *lo;
    double ph = 0, pa = 0, pc = 0, dp = 0, ls = 0;
    unsigned long long seed = 0;
    int ckpt = 0, bf16 = 0;
    if (!tv || !PyArg_ParseTupleAndKeywords(args, kw, "OO|$dddddKpp", kwlist, &pxo, &lo, &ph, &pa, &pc, &dp, &ls,
                                            &seed, &ckpt, &bf16))
        return NULL;
    if (!(ls >= 0.0 && ls <= 1.0)) { /* the probabilities are checked by the family, which knows its own */
        char msg[96];
        snprintf(msg, sizeof msg, "label_smoothing must be in [0, 1], got %g", ls);
        PyErr_SetString(PyExc_ValueError, msg);
        return NULL;
    }
    const int L = tv->num_labels(self->model);
    int B, H, W;
    PyArrayObject *px = vc_py_train_pixels(pxo, tv->num_channels(self->model), &B, &H, &W), *lab = NULL, *logits = NULL;
    PyObject *res = NULL;
    const int64_t *labels;
    if (!px || vc_py_train_labels(lo, B, L, &lab, &labels)) goto done;
    npy_intp dims[2] = {B, L};
    if (!(logits = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32))) goto done;
    {
        const vc_train_opts o = {(float)ph, (float)pa, (float)pc, (float)dp, (float)ls, (uint64_t)seed, ckpt, bf16};
        float loss = 0.f, *lp = PyArray_DATA(logits);
        const float *pd = PyArray_DATA(px);
        vc_status st;
        Py_BEGIN_ALLOW_THREADS st = tv->forward(self->model, pd, B, H, W, labels, &o, &loss, lp);
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

PyObject *vc_py_model_backward(PyModel *self, PyObject *noargs) {
    const vc_model_train_vtable *tv = trainable(self);
    if (!tv) return NULL;
    vc_status st;
    Py_BEGIN_ALLOW_THREADS st = tv->backward(self->model);
    Py_END_ALLOW_THREADS
    if (st) return vc_py_raise(st);
    Py_RETURN_NONE;
}

PyObject *vc_py_model_train_memory(PyModel *self, PyObject *noargs) {
    const vc_model_train_vtable *tv = trainable(self);
    return tv ? PyLong_FromSize_t(tv->memory(self->model)) : NULL;
}
