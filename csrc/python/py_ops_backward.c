/* visionc._C op_*_backward functions: the backward kernels of the layers, on NumPy arrays,
 * for per-op gradient tests and for users assembling their own training step.
 * Shapes follow the forward ops in py_ops.c. Activation gradients come back as new arrays;
 * parameter gradients accumulate into the caller's arrays when given (dw=..., db=...), else
 * into new zeros. The GIL is released around the kernels. Loss, dropout, batch norm and the
 * element-wise helpers live in py_ops_train.c. */
#include <string.h>

#include "backends/cpu/cpu.h" /* vc_conv_out_size */
#include "python/py_grad_util.h"

static const vc_backend *be(void) { return vc_backend_cpu(); }

/* dims = a.shape[:-1] + (last,); returns the rank. */
static int with_last(PyArrayObject *a, npy_intp last, npy_intp *dims) {
    const int nd = PyArray_NDIM(a);
    for (int i = 0; i < nd - 1; i++) dims[i] = PyArray_DIM(a, i);
    dims[nd - 1] = last;
    return nd;
}

/* rows (product of all but the last dimension) and cols (the last) of a, both as int. */
static int rows_cols(PyArrayObject *a, const char *what, int *rows, int *cols) {
    if (PyArray_NDIM(a) < 1) {
        PyErr_Format(PyExc_ValueError, "%s must have at least one dimension", what);
        return -1;
    }
    const npy_intp c = PyArray_DIM(a, PyArray_NDIM(a) - 1);
    if (vc_grad_dim(c, what, cols)) return -1;
    return vc_grad_dim(PyArray_SIZE(a) / c, what, rows);
}

/* linear_backward(x[..,K], w[N,K] (or [K,N] when kn), dout[..,N], need_dx, kn, has_bias, dw, db) */
static PyObject *op_linear_backward(PyObject *self, PyObject *args) {
    PyObject *xo, *wo, *go, *dwo, *dbo;
    int need_dx, kn, has_bias, M, K, N;
    if (!PyArg_ParseTuple(args, "OOOpppOO", &xo, &wo, &go, &need_dx, &kn, &has_bias, &dwo, &dbo)) return NULL;
    PyArrayObject *x = NULL, *w = NULL, *g = NULL, *dx = NULL, *dw = NULL, *db = NULL;
    PyObject *res = NULL;
    npy_intp dims[NPY_MAXDIMS];
    if (!(x = vc_py_float_array(xo, "x", -1)) || !(w = vc_py_float_array(wo, "weight", 2)) ||
        !(g = vc_py_float_array(go, "dout", -1)) || rows_cols(x, "x", &M, &K))
        goto done;
    if (PyArray_DIM(w, kn ? 0 : 1) != K) {
        PyErr_Format(PyExc_ValueError, "linear_backward: weight must be %s with K = %d (the last dimension of x)",
                     kn ? "(K, N)" : "(N, K)", K);
        goto done;
    }
    if (vc_grad_dim(PyArray_DIM(w, kn ? 1 : 0), "weight", &N)) goto done;
    const int nd = with_last(x, N, dims);
    if (vc_grad_shape(g, "dout", nd, dims)) goto done;
    if (need_dx && !(dx = vc_grad_new(nd, PyArray_DIMS(x), 0))) goto done;
    if (!(dw = vc_grad_acc(dwo, "dw", 2, PyArray_DIMS(w)))) goto done;
    npy_intp nb[1] = {N};
    if (has_bias && !(db = vc_grad_acc(dbo, "db", 1, nb))) goto done;
    {
        float *pdx = dx ? PyArray_DATA(dx) : NULL, *pdw = PyArray_DATA(dw), *pdb = db ? PyArray_DATA(db) : NULL;
        const float *pg = PyArray_DATA(g), *px = PyArray_DATA(x), *pw = PyArray_DATA(w);
        Py_BEGIN_ALLOW_THREADS
        if (kn)
            be()->linear_kn_backward(pdx, pdw, pdb, pg, px, pw, M, N, K);
        else
            be()->linear_backward(pdx, pdw, pdb, pg, px, pw, M, N, K);
        Py_END_ALLOW_THREADS
    }
    res = vc_grad_tuple(3, &dx, &dw, &db);
done:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(g);
    Py_XDECREF(dx);
    Py_XDECREF(dw);
    Py_XDECREF(db);
    return res;
}

/* Optional [C] parameter (weight or bias of a norm): None gives NULL and 0. */
static int opt_param(PyObject *o, const char *what, npy_intp C, PyArrayObject **out) {
    *out = NULL;
    if (o == Py_None) return 0;
    npy_intp d[1] = {C};
    if (!(*out = vc_py_float_array(o, what, 1)) || vc_grad_shape(*out, what, 1, d)) return -1;
    return 0;
}

/* layernorm_train(x[.., C], w, b (None: no affine), eps, channels) -> (y, mean, rstd).
 * channels=0: over the last dimension, stats shaped x.shape[:-1];
 * channels=1: LayerNorm2d over C of x[B,C,H,W], stats shaped (B, H, W). */
static PyObject *op_layernorm_train(PyObject *self, PyObject *args) {
    PyObject *xo, *wo, *bo;
    double eps;
    int channels, rows = 0, C = 0, B = 0;
    if (!PyArg_ParseTuple(args, "OOOdp", &xo, &wo, &bo, &eps, &channels)) return NULL;
    PyArrayObject *x = NULL, *w = NULL, *b = NULL, *y = NULL, *mean = NULL, *rstd = NULL;
    PyObject *res = NULL;
    npy_intp sd[NPY_MAXDIMS];
    int snd;
    if (!(x = vc_py_float_array(xo, "x", channels ? 4 : -1))) goto done;
    if (channels) {
        if (vc_grad_dim(PyArray_DIM(x, 0), "x", &B) || vc_grad_dim(PyArray_DIM(x, 1), "x", &C) ||
            vc_grad_dim(PyArray_DIM(x, 2) * PyArray_DIM(x, 3), "x", &rows))
            goto done;
        snd = 3;
        sd[0] = B, sd[1] = PyArray_DIM(x, 2), sd[2] = PyArray_DIM(x, 3);
    } else {
        if (rows_cols(x, "x", &rows, &C)) goto done;
        snd = PyArray_NDIM(x) - 1;
        for (int i = 0; i < snd; i++) sd[i] = PyArray_DIM(x, i);
    }
    if (opt_param(wo, "weight", C, &w) || opt_param(bo, "bias", C, &b)) goto done;
    if (!(eps > 0)) {
        PyErr_SetString(PyExc_ValueError, "layer_norm: eps must be positive");
        goto done;
    }
    if (!(y = vc_grad_new(PyArray_NDIM(x), PyArray_DIMS(x), 0)) || !(mean = vc_grad_new(snd, sd, 0)) ||
        !(rstd = vc_grad_new(snd, sd, 0)))
        goto done;
    {
        float *py = PyArray_DATA(y), *pm = PyArray_DATA(mean), *pr = PyArray_DATA(rstd);
        const float *px = PyArray_DATA(x), *pw = w ? PyArray_DATA(w) : NULL, *pb = b ? PyArray_DATA(b) : NULL;
        Py_BEGIN_ALLOW_THREADS
        if (channels)
            be()->layernorm_channels_train(py, pm, pr, px, pw, pb, B, C, (size_t)rows, (float)eps);
        else
            be()->layernorm_train(py, pm, pr, px, pw, pb, (size_t)rows, C, (float)eps);
        Py_END_ALLOW_THREADS
    }
    res = vc_grad_tuple(3, &y, &mean, &rstd);
done:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    Py_XDECREF(y);
    Py_XDECREF(mean);
    Py_XDECREF(rstd);
    return res;
}

/* layernorm_backward(x, w (None: no affine, no dw/db), mean, rstd, dout, channels, need_dx, dw, db)
 * -> (dx, dw, db) */
static PyObject *op_layernorm_backward(PyObject *self, PyObject *args) {
    PyObject *xo, *wo, *mo, *ro, *go, *dwo, *dbo;
    int channels, need_dx, rows = 0, C = 0, B = 0;
    if (!PyArg_ParseTuple(args, "OOOOOppOO", &xo, &wo, &mo, &ro, &go, &channels, &need_dx, &dwo, &dbo)) return NULL;
    PyArrayObject *x = NULL, *w = NULL, *mean = NULL, *rstd = NULL, *g = NULL, *dx = NULL, *dw = NULL, *db = NULL;
    PyObject *res = NULL;
    npy_intp sd[NPY_MAXDIMS], cd[1];
    int snd;
    if (!(x = vc_py_float_array(xo, "x", channels ? 4 : -1)) || !(g = vc_py_float_array(go, "dout", -1)) ||
        !(mean = vc_py_float_array(mo, "mean", -1)) || !(rstd = vc_py_float_array(ro, "rstd", -1)))
        goto done;
    if (channels) {
        if (vc_grad_dim(PyArray_DIM(x, 0), "x", &B) || vc_grad_dim(PyArray_DIM(x, 1), "x", &C) ||
            vc_grad_dim(PyArray_DIM(x, 2) * PyArray_DIM(x, 3), "x", &rows))
            goto done;
        snd = 3;
        sd[0] = B, sd[1] = PyArray_DIM(x, 2), sd[2] = PyArray_DIM(x, 3);
    } else {
        if (rows_cols(x, "x", &rows, &C)) goto done;
        snd = PyArray_NDIM(x) - 1;
        for (int i = 0; i < snd; i++) sd[i] = PyArray_DIM(x, i);
    }
    cd[0] = C;
    if (vc_grad_shape(g, "dout", PyArray_NDIM(x), PyArray_DIMS(x)) || vc_grad_shape(mean, "mean", snd, sd) ||
        vc_grad_shape(rstd, "rstd", snd, sd) || opt_param(wo, "weight", C, &w))
        goto done;
    if (need_dx && !(dx = vc_grad_new(PyArray_NDIM(x), PyArray_DIMS(x), 0))) goto done;
    if (w && (!(dw = vc_grad_acc(dwo, "dw", 1, cd)) || !(db = vc_grad_acc(dbo, "db", 1, cd)))) goto done;
    {
        float *pdx = dx ? PyArray_DATA(dx) : NULL, *pdw = dw ? PyArray_DATA(dw) : NULL;
        float *pdb = db ? PyArray_DATA(db) : NULL;
        const float *pg = PyArray_DATA(g), *px = PyArray_DATA(x), *pm = PyArray_DATA(mean), *pr = PyArray_DATA(rstd);
        const float *pw = w ? PyArray_DATA(w) : NULL;
        Py_BEGIN_ALLOW_THREADS
        if (channels)
            be()->layernorm_channels_backward(pdx, pdw, pdb, pg, px, pm, pr, pw, B, C, (size_t)rows);
        else
            be()->layernorm_backward(pdx, pdw, pdb, pg, px, pm, pr, pw, (size_t)rows, C);
        Py_END_ALLOW_THREADS
    }
    res = vc_grad_tuple(3, &dx, &dw, &db);
done:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(mean);
    Py_XDECREF(rstd);
    Py_XDECREF(g);
    Py_XDECREF(dx);
    Py_XDECREF(dw);
    Py_XDECREF(db);
    return res;
}

typedef void (*act_bwd)(float *, const float *, const float *, size_t);

/* activation_backward(x, dout, kind) with kind "gelu", "gelu_tanh", "silu" or "relu" -> dx */
static PyObject *op_activation_backward(PyObject *self, PyObject *args) {
    PyObject *xo, *go;
    const char *kind;
    if (!PyArg_ParseTuple(args, "OOs", &xo, &go, &kind)) return NULL;
    act_bwd fn = !strcmp(kind, "gelu")        ? be()->gelu_backward
                 : !strcmp(kind, "gelu_tanh") ? be()->gelu_tanh_backward
                 : !strcmp(kind, "silu")      ? be()->silu_backward
                 : !strcmp(kind, "relu")      ? be()->relu_backward
                                              : NULL;
    if (!fn) return PyErr_Format(PyExc_ValueError, "unknown activation %s (gelu, gelu_tanh, silu, relu)", kind);
    PyArrayObject *x = NULL, *g = NULL, *dx = NULL;
    PyObject *res = NULL;
    if (!(x = vc_py_float_array(xo, "x", -1)) || !(g = vc_py_float_array(go, "dout", -1)) ||
        vc_grad_shape(g, "dout", PyArray_NDIM(x), PyArray_DIMS(x)) ||
        !(dx = vc_grad_new(PyArray_NDIM(x), PyArray_DIMS(x), 0)))
        goto done;
    {
        float *pdx = PyArray_DATA(dx);
        const float *pg = PyArray_DATA(g), *px = PyArray_DATA(x);
        const size_t n = (size_t)PyArray_SIZE(x);
        Py_BEGIN_ALLOW_THREADS fn(pdx, pg, px, n);
        Py_END_ALLOW_THREADS
    }
    res = (PyObject *)dx;
    dx = NULL;
done:
    Py_XDECREF(x);
    Py_XDECREF(g);
    Py_XDECREF(dx);
    return res;
}

/* softmax_backward(y, dy, scale) -> dx, y = softmax(scale * x) over the last dimension */
static PyObject *op_softmax_backward(PyObject *self, PyObject *args) {
    PyObject *yo, *go;
    double scale;
    int rows, cols;
    if (!PyArg_ParseTuple(args, "OOd", &yo, &go, &scale)) return NULL;
    PyArrayObject *y = NULL, *g = NULL, *dx = NULL;
    PyObject *res = NULL;
    if (!(y = vc_py_float_array(yo, "y", -1)) || !(g = vc_py_float_array(go, "dy", -1)) ||
        rows_cols(y, "y", &rows, &cols) || vc_grad_shape(g, "dy", PyArray_NDIM(y), PyArray_DIMS(y)) ||
        !(dx = vc_grad_new(PyArray_NDIM(y), PyArray_DIMS(y), 0)))
        goto done;
    {
        float *pdx = PyArray_DATA(dx);
        const float *pg = PyArray_DATA(g), *py = PyArray_DATA(y);
        Py_BEGIN_ALLOW_THREADS be()->softmax_backward(pdx, pg, py, (size_t)rows, cols, (float)scale);
        Py_END_ALLOW_THREADS
    }
    res = (PyObject *)dx;
    dx = NULL;
done:
    Py_XDECREF(y);
    Py_XDECREF(g);
    Py_XDECREF(dx);
    return res;
}

/* attention_backward(q, k, v [B,T,H*D], probs [B,H,T,T], dout [B,T,H*D], num_heads) -> (dq, dk, dv) */
static PyObject *op_attention_backward(PyObject *self, PyObject *args) {
    PyObject *qo, *ko, *vo, *po, *go;
    int H, B, T, C;
    double p_drop = 0.0;
    unsigned long long seed = 0;
    if (!PyArg_ParseTuple(args, "OOOOOi|dK", &qo, &ko, &vo, &po, &go, &H, &p_drop, &seed)) return NULL;
    if (!(p_drop >= 0.0 && p_drop < 1.0))
        return PyErr_Format(PyExc_ValueError, "attention dropout probability must be in [0, 1), got %g", p_drop);
    int threads_saved; /* one thread count for the per-thread scratch sized below and its kernel */
    vc_threads_pin(0, &threads_saved);
    PyArrayObject *q = NULL, *k = NULL, *v = NULL, *p = NULL, *g = NULL, *dq = NULL, *dk = NULL, *dv = NULL;
    PyObject *res = NULL;
    float *scratch = NULL;
    if (!(q = vc_py_float_array(qo, "q", 3)) || !(k = vc_py_float_array(ko, "k", 3)) ||
        !(v = vc_py_float_array(vo, "v", 3)) || !(p = vc_py_float_array(po, "probs", 4)) ||
        !(g = vc_py_float_array(go, "dout", 3)))
        goto done;
    if (vc_grad_dim(PyArray_DIM(q, 0), "q", &B) || vc_grad_dim(PyArray_DIM(q, 1), "q", &T) ||
        vc_grad_dim(PyArray_DIM(q, 2), "q", &C))
        goto done;
    if (H <= 0 || C % H || T > 65536) {
        PyErr_Format(PyExc_ValueError, "attention_backward: num_heads %d must divide the last dimension %d", H, C);
        goto done;
    }
    npy_intp pd[4] = {B, H, T, T};
    if (vc_grad_shape(k, "k", 3, PyArray_DIMS(q)) || vc_grad_shape(v, "v", 3, PyArray_DIMS(q)) ||
        vc_grad_shape(g, "dout", 3, PyArray_DIMS(q)) || vc_grad_shape(p, "probs", 4, pd))
        goto done;
    if (!(dq = vc_grad_new(3, PyArray_DIMS(q), 0)) || !(dk = vc_grad_new(3, PyArray_DIMS(q), 0)) ||
        !(dv = vc_grad_new(3, PyArray_DIMS(q), 0)))
        goto done;
    if (!(scratch = vc_grad_scratch(be()->attention_backward_scratch(B, T, H)))) goto done;
    {
        float *pdq = PyArray_DATA(dq), *pdk = PyArray_DATA(dk), *pdv = PyArray_DATA(dv);
        const float *pq = PyArray_DATA(q), *pk = PyArray_DATA(k), *pv = PyArray_DATA(v), *pp = PyArray_DATA(p);
        const float *pg = PyArray_DATA(g);
        Py_BEGIN_ALLOW_THREADS be()->attention_dropout_backward(pdq, pdk, pdv, C, pg, C, pq, pk, pv, pp, B, T, H,
                                                                C / H, (float)p_drop, (uint64_t)seed, scratch);
        Py_END_ALLOW_THREADS
    }
    res = vc_grad_tuple(3, &dq, &dk, &dv);
done:
    vc_threads_unpin(threads_saved);
    PyMem_RawFree(scratch);
    Py_XDECREF(q);
    Py_XDECREF(k);
    Py_XDECREF(v);
    Py_XDECREF(p);
    Py_XDECREF(g);
    Py_XDECREF(dq);
    Py_XDECREF(dk);
    Py_XDECREF(dv);
    return res;
}

/* conv2d_backward(x, w, dout, has_bias, stride(2), padding(2), dilation(2), groups, need_dx, dw, db, bf16=False);
 * bf16: the mixed-precision kernel (bf16 GEMMs, fp32 accumulation) */
static PyObject *op_conv2d_backward(PyObject *self, PyObject *args) {
    PyObject *xo, *wo, *go, *dwo, *dbo;
    int has_bias, sh, sw, ph, pw, dh, dw_, groups, need_dx, bf16 = 0;
    if (!PyArg_ParseTuple(args, "OOOp(ii)(ii)(ii)ipOO|p", &xo, &wo, &go, &has_bias, &sh, &sw, &ph, &pw, &dh, &dw_,
                          &groups, &need_dx, &dwo, &dbo, &bf16))
        return NULL;
    int threads_saved; /* one thread count for the per-thread scratch sized below and its kernel */
    vc_threads_pin(0, &threads_saved);
    PyArrayObject *x = NULL, *w = NULL, *g = NULL, *dx = NULL, *dw = NULL, *db = NULL;
    PyObject *res = NULL;
    float *scratch = NULL;
    int B, Ci, H, W, Co, kh, kw;
    if (!(x = vc_py_float_array(xo, "x", 4)) || !(w = vc_py_float_array(wo, "weight", 4)) ||
        !(g = vc_py_float_array(go, "dout", 4)))
        goto done;
    if (vc_grad_dim(PyArray_DIM(x, 0), "x", &B) || vc_grad_dim(PyArray_DIM(x, 1), "x", &Ci) ||
        vc_grad_dim(PyArray_DIM(x, 2), "x", &H) || vc_grad_dim(PyArray_DIM(x, 3), "x", &W) ||
        vc_grad_dim(PyArray_DIM(w, 0), "weight", &Co) || vc_grad_dim(PyArray_DIM(w, 2), "weight", &kh) ||
        vc_grad_dim(PyArray_DIM(w, 3), "weight", &kw))
        goto done;
    if (groups < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0 || dh < 1 || dw_ < 1 || Ci % groups || Co % groups ||
        PyArray_DIM(w, 1) != Ci / groups) {
        PyErr_SetString(PyExc_ValueError, "conv2d_backward: inconsistent shapes or arguments (weight must be "
                                          "(Co, Ci/groups, kh, kw); stride, dilation, groups >= 1, padding >= 0)");
        goto done;
    }
    const int Ho = vc_conv_out_size(H, kh, sh, ph, dh), Wo = vc_conv_out_size(W, kw, sw, pw, dw_);
    if (Ho < 1 || Wo < 1) {
        PyErr_SetString(PyExc_ValueError, "conv2d_backward: the kernel is larger than the padded input");
        goto done;
    }
    npy_intp od[4] = {B, Co, Ho, Wo}, bd[1] = {Co};
    if (vc_grad_shape(g, "dout", 4, od) || vc_grad_int_product((size_t)Ci / groups, kh, kw, "conv2d_backward") ||
        vc_grad_int_product(Ho, Wo, 1, "conv2d_backward") || vc_grad_int_product(H, W, 1, "conv2d_backward"))
        goto done;
    if (need_dx && !(dx = vc_grad_new(4, PyArray_DIMS(x), 0))) goto done;
    if (!(dw = vc_grad_acc(dwo, "dw", 4, PyArray_DIMS(w)))) goto done;
    if (has_bias && !(db = vc_grad_acc(dbo, "db", 1, bd))) goto done;
    const size_t ns = be()->conv2d_backward_scratch(B, Ci, H, W, Co, kh, kw, sh, sw, ph, pw, dh, dw_, groups);
    if (!(scratch = vc_grad_scratch(ns))) goto done;
    {
        float *pdx = dx ? PyArray_DATA(dx) : NULL, *pdw = PyArray_DATA(dw), *pdb = db ? PyArray_DATA(db) : NULL;
        const float *pg = PyArray_DATA(g), *px = PyArray_DATA(x), *pw_ = PyArray_DATA(w);
        void (*conv_bw)(float *, float *, float *, const float *, const float *, const float *, int, int, int, int,
                        int, int, int, int, int, int, int, int, int, int, float *) =
            bf16 ? be()->conv2d_backward_bf16 : be()->conv2d_backward;
        Py_BEGIN_ALLOW_THREADS conv_bw(pdx, pdw, pdb, pg, px, pw_, B, Ci, H, W, Co, kh, kw, sh, sw, ph, pw, dh, dw_,
                                       groups, scratch);
        Py_END_ALLOW_THREADS
    }
    res = vc_grad_tuple(3, &dx, &dw, &db);
done:
    vc_threads_unpin(threads_saved);
    PyMem_RawFree(scratch);
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(g);
    Py_XDECREF(dx);
    Py_XDECREF(dw);
    Py_XDECREF(db);
    return res;
}

/* patch_embed_backward(px [B,Cin,H,W], w [Cout,Cin,P,P], dout [B,G,Cout], need_dx, dw, db) -> (dpx, dw, db) */
static PyObject *op_patch_embed_backward(PyObject *self, PyObject *args) {
    PyObject *po, *wo, *go, *dwo, *dbo;
    int need_dx, B, Cin, Hi, Wi, Cout, P;
    if (!PyArg_ParseTuple(args, "OOOpOO", &po, &wo, &go, &need_dx, &dwo, &dbo)) return NULL;
    PyArrayObject *px = NULL, *w = NULL, *g = NULL, *dpx = NULL, *dw = NULL, *db = NULL;
    PyObject *res = NULL;
    float *tmp = NULL, *scratch = NULL;
    if (!(px = vc_py_float_array(po, "pixel_values", 4)) || !(w = vc_py_float_array(wo, "weight", 4)) ||
        !(g = vc_py_float_array(go, "dout", 3)))
        goto done;
    if (vc_grad_dim(PyArray_DIM(px, 0), "pixel_values", &B) || vc_grad_dim(PyArray_DIM(px, 1), "pixel_values", &Cin) ||
        vc_grad_dim(PyArray_DIM(px, 2), "pixel_values", &Hi) || vc_grad_dim(PyArray_DIM(px, 3), "pixel_values", &Wi) ||
        vc_grad_dim(PyArray_DIM(w, 0), "weight", &Cout) || vc_grad_dim(PyArray_DIM(w, 2), "weight", &P))
        goto done;
    if (PyArray_DIM(w, 1) != Cin || PyArray_DIM(w, 3) != P || Hi < P || Wi < P) {
        PyErr_SetString(PyExc_ValueError, "patch_embed_backward: weight must be (Cout, Cin, P, P) with P <= H, W");
        goto done;
    }
    if (vc_grad_int_product((size_t)Cin, P, P, "patch_embed_backward")) goto done;
    const int G = (Hi / P) * (Wi / P);
    npy_intp gd[3] = {B, G, Cout}, bd[1] = {Cout};
    if (vc_grad_shape(g, "dout", 3, gd)) goto done;
    if (need_dx && !(dpx = vc_grad_new(4, PyArray_DIMS(px), 0))) goto done;
    if (!(dw = vc_grad_acc(dwo, "dw", 4, PyArray_DIMS(w))) || !(db = vc_grad_acc(dbo, "db", 1, bd))) goto done;
    /* The kernel reads dout in the forward's [B, 1+G, Cout] layout (row 0: class token slot). */
    if (!(tmp = vc_grad_scratch((size_t)B * (G + 1) * Cout)) || !(scratch = vc_grad_scratch(be()->patch_embed_backward_scratch(B, Cin, Hi, Wi, P))))
        goto done;
    {
        float *pdx = dpx ? PyArray_DATA(dpx) : NULL, *pdw = PyArray_DATA(dw), *pdb = PyArray_DATA(db);
        const float *pg = PyArray_DATA(g), *pp = PyArray_DATA(px), *pw = PyArray_DATA(w);
        Py_BEGIN_ALLOW_THREADS
        for (int b = 0; b < B; b++) {
            memset(tmp + (size_t)b * (G + 1) * Cout, 0, sizeof(float) * Cout);
            memcpy(tmp + ((size_t)b * (G + 1) + 1) * Cout, pg + (size_t)b * G * Cout, sizeof(float) * G * Cout);
        }
        be()->patch_embed_backward(pdx, pdw, pdb, tmp, pp, pw, B, Cin, Hi, Wi, P, Cout, scratch);
        Py_END_ALLOW_THREADS
    }
    res = vc_grad_tuple(3, &dpx, &dw, &db);
done:
    PyMem_RawFree(tmp);
    PyMem_RawFree(scratch);
    Py_XDECREF(px);
    Py_XDECREF(w);
    Py_XDECREF(g);
    Py_XDECREF(dpx);
    Py_XDECREF(dw);
    Py_XDECREF(db);
    return res;
}

/* global_avg_pool_backward(dout [B,C], (H, W)) -> dx [B,C,H,W] */
static PyObject *op_global_avg_pool_backward(PyObject *self, PyObject *args) {
    PyObject *go;
    int H, W, B, C;
    if (!PyArg_ParseTuple(args, "O(ii)", &go, &H, &W)) return NULL;
    if (H < 1 || W < 1) return PyErr_Format(PyExc_ValueError, "global_avg_pool_backward: empty spatial size");
    PyArrayObject *g = vc_py_float_array(go, "dout", 2), *dx = NULL;
    if (!g) return NULL;
    if (!vc_grad_dim(PyArray_DIM(g, 0), "dout", &B) && !vc_grad_dim(PyArray_DIM(g, 1), "dout", &C)) {
        npy_intp d[4] = {B, C, H, W};
        if ((dx = vc_grad_new(4, d, 0))) {
            float *pdx = PyArray_DATA(dx);
            const float *pg = PyArray_DATA(g);
            Py_BEGIN_ALLOW_THREADS be()->global_avg_pool_backward(pdx, pg, B, C, (size_t)H * W);
            Py_END_ALLOW_THREADS
        }
    }
    Py_DECREF(g);
    return (PyObject *)dx;
}

/* scale_channels_add_backward(x [B,C,H,W], scale [C] or None, dout, need_dx, need_dresidual, dscale)
 * -> (dx, dscale (None without scale), dresidual) */
static PyObject *op_scale_channels_add_backward(PyObject *self, PyObject *args) {
    PyObject *xo, *so, *go, *dso;
    int need_dx, need_dres, B, C;
    if (!PyArg_ParseTuple(args, "OOOppO", &xo, &so, &go, &need_dx, &need_dres, &dso)) return NULL;
    PyArrayObject *x = NULL, *sc = NULL, *g = NULL, *dx = NULL, *ds = NULL, *dr = NULL;
    PyObject *res = NULL;
    if (!(x = vc_py_float_array(xo, "x", 4)) || !(g = vc_py_float_array(go, "dout", 4)) ||
        vc_grad_dim(PyArray_DIM(x, 0), "x", &B) || vc_grad_dim(PyArray_DIM(x, 1), "x", &C) ||
        vc_grad_shape(g, "dout", 4, PyArray_DIMS(x)) || opt_param(so, "scale", C, &sc))
        goto done;
    npy_intp cd[1] = {C};
    if ((need_dx && !(dx = vc_grad_new(4, PyArray_DIMS(x), 0))) ||
        (need_dres && !(dr = vc_grad_new(4, PyArray_DIMS(x), 0))) || (sc && !(ds = vc_grad_acc(dso, "dscale", 1, cd))))
        goto done;
    {
        float *pdx = dx ? PyArray_DATA(dx) : NULL, *pds = ds ? PyArray_DATA(ds) : NULL;
        float *pdr = dr ? PyArray_DATA(dr) : NULL;
        const float *pg = PyArray_DATA(g), *px = PyArray_DATA(x), *ps = sc ? PyArray_DATA(sc) : NULL;
        const size_t HW = (size_t)PyArray_DIM(x, 2) * PyArray_DIM(x, 3);
        Py_BEGIN_ALLOW_THREADS be()->scale_channels_add_backward(pdx, pds, pdr, pg, px, ps, B, C, HW);
        Py_END_ALLOW_THREADS
    }
    res = vc_grad_tuple(3, &dx, &ds, &dr);
done:
    Py_XDECREF(x);
    Py_XDECREF(sc);
    Py_XDECREF(g);
    Py_XDECREF(dx);
    Py_XDECREF(ds);
    Py_XDECREF(dr);
    return res;
}

/* resize_bilinear_backward(dout [B,C,Ho,Wo], (H, W)) -> dx [B,C,H,W] */
static PyObject *op_resize_bilinear_backward(PyObject *self, PyObject *args) {
    PyObject *go;
    int H, W, B, C, Ho, Wo;
    if (!PyArg_ParseTuple(args, "O(ii)", &go, &H, &W)) return NULL;
    if (H < 1 || W < 1 || H > 65536 || W > 65536)
        return PyErr_Format(PyExc_ValueError, "resize_bilinear_backward: input size must be in [1, 65536]");
    PyArrayObject *g = vc_py_float_array(go, "dout", 4), *dx = NULL;
    if (!g) return NULL;
    if (!vc_grad_dim(PyArray_DIM(g, 0), "dout", &B) && !vc_grad_dim(PyArray_DIM(g, 1), "dout", &C) &&
        !vc_grad_dim(PyArray_DIM(g, 2), "dout", &Ho) && !vc_grad_dim(PyArray_DIM(g, 3), "dout", &Wo)) {
        npy_intp d[4] = {B, C, H, W};
        if ((dx = vc_grad_new(4, d, 0))) {
            float *pdx = PyArray_DATA(dx);
            const float *pg = PyArray_DATA(g);
            Py_BEGIN_ALLOW_THREADS be()->resize_bilinear_backward(pdx, pg, B, C, H, W, Ho, Wo);
            Py_END_ALLOW_THREADS
        }
    }
    Py_DECREF(g);
    return (PyObject *)dx;
}

/* concat_channels_backward(dout [B, Ca+Cb, H, W], Ca) -> (da [B,Ca,H,W], db [B,Cb,H,W]) */
static PyObject *op_concat_channels_backward(PyObject *self, PyObject *args) {
    PyObject *go;
    int Ca, B, C;
    if (!PyArg_ParseTuple(args, "Oi", &go, &Ca)) return NULL;
    PyArrayObject *g = vc_py_float_array(go, "dout", 4), *da = NULL, *db = NULL;
    PyObject *res = NULL;
    if (!g || vc_grad_dim(PyArray_DIM(g, 0), "dout", &B) || vc_grad_dim(PyArray_DIM(g, 1), "dout", &C)) goto done;
    if (Ca < 1 || Ca >= C) {
        PyErr_Format(PyExc_ValueError, "concat_channels_backward: split %d must be in [1, %d)", Ca, C);
        goto done;
    }
    npy_intp a[4] = {B, Ca, PyArray_DIM(g, 2), PyArray_DIM(g, 3)}, b[4] = {B, C - Ca, a[2], a[3]};
    if (!(da = vc_grad_new(4, a, 0)) || !(db = vc_grad_new(4, b, 0))) goto done;
    {
        float *pa = PyArray_DATA(da), *pb = PyArray_DATA(db);
        const float *pg = PyArray_DATA(g);
        Py_BEGIN_ALLOW_THREADS be()->concat_channels_backward(pa, pb, pg, Ca, C - Ca, B, (size_t)a[2] * a[3]);
        Py_END_ALLOW_THREADS
    }
    res = vc_grad_tuple(2, &da, &db);
done:
    Py_XDECREF(g);
    Py_XDECREF(da);
    Py_XDECREF(db);
    return res;
}

static PyMethodDef methods[] = {
    {"op_linear_backward", op_linear_backward, METH_VARARGS,
     "linear_backward(x, w, dout, need_dx, kn, has_bias, dw, db) -> (dx, dw, db)"},
    {"op_layernorm_train", op_layernorm_train, METH_VARARGS, "layernorm_train(x, w, b, eps, channels) -> (y, mean, rstd)"},
    {"op_layernorm_backward", op_layernorm_backward, METH_VARARGS,
     "layernorm_backward(x, w, mean, rstd, dout, channels, need_dx, dw, db) -> (dx, dw, db)"},
    {"op_activation_backward", op_activation_backward, METH_VARARGS, "activation_backward(x, dout, kind) -> dx"},
    {"op_softmax_backward", op_softmax_backward, METH_VARARGS, "softmax_backward(y, dy, scale) -> dx"},
    {"op_attention_backward", op_attention_backward, METH_VARARGS,
     "attention_backward(q, k, v, probs, dout, num_heads, dropout_p=0.0, seed=0) -> (dq, dk, dv)"},
    {"op_conv2d_backward", op_conv2d_backward, METH_VARARGS,
     "conv2d_backward(x, w, dout, has_bias, stride, padding, dilation, groups, need_dx, dw, db, bf16=False) -> "
     "(dx, dw, db)"},
    {"op_patch_embed_backward", op_patch_embed_backward, METH_VARARGS,
     "patch_embed_backward(px, w, dout, need_dx, dw, db) -> (dpx, dw, db)"},
    {"op_global_avg_pool_backward", op_global_avg_pool_backward, METH_VARARGS,
     "global_avg_pool_backward(dout, (H, W)) -> dx"},
    {"op_scale_channels_add_backward", op_scale_channels_add_backward, METH_VARARGS,
     "scale_channels_add_backward(x, scale, dout, need_dx, need_dresidual, dscale) -> (dx, dscale, dresidual)"},
    {"op_resize_bilinear_backward", op_resize_bilinear_backward, METH_VARARGS,
     "resize_bilinear_backward(dout, (H, W)) -> dx"},
    {"op_concat_channels_backward", op_concat_channels_backward, METH_VARARGS,
     "concat_channels_backward(dout, Ca) -> (da, db)"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_ops_backward(PyObject *m) {
    if (PyModule_AddFunctions(m, methods)) return -1;
    return vc_py_register_ops_train(m);
}
