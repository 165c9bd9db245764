/* _C.mobilevit_new / _C.mobilevit_forward: the C MobileViT behind visionc's MobileViT classes. */
#include "python/py_model.h"

#include <string.h>

#include "models/mobilevit.h"
#include "models/mobilevit_train.h"
#include "python/py_mobilevit_train.h"

static int mobilevit_channels(const void *m) { return vc_mobilevit_get_config(m)->num_channels; }
static int mobilevit_labels(const void *m) { return vc_mobilevit_get_config(m)->num_labels; }

static const vc_model_train_vtable mobilevit_train = {
    (vc_status(*)(void *, int, const vc_tensor *))vc_mobilevit_bind_grad,
    (vc_status(*)(void *, const float *, int, int, int, const int64_t *, const vc_train_opts *, float *,
                  float *))vc_mobilevit_train_forward,
    (vc_status(*)(void *, const vc_backward_args *))vc_mobilevit_backward,
    (size_t(*)(const void *))vc_mobilevit_train_saved_bytes,
    mobilevit_channels,
    mobilevit_labels,
};

static const vc_model_vtable mobilevit_vtable = {
    "mobilevit",
    (int (*)(const void *))vc_mobilevit_num_params,
    (const char *(*)(const void *, int, int *, int64_t *))vc_mobilevit_param_name,
    (vc_status(*)(void *, int, const vc_tensor *))vc_mobilevit_bind,
    (void (*)(void *))vc_mobilevit_free,
    &mobilevit_train,
};

static int fill_ints(PyObject *seq, int *out, int n, const char *what) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence");
    if (!fast) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s must have %d entries", what, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        out[i] = (int)v;
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *mobilevit_new(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"num_channels", "neck_hidden_sizes", "hidden_sizes", "depths", "num_attention_heads",
                             "patch_size", "conv_kernel_size", "expand_ratio", "mlp_ratio", "layer_norm_eps",
                             "qkv_bias", "hidden_act", "num_labels", NULL};
    vc_mobilevit_config c = {0};
    PyObject *neck, *hidden, *depths;
    double expand, mlp, eps;
    const char *act;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iOOOiiidddpsi", kwlist, &c.num_channels, &neck, &hidden, &depths,
                                     &c.num_heads, &c.patch, &c.kernel, &expand, &mlp, &eps, &c.qkv_bias, &act,
                                     &c.num_labels))
        return NULL;
    if (fill_ints(neck, c.neck, 7, "neck_hidden_sizes") || fill_ints(hidden, c.hidden, 3, "hidden_sizes") ||
        fill_ints(depths, c.depth, 3, "depths"))
        return NULL;
    if (!strcmp(act, "silu") || !strcmp(act, "swish")) c.act = VC_ACT_SILU;
    else if (!strcmp(act, "gelu")) c.act = VC_ACT_GELU;
    else if (!strcmp(act, "relu")) c.act = VC_ACT_RELU;
    else return PyErr_Format(PyExc_NotImplementedError, "hidden_act '%s' is not supported (silu, gelu, relu)", act);
    c.expand_ratio = (float)expand;
    c.mlp_ratio = (float)mlp;
    c.layer_norm_eps = (float)eps;
    vc_mobilevit *m;
    vc_status st = vc_mobilevit_create(&c, vc_backend_cpu(), &m);
    if (st) return vc_py_raise(st);
    return vc_py_model_new(m, &mobilevit_vtable);
}

/* mobilevit_forward(model, px, stages, last_hidden, pooled, logits) -> (maps, last|None, pooled|None, logits|None) */
static PyObject *mobilevit_forward(PyObject *self, PyObject *args) {
    PyObject *model_obj, *px_obj, *stages_obj;
    int want_last, want_pooled, want_logits;
    if (!PyArg_ParseTuple(args, "OOOppp", &model_obj, &px_obj, &stages_obj, &want_last, &want_pooled, &want_logits))
        return NULL;
    vc_mobilevit *model = vc_py_model_get(model_obj, "mobilevit");
    if (!model) return NULL;
    const vc_mobilevit_config *c = vc_mobilevit_get_config(model);
    PyObject *fast = PySequence_Fast(stages_obj, "stages must be a sequence");
    if (!fast) return NULL;
    int idx[VC_MOBILEVIT_STAGES], nidx = (int)PySequence_Fast_GET_SIZE(fast);
    if (nidx > VC_MOBILEVIT_STAGES) nidx = -1;
    for (int i = 0; i < nidx; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if ((v == -1 && PyErr_Occurred()) || v < 0 || v >= VC_MOBILEVIT_STAGES) nidx = -1;
        else idx[i] = (int)v;
    }
    Py_DECREF(fast);
    if (nidx < 0) {
        PyErr_Clear();
        return PyErr_Format(PyExc_ValueError, "stages must be distinct indices in 0..%d", VC_MOBILEVIT_STAGES - 1);
    }
    PyArrayObject *px = vc_py_float_array(px_obj, "pixel_values", 4);
    if (!px) return NULL;
    PyObject *maps = NULL, *last = NULL, *pooled = NULL, *logits = NULL, *result = NULL;
    float *map_ptrs[VC_MOBILEVIT_STAGES] = {0};
    npy_intp *d = PyArray_DIMS(px);
    if (d[1] != c->num_channels) {
        PyErr_Format(PyExc_ValueError, "pixel_values has %ld channels, the model expects %d", (long)d[1],
                     c->num_channels);
        goto done;
    }
    if (d[0] < 1 || d[0] > (1 << 20) || d[2] > (1 << 14) || d[3] > (1 << 14) || d[2] < 32 || d[3] < 32) {
        PyErr_SetString(PyExc_ValueError, "pixel_values: empty batch, or images smaller than 32x32 or too large");
        goto done;
    }
    const int B = (int)d[0], H = (int)d[2], W = (int)d[3];
    if (!(maps = PyTuple_New(nidx))) goto done;
    for (int i = 0; i < nidx; i++) {
        int hs, ws;
        vc_mobilevit_stage_size(model, idx[i], H, W, &hs, &ws);
        npy_intp md[4] = {B, c->neck[idx[i] + 1], hs, ws};
        PyObject *a = PyArray_SimpleNew(4, md, NPY_FLOAT32);
        if (!a) goto done;
        PyTuple_SET_ITEM(maps, i, a);
        map_ptrs[idx[i]] = PyArray_DATA((PyArrayObject *)a);
    }
    int hl, wl;
    vc_mobilevit_stage_size(model, 4, H, W, &hl, &wl);
    npy_intp ld[4] = {B, c->neck[6], hl, wl}, pd[2] = {B, c->neck[6]}, gd[2] = {B, c->num_labels};
    if (want_last && !(last = PyArray_SimpleNew(4, ld, NPY_FLOAT32))) goto done;
    if (want_pooled && !(pooled = PyArray_SimpleNew(2, pd, NPY_FLOAT32))) goto done;
    if (want_logits && !(logits = PyArray_SimpleNew(2, gd, NPY_FLOAT32))) goto done;
    vc_mobilevit_outputs out = {map_ptrs, last ? PyArray_DATA((PyArrayObject *)last) : NULL,
                                pooled ? PyArray_DATA((PyArrayObject *)pooled) : NULL,
                                logits ? PyArray_DATA((PyArrayObject *)logits) : NULL};
    vc_status st;
    const float *pxd = PyArray_DATA(px);
    Py_BEGIN_ALLOW_THREADS st = vc_mobilevit_forward(model, pxd, B, H, W, &out);
    Py_END_ALLOW_THREADS if (st) {
        vc_py_raise(st);
        goto done;
    }
    result = Py_BuildValue("(OOOO)", maps, last ? last : Py_None, pooled ? pooled : Py_None,
                           logits ? logits : Py_None);
done:
    Py_XDECREF(maps);
    Py_XDECREF(last);
    Py_XDECREF(pooled);
    Py_XDECREF(logits);
    Py_DECREF(px);
    return result;
}

static PyMethodDef methods[] = {
    {"mobilevit_new", (PyCFunction)(void (*)(void))mobilevit_new, METH_VARARGS | METH_KEYWORDS, "A C MobileViT."},
    {"mobilevit_forward", mobilevit_forward, METH_VARARGS,
     "mobilevit_forward(model, px, stages, last_hidden, pooled, logits)"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_mobilevit(PyObject *m) {
    return PyModule_AddFunctions(m, methods) ? -1 : vc_py_register_mobilevit_train(m);
}
