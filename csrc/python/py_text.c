/* Bindings for the BPE tokenizer: the _C.BPETokenizer type.
 *
 *   BPETokenizer(vocab, merges, added_tokens=(), add_prefix_space=False, ignore_merges=False,
 *                source="tokenizer")
 *     vocab:  path of a vocab.json, or a dict {token: id}
 *     merges: path of a merges.txt, or a list of "a b" strings / (a, b) pairs, by rank
 *     added_tokens: dicts with "content" and optional "id", "special", "lstrip", "rstrip",
 *                   "normalized" (default: not special), "single_word"
 *     source: names the in-memory data in error messages (e.g. ".../tokenizer.json")
 *
 * Batches (encode_batch, decode_batch) run with the GIL released; the arguments are first
 * copied out of Python objects, so other threads cannot change them underneath.
 */
#include "python/pyutil.h"
#include "text/pretok.h"
#include "text/tokenizer.h"

typedef struct {
    PyObject_HEAD vc_tokenizer *tok;
} TokObject;

static PyTypeObject TokType;

/* ---- construction ------------------------------------------------------------------------ */

static const char *utf8_of(PyObject *o, Py_ssize_t *n, const char *what) {
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, got %s", what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(o, n);
}

/* Raises from a failed status, prefixing `where` (printf-style) to the message. */
static PyObject *raise_at(vc_status s, const char *fmt, ...) {
    char where[512];
    va_list ap;
    va_start(ap, fmt);
    PyOS_vsnprintf(where, sizeof where, fmt, ap);
    va_end(ap);
    char msg[1024];
    PyOS_snprintf(msg, sizeof msg, "%s: %s", where, vc_last_error());
    vc_fail(s, "%s", msg);
    return vc_py_raise(s);
}

static int load_vocab_dict(vc_tokenizer *t, PyObject *vocab, const char *source) {
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(vocab, &pos, &key, &value)) {
        Py_ssize_t n;
        const char *s = utf8_of(key, &n, "vocabulary token");
        if (!s) return -1;
        if (!PyLong_Check(value) || PyBool_Check(value)) {
            PyErr_Format(PyExc_ValueError, "%s: model.vocab: id of token %R is not an integer", source, key);
            return -1;
        }
        long long id = PyLong_AsLongLong(value);
        if (id == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            id = -1;
        }
        vc_status st = vc_tok_add_vocab(t, s, (size_t)n, id);
        if (st) {
            raise_at(st, "%s: model.vocab", source);
            return -1;
        }
    }
    return 0;
}

static int load_merges_list(vc_tokenizer *t, PyObject *merges, const char *source) {
    PyObject *seq = PySequence_Fast(merges, "merges must be a path or a list");
    if (!seq) return -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *m = PySequence_Fast_GET_ITEM(seq, i);
        const char *a, *b;
        Py_ssize_t na, nb;
        if (PyUnicode_Check(m)) {
            Py_ssize_t n;
            const char *s = PyUnicode_AsUTF8AndSize(m, &n);
            if (!s) goto fail;
            const char *sp = memchr(s, ' ', (size_t)n);
            if (!sp || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1))) {
                PyErr_Format(PyExc_ValueError, "%s: model.merges[%zd]: expected two tokens separated by one space, got %R",
                             source, i, m);
                goto fail;
            }
            a = s, na = sp - s, b = sp + 1, nb = s + n - sp - 1;
        } else if ((PyList_Check(m) || PyTuple_Check(m)) && PySequence_Size(m) == 2) {
            PyObject *pa = PySequence_GetItem(m, 0), *pb = PySequence_GetItem(m, 1);
            /* The list `seq` keeps m alive, and m keeps its items alive. */
            Py_XDECREF(pa);
            Py_XDECREF(pb);
            if (!pa || !pb || !(a = utf8_of(pa, &na, "merge part")) || !(b = utf8_of(pb, &nb, "merge part"))) goto fail;
        } else {
            PyErr_Format(PyExc_ValueError, "%s: model.merges[%zd]: expected \"a b\" or [a, b], got %R", source, i, m);
            goto fail;
        }
        vc_status st = vc_tok_add_merge(t, a, (size_t)na, b, (size_t)nb);
        if (st) {
            raise_at(st, "%s: model.merges[%zd]", source, i);
            goto fail;
        }
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

/* Boolean field of an added-token dict, with a default. -1 on error. */
static int flag_of(PyObject *d, const char *key, int dflt) {
    PyObject *v = PyDict_GetItemString(d, key); /* borrowed */
    if (!v || v == Py_None) return dflt;
    return PyObject_IsTrue(v);
}

static int load_added(vc_tokenizer *t, PyObject *added) {
    PyObject *seq = PySequence_Fast(added, "added_tokens must be a list of dicts");
    if (!seq) return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *d = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyDict_Check(d)) {
            PyErr_Format(PyExc_TypeError, "added_tokens[%zd] must be a dict", i);
            goto fail;
        }
        PyObject *content = PyDict_GetItemString(d, "content");
        Py_ssize_t n;
        const char *s = content ? utf8_of(content, &n, "added token content") : NULL;
        if (!s) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "added_tokens[%zd] has no \"content\"", i);
            goto fail;
        }
        long long id = -1;
        PyObject *pid = PyDict_GetItemString(d, "id");
        if (pid && pid != Py_None) {
            id = PyLong_AsLongLong(pid);
            if (id == -1 && PyErr_Occurred()) goto fail;
            if (id < 0) {
                PyErr_Format(PyExc_ValueError, "added token %R has a negative id", content);
                goto fail;
            }
        }
        int special = flag_of(d, "special", 0), lstrip = flag_of(d, "lstrip", 0), rstrip = flag_of(d, "rstrip", 0);
        int normalized = flag_of(d, "normalized", !special), single = flag_of(d, "single_word", 0);
        if (special < 0 || lstrip < 0 || rstrip < 0 || normalized < 0 || single < 0) goto fail;
        unsigned flags = (special ? VC_ADDED_SPECIAL : 0) | (lstrip ? VC_ADDED_LSTRIP : 0) |
                         (rstrip ? VC_ADDED_RSTRIP : 0) | (normalized ? VC_ADDED_NORMALIZED : 0) |
                         (single ? VC_ADDED_SINGLE_WORD : 0);
        vc_status st = vc_tok_add_added(t, s, (size_t)n, id, flags, NULL);
        if (st) {
            raise_at(st, "added token %zd", i);
            goto fail;
        }
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

static PyObject *tok_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"vocab", "merges", "added_tokens", "add_prefix_space", "ignore_merges", "source", NULL};
    PyObject *vocab, *merges, *added = NULL;
    int add_prefix_space = 0, ignore_merges = 0;
    const char *source = "tokenizer";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|Opps:BPETokenizer", kwlist, &vocab, &merges, &added,
                                     &add_prefix_space, &ignore_merges, &source))
        return NULL;
    vc_tokenizer *t;
    vc_status st = vc_tok_create(&t);
    if (st) return vc_py_raise(st);
    vc_tok_set_options(t, add_prefix_space, ignore_merges);
    if (PyUnicode_Check(vocab) || PyBytes_Check(vocab) || PyObject_HasAttrString(vocab, "__fspath__")) {
        PyObject *path = NULL;
        if (!PyUnicode_FSConverter(vocab, &path)) goto fail;
        Py_BEGIN_ALLOW_THREADS
        st = vc_tok_load_vocab_json(t, PyBytes_AS_STRING(path));
        Py_END_ALLOW_THREADS
        Py_DECREF(path);
        if (st) {
            vc_py_raise(st);
            goto fail;
        }
    } else if (PyDict_Check(vocab)) {
        if (load_vocab_dict(t, vocab, source)) goto fail;
    } else {
        PyErr_Format(PyExc_TypeError, "vocab must be a path or a dict, got %s", Py_TYPE(vocab)->tp_name);
        goto fail;
    }
    if (PyUnicode_Check(merges) || PyBytes_Check(merges) || PyObject_HasAttrString(merges, "__fspath__")) {
        PyObject *path = NULL;
        if (!PyUnicode_FSConverter(merges, &path)) goto fail;
        Py_BEGIN_ALLOW_THREADS
        st = vc_tok_load_merges_txt(t, PyBytes_AS_STRING(path));
        Py_END_ALLOW_THREADS
        Py_DECREF(path);
        if (st) {
            vc_py_raise(st);
            goto fail;
        }
    } else if (load_merges_list(t, merges, source)) {
        goto fail;
    }
    if (added && added != Py_None && load_added(t, added)) goto fail;
    if ((st = vc_tok_finish(t))) {
        vc_py_raise(st);
        goto fail;
    }
    TokObject *self = (TokObject *)type->tp_alloc(type, 0);
    if (!self) goto fail;
    self->tok = t;
    return (PyObject *)self;
fail:
    vc_tok_free(t);
    return NULL;
}

static void tok_dealloc(TokObject *self) {
    vc_tok_free(self->tok);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- token ids in and out ------------------------------------------------------------------ */

static int unknown_id(long long v) {
    PyErr_Format(PyExc_ValueError, "unknown token id %lld", v);
    return -1;
}

/* Appends the ids of a 1-D integer array or any sequence of ints to out. */
static int ids_from(PyObject *o, vc_ids *out) {
    if (PyArray_Check(o)) {
        PyArrayObject *a = (PyArrayObject *)o;
        if (PyArray_NDIM(a) != 1) {
            PyErr_Format(PyExc_ValueError, "token ids must be 1-D, got %d dimensions", PyArray_NDIM(a));
            return -1;
        }
        if (!PyArray_ISINTEGER(a) && !PyArray_ISBOOL(a)) {
            PyErr_SetString(PyExc_TypeError, "token ids must be integers");
            return -1;
        }
        PyArrayObject *c = (PyArrayObject *)PyArray_FROMANY(o, NPY_INT64, 1, 1, NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
        if (!c) return -1;
        const int64_t *v = PyArray_DATA(c);
        npy_intp n = PyArray_DIM(c, 0);
        int rc = 0;
        if (vc_grow((void **)&out->data, &out->cap, out->len + (size_t)n, sizeof *out->data)) {
            rc = -1;
            vc_py_raise(VC_ERR_MEMORY);
        }
        for (npy_intp i = 0; i < n && !rc; i++) {
            if (v[i] < INT32_MIN || v[i] > INT32_MAX) rc = unknown_id((long long)v[i]);
            else out->data[out->len++] = (int32_t)v[i];
        }
        Py_DECREF(c);
        return rc;
    }
    PyObject *seq = PySequence_Fast(o, "token ids must be a sequence of ints");
    if (!seq) return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq) && !rc; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i), *idx = PyNumber_Index(item);
        if (!idx) {
            PyErr_Format(PyExc_TypeError, "token ids must be integers, got %s", Py_TYPE(item)->tp_name);
            rc = -1;
            break;
        }
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(idx, &overflow);
        Py_DECREF(idx);
        if (v == -1 && PyErr_Occurred()) rc = -1;
        else if (overflow) {
            PyObject *r = PyObject_Repr(item);
            PyErr_Format(PyExc_ValueError, "unknown token id %s", r ? PyUnicode_AsUTF8(r) : "?");
            Py_XDECREF(r);
            rc = -1;
        } else if (v < INT32_MIN || v > INT32_MAX) rc = unknown_id(v);
        else if (vc_ids_push(out, (int32_t)v)) rc = -1, vc_py_raise(VC_ERR_MEMORY);
    }
    Py_DECREF(seq);
    return rc;
}

static PyObject *list_of_ids(const int32_t *v, size_t n) {
    PyObject *l = PyList_New((Py_ssize_t)n);
    if (!l) return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *x = PyLong_FromLong(v[i]);
        if (!x) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, x);
    }
    return l;
}

/* ---- methods ------------------------------------------------------------------------------- */

static PyObject *tok_encode(TokObject *self, PyObject *text) {
    /* bytes are accepted too (they need not be valid UTF-8): the C API's contract. */
    Py_ssize_t n;
    char *b;
    const char *s = PyBytes_Check(text) ? (PyBytes_AsStringAndSize(text, &b, &n) ? NULL : b) : utf8_of(text, &n, "text");
    if (!s) return NULL;
    vc_ids ids = {0};
    vc_status st;
    /* Short texts are not worth the GIL round trip. */
    if (n > 4096) {
        Py_BEGIN_ALLOW_THREADS
        st = vc_tok_encode(self->tok, (const uint8_t *)s, (size_t)n, &ids);
        Py_END_ALLOW_THREADS
    } else {
        st = vc_tok_encode(self->tok, (const uint8_t *)s, (size_t)n, &ids);
    }
    PyObject *r = st ? vc_py_raise(st) : list_of_ids(ids.data, ids.len);
    vc_ids_free(&ids);
    return r;
}

static PyObject *tok_encode_batch(TokObject *self, PyObject *texts) {
    /* A tuple holds references to the strings (and so to their UTF-8) while the GIL is out. */
    PyObject *tup = PySequence_Tuple(texts);
    if (!tup) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(tup);
    const char **ptr = PyMem_Malloc(((size_t)count + 1) * sizeof *ptr);
    Py_ssize_t *len = PyMem_Malloc(((size_t)count + 1) * sizeof *len);
    size_t *ends = PyMem_Malloc(((size_t)count + 1) * sizeof *ends);
    vc_ids ids = {0};
    PyObject *result = NULL;
    if (!ptr || !len || !ends) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++)
        if (!(ptr[i] = utf8_of(PyTuple_GET_ITEM(tup, i), &len[i], "each text"))) goto done;
    vc_status st = VC_OK;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count && !st; i++) {
        st = vc_tok_encode(self->tok, (const uint8_t *)ptr[i], (size_t)len[i], &ids);
        ends[i] = ids.len;
    }
    Py_END_ALLOW_THREADS
    if (st) {
        vc_py_raise(st);
        goto done;
    }
    if (!(result = PyList_New(count))) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        size_t b = i ? ends[i - 1] : 0;
        PyObject *l = list_of_ids(ids.data + b, ends[i] - b);
        if (!l) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, l);
    }
done:
    vc_ids_free(&ids);
    PyMem_Free(ptr);
    PyMem_Free(len);
    PyMem_Free(ends);
    Py_DECREF(tup);
    return result;
}

static char *decode_kwlist[] = {"ids", "skip_special_tokens", "clean_up_tokenization_spaces", NULL};

static PyObject *tok_decode(TokObject *self, PyObject *args, PyObject *kwds) {
    PyObject *o;
    int skip = 0, clean = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|pp:decode", decode_kwlist, &o, &skip, &clean)) return NULL;
    vc_ids ids = {0};
    vc_bytes out = {0};
    PyObject *r = NULL;
    if (ids_from(o, &ids) == 0) {
        vc_status st = vc_tok_decode(self->tok, ids.data, ids.len, skip, clean, &out);
        r = st ? vc_py_raise(st) : PyUnicode_DecodeUTF8((const char *)out.data, (Py_ssize_t)out.len, "strict");
    }
    vc_ids_free(&ids);
    vc_bytes_free(&out);
    return r;
}

static PyObject *tok_decode_batch(TokObject *self, PyObject *args, PyObject *kwds) {
    PyObject *o;
    int skip = 0, clean = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|pp:decode_batch", decode_kwlist, &o, &skip, &clean)) return NULL;
    if (PyArray_Check(o) && PyArray_NDIM((PyArrayObject *)o) != 2) {
        PyErr_Format(PyExc_ValueError, "a batch of token ids must be 2-D, got %d dimensions",
                     PyArray_NDIM((PyArrayObject *)o));
        return NULL;
    }
    /* Iterating a 2-D array yields its rows as 1-D arrays, so one path serves both. */
    PyObject *seq = PySequence_Fast(o, "sequences must be a list of id lists or a 2-D array");
    if (!seq) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    size_t *ends = PyMem_Malloc(((size_t)count + 1) * 2 * sizeof *ends), *out_ends = NULL;
    vc_ids ids = {0};
    vc_bytes out = {0};
    PyObject *result = NULL;
    if (!ends) {
        PyErr_NoMemory();
        goto done;
    }
    out_ends = ends + count + 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (ids_from(PySequence_Fast_GET_ITEM(seq, i), &ids)) goto done;
        ends[i] = ids.len;
    }
    vc_status st = VC_OK;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count && !st; i++) {
        size_t b = i ? ends[i - 1] : 0;
        st = vc_tok_decode(self->tok, ids.data + b, ends[i] - b, skip, clean, &out);
        out_ends[i] = out.len;
    }
    Py_END_ALLOW_THREADS
    if (st) {
        vc_py_raise(st);
        goto done;
    }
    if (!(result = PyList_New(count))) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        size_t b = i ? out_ends[i - 1] : 0;
        PyObject *s = PyUnicode_DecodeUTF8((const char *)out.data + b, (Py_ssize_t)(out_ends[i] - b), "strict");
        if (!s) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, s);
    }
done:
    vc_ids_free(&ids);
    vc_bytes_free(&out);
    PyMem_Free(ends);
    Py_DECREF(seq);
    return result;
}

/* The GPT-2 pre-tokenizer alone (no added tokens, no prefix space), for tests and tools. */
static PyObject *pre_tokenize(PyObject *mod, PyObject *text) {
    Py_ssize_t n;
    const char *s = utf8_of(text, &n, "text");
    if (!s) return NULL;
    PyObject *l = PyList_New(0);
    for (size_t pos = 0; l && pos < (size_t)n;) {
        size_t end = vc_gpt2_piece_end((const uint8_t *)s, (size_t)n, pos);
        PyObject *piece = PyUnicode_DecodeUTF8(s + pos, (Py_ssize_t)(end - pos), "strict");
        if (!piece || PyList_Append(l, piece)) Py_CLEAR(l);
        Py_XDECREF(piece);
        pos = end;
    }
    return l;
}

static PyObject *tok_token_to_id(TokObject *self, PyObject *token) {
    Py_ssize_t n;
    const char *s = utf8_of(token, &n, "token");
    if (!s) return NULL;
    int32_t id = vc_tok_token_to_id(self->tok, s, (size_t)n);
    if (id < 0) Py_RETURN_NONE;
    return PyLong_FromLong(id);
}

static PyObject *tok_id_to_token(TokObject *self, PyObject *arg) {
    long long id = PyLong_AsLongLong(arg);
    if (id == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    size_t n;
    const char *s = id >= INT32_MIN && id <= INT32_MAX ? vc_tok_id_to_token(self->tok, (int32_t)id, &n) : NULL;
    if (!s) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "strict");
}

static PyObject *tok_is_special(TokObject *self, PyObject *arg) {
    long long id = PyLong_AsLongLong(arg);
    if (id == -1 && PyErr_Occurred()) return NULL;
    return PyBool_FromLong(id >= 0 && id <= INT32_MAX && vc_tok_is_special(self->tok, (int32_t)id));
}

static PyObject *tok_added_tokens(TokObject *self, PyObject *noargs) {
    int32_t count = vc_tok_added_count(self->tok);
    PyObject *l = PyList_New(count);
    if (!l) return NULL;
    for (int32_t i = 0; i < count; i++) {
        size_t n;
        int32_t id;
        unsigned f;
        const char *s = vc_tok_added_at(self->tok, i, &n, &id, &f);
        PyObject *d = Py_BuildValue("{s:s#,s:i,s:O,s:O,s:O,s:O,s:O}", "content", s, (Py_ssize_t)n, "id", id, "special",
                                    f & VC_ADDED_SPECIAL ? Py_True : Py_False, "lstrip",
                                    f & VC_ADDED_LSTRIP ? Py_True : Py_False, "rstrip",
                                    f & VC_ADDED_RSTRIP ? Py_True : Py_False, "normalized",
                                    f & VC_ADDED_NORMALIZED ? Py_True : Py_False, "single_word", Py_False);
        if (!d) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, d);
    }
    return l;
}

static PyObject *tok_get_vocab(TokObject *self, PyObject *noargs) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    int32_t limit = vc_tok_id_limit(self->tok);
    for (int32_t id = 0; id < limit; id++) {
        size_t n;
        const char *s = vc_tok_id_to_token(self->tok, id, &n);
        if (!s) continue;
        PyObject *k = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "strict"), *v = PyLong_FromLong(id);
        int rc = k && v ? PyDict_SetItem(d, k, v) : -1;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (rc) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

static PyObject *get_vocab_size(TokObject *self, void *c) { return PyLong_FromLong(vc_tok_model_size(self->tok)); }
static PyObject *get_total_size(TokObject *self, void *c) { return PyLong_FromLong(vc_tok_total_size(self->tok)); }
static PyObject *get_id_limit(TokObject *self, void *c) { return PyLong_FromLong(vc_tok_id_limit(self->tok)); }

static PyObject *cleanup(PyObject *mod, PyObject *text) {
    Py_ssize_t n;
    const char *s = utf8_of(text, &n, "text");
    if (!s) return NULL;
    char *buf = PyMem_Malloc((size_t)n + 1);
    if (!buf) return PyErr_NoMemory();
    memcpy(buf, s, (size_t)n);
    size_t m = vc_tok_cleanup((uint8_t *)buf, (size_t)n);
    PyObject *r = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)m, "strict");
    PyMem_Free(buf);
    return r;
}

static PyMethodDef tok_methods[] = {
    {"encode", (PyCFunction)tok_encode, METH_O, "encode(text: str or UTF-8 bytes) -> list of ids"},
    {"encode_batch", (PyCFunction)tok_encode_batch, METH_O, "encode_batch(texts) -> list of id lists (GIL released)"},
    {"decode", (PyCFunction)(void (*)(void))tok_decode, METH_VARARGS | METH_KEYWORDS,
     "decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) -> str"},
    {"decode_batch", (PyCFunction)(void (*)(void))tok_decode_batch, METH_VARARGS | METH_KEYWORDS,
     "decode_batch(sequences, skip_special_tokens=False, clean_up_tokenization_spaces=False) -> list of str"},
    {"token_to_id", (PyCFunction)tok_token_to_id, METH_O, "token_to_id(token) -> id or None"},
    {"id_to_token", (PyCFunction)tok_id_to_token, METH_O, "id_to_token(id) -> token or None"},
    {"is_special", (PyCFunction)tok_is_special, METH_O, "is_special(id) -> bool"},
    {"added_tokens", (PyCFunction)tok_added_tokens, METH_NOARGS, "added tokens as dicts, in order"},
    {"get_vocab", (PyCFunction)tok_get_vocab, METH_NOARGS, "dict token -> id, added tokens included"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tok_getset[] = {
    {"vocab_size", (getter)get_vocab_size, NULL, "vocabulary entries, without added tokens", NULL},
    {"total_size", (getter)get_total_size, NULL, "distinct tokens, added tokens included", NULL},
    {"id_limit", (getter)get_id_limit, NULL, "1 + the largest id", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TokType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "visionc._C.BPETokenizer",
    .tp_basicsize = sizeof(TokObject),
    .tp_dealloc = (destructor)tok_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Byte-level BPE tokenizer (GPT-2 family), parity with Hugging Face GPT2TokenizerFast.",
    .tp_methods = tok_methods,
    .tp_getset = tok_getset,
    .tp_new = tok_new,
};

static PyMethodDef module_methods[] = {
    {"clean_up_tokenization", cleanup, METH_O, "transformers' clean_up_tokenization rules"},
    {"gpt2_pre_tokenize", pre_tokenize, METH_O, "GPT-2 pre-tokenizer pieces of a text"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_text(PyObject *m) {
    if (PyType_Ready(&TokType) < 0) return -1;
    Py_INCREF(&TokType);
    if (PyModule_AddObject(m, "BPETokenizer", (PyObject *)&TokType) < 0) {
        Py_DECREF(&TokType);
        return -1;
    }
    return PyModule_AddFunctions(m, module_methods);
}
