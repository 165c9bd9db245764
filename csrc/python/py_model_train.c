/* Training methods of visionc._C.Model, one implementation for every family through the
 * family's training table (vc_model_train_vtable): gradient binding, the training forward and
 * backward. The C work runs with the GIL released; gradients are the caller's NumPy arrays
 * (bound once, accumulated into by backward, never copied). */
#include <stdio.h>

#include "python/py_grad_util.h"
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
                             "drop_path_rate", "label_smoothing", "seed", "checkpointing", "bf16", "eval", NULL};
    const vc_model_train_vtable *tv = trainable(self);
    PyObject *pxo, *lo;
    double ph = 0, pa = 0, pc = 0, dp = 0, ls = 0;
    unsigned long long seed = 0;
    int ckpt = 0, bf16 = 0, eval = 0;
    if (!tv || !PyArg_ParseTupleAndKeywords(args, kw, "OO|$dddddKppp", kwlist, &pxo, &lo, &ph, &pa, &pc, &dp, &ls,
                                            &seed, &ckpt, &bf16, &eval))
        return NULL;
    if (eval && (ph != 0 || pa != 0 || pc != 0 || dp != 0)) { /* one check here rather than one per family */
        PyErr_SetString(PyExc_ValueError, "an eval-mode forward has no dropout or drop path (leave them at 0)");
        return NULL;
    }
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
        const vc_train_opts o = {.hidden_dropout = (float)ph, .attention_dropout = (float)pa,
                                 .classifier_dropout = (float)pc, .drop_path_rate = (float)dp,
                                 .label_smoothing = (float)ls, .seed = (uint64_t)seed, .checkpointing = ckpt,
                                 .bf16 = bf16, .eval = eval};
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

/* grad_logits: float32 [B, L] or None -> a->dlogits, a->B. */
static PyArrayObject *logits_grad(PyObject *o, int L, vc_backward_args *a) {
    PyArrayObject *g = vc_py_float_array(o, "grad_logits", 2);
    if (!g) return NULL;
    if (PyArray_DIM(g, 1) != L || vc_grad_dim(PyArray_DIM(g, 0), "grad_logits", &a->B)) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "grad_logits must have shape (batch, %d) like the logits, got (%ld, %ld)", L,
                         (long)PyArray_DIM(g, 0), (long)PyArray_DIM(g, 1));
        Py_DECREF(g);
        return NULL;
    }
    a->dlogits = PyArray_DATA(g);
    return g;
}

/* input_grad: a writeable float32 [B, C, H, W] array -> a->dpx, a->B, a->H, a->W (B agreeing
 * with grad_logits' when that was given). */
static PyArrayObject *input_grad(PyObject *o, int C, vc_backward_args *a) {
    PyArrayObject *dx = vc_py_out_array(o, "input_grad");
    if (!dx) return NULL;
    const int had_b = a->dlogits != NULL, b_logits = a->B;
    if (PyArray_NDIM(dx) != 4 || PyArray_DIM(dx, 1) != C) {
        PyErr_Format(PyExc_ValueError, "input_grad must have shape (batch, %d, height, width) like pixel_values", C);
    } else if (!vc_grad_dim(PyArray_DIM(dx, 0), "input_grad", &a->B) &&
               !vc_grad_dim(PyArray_DIM(dx, 2), "input_grad", &a->H) &&
               !vc_grad_dim(PyArray_DIM(dx, 3), "input_grad", &a->W)) {
        if (!had_b || b_logits == a->B) {
            a->dpx = PyArray_DATA(dx);
            return dx;
        }
        PyErr_Format(PyExc_ValueError, "grad_logits has %d rows but input_grad a batch of %d", b_logits, a->B);
    }
    Py_DECREF(dx);
    return NULL;
}

/* backward(grad_logits=None, input_grad=None); the family checks the arrays against the kept
 * forward's shapes under its training lock. */
PyObject *vc_py_model_backward(PyModel *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"grad_logits", "input_grad", NULL};
    const vc_model_train_vtable *tv = trainable(self);
    PyObject *go = Py_None, *dxo = Py_None;
    if (!tv || !PyArg_ParseTupleAndKeywords(args, kw, "|OO", kwlist, &go, &dxo)) return NULL;
    vc_backward_args a = {NULL, NULL, -1, -1, -1};
    PyArrayObject *g = NULL, *dx = NULL;
    if (go != Py_None && !(g = logits_grad(go, tv->num_labels(self->model), &a))) return NULL;
    if (dxo != Py_None && !(dx = input_grad(dxo, tv->num_channels(self->model), &a))) {
        Py_XDECREF(g);
        return NULL;
    }
    vc_status st;
    Py_BEGIN_ALLOW_THREADS st = tv->backward(self->model, &a);
    Py_END_ALLOW_THREADS
    Py_XDECREF(g);
    Py_XDECREF(dx);
    if (st) return vc_py_raise(st);
    Py_RETURN_NONE;
}

PyObject *vc_py_model_train_memory(PyModel *self, PyObject *noargs) {
    const vc_model_train_vtable *tv = trainable(self);
    return tv ? PyLong_FromSize_t(tv->memory(self->model)) : NULL;
}
