/* visionc._C.ViT: the C ViT behind visionc's ViTModel / ViTForImageClassification.
 * Python builds it from a config, binds every parameter (zero-copy), then calls forward;
 * outputs are NumPy arrays written in place by the C core with the GIL released. */
#include "python/py_model.h"

#include <string.h>

#include "models/vit.h"
#include "models/vit_train.h"

static int parse_activation(const char *name, vc_activation *act) {
    if (!strcmp(name, "gelu")) *act = VC_ACT_GELU;
    else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_fast"))
        *act = VC_ACT_GELU_TANH;
    else if (!strcmp(name, "relu")) *act = VC_ACT_RELU;
    else if (!strcmp(name, "silu") || !strcmp(name, "swish")) *act = VC_ACT_SILU;
    else return -1;
    return 0;
}

static int vit_channels(const void *m) { return vc_vit_get_config(m)->num_channels; }
static int vit_labels(const void *m) { return vc_vit_get_config(m)->num_labels; }

static const vc_model_train_vtable vit_train = {
    (vc_status(*)(void *, int, const vc_tensor *))vc_vit_bind_grad,
    (vc_status(*)(void *, const float *, int, int, int, const int64_t *, const vc_train_opts *, float *,
                  float *))vc_vit_train_forward,
    (vc_status(*)(void *, const vc_backward_args *))vc_vit_backward,
    (size_t(*)(const void *))vc_vit_train_saved_bytes,
    vit_channels,
    vit_labels,
};

static const vc_model_vtable vit_vtable = {
    "vit",
    (int (*)(const void *))vc_vit_num_params,
    (const char *(*)(const void *, int, int *, int64_t *))vc_vit_param_name,
    (vc_status(*)(void *, int, const vc_tensor *))vc_vit_bind,
    (void (*)(void *))vc_vit_free,
    &vit_train,
};

static PyObject *vit_new(PyObject *self, PyObject *args, PyObject *kw) {
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
        return NULL;
    if (parse_activation(act, &c.act))
        return PyErr_Format(PyExc_NotImplementedError,
                            "hidden_act '%s' is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, "
                            "silu)",
                            act);
    c.layer_norm_eps = (float)eps;
    vc_vit *m;
    vc_status st = vc_vit_create(&c, vc_backend_cpu(), &m);
    if (st) return vc_py_raise(st);
    return vc_py_model_new(m, &vit_vtable);
}

static PyObject *new_f32(int nd, npy_intp *dims) { return PyArray_SimpleNew(nd, dims, NPY_FLOAT32); }

/* forward(pixel_values, interpolate_pos_encoding, last_hidden, pooled, logits, hidden_states, attentions)
 * -> (last_hidden|None, pooled|None, logits|None, tuple|None, tuple|None) */
static PyObject *vit_forward(PyObject *self, PyObject *args) {
    PyObject *model_obj, *px_obj;
    int interp, want_last, want_pooled, want_logits, want_hidden, want_attn;
    if (!PyArg_ParseTuple(args, "OOpppppp", &model_obj, &px_obj, &interp, &want_last, &want_pooled, &want_logits,
                          &want_hidden, &want_attn))
        return NULL;
    vc_vit *model = vc_py_model_get(model_obj, "vit");
    if (!model) return NULL;
    PyArrayObject *px = vc_py_float_array(px_obj, "pixel_values", 4);
    if (!px) return NULL;
    const vc_vit_config *c = vc_vit_get_config(model);
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
    const int T = vc_vit_num_tokens(model, H, W, interp);
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
    Py_BEGIN_ALLOW_THREADS st = vc_vit_forward(model, pxd, B, H, W, interp, &out);
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

static PyMethodDef methods[] = {
    {"vit_new", (PyCFunction)(void (*)(void))vit_new, METH_VARARGS | METH_KEYWORDS, "A C ViT from its config."},
    {"vit_forward", vit_forward, METH_VARARGS,
     "vit_forward(model, px, interpolate, last, pooled, logits, hidden_states, attentions) (GIL released)"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_vit(PyObject *m) { return PyModule_AddFunctions(m, methods); }
