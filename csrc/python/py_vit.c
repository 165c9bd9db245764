/* visionc._C.ViT: the C ViT behind visionc's ViTModel / ViTForImageClassification.
 * Python builds it from a config, binds every parameter (zero-copy), then calls forward;
 * outputs are NumPy arrays written in place by the C core with the GIL released. */
#include "python/pyutil.h"

#include <string.h>

#include "models/vit.h"

typedef struct {
    PyObject_HEAD vc_vit *model;
    PyObject *bound; /* list: the arrays bound to each slot, kept alive here */
    vc_vit_config cfg;
} PyViT;

static int parse_activation(const char *name, vc_activation *act) {
    if (!strcmp(name, "gelu")) *act = VC_ACT_GELU;
    else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_fast"))
        *act = VC_ACT_GELU_TANH;
    else if (!strcmp(name, "relu")) *act = VC_ACT_RELU;
    else if (!strcmp(name, "silu") || !strcmp(name, "swish")) *act = VC_ACT_SILU;
    else return -1;
    return 0;
}

static int vit_init(PyViT *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                             "patch_size", "image_size", "num_channels", "qkv_bias", "has_pooler",
                             "pooler_output_size", "num_labels", "hidden_act", "layer_norm_eps", NULL};
    vc_vit_config c = {0};
    const char *act = "gelu";
    double eps = 1e-12;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iiiiiiippiisd", kwlist, &c.hidden_size, &c.num_layers,
                                     &c.num_heads, &c.intermediate_size, &c.patch_size, &c.image_size,
                                     &c.num_channels, &c.qkv_bias, &c.has_pooler, &c.pooler_size, &c.num_labels,
                                     &act, &eps))
        return -1;
    if (parse_activation(act, &c.act)) {
        PyErr_Format(PyExc_NotImplementedError,
                     "hidden_act '%s' is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu)",
                     act);
        return -1;
    }
    c.layer_norm_eps = (float)eps;
    vc_vit *m;
    vc_status st = vc_vit_create(&c, vc_backend_cpu(), &m);
    if (st) {
        vc_py_raise(st);
        return -1;
    }
    vc_vit_free(self->model);
    self->model = m;
    self->cfg = c;
    Py_XDECREF(self->bound);
    self->bound = PyList_New(vc_vit_num_params(m));
    if (!self->bound) return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(self->bound); i++) {
        Py_INCREF(Py_None);
        PyList_SET_ITEM(self->bound, i, Py_None);
    }
    return 0;
}

static void vit_dealloc(PyViT *self) {
    vc_vit_free(self->model);
    Py_XDECREF(self->bound);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *vit_param_specs(PyViT *self, PyObject *noargs) {
    int n = vc_vit_num_params(self->model);
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (int i = 0; i < n; i++) {
        int ndim;
        int64_t shape[4];
        const char *name = vc_vit_param_name(self->model, i, &ndim, shape);
        PyObject *shp = PyTuple_New(ndim);
        if (!shp) goto fail;
        for (int d = 0; d < ndim; d++) PyTuple_SET_ITEM(shp, d, PyLong_FromLongLong(shape[d]));
        PyObject *item = Py_BuildValue("(sN)", name, shp);
        if (!item) goto fail;
        PyList_SET_ITEM(list, i, item);
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *vit_bind(PyViT *self, PyObject *args) {
    int i;
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "iO", &i, &obj)) return NULL;
    if (i < 0 || i >= vc_vit_num_params(self->model)) return PyErr_Format(PyExc_IndexError, "slot %d", i);
    int ndim;
    int64_t shape[4];
    const char *name = vc_vit_param_name(self->model, i, &ndim, shape);
    if (!PyArray_Check(obj) || PyArray_TYPE((PyArrayObject *)obj) != NPY_FLOAT32 ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)obj))
        return PyErr_Format(PyExc_TypeError, "parameter %s must be a C-contiguous float32 array", name);
    PyArrayObject *a = (PyArrayObject *)obj;
    vc_status st = vc_vit_bind(self->model, i, (const float *)PyArray_DATA(a), (int64_t)PyArray_SIZE(a));
    if (st) return vc_py_raise(st);
    Py_INCREF(obj);
    PyList_SetItem(self->bound, i, obj); /* steals; drops the previous array */
    Py_RETURN_NONE;
}

static PyObject *new_f32(int nd, npy_intp *dims) { return PyArray_SimpleNew(nd, dims, NPY_FLOAT32); }

/* forward(pixel_values, interpolate_pos_encoding, last_hidden, pooled, logits, hidden_states, attentions)
 * -> (last_hidden|None, pooled|None, logits|None, tuple|None, tuple|None) */
static PyObject *vit_forward(PyViT *self, PyObject *args) {
    PyObject *px_obj;
    int interp, want_last, want_pooled, want_logits, want_hidden, want_attn;
    if (!PyArg_ParseTuple(args, "Opppppp", &px_obj, &interp, &want_last, &want_pooled, &want_logits, &want_hidden,
                          &want_attn))
        return NULL;
    PyArrayObject *px = vc_py_float_array(px_obj, "pixel_values", 4);
    if (!px) return NULL;
    const vc_vit_config *c = &self->cfg;
    PyObject *last = NULL, *pooled = NULL, *logits = NULL, *hidden = NULL, *attn = NULL, *result = NULL;
    float **hidden_ptrs = NULL, **attn_ptrs = NULL;
    npy_intp *dims = PyArray_DIMS(px);
    if (dims[1] != c->num_channels) {
        PyErr_Format(PyExc_ValueError,
                     "pixel_values has %ld channels but the model expects num_channels=%d (shape (N, C, H, W))",
                     (long)dims[1], c->num_channels);
        goto done;
    }
    if (dims[0] == 0) {
        PyErr_SetString(PyExc_ValueError, "pixel_values: the batch is empty");
        goto done;
    }
    if (dims[0] > (1 << 20) || dims[2] > (1 << 16) || dims[3] > (1 << 16)) {
        PyErr_SetString(PyExc_ValueError, "pixel_values is too large");
        goto done;
    }
    const int B = (int)dims[0], H = (int)dims[2], W = (int)dims[3];
    const int T = vc_vit_num_tokens(self->model, H, W, interp);
    if (T < 0) {
        vc_py_raise(VC_ERR_ARG);
        goto done;
    }
    npy_intp d_btc[3] = {B, T, c->hidden_size};
    npy_intp d_pool[2] = {B, c->pooler_size > 0 ? c->pooler_size : c->hidden_size};
    npy_intp d_log[2] = {B, c->num_labels};
    npy_intp d_att[4] = {B, c->num_heads, T, T};
    vc_vit_outputs out = {0};
    if (want_last && !(last = new_f32(3, d_btc))) goto done;
    if (want_pooled && !(pooled = new_f32(2, d_pool))) goto done;
    if (want_logits && !(logits = new_f32(2, d_log))) goto done;
    if (last) out.last_hidden = PyArray_DATA((PyArrayObject *)last);
    if (pooled) out.pooled = PyArray_DATA((PyArrayObject *)pooled);
    if (logits) out.logits = PyArray_DATA((PyArrayObject *)logits);
    if (want_hidden) {
        hidden = PyTuple_New(c->num_layers + 1);
        hidden_ptrs = PyMem_Calloc(c->num_layers + 1, sizeof *hidden_ptrs);
        if (!hidden || !hidden_ptrs) goto nomem;
        for (int l = 0; l <= c->num_layers; l++) {
            PyObject *a = new_f32(3, d_btc);
            if (!a) goto done;
            PyTuple_SET_ITEM(hidden, l, a);
            hidden_ptrs[l] = PyArray_DATA((PyArrayObject *)a);
        }
        out.hidden_states = hidden_ptrs;
    }
    if (want_attn) {
        attn = PyTuple_New(c->num_layers);
        attn_ptrs = PyMem_Calloc(c->num_layers, sizeof *attn_ptrs);
        if (!attn || !attn_ptrs) goto nomem;
        for (int l = 0; l < c->num_layers; l++) {
            PyObject *a = new_f32(4, d_att);
            if (!a) goto done;
            PyTuple_SET_ITEM(attn, l, a);
            attn_ptrs[l] = PyArray_DATA((PyArrayObject *)a);
        }
        out.attentions = attn_ptrs;
    }
    vc_status st;
    const float *pxd = PyArray_DATA(px);
    Py_BEGIN_ALLOW_THREADS st = vc_vit_forward(self->model, pxd, B, H, W, interp, &out);
    Py_END_ALLOW_THREADS if (st) {
        vc_py_raise(st);
        goto done;
    }
#define OR_NONE(o) ((o) ? (o) : (Py_INCREF(Py_None), Py_None))
    result = Py_BuildValue("(NNNNN)", OR_NONE(last), OR_NONE(pooled), OR_NONE(logits), OR_NONE(hidden),
                           OR_NONE(attn));
    last = pooled = logits = hidden = attn = NULL;
    goto done;
nomem:
    PyErr_NoMemory();
done:
    Py_XDECREF(last);
    Py_XDECREF(pooled);
    Py_XDECREF(logits);
    Py_XDECREF(hidden);
    Py_XDECREF(attn);
    PyMem_Free(hidden_ptrs);
    PyMem_Free(attn_ptrs);
    Py_DECREF(px);
    return result;
}

static PyMethodDef vit_methods[] = {
    {"param_specs", (PyCFunction)vit_param_specs, METH_NOARGS, "[(name, shape)] of every parameter slot."},
    {"bind", (PyCFunction)vit_bind, METH_VARARGS, "bind(slot, float32 array): zero-copy."},
    {"forward", (PyCFunction)vit_forward, METH_VARARGS, "Run the model (GIL released)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PyViTType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "visionc._C.ViT",
    .tp_basicsize = sizeof(PyViT),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)vit_init,
    .tp_dealloc = (destructor)vit_dealloc,
    .tp_methods = vit_methods,
    .tp_doc = "C ViT model: ViT(hidden_size, ..., layer_norm_eps)",
};

int vc_py_register_vit(PyObject *m) {
    if (PyType_Ready(&PyViTType) < 0) return -1;
    Py_INCREF(&PyViTType);
    if (PyModule_AddObject(m, "ViT", (PyObject *)&PyViTType) < 0) {
        Py_DECREF(&PyViTType);
        return -1;
    }
    return 0;
}
