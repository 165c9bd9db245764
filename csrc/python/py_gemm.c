/* visionc._C fp32 GEMM bindings, for tests and benchmarks: the GEMM every fp32 layer runs
 * (vc_sgemm) on NumPy arrays, with the choice between visionc's AVX-512 kernel and OpenBLAS
 * exposed so that both can be checked and timed in one process. GIL released around C work. */
#include <string.h>

#include "python/pyutil.h"

#include "backends/cpu/blas.h"
#include "backends/cpu/gemm_f32.h"

/* A 2-D float32 array whose rows are contiguous (strides[1] == 4) at any row stride, so a
 * slice of a wider array reaches the kernel with its leading dimension. Returns a new
 * reference (a C-contiguous copy when the layout is some other) and sets *ld, or NULL. */
static PyArrayObject *rows_array(PyObject *obj, const char *what, int writeable, int *ld) {
    if (!PyArray_Check(obj) || PyArray_TYPE((PyArrayObject *)obj) != NPY_FLOAT32 ||
        PyArray_NDIM((PyArrayObject *)obj) != 2) {
        PyErr_Format(PyExc_TypeError, "%s must be a 2-D float32 NumPy array", what);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    const npy_intp rows = PyArray_DIM(a, 0), cols = PyArray_DIM(a, 1);
    const npy_intp s0 = PyArray_STRIDE(a, 0), s1 = PyArray_STRIDE(a, 1);
    if (rows > (1 << 30) || cols > (1 << 30)) {
        PyErr_Format(PyExc_ValueError, "%s: dimensions out of range", what);
        return NULL;
    }
    const int empty = rows == 0 || cols == 0; /* no element is read or written: any strides do */
    const int strided_rows = empty || (PyArray_ISALIGNED(a) && PyArray_ISNOTSWAPPED(a) && (cols <= 1 || s1 == 4) &&
                                       (rows <= 1 || (s0 % 4 == 0 && s0 / 4 >= cols && s0 / 4 <= (1 << 30))));
    if (writeable && (!strided_rows || !PyArray_ISWRITEABLE(a))) {
        PyErr_Format(PyExc_TypeError, "%s must be writeable with contiguous rows", what);
        return NULL;
    }
    if (!strided_rows) {
        a = (PyArrayObject *)PyArray_FromAny(obj, PyArray_DescrFromType(NPY_FLOAT32), 2, 2,
                                             NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
        if (!a) return NULL;
        *ld = cols > 1 ? (int)cols : 1;
        return a;
    }
    Py_INCREF(obj);
    const npy_intp row_floats = rows > 1 && !empty ? s0 / 4 : cols;
    *ld = row_floats > 1 ? (int)row_floats : 1;
    return a;
}

/* gemm_f32(a, b, trans_a=False, trans_b=False, c=None, alpha=1.0, beta=0.0, backend="auto")
 *   -> c = alpha op(a) . op(b) + beta c
 * a: [M,K] ([K,M] when trans_a); b: [K,N] ([N,K] when trans_b); c: a float32 [M,N] output
 * updated in place and returned (rows may be strided), or None for a new, uninitialised array
 * (beta must then be 0: the kernel must not read it). backend: "auto" (vc_sgemm, what the
 * layers use), "avx512" (visionc's kernel) or "openblas". */
static PyObject *gemm_f32(PyObject *s, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"a", "b", "trans_a", "trans_b", "c", "alpha", "beta", "backend", NULL};
    PyObject *ao, *bo, *co = Py_None;
    int ta = 0, tb = 0, lda = 1, ldb = 1, ldc = 1;
    double alpha = 1.0, beta = 0.0;
    const char *backend = "auto";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|ppOdds", kwlist, &ao, &bo, &ta, &tb, &co, &alpha, &beta,
                                     &backend))
        return NULL;
    const int use = !strcmp(backend, "auto")       ? 0
                    : !strcmp(backend, "avx512")   ? 1
                    : !strcmp(backend, "openblas") ? 2
                                                   : -1;
    if (use < 0)
        return PyErr_Format(PyExc_ValueError, "backend must be 'auto', 'avx512' or 'openblas', got %s", backend);
    if (use == 1 && !vc_cpu()->avx512f) return PyErr_Format(PyExc_RuntimeError, "this CPU has no AVX-512F");
    PyArrayObject *a = rows_array(ao, "a", 0, &lda), *b = NULL, *c = NULL;
    if (!a || !(b = rows_array(bo, "b", 0, &ldb))) goto fail;
    const npy_intp M = PyArray_DIM(a, ta ? 1 : 0), K = PyArray_DIM(a, ta ? 0 : 1);
    const npy_intp Kb = PyArray_DIM(b, tb ? 1 : 0), N = PyArray_DIM(b, tb ? 0 : 1);
    if (Kb != K) {
        PyErr_Format(PyExc_ValueError, "gemm_f32: inner dimensions differ (%ld vs %ld)", (long)K, (long)Kb);
        goto fail;
    }
    if (co == Py_None) {
        if (beta != 0.0) {
            PyErr_SetString(PyExc_ValueError, "gemm_f32: beta needs an output array c");
            goto fail;
        }
        npy_intp dims[2] = {M, N};
        if (!(c = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32))) goto fail;
        ldc = N > 1 ? (int)N : 1;
    } else {
        if (!(c = rows_array(co, "c", 1, &ldc))) goto fail;
        if (PyArray_DIM(c, 0) != M || PyArray_DIM(c, 1) != N) {
            PyErr_Format(PyExc_ValueError, "gemm_f32: c must be (%ld, %ld)", (long)M, (long)N);
            goto fail;
        }
    }
    {
        const float *ap = PyArray_DATA(a), *bp = PyArray_DATA(b);
        float *cp = PyArray_DATA(c);
        const enum CBLAS_TRANSPOSE tra = ta ? CblasTrans : CblasNoTrans, trb = tb ? CblasTrans : CblasNoTrans;
        int failed = 0;
        Py_BEGIN_ALLOW_THREADS;
        if (use == 0)
            vc_sgemm(CblasRowMajor, tra, trb, (int)M, (int)N, (int)K, (float)alpha, ap, lda, bp, ldb, (float)beta, cp,
                     ldc);
        else if (use == 1)
            failed = cpu_gemm_f32_avx512(ta, tb, (int)M, (int)N, (int)K, (float)alpha, ap, lda, bp, ldb, (float)beta,
                                         cp, ldc);
        else
            scipy_cblas_sgemm(CblasRowMajor, tra, trb, (int)M, (int)N, (int)K, (float)alpha, ap, lda, bp, ldb,
                              (float)beta, cp, ldc);
        Py_END_ALLOW_THREADS;
        if (failed) {
            PyErr_NoMemory();
            goto fail;
        }
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

/* gemm_f32_batch(a, b, trans_a=False, trans_b=False, c=None, alpha=1.0, beta=0.0, backend="auto")
 *   -> c[i] = alpha op(a[i]) . op(b[i]) + beta c[i] for every i: vc_sgemm_batch_strided on
 * C-contiguous 3-D arrays (backend "openblas": OpenBLAS's own batch routine). */
static PyObject *gemm_f32_batch(PyObject *s, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"a", "b", "trans_a", "trans_b", "c", "alpha", "beta", "backend", NULL};
    PyObject *ao, *bo, *co = Py_None;
    int ta = 0, tb = 0;
    double alpha = 1.0, beta = 0.0;
    const char *backend = "auto";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|ppOdds", kwlist, &ao, &bo, &ta, &tb, &co, &alpha, &beta,
                                     &backend))
        return NULL;
    const int openblas = !strcmp(backend, "openblas");
    if (!openblas && strcmp(backend, "auto"))
        return PyErr_Format(PyExc_ValueError, "backend must be 'auto' or 'openblas', got %s", backend);
    PyArrayObject *a = vc_py_float_array(ao, "a", 3), *b = NULL, *c = NULL;
    if (!a || !(b = vc_py_float_array(bo, "b", 3))) goto fail;
    const npy_intp count = PyArray_DIM(a, 0), M = PyArray_DIM(a, ta ? 2 : 1), K = PyArray_DIM(a, ta ? 1 : 2);
    const npy_intp N = PyArray_DIM(b, tb ? 1 : 2);
    if (PyArray_DIM(b, 0) != count || PyArray_DIM(b, tb ? 2 : 1) != K) {
        PyErr_SetString(PyExc_ValueError, "gemm_f32_batch: a and b disagree on the batch or inner dimension");
        goto fail;
    }
    if (PyArray_SIZE(a) > (1 << 30) || PyArray_SIZE(b) > (1 << 30) || count * M * N > (1 << 30)) {
        PyErr_SetString(PyExc_ValueError, "gemm_f32_batch: arrays too large for 32-bit strides");
        goto fail;
    }
    if (co == Py_None) {
        if (beta != 0.0) {
            PyErr_SetString(PyExc_ValueError, "gemm_f32_batch: beta needs an output array c");
            goto fail;
        }
        npy_intp dims[3] = {count, M, N};
        if (!(c = (PyArrayObject *)PyArray_SimpleNew(3, dims, NPY_FLOAT32))) goto fail;
    } else {
        if (!(c = vc_py_out_array(co, "c"))) goto fail;
        if (PyArray_NDIM(c) != 3 || PyArray_DIM(c, 0) != count || PyArray_DIM(c, 1) != M || PyArray_DIM(c, 2) != N) {
            PyErr_Format(PyExc_ValueError, "gemm_f32_batch: c must be (%ld, %ld, %ld)", (long)count, (long)M, (long)N);
            goto fail;
        }
    }
    {
        const float *ap = PyArray_DATA(a), *bp = PyArray_DATA(b);
        float *cp = PyArray_DATA(c);
        const enum CBLAS_TRANSPOSE tra = ta ? CblasTrans : CblasNoTrans, trb = tb ? CblasTrans : CblasNoTrans;
        const int lda = (int)(ta ? M : K), ldb = (int)(tb ? K : N), ldc = (int)N;
        const int sa = (int)(M * K), sb = (int)(K * N), sc = (int)(M * N);
        Py_BEGIN_ALLOW_THREADS;
        if (openblas)
            scipy_cblas_sgemm_batch_strided(CblasRowMajor, tra, trb, (int)M, (int)N, (int)K, (float)alpha, ap,
                                            lda > 1 ? lda : 1, sa, bp, ldb > 1 ? ldb : 1, sb, (float)beta, cp,
                                            ldc > 1 ? ldc : 1, sc, (int)count);
        else
            vc_sgemm_batch_strided(CblasRowMajor, tra, trb, (int)M, (int)N, (int)K, (float)alpha, ap,
                                   lda > 1 ? lda : 1, sa, bp, ldb > 1 ? ldb : 1, sb, (float)beta, cp,
                                   ldc > 1 ? ldc : 1, sc, (int)count);
        Py_END_ALLOW_THREADS;
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

static PyObject *gemm_f32_backend(PyObject *s, PyObject *noargs) {
    return PyUnicode_FromString(vc_sgemm_route() == VC_GEMM_AVX512 ? "avx512" : "openblas");
}

static PyMethodDef methods[] = {
    {"gemm_f32", (PyCFunction)(void (*)(void))gemm_f32, METH_VARARGS | METH_KEYWORDS,
     "gemm_f32(a, b, trans_a=False, trans_b=False, c=None, alpha=1.0, beta=0.0, backend='auto'): "
     "alpha op(a) . op(b) + beta c in fp32"},
    {"gemm_f32_batch", (PyCFunction)(void (*)(void))gemm_f32_batch, METH_VARARGS | METH_KEYWORDS,
     "gemm_f32_batch(a, b, trans_a=False, trans_b=False, c=None, alpha=1.0, beta=0.0, backend='auto'): "
     "gemm_f32 on each matrix of C-contiguous 3-D arrays (vc_sgemm_batch_strided)"},
    {"gemm_f32_backend", gemm_f32_backend, METH_NOARGS,
     "'avx512' when fp32 GEMMs run on visionc's kernel, 'openblas' otherwise (no AVX-512F, or VISIONC_GEMM=openblas)"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_gemm(PyObject *m) { return PyModule_AddFunctions(m, methods); }
