/* visionc._C GPT-2 bindings: the decoder model (gpt2_new, gpt2_forward) and decoding sessions
 * handed to _C.generate as "visionc.gen_model" capsules (gpt2_session, gpt2_session_step); the
 * decoder kernels' bindings (py_decoder_ops.c) register through the same hook. All C work runs
 * with the GIL released. */
#include <string.h>

#include "models/gpt2.h"
#include "python/py_decoder.h"
#include "python/py_model.h"

static const vc_model_vtable gpt2_vtable = {
    "gpt2",
    (int (*)(const void *))vc_gpt2_num_params,
    (const char *(*)(const void *, int, int *, int64_t *))vc_gpt2_param_name,
    (vc_status(*)(void *, int, const vc_tensor *))vc_gpt2_bind,
    (void (*)(void *))vc_gpt2_free,
};

static int parse_activation(const char *name, vc_activation *act) {
    if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_fast"))
        *act = VC_ACT_GELU_TANH;
    else if (!strcmp(name, "gelu")) *act = VC_ACT_GELU;
    else if (!strcmp(name, "relu")) *act = VC_ACT_RELU;
    else if (!strcmp(name, "silu") || !strcmp(name, "swish")) *act = VC_ACT_SILU;
    else return -1;
    return 0;
}

static PyObject *gpt2_new(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner",
                             "add_cross_attention", "encoder_hidden_size", "has_enc_proj", "tie_word_embeddings",
                             "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "activation_function",
                             "layer_norm_epsilon", NULL};
    vc_gpt2_config c = {0};
    const char *act = "gelu_new";
    double eps = 1e-5;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iiiiiipippppsd", kwlist, &c.vocab_size, &c.n_positions, &c.n_embd,
                                     &c.n_layer, &c.n_head, &c.n_inner, &c.add_cross_attention,
                                     &c.encoder_hidden_size, &c.has_enc_proj, &c.tie_word_embeddings,
                                     &c.scale_attn_weights, &c.scale_attn_by_inverse_layer_idx, &act, &eps))
        return NULL;
    if (parse_activation(act, &c.act))
        return PyErr_Format(PyExc_NotImplementedError,
                            "activation_function '%s' is not supported (gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, "
                            "relu, silu)",
                            act);
    c.layer_norm_epsilon = (float)eps;
    vc_gpt2 *m;
    vc_status st = vc_gpt2_create(&c, vc_backend_cpu(), &m);
    if (st) return vc_py_raise(st);
    return vc_py_model_new(m, &gpt2_vtable);
}

/* Encoder states (N, Te, Ce) as float32, or NULL (None) for decoders without cross-attention. */
static int encoder_states(PyObject *obj, const vc_gpt2_config *c, PyArrayObject **out) {
    *out = NULL;
    if (obj == Py_None) {
        if (c->add_cross_attention) {
            PyErr_SetString(PyExc_ValueError, "this decoder cross-attends: encoder_hidden_states are required");
            return -1;
        }
        return 0;
    }
    if (!c->add_cross_attention) {
        PyErr_SetString(PyExc_ValueError, "this decoder has no cross-attention: pass encoder_hidden_states=None");
        return -1;
    }
    if (!(*out = vc_py_float_array(obj, "encoder_hidden_states", 3))) return -1;
    npy_intp *d = PyArray_DIMS(*out);
    if (d[2] != c->encoder_hidden_size || d[0] < 1 || d[1] < 1 || d[0] > (1 << 20) || d[1] > (1 << 20)) {
        PyErr_Format(PyExc_ValueError, "encoder_hidden_states must have shape (N, T, %d), got (%ld, %ld, %ld)",
                     c->encoder_hidden_size, (long)d[0], (long)d[1], (long)d[2]);
        Py_CLEAR(*out);
        return -1;
    }
    return 0;
}

/* See py_decoder.h. */
PyArrayObject *vc_py_int32_ids(PyObject *obj, const char *what, int ndim) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(obj, NPY_INT64, ndim, ndim, NPY_ARRAY_C_CONTIGUOUS);
    if (!a) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a %d-D array of integer token ids", what, ndim);
        return NULL;
    }
    if (PyArray_Check(obj) && !PyArray_ISINTEGER((PyArrayObject *)obj)) {
        Py_DECREF(a);
        PyErr_Format(PyExc_TypeError, "%s must hold integers", what);
        return NULL;
    }
    PyArrayObject *b = (PyArrayObject *)PyArray_SimpleNew(ndim, PyArray_DIMS(a), NPY_INT32);
    if (b) {
        const int64_t *src = PyArray_DATA(a);
        int32_t *dst = PyArray_DATA(b);
        for (npy_intp i = 0; i < PyArray_SIZE(a); i++) {
            if (src[i] < INT32_MIN || src[i] > INT32_MAX) {
                PyErr_Format(PyExc_ValueError, "%s: token id %lld is out of range", what, (long long)src[i]);
                Py_CLEAR(b);
                break;
            }
            dst[i] = (int32_t)src[i];
        }
    }
    Py_DECREF(a);
    return b;
}

/* gpt2_forward(model, encoder_hidden_states | None, input_ids (N, T)) -> logits (N, T, V) */
static PyObject *gpt2_forward(PyObject *self, PyObject *args) {
    PyObject *mo, *eo, *io;
    if (!PyArg_ParseTuple(args, "OOO", &mo, &eo, &io)) return NULL;
    vc_gpt2 *m = vc_py_model_get(mo, "gpt2");
    if (!m) return NULL;
    const vc_gpt2_config *c = vc_gpt2_get_config(m);
    PyArrayObject *enc = NULL, *ids = NULL;
    PyObject *logits = NULL;
    if (encoder_states(eo, c, &enc) || !(ids = vc_py_int32_ids(io, "decoder_input_ids", 2))) goto done;
    const npy_intp N = PyArray_DIM(ids, 0), T = PyArray_DIM(ids, 1);
    if (N < 1 || T < 1 || N > (1 << 20) || T > c->n_positions) {
        PyErr_Format(PyExc_ValueError, "decoder_input_ids must have shape (N >= 1, 1 <= T <= n_positions %d), got "
                     "(%ld, %ld)", c->n_positions, (long)N, (long)T);
        goto done;
    }
    if (enc && PyArray_DIM(enc, 0) != N) {
        PyErr_Format(PyExc_ValueError, "encoder_hidden_states has %ld rows but decoder_input_ids has %ld",
                     (long)PyArray_DIM(enc, 0), (long)N);
        goto done;
    }
    npy_intp dims[3] = {N, T, c->vocab_size};
    if (!(logits = PyArray_SimpleNew(3, dims, NPY_FLOAT32))) goto done;
    {
        const float *e = enc ? PyArray_DATA(enc) : NULL;
        const int Te = enc ? (int)PyArray_DIM(enc, 1) : 0;
        const int32_t *id = PyArray_DATA(ids);
        float *out = PyArray_DATA((PyArrayObject *)logits);
        vc_status st;
        Py_BEGIN_ALLOW_THREADS st = vc_gpt2_forward(m, e, Te, id, (int)N, (int)T, out);
        Py_END_ALLOW_THREADS if (st) {
            vc_py_raise(st);
            Py_CLEAR(logits);
        }
    }
done:
    Py_XDECREF(enc);
    Py_XDECREF(ids);
    return logits;
}

/* ---- sessions as "visionc.gen_model" capsules ----------------------------------------------- */

typedef struct {
    vc_gen_model gm; /* first: the capsule's pointer is read as a vc_gen_model */
    vc_gpt2_session *s;
    PyObject *model; /* keeps the bound weights alive as long as the session */
} py_session;

static void session_destroy(PyObject *cap) {
    py_session *ps = PyCapsule_GetPointer(cap, VC_GEN_CAPSULE);
    if (!ps) {
        PyErr_Clear();
        return;
    }
    vc_gpt2_session_free(ps->s);
    Py_XDECREF(ps->model);
    PyMem_RawFree(ps);
}

/* gpt2_session(model, encoder_hidden_states | None, max_rows, max_len) -> capsule */
static PyObject *gpt2_session(PyObject *self, PyObject *args) {
    PyObject *mo, *eo;
    int max_rows, max_len;
    if (!PyArg_ParseTuple(args, "OOii", &mo, &eo, &max_rows, &max_len)) return NULL;
    vc_gpt2 *m = vc_py_model_get(mo, "gpt2");
    if (!m) return NULL;
    PyArrayObject *enc = NULL;
    if (encoder_states(eo, vc_gpt2_get_config(m), &enc)) return NULL;
    py_session *ps = PyMem_RawCalloc(1, sizeof *ps);
    PyObject *cap = NULL;
    if (!ps) {
        PyErr_NoMemory();
        goto done;
    }
    {
        const float *e = enc ? PyArray_DATA(enc) : NULL;
        const int n = enc ? (int)PyArray_DIM(enc, 0) : 0, Te = enc ? (int)PyArray_DIM(enc, 1) : 0;
        vc_status st;
        Py_BEGIN_ALLOW_THREADS st = vc_gpt2_session_create(m, e, n, Te, max_rows, max_len, &ps->s);
        Py_END_ALLOW_THREADS if (st) {
            vc_py_raise(st);
            PyMem_RawFree(ps);
            goto done;
        }
    }
    ps->gm.next_logits = vc_gpt2_next_logits;
    ps->gm.ctx = ps->s;
    ps->gm.vocab_size = vc_gpt2_get_config(m)->vocab_size;
    Py_INCREF(mo);
    ps->model = mo;
    if (!(cap = PyCapsule_New(ps, VC_GEN_CAPSULE, session_destroy))) {
        vc_gpt2_session_free(ps->s);
        Py_DECREF(mo);
        PyMem_RawFree(ps);
    }
done:
    Py_XDECREF(enc);
    return cap;
}

/* gpt2_session_step(session, tokens (R, T), parent_rows | None, prefill) -> logits (R, V).
 * One next-logits call by hand (tests): rows follow their inputs through parent_rows. */
static PyObject *gpt2_session_step(PyObject *self, PyObject *args) {
    PyObject *cap, *to, *po;
    int prefill;
    if (!PyArg_ParseTuple(args, "OOOp", &cap, &to, &po, &prefill)) return NULL;
    if (!PyCapsule_IsValid(cap, VC_GEN_CAPSULE) || PyCapsule_GetDestructor(cap) != session_destroy)
        return PyErr_Format(PyExc_TypeError, "expected a session from gpt2_session");
    py_session *ps = PyCapsule_GetPointer(cap, VC_GEN_CAPSULE);
    PyArrayObject *tok = vc_py_int32_ids(to, "tokens", 2), *par = NULL;
    PyObject *logits = NULL;
    if (!tok || (po != Py_None && !(par = vc_py_int32_ids(po, "parent_rows", 1)))) goto done;
    const npy_intp R = PyArray_DIM(tok, 0), T = PyArray_DIM(tok, 1);
    if (R < 1 || T < 1 || R > 65536 || (par && PyArray_DIM(par, 0) != R)) {
        PyErr_SetString(PyExc_ValueError, "tokens must be (R >= 1, T >= 1) and parent_rows (R,)");
        goto done;
    }
    npy_intp dims[2] = {R, ps->gm.vocab_size};
    if (!(logits = PyArray_SimpleNew(2, dims, NPY_FLOAT32))) goto done;
    {
        vc_gen_step st = {prefill ? 0 : 1, (int)R, (int)T, prefill ? 0 : vc_gpt2_session_len(ps->s),
                          prefill ? 0 : vc_gpt2_session_rows(ps->s), PyArray_DATA(tok),
                          par ? PyArray_DATA(par) : NULL, NULL};
        float *out = PyArray_DATA((PyArrayObject *)logits);
        vc_status s;
        Py_BEGIN_ALLOW_THREADS s = vc_gpt2_next_logits(ps->s, &st, out);
        Py_END_ALLOW_THREADS if (s) {
            vc_py_raise(s);
            Py_CLEAR(logits);
        }
    }
done:
    Py_XDECREF(tok);
    Py_XDECREF(par);
    return logits;
}

static PyMethodDef methods[] = {
    {"gpt2_new", (PyCFunction)(void (*)(void))gpt2_new, METH_VARARGS | METH_KEYWORDS, "A C GPT-2 decoder from its config."},
    {"gpt2_forward", gpt2_forward, METH_VARARGS,
     "gpt2_forward(model, encoder_hidden_states | None, input_ids) -> logits (N, T, V) (GIL released)"},
    {"gpt2_session", gpt2_session, METH_VARARGS,
     "gpt2_session(model, encoder_hidden_states | None, max_rows, max_len) -> 'visionc.gen_model' capsule"},
    {"gpt2_session_step", gpt2_session_step, METH_VARARGS,
     "gpt2_session_step(session, tokens, parent_rows | None, prefill) -> logits (rows, V)"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_gpt2(PyObject *m) {
    return PyModule_AddFunctions(m, methods) || PyModule_AddFunctions(m, vc_py_decoder_op_methods) ? -1 : 0;
}
