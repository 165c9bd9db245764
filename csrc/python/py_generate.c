/* Bindings for the token decoders: _C.generate(model, prompt_ids, config) -> dict.
 *
 * model is either a PyCapsule "visionc.gen_model" holding a vc_gen_model (a C model: the whole
 * loop runs with the GIL released) or a Python callable next_logits(tokens, parent_rows) ->
 * float array (n_rows, V), called with the GIL held: tokens is int64 (n_rows, n_tokens),
 * parent_rows int64 (n_rows,) or None, with the meaning of csrc/generate/generate.h. The
 * callable's prefill call is made before the loop, to learn V. config is the resolved dict
 * built by visionc.generation (unknown keys are refused). */
#include <stdlib.h>
#include <string.h>

#include "generate/gen_toy_model.h"
#include "generate/generate.h"
#include "python/pyutil.h"

/* ---- config dict -> vc_gen_config ------------------------------------------------------- */

static const char *const known_keys[] = {
    "max_length", "min_length", "min_new_tokens", "do_sample", "num_beams", "num_return_sequences",
    "temperature", "top_k", "top_p", "min_tokens_to_keep", "repetition_penalty", "no_repeat_ngram_size",
    "length_penalty", "early_stopping", "eos_token_id", "pad_token_id", "bad_words_ids", "suppress_tokens",
    "begin_suppress_tokens", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "renormalize_logits", "seed", "output_scores", "keep_finished", NULL};

typedef struct { /* buffers the config points into */
    int32_t *eos, *bad, *bad_lens, *sup, *bsup, *feos;
} cfg_bufs;

static void bufs_free(cfg_bufs *b) {
    free(b->eos), free(b->bad), free(b->bad_lens), free(b->sup), free(b->bsup), free(b->feos);
}

static int as_int32(PyObject *v, const char *key, int32_t *out) {
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be an integer, got %s", key, Py_TYPE(v)->tp_name);
        return -1;
    }
    if (x < INT32_MIN || x > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s is out of range: %lld", key, x);
        return -1;
    }
    *out = (int32_t)x;
    return 0;
}

static int get_int(PyObject *d, const char *key, int *out) {
    PyObject *v = PyDict_GetItemString(d, key);
    int32_t x;
    if (!v || v == Py_None) return 0;
    if (as_int32(v, key, &x)) return -1;
    *out = x;
    return 0;
}

static int get_float(PyObject *d, const char *key, float *out) {
    PyObject *v = PyDict_GetItemString(d, key);
    if (!v || v == Py_None) return 0;
    double x = PyFloat_AsDouble(v);
    if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a number, got %s", key, Py_TYPE(v)->tp_name);
        return -1;
    }
    *out = (float)x;
    return 0;
}

/* None -> empty; an int -> [int]; else a sequence of ints. */
static int get_ids(PyObject *d, const char *key, int32_t **ids, int *n) {
    PyObject *v = PyDict_GetItemString(d, key);
    *ids = NULL, *n = 0;
    if (!v || v == Py_None) return 0;
    if (PyLong_Check(v)) {
        if (!(*ids = malloc(sizeof **ids))) return PyErr_NoMemory(), -1;
        *n = 1;
        return as_int32(v, key, *ids);
    }
    PyObject *seq = PySequence_Fast(v, "");
    if (!seq) {
        PyErr_Format(PyExc_TypeError, "%s must be an int or a list of ints", key);
        return -1;
    }
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    *ids = malloc((size_t)(m ? m : 1) * sizeof **ids);
    if (!*ids) return Py_DECREF(seq), PyErr_NoMemory(), -1;
    for (Py_ssize_t i = 0; i < m; i++)
        if (as_int32(PySequence_Fast_GET_ITEM(seq, i), key, *ids + i)) return Py_DECREF(seq), -1;
    *n = (int)m;
    Py_DECREF(seq);
    return 0;
}

static int get_bad_words(PyObject *d, cfg_bufs *b, vc_gen_config *c) {
    PyObject *v = PyDict_GetItemString(d, "bad_words_ids");
    if (!v || v == Py_None) return 0;
    PyObject *seq = PySequence_Fast(v, "bad_words_ids must be a list of lists of ints");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), total = 0, at = 0;
    int ok = (b->bad_lens = malloc((size_t)(n ? n : 1) * sizeof(int32_t))) != NULL;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        Py_ssize_t len = PySequence_Size(PySequence_Fast_GET_ITEM(seq, i));
        if (len < 0) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "bad_words_ids must be a list of lists of ints");
            ok = 0;
            break;
        }
        b->bad_lens[i] = (int32_t)len;
        total += len;
    }
    if (ok && !(b->bad = malloc((size_t)(total ? total : 1) * sizeof(int32_t)))) PyErr_NoMemory(), ok = 0;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        PyObject *w = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, i), "bad_words_ids must be a list of lists");
        if (!w) {
            ok = 0;
            break;
        }
        for (Py_ssize_t j = 0; ok && j < PySequence_Fast_GET_SIZE(w); j++)
            ok = !as_int32(PySequence_Fast_GET_ITEM(w, j), "bad_words_ids", b->bad + at++);
        Py_DECREF(w);
    }
    Py_DECREF(seq);
    if (!ok) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return -1;
    }
    c->bad_words = b->bad, c->bad_word_lens = b->bad_lens, c->n_bad_words = (int)n;
    return 0;
}

static int parse_config(PyObject *d, vc_gen_config *c, cfg_bufs *b) {
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &key, &val)) {
        const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        int found = 0;
        for (int i = 0; k && known_keys[i] && !found; i++) found = !strcmp(k, known_keys[i]);
        if (!found) {
            PyErr_Format(PyExc_TypeError, "generate: unknown config key %R", key);
            return -1;
        }
    }
    vc_gen_config_init(c);
    int es = 0;
    if (get_int(d, "max_length", &c->max_length) || get_int(d, "min_length", &c->min_length) ||
        get_int(d, "min_new_tokens", &c->min_new_tokens) || get_int(d, "do_sample", &c->do_sample) ||
        get_int(d, "num_beams", &c->num_beams) || get_int(d, "num_return_sequences", &c->num_return_sequences) ||
        get_float(d, "temperature", &c->temperature) || get_int(d, "top_k", &c->top_k) ||
        get_float(d, "top_p", &c->top_p) || get_int(d, "min_tokens_to_keep", &c->min_tokens_to_keep) ||
        get_float(d, "repetition_penalty", &c->repetition_penalty) ||
        get_int(d, "no_repeat_ngram_size", &c->no_repeat_ngram_size) ||
        get_float(d, "length_penalty", &c->length_penalty) || get_int(d, "early_stopping", &es) ||
        get_int(d, "forced_bos_token_id", &c->forced_bos_token_id) ||
        get_int(d, "remove_invalid_values", &c->remove_invalid_values) ||
        get_int(d, "renormalize_logits", &c->renormalize_logits) ||
        get_int(d, "output_scores", &c->output_scores) || get_int(d, "keep_finished", &c->keep_finished) ||
        get_ids(d, "eos_token_id", &b->eos, &c->n_eos) || get_ids(d, "suppress_tokens", &b->sup, &c->n_suppress) ||
        get_ids(d, "begin_suppress_tokens", &b->bsup, &c->n_begin_suppress) ||
        get_ids(d, "forced_eos_token_id", &b->feos, &c->n_forced_eos) || get_bad_words(d, b, c))
        return -1;
    c->early_stopping = (vc_early_stopping)es;
    c->eos_ids = b->eos, c->suppress_tokens = b->sup, c->begin_suppress_tokens = b->bsup, c->forced_eos_ids = b->feos;
    PyObject *p = PyDict_GetItemString(d, "pad_token_id");
    if (p && p != Py_None) {
        int32_t x;
        if (as_int32(p, "pad_token_id", &x)) return -1;
        c->has_pad = 1, c->pad_token_id = x;
    }
    PyObject *sd = PyDict_GetItemString(d, "seed");
    if (sd && sd != Py_None) {
        c->seed = PyLong_AsUnsignedLongLongMask(sd);
        if (PyErr_Occurred()) return -1;
    }
    return 0;
}

/* ---- Python callable as a model --------------------------------------------------------- */

typedef struct {
    PyObject *fn;
    int V;
    int py_error;   /* a Python exception is set */
    float *prefill; /* [N * V] logits of the prefill call, made before the loop */
} py_model;

/* Calls fn(tokens, parent_rows) and copies the (n_rows, V) result to logits (V < 0: learn V,
 * return the array). */
static PyArrayObject *call_py(py_model *pm, const vc_gen_step *st) {
    npy_intp dims[2] = {st->n_rows, st->n_tokens};
    PyArrayObject *tok = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_INT64), *par = NULL, *res = NULL;
    PyObject *out = NULL;
    if (!tok) return NULL;
    int64_t *tp = PyArray_DATA(tok);
    for (npy_intp i = 0; i < dims[0] * dims[1]; i++) tp[i] = st->tokens[i];
    if (st->parent_rows) {
        if (!(par = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_INT64))) goto done;
        int64_t *pp = PyArray_DATA(par);
        for (npy_intp i = 0; i < dims[0]; i++) pp[i] = st->parent_rows[i];
    }
    out = PyObject_CallFunctionObjArgs(pm->fn, (PyObject *)tok, par ? (PyObject *)par : Py_None, NULL);
    if (!out) goto done;
    res = (PyArrayObject *)PyArray_FROMANY(out, NPY_FLOAT32, 2, 2,
                                          NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_FORCECAST);
    if (!res) goto done;
    if (PyArray_DIM(res, 0) != st->n_rows || (pm->V > 0 && PyArray_DIM(res, 1) != pm->V) ||
        PyArray_DIM(res, 1) < 1 || PyArray_DIM(res, 1) > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "next_logits must return logits of shape (%d, %d) at step %d, got (%zd, %zd)",
                     st->n_rows, pm->V, st->step, (Py_ssize_t)PyArray_DIM(res, 0), (Py_ssize_t)PyArray_DIM(res, 1));
        Py_CLEAR(res);
    }
done:
    Py_DECREF(tok);
    Py_XDECREF(par);
    Py_XDECREF(out);
    return res;
}

static vc_status py_next_logits(void *ctx, const vc_gen_step *st, float *logits) {
    py_model *pm = ctx;
    if (st->step == 0 && pm->prefill) {
        memcpy(logits, pm->prefill, (size_t)st->n_rows * pm->V * sizeof(float));
        return VC_OK;
    }
    PyArrayObject *res = call_py(pm, st);
    if (!res) {
        pm->py_error = 1;
        return vc_fail(VC_ERR_INTERNAL, "next_logits raised");
    }
    memcpy(logits, PyArray_DATA(res), (size_t)st->n_rows * pm->V * sizeof(float));
    Py_DECREF(res);
    return VC_OK;
}

/* ---- results ----------------------------------------------------------------------------- */

static PyObject *int_array(const int32_t *src, npy_intp rows, npy_intp cols) {
    npy_intp dims[2] = {rows, cols};
    PyArrayObject *a = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_INT64);
    if (!a) return NULL;
    int64_t *d = PyArray_DATA(a);
    for (npy_intp i = 0; i < rows * cols; i++) d[i] = src[i];
    return (PyObject *)a;
}

static PyObject *float_array(const float *src, int nd, npy_intp *dims) {
    PyArrayObject *a = (PyArrayObject *)PyArray_SimpleNew(nd, dims, NPY_FLOAT32);
    if (!a) return NULL;
    memcpy(PyArray_DATA(a), src, (size_t)PyArray_NBYTES(a));
    return (PyObject *)a;
}

static PyObject *none_ref(void) {
    Py_INCREF(Py_None);
    return Py_None;
}

static PyObject *result_dict(const vc_gen_result *r) {
    PyObject *d = PyDict_New(), *v;
    if (!d) return NULL;
    npy_intp sd[3] = {r->n_steps, r->score_rows, r->vocab_size}, n1[1] = {r->n_out};
#define PUT(key, expr)                                                                 \
    do {                                                                               \
        v = (expr);                                                                    \
        if (!v || PyDict_SetItemString(d, key, v)) return Py_XDECREF(v), Py_DECREF(d), NULL; \
        Py_DECREF(v);                                                                  \
    } while (0)
    PUT("sequences", int_array(r->sequences, r->n_out, r->seq_len));
    PUT("scores", r->scores ? float_array(r->scores, 3, sd) : none_ref());
    PUT("sequences_scores", r->sequences_scores ? float_array(r->sequences_scores, 1, n1) : none_ref());
#undef PUT
    return d;
}

static PyObject *py_generate(PyObject *self, PyObject *args) {
    PyObject *model, *prompt_obj, *cfg_dict;
    if (!PyArg_ParseTuple(args, "OOO!:generate", &model, &prompt_obj, &PyDict_Type, &cfg_dict)) return NULL;
    vc_gen_config cfg;
    cfg_bufs bufs = {0};
    vc_gen_result res = {0};
    py_model pm = {0};
    PyObject *ret = NULL;
    int32_t *prompt = NULL;
    PyArrayObject *pa = NULL, *first = NULL;
    const vc_gen_model *cm = NULL;
    vc_gen_model pym;

    if (PyCapsule_CheckExact(model)) {
        if (!(cm = PyCapsule_GetPointer(model, VC_GEN_CAPSULE))) return NULL;
    } else if (!PyCallable_Check(model)) {
        return PyErr_Format(PyExc_TypeError, "next_logits must be callable or a %s capsule, got %s", VC_GEN_CAPSULE,
                            Py_TYPE(model)->tp_name);
    }
    if (parse_config(cfg_dict, &cfg, &bufs)) goto done;
    pa = (PyArrayObject *)PyArray_FROMANY(prompt_obj, NPY_INT64, 2, 2, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!pa) goto done;
    npy_intp N = PyArray_DIM(pa, 0), P = PyArray_DIM(pa, 1);
    if (N < 1 || P < 1 || N > INT32_MAX / 64 || P > (1 << 24)) {
        PyErr_Format(PyExc_ValueError, "prompt_ids must have shape (N >= 1, P >= 1), got (%zd, %zd)", (Py_ssize_t)N,
                     (Py_ssize_t)P);
        goto done;
    }
    if (!(prompt = malloc((size_t)(N * P) * sizeof *prompt))) {
        PyErr_NoMemory();
        goto done;
    }
    const int64_t *src = PyArray_DATA(pa);
    for (npy_intp i = 0; i < N * P; i++) {
        if (src[i] < 0 || src[i] > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "prompt_ids must hold token ids in [0, 2**31), got %lld", (long long)src[i]);
            goto done;
        }
        prompt[i] = (int32_t)src[i];
    }
    vc_status s = vc_gen_check(&cfg, cm ? cm->vocab_size : 0, prompt, (int)N, (int)P);
    if (s) {
        vc_py_raise(s);
        goto done;
    }
    if (cm) {
        Py_BEGIN_ALLOW_THREADS s = vc_generate(cm, &cfg, prompt, (int)N, (int)P, &res);
        Py_END_ALLOW_THREADS
    } else {
        pm.fn = model, pm.V = -1;
        int32_t *rows = malloc((size_t)N * sizeof *rows);
        if (!rows) {
            PyErr_NoMemory();
            goto done;
        }
        for (npy_intp i = 0; i < N; i++) rows[i] = (int32_t)i;
        vc_gen_step st0 = {0, (int)N, (int)P, 0, 0, prompt, NULL, rows};
        first = call_py(&pm, &st0);
        free(rows);
        if (!first) goto done;
        pm.V = (int)PyArray_DIM(first, 1);
        pm.prefill = PyArray_DATA(first);
        pym.next_logits = py_next_logits, pym.ctx = &pm, pym.vocab_size = pm.V;
        s = vc_generate(&pym, &cfg, prompt, (int)N, (int)P, &res);
    }
    if (s) {
        if (!pm.py_error) vc_py_raise(s);
        goto done;
    }
    ret = result_dict(&res);
    if (ret && res.beam_indices) {
        PyObject *bi = int_array(res.beam_indices, res.n_out, res.seq_len - (int)P);
        if (!bi || PyDict_SetItemString(ret, "beam_indices", bi)) Py_CLEAR(ret);
        Py_XDECREF(bi);
    } else if (ret && PyDict_SetItemString(ret, "beam_indices", Py_None)) {
        Py_CLEAR(ret);
    }
done:
    vc_gen_result_free(&res);
    bufs_free(&bufs);
    free(prompt);
    Py_XDECREF(pa);
    Py_XDECREF(first);
    return ret;
}

/* ---- the toy reference model, as a capsule ---------------------------------------------- */

static void toy_destroy(PyObject *cap) {
    vc_gen_toy_model *t = PyCapsule_GetPointer(cap, VC_GEN_CAPSULE);
    if (t) vc_gen_toy_model_free(t), free(t);
}

static PyObject *py_toy_model(PyObject *self, PyObject *args) {
    PyObject *ao, *bo;
    if (!PyArg_ParseTuple(args, "OO:_toy_gen_model", &ao, &bo)) return NULL;
    PyArrayObject *a = vc_py_float_array(ao, "A", 2), *b = a ? vc_py_float_array(bo, "B", 2) : NULL;
    PyObject *cap = NULL;
    if (!a || !b) goto done;
    npy_intp V = PyArray_DIM(a, 0);
    if (V < 1 || V > 65536 || PyArray_DIM(a, 1) != V || PyArray_DIM(b, 0) != V || PyArray_DIM(b, 1) != V) {
        PyErr_SetString(PyExc_ValueError, "A and B must be (V, V) float32 arrays");
        goto done;
    }
    vc_gen_toy_model *t = malloc(sizeof *t);
    if (!t) {
        PyErr_NoMemory();
        goto done;
    }
    vc_status s = vc_gen_toy_model_init(t, PyArray_DATA(a), PyArray_DATA(b), (int)V);
    if (s) {
        free(t);
        vc_py_raise(s);
        goto done;
    }
    if (!(cap = PyCapsule_New(t, VC_GEN_CAPSULE, toy_destroy))) vc_gen_toy_model_free(t), free(t);
done:
    Py_XDECREF(a);
    Py_XDECREF(b);
    return cap;
}

static PyObject *py_toy_stats(PyObject *self, PyObject *cap) {
    vc_gen_toy_model *t = PyCapsule_GetPointer(cap, VC_GEN_CAPSULE);
    return t ? Py_BuildValue("{s:l,s:l}", "calls", t->calls, "rows", t->rows_total) : NULL;
}

static PyMethodDef methods[] = {
    {"_toy_gen_model", py_toy_model, METH_VARARGS,
     "_toy_gen_model(A, B) -> capsule: reference C model, logits = A[last] + B[previous token]."},
    {"_toy_gen_model_stats", py_toy_stats, METH_O, "Calls and rows the toy model has served."},
    {"generate", py_generate, METH_VARARGS,
     "generate(next_logits, prompt_ids, config: dict) -> dict(sequences, scores, sequences_scores, beam_indices).\n"
     "Low-level: use visionc.generation.generate."},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_generate(PyObject *m) { return PyModule_AddFunctions(m, methods); }
