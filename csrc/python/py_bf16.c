/* visionc._C bf16 compute bindings: the bf16 GEMM and linear layer on NumPy float32 arrays
 * (inputs rounded to bf16 inside the kernel, fp32 accumulation, fp32 results), and the switch
 * between the AVX512_BF16 kernel and the plain-C path. GIL released around C work. */
#include "python/pyutil.h"

#include "backends/cpu/bf16.h"
#include "ops/backend.h"

static const vc_backend *be(void) { return vc_backend_cpu(); }

static int dim_ok(npy_intp d, const char *what) {
    if (d < 0 || d > (1 << 30)) {
        PyErr_Format(PyExc_ValueError, "%s: dimension %ld out of range", what, (long)d);
        return 0;
    }
    return 1;
}

/* gemm_bf16(a, b, trans_a=False, trans_b=False, c=None, beta=0.0) -> c = op(a) . op(b) + beta c.
 * a: [M,K] ([K,M] when trans_a); b: [K,N] ([N,K] when trans_b); c: a float32 [M,N] output
 * updated in place and returned, or None for a new array (beta must then be 0). */
static PyObject *op_gemm_bf16(PyObject *s, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"a", "b", "trans_a", "trans_b", "c", "beta", NULL};
    PyObject *ao, *bo, *co = Py_None;
    int ta = 0, tb = 0;
    double beta = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|ppOd", kwlist, &ao, &bo, &ta, &tb, &co, &beta)) return NULL;
    PyArrayObject *a = vc_py_float_array(ao, "a", 2), *b = NULL, *c = NULL;
    if (!a || !(b = vc_py_float_array(bo, "b", 2))) goto fail;
    const npy_intp M = PyArray_DIM(a, ta ? 1 : 0), K = PyArray_DIM(a, ta ? 0 : 1);
    const npy_intp Kb = PyArray_DIM(b, tb ? 1 : 0), N = PyArray_DIM(b, tb ? 0 : 1);
    if (!dim_ok(M, "a") || !dim_ok(K, "a") || !dim_ok(N, "b")) goto fail;
    if (Kb != K) {
        PyErr_Format(PyExc_ValueError, "gemm_bf16: inner dimensions differ (%ld vs %ld)", (long)K, (long)Kb);
        goto fail;
    }
    if (co == Py_None) {
        if (beta != 0.0) {
            PyErr_SetString(PyExc_ValueError, "gemm_bf16: beta needs an output array c");
            goto fail;
        }
        npy_intp dims[2] = {M, N};
        if (!(c = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32))) goto fail;
    } else {
        if (!(c = vc_py_out_array(co, "c"))) goto fail;
        if (PyArray_NDIM(c) != 2 || PyArray_DIM(c, 0) != M || PyArray_DIM(c, 1) != N) {
            PyErr_Format(PyExc_ValueError, "gemm_bf16: c must be (%ld, %ld)", (long)M, (long)N);
            goto fail;
        }
    }
    {
        const float *ap = PyArray_DATA(a), *bp = PyArray_DATA(b);
        float *cp = PyArray_DATA(c);
        const int lda = (int)PyArray_DIM(a, 1), ldb = (int)PyArray_DIM(b, 1);
        Py_BEGIN_ALLOW_THREADS be()->gemm_bf16(ta, tb, (int)M, (int)N, (int)K, ap, lda, bp, ldb, (float)beta, cp,
                                               (int)N);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(a);
    Py_DECREF(b);
    return (PyObject *)c;
fail:
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    return NULL;
}

/* linear_bf16(x[..., K], w[N, K], bias[N] or None) -> [..., N] */
static PyObject *op_linear_bf16(PyObject *s, PyObject *args) {
    PyObject *xo, *wo, *bo = Py_None;
    if (!PyArg_ParseTuple(args, "OO|O", &xo, &wo, &bo)) return NULL;
    PyArrayObject *x = vc_py_float_array(xo, "x", -1), *w = NULL, *b = NULL, *out = NULL;
    if (!x || !(w = vc_py_float_array(wo, "weight", 2))) goto done;
    const int nd = PyArray_NDIM(x);
    if (nd < 1) {
        PyErr_SetString(PyExc_ValueError, "x must have at least one dimension");
        goto done;
    }
    const npy_intp K = PyArray_DIM(x, nd - 1), N = PyArray_DIM(w, 0);
    const npy_intp rows = K ? PyArray_SIZE(x) / K : 0;
    if (!dim_ok(K, "x") || !dim_ok(N, "weight") || !dim_ok(rows, "x rows")) goto done;
    if (PyArray_DIM(w, 1) != K) {
        PyErr_Format(PyExc_ValueError, "weight must be (N, %ld) for x with last dimension %ld", (long)K, (long)K);
        goto done;
    }
    if (bo != Py_None) {
        if (!(b = vc_py_float_array(bo, "bias", 1))) goto done;
        if (PyArray_DIM(b, 0) != N) {
            PyErr_Format(PyExc_ValueError, "bias must have %ld elements", (long)N);
            goto done;
        }
    }
    npy_intp dims[NPY_MAXDIMS];
    for (int i = 0; i < nd - 1; i++) dims[i] = PyArray_DIM(x, i);
    dims[nd - 1] = N;
    if ((out = (PyArrayObject *)PyArray_SimpleNew(nd, dims, NPY_FLOAT32))) {
        float *o = PyArray_DATA(out);
        const float *xi = PyArray_DATA(x), *wi = PyArray_DATA(w), *bi = b ? PyArray_DATA(b) : NULL;
        Py_BEGIN_ALLOW_THREADS be()->linear_bf16(o, xi, wi, bi, (int)rows, (int)N, (int)K, 0);
        Py_END_ALLOW_THREADS
    }
done:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    return (PyObject *)out;
}

static PyObject *bf16_native(PyObject *s, PyObject *noargs) { return PyBool_FromLong(cpu_bf16_native()); }

static PyObject *bf16_set_native(PyObject *s, PyObject *arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    cpu_bf16_set_native(on);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"op_gemm_bf16", (PyCFunction)(void (*)(void))op_gemm_bf16, METH_VARARGS | METH_KEYWORDS,
     "gemm_bf16(a, b, trans_a=False, trans_b=False, c=None, beta=0.0): bf16 inputs, fp32 accumulation"},
    {"op_linear_bf16", op_linear_bf16, METH_VARARGS, "linear with bf16 inputs and fp32 accumulation"},
    {"bf16_native", bf16_native, METH_NOARGS, "True when the AVX512_BF16 kernel is in use"},
    {"bf16_set_native", bf16_set_native, METH_O, "bf16_set_native(False) forces the plain-C bf16 path (tests)"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_bf16(PyObject *m) { return PyModule_AddFunctions(m, methods); }
