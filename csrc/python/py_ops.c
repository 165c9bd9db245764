/* visionc._C op_* functions: each CPU kernel callable on NumPy arrays, for per-op parity
 * tests and for users who build their own layers. Inputs are float32 (made C-contiguous
 * without a copy when they already are); results are new arrays. GIL released in C. */
#include "python/pyutil.h"

#include <string.h>

#include "backends/cpu/cpu.h" /* vc_conv_out_size */
#include "ops/backend.h"

static const vc_backend *be(void) { return vc_backend_cpu(); }

static PyObject *new_like(PyArrayObject *a) {
    return PyArray_SimpleNew(PyArray_NDIM(a), PyArray_DIMS(a), NPY_FLOAT32);
}

/* Rows x last-dim view of an array of any rank >= 1. */
static int rows_cols(PyArrayObject *a, size_t *rows, int *cols, const char *what) {
    int nd = PyArray_NDIM(a);
    if (nd < 1) {
        PyErr_Format(PyExc_ValueError, "%s must have at least one dimension", what);
        return -1;
    }
    npy_intp c = PyArray_DIM(a, nd - 1);
    if (c <= 0 || c > (1 << 30)) {
        PyErr_Format(PyExc_ValueError, "%s: last dimension %ld out of range", what, (long)c);
        return -1;
    }
    *cols = (int)c;
    *rows = (size_t)(PyArray_SIZE(a) / c);
    return 0;
}

typedef void (*unary_fn)(float *, size_t);

static PyObject *unary(PyObject *arg, unary_fn fn, const char *what) {
    PyArrayObject *x = vc_py_float_array(arg, what, -1);
    if (!x) return NULL;
    PyArrayObject *out = (PyArrayObject *)new_like(x);
    if (out) {
        float *o = PyArray_DATA(out);
        const float *i = PyArray_DATA(x);
        size_t n = (size_t)PyArray_SIZE(x);
        Py_BEGIN_ALLOW_THREADS memcpy(o, i, n * sizeof(float));
        fn(o, n);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(x);
    return (PyObject *)out;
}

static PyObject *op_gelu(PyObject *s, PyObject *x) { return unary(x, be()->gelu, "x"); }
static PyObject *op_gelu_tanh(PyObject *s, PyObject *x) { return unary(x, be()->gelu_tanh, "x"); }
static PyObject *op_silu(PyObject *s, PyObject *x) { return unary(x, be()->silu, "x"); }

static PyObject *op_softmax(PyObject *s, PyObject *args) {
    PyObject *xo;
    double scale = 1.0;
    if (!PyArg_ParseTuple(args, "O|d", &xo, &scale)) return NULL;
    PyArrayObject *x = vc_py_float_array(xo, "x", -1);
    if (!x) return NULL;
    size_t rows;
    int cols;
    PyArrayObject *out = NULL;
    if (rows_cols(x, &rows, &cols, "x") == 0 && (out = (PyArrayObject *)new_like(x))) {
        float *o = PyArray_DATA(out);
        Py_BEGIN_ALLOW_THREADS memcpy(o, PyArray_DATA(x), rows * cols * sizeof(float));
        be()->softmax_rows(o, rows, cols, (float)scale);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(x);
    return (PyObject *)out;
}

static PyObject *op_layernorm(PyObject *s, PyObject *args) {
    PyObject *xo, *wo, *bo;
    double eps;
    if (!PyArg_ParseTuple(args, "OOOd", &xo, &wo, &bo, &eps)) return NULL;
    PyArrayObject *x = vc_py_float_array(xo, "x", -1), *w = NULL, *b = NULL, *out = NULL;
    size_t rows;
    int C;
    if (!x || rows_cols(x, &rows, &C, "x")) goto done;
    if (!(w = vc_py_float_array(wo, "weight", 1)) || !(b = vc_py_float_array(bo, "bias", 1))) goto done;
    if (PyArray_DIM(w, 0) != C || PyArray_DIM(b, 0) != C) {
        PyErr_Format(PyExc_ValueError, "weight and bias must have %d elements (the last dimension of x)", C);
        goto done;
    }
    if (!(eps > 0)) {
        PyErr_SetString(PyExc_ValueError, "eps must be positive");
        goto done;
    }
    if ((out = (PyArrayObject *)new_like(x))) {
        float *o = PyArray_DATA(out);
        const float *xi = PyArray_DATA(x), *wi = PyArray_DATA(w), *bi = PyArray_DATA(b);
        Py_BEGIN_ALLOW_THREADS be()->layernorm(o, xi, wi, bi, rows, C, (float)eps);
        Py_END_ALLOW_THREADS
    }
done:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    return (PyObject *)out;
}

/* linear(x[..., K], w[N, K], bias[N] or None) -> [..., N] */
static PyObject *op_linear(PyObject *s, PyObject *args) {
    PyObject *xo, *wo, *bo = Py_None;
    if (!PyArg_ParseTuple(args, "OO|O", &xo, &wo, &bo)) return NULL;
    PyArrayObject *x = vc_py_float_array(xo, "x", -1), *w = NULL, *b = NULL, *out = NULL;
    size_t rows;
    int K;
    if (!x || rows_cols(x, &rows, &K, "x")) goto done;
    if (!(w = vc_py_float_array(wo, "weight", 2))) goto done;
    if (PyArray_DIM(w, 1) != K) {
        PyErr_Format(PyExc_ValueError, "weight must be (N, %d) for x with last dimension %d", K, K);
        goto done;
    }
    const int N = (int)PyArray_DIM(w, 0);
    if (bo != Py_None) {
        if (!(b = vc_py_float_array(bo, "bias", 1))) goto done;
        if (PyArray_DIM(b, 0) != N) {
            PyErr_Format(PyExc_ValueError, "bias must have %d elements", N);
            goto done;
        }
    }
    if (rows > (size_t)1 << 30) {
        PyErr_SetString(PyExc_ValueError, "x has too many rows");
        goto done;
    }
    npy_intp dims[NPY_MAXDIMS];
    int nd = PyArray_NDIM(x);
    for (int i = 0; i < nd - 1; i++) dims[i] = PyArray_DIM(x, i);
    dims[nd - 1] = N;
    if ((out = (PyArrayObject *)PyArray_SimpleNew(nd, dims, NPY_FLOAT32))) {
        float *o = PyArray_DATA(out);
        const float *xi = PyArray_DATA(x), *wi = PyArray_DATA(w), *bi = b ? PyArray_DATA(b) : NULL;
        Py_BEGIN_ALLOW_THREADS be()->linear(o, xi, wi, bi, (int)rows, N, K, 0);
        Py_END_ALLOW_THREADS
    }
done:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    return (PyObject *)out;
}

/* attention(q, k, v [B, T, H*D], num_heads) -> (out [B, T, H*D], probs [B, H, T, T]) */
static PyObject *op_attention(PyObject *s, PyObject *args) {
    PyObject *qo, *ko, *vo;
    int H;
    double p_drop = 0.0;
    unsigned long long seed = 0;
    if (!PyArg_ParseTuple(args, "OOOi|dK", &qo, &ko, &vo, &H, &p_drop, &seed)) return NULL;
    if (!(p_drop >= 0.0 && p_drop < 1.0))
        return PyErr_Format(PyExc_ValueError, "attention dropout probability must be in [0, 1), got %g", p_drop);
    int threads_saved; /* one thread count for the per-thread scratch sized below and its kernel */
    vc_threads_pin(0, &threads_saved);
    PyArrayObject *q = vc_py_float_array(qo, "q", 3), *k = NULL, *v = NULL;
    PyObject *out = NULL, *probs = NULL, *res = NULL;
    float *scratch = NULL;
    if (!q || !(k = vc_py_float_array(ko, "k", 3)) || !(v = vc_py_float_array(vo, "v", 3))) goto done;
    if (!PyArray_SAMESHAPE(q, k) || !PyArray_SAMESHAPE(q, v)) {
        PyErr_SetString(PyExc_ValueError, "q, k and v must have the same shape (B, T, H*D)");
        goto done;
    }
    const npy_intp B = PyArray_DIM(q, 0), T = PyArray_DIM(q, 1), C = PyArray_DIM(q, 2);
    if (H <= 0 || C % H || B <= 0 || T <= 0 || T > 65536) {
        PyErr_Format(PyExc_ValueError, "num_heads %d must divide the last dimension %ld (and B, T > 0)", H, (long)C);
        goto done;
    }
    npy_intp pd[4] = {B, H, T, T};
    if (!(out = PyArray_SimpleNew(3, PyArray_DIMS(q), NPY_FLOAT32)) || !(probs = PyArray_SimpleNew(4, pd, NPY_FLOAT32)))
        goto done;
    scratch = PyMem_RawMalloc(be()->attention_scratch((int)B, (int)T, H) * sizeof(float) + 64);
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    {
        float *o = PyArray_DATA((PyArrayObject *)out), *p = PyArray_DATA((PyArrayObject *)probs);
        const float *qi = PyArray_DATA(q), *ki = PyArray_DATA(k), *vi = PyArray_DATA(v);
        Py_BEGIN_ALLOW_THREADS be()->attention_dropout(o, (int)C, qi, ki, vi, (int)C, (int)B, (int)T, H, (int)(C / H),
                                                       p, (float)p_drop, (uint64_t)seed, scratch);
        Py_END_ALLOW_THREADS
    }
    res = Py_BuildValue("(OO)", out, probs);
done:
    vc_threads_unpin(threads_saved);
    PyMem_RawFree(scratch);
    Py_XDECREF(out);
    Py_XDECREF(probs);
    Py_XDECREF(q);
    Py_XDECREF(k);
    Py_XDECREF(v);
    return res;
}

/* patch_embed(px [B, Cin, H, W], w [Cout, Cin, P, P], bias [Cout]) -> [B, G, Cout] */
static PyObject *op_patch_embed(PyObject *s, PyObject *args) {
    PyObject *po, *wo, *bo;
    if (!PyArg_ParseTuple(args, "OOO", &po, &wo, &bo)) return NULL;
    PyArrayObject *px = vc_py_float_array(po, "pixel_values", 4), *w = NULL, *b = NULL;
    PyObject *res = NULL;
    float *tmp = NULL, *scratch = NULL;
    if (!px || !(w = vc_py_float_array(wo, "weight", 4)) || !(b = vc_py_float_array(bo, "bias", 1))) goto done;
    const npy_intp B = PyArray_DIM(px, 0), Cin = PyArray_DIM(px, 1), Hi = PyArray_DIM(px, 2), Wi = PyArray_DIM(px, 3);
    const npy_intp Cout = PyArray_DIM(w, 0), P = PyArray_DIM(w, 2);
    if (PyArray_DIM(w, 1) != Cin || PyArray_DIM(w, 3) != P || PyArray_DIM(b, 0) != Cout || P <= 0 || Hi < P ||
        Wi < P || B <= 0) {
        PyErr_SetString(PyExc_ValueError, "patch_embed: weight must be (Cout, Cin, P, P) with P <= H, W; bias (Cout,)");
        goto done;
    }
    const npy_intp G = (Hi / P) * (Wi / P);
    tmp = PyMem_RawMalloc((size_t)B * (G + 1) * Cout * sizeof(float));
    scratch = PyMem_RawMalloc((size_t)B * G * Cin * P * P * sizeof(float));
    if (!tmp || !scratch) {
        PyErr_NoMemory();
        goto done;
    }
    {
        const float *pi = PyArray_DATA(px), *wi = PyArray_DATA(w), *bi = PyArray_DATA(b);
        Py_BEGIN_ALLOW_THREADS be()->patch_embed(tmp, pi, wi, bi, (int)B, (int)Cin, (int)Hi, (int)Wi, (int)P, (int)Cout,
                                                 scratch);
        Py_END_ALLOW_THREADS
    }
    npy_intp od[3] = {B, G, Cout};
    if ((res = PyArray_SimpleNew(3, od, NPY_FLOAT32))) {
        float *o = PyArray_DATA((PyArrayObject *)res);
        for (npy_intp i = 0; i < B; i++)
            memcpy(o + (size_t)i * G * Cout, tmp + ((size_t)i * (G + 1) + 1) * Cout, (size_t)G * Cout * sizeof(float));
    }
done:
    PyMem_RawFree(tmp);
    PyMem_RawFree(scratch);
    Py_XDECREF(px);
    Py_XDECREF(w);
    Py_XDECREF(b);
    return res;
}

/* conv2d(x [B,Ci,H,W], w [Co, Ci/groups, kh, kw], bias or None, stride(2), padding(2), dilation(2), groups,
 * bf16=False); bf16: the mixed-precision kernel (bf16 GEMMs, fp32 accumulation) */
static PyObject *op_conv2d(PyObject *s, PyObject *args) {
    PyObject *xo, *wo, *bo;
    int sh, sw, ph, pw, dh, dw, groups, bf16 = 0;
    if (!PyArg_ParseTuple(args, "OOO(ii)(ii)(ii)i|p", &xo, &wo, &bo, &sh, &sw, &ph, &pw, &dh, &dw, &groups, &bf16))
        return NULL;
    int threads_saved; /* one thread count for the per-thread scratch sized below and its kernel */
    vc_threads_pin(0, &threads_saved);
    PyArrayObject *x = vc_py_float_array(xo, "x", 4), *w = NULL, *b = NULL;
    PyObject *res = NULL;
    float *scratch = NULL;
    if (!x || !(w = vc_py_float_array(wo, "weight", 4))) goto done;
    if (bo != Py_None && !(b = vc_py_float_array(bo, "bias", 1))) goto done;
    const npy_intp B = PyArray_DIM(x, 0), Ci = PyArray_DIM(x, 1), H = PyArray_DIM(x, 2), W = PyArray_DIM(x, 3);
    const npy_intp Co = PyArray_DIM(w, 0), kh = PyArray_DIM(w, 2), kw = PyArray_DIM(w, 3);
    if (groups < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0 || dh < 1 || dw < 1 || Ci % groups || Co % groups ||
        PyArray_DIM(w, 1) != Ci / groups || (b && PyArray_DIM(b, 0) != Co) || B < 1 || kh < 1 || kw < 1) {
        PyErr_SetString(PyExc_ValueError, "conv2d: inconsistent shapes or arguments (weight must be "
                                          "(Co, Ci/groups, kh, kw); stride, dilation, groups >= 1, padding >= 0)");
        goto done;
    }
    const int Ho = vc_conv_out_size((int)H, (int)kh, sh, ph, dh), Wo = vc_conv_out_size((int)W, (int)kw, sw, pw, dw);
    if (Ho < 1 || Wo < 1) {
        PyErr_SetString(PyExc_ValueError, "conv2d: the kernel is larger than the padded input");
        goto done;
    }
    npy_intp od[4] = {B, Co, Ho, Wo};
    if (!(res = PyArray_SimpleNew(4, od, NPY_FLOAT32))) goto done;
    size_t ns = be()->conv2d_scratch((int)B, (int)Ci, (int)H, (int)W, (int)Co, (int)kh, (int)kw, sh, sw, ph, pw, dh, dw,
                                     groups);
    if (!(scratch = PyMem_RawMalloc(ns * sizeof(float) + 64))) {
        Py_CLEAR(res);
        PyErr_NoMemory();
        goto done;
    }
    {
        float *o = PyArray_DATA((PyArrayObject *)res);
        const float *xi = PyArray_DATA(x), *wi = PyArray_DATA(w), *bi = b ? PyArray_DATA(b) : NULL;
        void (*conv)(float *, const float *, const float *, const float *, int, int, int, int, int, int, int, int,
                     int, int, int, int, int, int, float *) = bf16 ? be()->conv2d_bf16 : be()->conv2d;
        Py_BEGIN_ALLOW_THREADS conv(o, xi, wi, bi, (int)B, (int)Ci, (int)H, (int)W, (int)Co, (int)kh, (int)kw, sh, sw,
                                    ph, pw, dh, dw, groups, scratch);
        Py_END_ALLOW_THREADS
    }
done:
    vc_threads_unpin(threads_saved);
    PyMem_RawFree(scratch);
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    return res;
}

static PyObject *op_layernorm2d(PyObject *s, PyObject *args) {
    PyObject *xo, *wo, *bo;
    double eps;
    if (!PyArg_ParseTuple(args, "OOOd", &xo, &wo, &bo, &eps)) return NULL;
    PyArrayObject *x = vc_py_float_array(xo, "x", 4), *w = NULL, *b = NULL, *out = NULL;
    if (!x || !(w = vc_py_float_array(wo, "weight", 1)) || !(b = vc_py_float_array(bo, "bias", 1))) goto done;
    const npy_intp B = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), HW = PyArray_DIM(x, 2) * PyArray_DIM(x, 3);
    if (PyArray_DIM(w, 0) != C || PyArray_DIM(b, 0) != C || !(eps > 0)) {
        PyErr_SetString(PyExc_ValueError, "layernorm2d: weight and bias must have C elements and eps > 0");
        goto done;
    }
    if ((out = (PyArrayObject *)new_like(x))) {
        float *o = PyArray_DATA(out);
        const float *xi = PyArray_DATA(x), *wi = PyArray_DATA(w), *bi = PyArray_DATA(b);
        Py_BEGIN_ALLOW_THREADS be()->layernorm_channels(o, xi, wi, bi, (int)B, (int)C, (size_t)HW, (float)eps);
        Py_END_ALLOW_THREADS
    }
done:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    return (PyObject *)out;
}

static PyObject *op_global_avg_pool(PyObject *s, PyObject *xo) {
    PyArrayObject *x = vc_py_float_array(xo, "x", 4);
    if (!x) return NULL;
    npy_intp od[2] = {PyArray_DIM(x, 0), PyArray_DIM(x, 1)};
    PyObject *res = PyArray_SimpleNew(2, od, NPY_FLOAT32);
    if (res) {
        float *o = PyArray_DATA((PyArrayObject *)res);
        const float *xi = PyArray_DATA(x);
        size_t HW = (size_t)PyArray_DIM(x, 2) * PyArray_DIM(x, 3);
        if (HW == 0) {
            Py_CLEAR(res);
            PyErr_SetString(PyExc_ValueError, "global_avg_pool: empty spatial size");
        } else {
            Py_BEGIN_ALLOW_THREADS be()->global_avg_pool(o, xi, (int)od[0], (int)od[1], HW);
            Py_END_ALLOW_THREADS
        }
    }
    Py_DECREF(x);
    return res;
}

static PyObject *op_resize_bilinear(PyObject *s, PyObject *args) {
    PyObject *xo;
    int Ho, Wo;
    if (!PyArg_ParseTuple(args, "O(ii)", &xo, &Ho, &Wo)) return NULL;
    if (Ho < 1 || Wo < 1 || Ho > 65536 || Wo > 65536) return PyErr_Format(PyExc_ValueError, "size must be positive");
    PyArrayObject *x = vc_py_float_array(xo, "x", 4);
    if (!x) return NULL;
    npy_intp od[4] = {PyArray_DIM(x, 0), PyArray_DIM(x, 1), Ho, Wo};
    PyObject *res = NULL;
    if (PyArray_DIM(x, 2) < 1 || PyArray_DIM(x, 3) < 1)
        PyErr_SetString(PyExc_ValueError, "resize_bilinear: empty input");
    else if ((res = PyArray_SimpleNew(4, od, NPY_FLOAT32))) {
        float *o = PyArray_DATA((PyArrayObject *)res);
        const float *xi = PyArray_DATA(x);
        int B = (int)od[0], C = (int)od[1], H = (int)PyArray_DIM(x, 2), W = (int)PyArray_DIM(x, 3);
        Py_BEGIN_ALLOW_THREADS be()->resize_bilinear(o, xi, B, C, H, W, Ho, Wo);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(x);
    return res;
}

/* patch_unfold(x [B,C,H,W], (ph, pw)) -> [B*ph*pw, N, C];  patch_fold(p, (B,C,H,W), (ph,pw)) -> x */
static PyObject *op_patch_unfold(PyObject *s, PyObject *args) {
    PyObject *xo;
    int ph, pw;
    if (!PyArg_ParseTuple(args, "O(ii)", &xo, &ph, &pw)) return NULL;
    PyArrayObject *x = vc_py_float_array(xo, "x", 4);
    if (!x) return NULL;
    PyObject *res = NULL;
    const npy_intp B = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), H = PyArray_DIM(x, 2), W = PyArray_DIM(x, 3);
    if (ph < 1 || pw < 1 || H % ph || W % pw)
        PyErr_SetString(PyExc_ValueError, "patch_unfold: H and W must be multiples of the patch size");
    else {
        npy_intp od[3] = {B * ph * pw, (H / ph) * (W / pw), C};
        if ((res = PyArray_SimpleNew(3, od, NPY_FLOAT32))) {
            float *o = PyArray_DATA((PyArrayObject *)res);
            const float *xi = PyArray_DATA(x);
            Py_BEGIN_ALLOW_THREADS be()->patch_unfold(o, xi, (int)B, (int)C, (int)H, (int)W, ph, pw);
            Py_END_ALLOW_THREADS
        }
    }
    Py_DECREF(x);
    return res;
}

static PyObject *op_patch_fold(PyObject *s, PyObject *args) {
    PyObject *po;
    int B, C, H, W, ph, pw;
    if (!PyArg_ParseTuple(args, "O(iiii)(ii)", &po, &B, &C, &H, &W, &ph, &pw)) return NULL;
    PyArrayObject *p = vc_py_float_array(po, "patches", 3);
    if (!p) return NULL;
    PyObject *res = NULL;
    if (B < 1 || C < 1 || ph < 1 || pw < 1 || H % ph || W % pw || PyArray_DIM(p, 0) != (npy_intp)B * ph * pw ||
        PyArray_DIM(p, 1) != (npy_intp)(H / ph) * (W / pw) || PyArray_DIM(p, 2) != C)
        PyErr_SetString(PyExc_ValueError, "patch_fold: patches shape does not match (B, C, H, W) and the patch size");
    else {
        npy_intp od[4] = {B, C, H, W};
        if ((res = PyArray_SimpleNew(4, od, NPY_FLOAT32))) {
            float *o = PyArray_DATA((PyArrayObject *)res);
            const float *pi = PyArray_DATA(p);
            Py_BEGIN_ALLOW_THREADS be()->patch_fold(o, pi, B, C, H, W, ph, pw);
            Py_END_ALLOW_THREADS
        }
    }
    Py_DECREF(p);
    return res;
}

static PyMethodDef methods[] = {
    {"op_gelu", op_gelu, METH_O, "exact (erf) GELU"},
    {"op_gelu_tanh", op_gelu_tanh, METH_O, "tanh-approximation GELU"},
    {"op_silu", op_silu, METH_O, "SiLU"},
    {"op_softmax", op_softmax, METH_VARARGS, "softmax(x, scale=1) over the last dimension"},
    {"op_layernorm", op_layernorm, METH_VARARGS, "layernorm(x, weight, bias, eps) over the last dimension"},
    {"op_linear", op_linear, METH_VARARGS, "linear(x, weight[N,K], bias=None)"},
    {"op_attention", op_attention, METH_VARARGS,
     "attention(q, k, v, num_heads, dropout_p=0.0, seed=0) -> (out, probs before dropout)"},
    {"op_patch_embed", op_patch_embed, METH_VARARGS, "patch_embed(px, weight, bias) -> (B, G, Cout)"},
    {"op_conv2d", op_conv2d, METH_VARARGS, "conv2d(x, w, bias, stride, padding, dilation, groups, bf16=False)"},
    {"op_layernorm2d", op_layernorm2d, METH_VARARGS, "channels-first layer norm of (B, C, H, W)"},
    {"op_global_avg_pool", op_global_avg_pool, METH_O, "(B, C, H, W) -> (B, C)"},
    {"op_resize_bilinear", op_resize_bilinear, METH_VARARGS, "bilinear resize, align_corners=False"},
    {"op_patch_unfold", op_patch_unfold, METH_VARARGS, "MobileViT unfold"},
    {"op_patch_fold", op_patch_fold, METH_VARARGS, "MobileViT fold"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_ops(PyObject *m) { return PyModule_AddFunctions(m, methods); }
