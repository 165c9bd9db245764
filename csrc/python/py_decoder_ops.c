/* visionc._C bindings of the decoder kernels on NumPy arrays, for per-kernel parity tests and
 * for users building decoders of their own: op_linear_io (weights stored [in, out]),
 * op_attention_kv (query rows over per-row memories), op_token_embed. Registered by
 * py_gpt2.c's hook. Results are new arrays; the kernels run with the GIL released. */
#include <string.h>

#include "ops/backend.h"
#include "python/py_decoder.h"

/* op_linear_io(x (M, K), w (K, N), bias (N,) | None, residual (M, N) | None) -> residual + x @ w + bias
 * (a residual takes the kernel's accumulate path, as the decoder's fused residual adds do) */
static PyObject *op_linear_io(PyObject *self, PyObject *args) {
    PyObject *xo, *wo, *bo = Py_None, *ro = Py_None;
    if (!PyArg_ParseTuple(args, "OO|OO", &xo, &wo, &bo, &ro)) return NULL;
    PyArrayObject *x = vc_py_float_array(xo, "x", 2), *w = NULL, *b = NULL, *res = NULL;
    PyObject *out = NULL;
    if (!x || !(w = vc_py_float_array(wo, "weight", 2))) goto done;
    const npy_intp M = PyArray_DIM(x, 0), K = PyArray_DIM(x, 1), N = PyArray_DIM(w, 1);
    if (PyArray_DIM(w, 0) != K || M < 1 || K < 1 || N < 1 || M > (1 << 24) || K > (1 << 24) || N > (1 << 24)) {
        PyErr_Format(PyExc_ValueError, "weight must be (K=%ld, N) for x of shape (M, K), all sizes >= 1", (long)K);
        goto done;
    }
    if (bo != Py_None && (!(b = vc_py_float_array(bo, "bias", 1)) || PyArray_DIM(b, 0) != N)) {
        if (b) PyErr_Format(PyExc_ValueError, "bias must have %ld elements", (long)N);
        goto done;
    }
    npy_intp dims[2] = {M, N};
    if (ro != Py_None && (!(res = vc_py_float_array(ro, "residual", 2)) || PyArray_DIM(res, 0) != M ||
                          PyArray_DIM(res, 1) != N)) {
        if (res) PyErr_Format(PyExc_ValueError, "residual must have shape (%ld, %ld)", (long)M, (long)N);
        goto done;
    }
    if (!(out = PyArray_SimpleNew(2, dims, NPY_FLOAT32))) goto done;
    {
        float *o = PyArray_DATA((PyArrayObject *)out);
        const float *xi = PyArray_DATA(x), *wi = PyArray_DATA(w), *bi = b ? PyArray_DATA(b) : NULL;
        const float *ri = res ? PyArray_DATA(res) : NULL;
        Py_BEGIN_ALLOW_THREADS if (ri) memcpy(o, ri, sizeof(float) * (size_t)M * N);
        vc_backend_cpu()->linear_io(o, xi, wi, bi, (int)M, (int)N, (int)K, ri != NULL);
        Py_END_ALLOW_THREADS
    }
done:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    Py_XDECREF(res);
    return out;
}

/* op_attention_kv(q (R, Tq, C), k, v | None, mem_index (R,), num_heads, scale, causal) -> (R, Tq, C).
 * k, v: (n_mem, Tk, C) each; or v None and k (n_mem, Tk, 2C) holding keys | values per token
 * (the cross-attention layout). Row r attends to memory mem_index[r]. */
static PyObject *op_attention_kv(PyObject *self, PyObject *args) {
    PyObject *qo, *ko, *vo, *io;
    int H, causal;
    double scale;
    if (!PyArg_ParseTuple(args, "OOOOidp", &qo, &ko, &vo, &io, &H, &scale, &causal)) return NULL;
    int threads_saved; /* one thread count for the per-thread scratch sized below and its kernel */
    vc_threads_pin(0, &threads_saved);
    PyArrayObject *q = vc_py_float_array(qo, "q", 3), *k = NULL, *v = NULL, *idx = NULL;
    PyObject *out = NULL;
    const float **ptrs = NULL;
    float *scratch = NULL;
    if (!q || !(k = vc_py_float_array(ko, "k", 3)) || (vo != Py_None && !(v = vc_py_float_array(vo, "v", 3))) ||
        !(idx = vc_py_int32_ids(io, "mem_index", 1)))
        goto done;
    const npy_intp R = PyArray_DIM(q, 0), Tq = PyArray_DIM(q, 1), C = PyArray_DIM(q, 2);
    const npy_intp n_mem = PyArray_DIM(k, 0), Tk = PyArray_DIM(k, 1);
    const npy_intp ld = v ? C : 2 * C;
    if (R < 1 || Tq < 1 || Tk < 1 || n_mem < 1 || H < 1 || C % H || PyArray_DIM(k, 2) != ld ||
        (v && !PyArray_SAMESHAPE(k, v)) || PyArray_DIM(idx, 0) != R || (causal && Tq > Tk) || Tk > (1 << 20) ||
        R * Tq > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "attention_kv: expected q (R, Tq, C), k/v (n_mem, Tk, C) or packed k "
                                          "(n_mem, Tk, 2C), mem_index (R,), num_heads dividing C, Tq <= Tk if causal");
        goto done;
    }
    const int32_t *ix = PyArray_DATA(idx);
    for (npy_intp r = 0; r < R; r++)
        if (ix[r] < 0 || ix[r] >= n_mem) {
            PyErr_Format(PyExc_ValueError, "mem_index[%ld] = %d is not a memory (%ld)", (long)r, ix[r], (long)n_mem);
            goto done;
        }
    if (!(out = PyArray_SimpleNew(3, PyArray_DIMS(q), NPY_FLOAT32))) goto done;
    ptrs = PyMem_RawMalloc(2 * (size_t)R * sizeof *ptrs);
    scratch = PyMem_RawMalloc(vc_backend_cpu()->attention_kv_scratch((int)Tk) * sizeof(float));
    if (!ptrs || !scratch) {
        PyErr_NoMemory();
        Py_CLEAR(out);
        goto done;
    }
    const float *kd = PyArray_DATA(k), *vd = v ? PyArray_DATA(v) : kd + C;
    for (npy_intp r = 0; r < R; r++) {
        ptrs[r] = kd + (size_t)ix[r] * Tk * ld;
        ptrs[R + r] = vd + (size_t)ix[r] * Tk * ld;
    }
    {
        float *o = PyArray_DATA((PyArrayObject *)out);
        const float *qd = PyArray_DATA(q);
        Py_BEGIN_ALLOW_THREADS vc_backend_cpu()->attention_kv(o, (int)C, qd, (int)C, ptrs, ptrs + R, (int)ld, (int)R,
                                                             (int)Tq, (int)Tk, H, (int)(C / H), (float)scale, causal,
                                                             scratch);
        Py_END_ALLOW_THREADS
    }
done:
    vc_threads_unpin(threads_saved);
    PyMem_RawFree(ptrs);
    PyMem_RawFree(scratch);
    Py_XDECREF(q);
    Py_XDECREF(k);
    Py_XDECREF(v);
    Py_XDECREF(idx);
    return out;
}

/* op_token_embed(wte (V, C), wpe (P, C), ids (R, T), pos0) -> (R, T, C) */
static PyObject *op_token_embed(PyObject *self, PyObject *args) {
    PyObject *eo, *po, *io;
    int pos0;
    if (!PyArg_ParseTuple(args, "OOOi", &eo, &po, &io, &pos0)) return NULL;
    PyArrayObject *wte = vc_py_float_array(eo, "wte", 2), *wpe = NULL, *ids = NULL;
    PyObject *out = NULL;
    if (!wte || !(wpe = vc_py_float_array(po, "wpe", 2)) || !(ids = vc_py_int32_ids(io, "ids", 2))) goto done;
    const npy_intp V = PyArray_DIM(wte, 0), C = PyArray_DIM(wte, 1), P = PyArray_DIM(wpe, 0);
    const npy_intp R = PyArray_DIM(ids, 0), T = PyArray_DIM(ids, 1);
    if (PyArray_DIM(wpe, 1) != C || R < 1 || T < 1 || pos0 < 0 || pos0 + T > P) {
        PyErr_SetString(PyExc_ValueError, "token_embed: wpe must be (P, C) like wte, ids (R, T) with pos0 + T <= P");
        goto done;
    }
    const int32_t *id = PyArray_DATA(ids);
    for (npy_intp i = 0; i < R * T; i++)
        if (id[i] < 0 || id[i] >= V) {
            PyErr_Format(PyExc_ValueError, "ids: token id %d is outside the vocabulary [0, %ld)", id[i], (long)V);
            goto done;
        }
    npy_intp dims[3] = {R, T, C};
    if (!(out = PyArray_SimpleNew(3, dims, NPY_FLOAT32))) goto done;
    {
        float *o = PyArray_DATA((PyArrayObject *)out);
        const float *e = PyArray_DATA(wte), *p = PyArray_DATA(wpe);
        Py_BEGIN_ALLOW_THREADS vc_backend_cpu()->token_embed(o, e, id, (int)R, (int)T, (int)C, p, pos0);
        Py_END_ALLOW_THREADS
    }
done:
    Py_XDECREF(wte);
    Py_XDECREF(wpe);
    Py_XDECREF(ids);
    return out;
}

PyMethodDef vc_py_decoder_op_methods[] = {
    {"op_linear_io", op_linear_io, METH_VARARGS,
     "op_linear_io(x, w [in, out], bias=None, residual=None) -> residual + x @ w + bias"},
    {"op_attention_kv", op_attention_kv, METH_VARARGS,
     "op_attention_kv(q, k, v | None, mem_index, num_heads, scale, causal) -> out"},
    {"op_token_embed", op_token_embed, METH_VARARGS, "op_token_embed(wte, wpe, ids, pos0) -> wte[ids] + wpe[pos]"},
    {NULL, NULL, 0, NULL},
};
