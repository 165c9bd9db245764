/* visionc._C training ops that are not a layer's backward: cross-entropy (loss + gradient),
 * dropout and drop path (seeded, regenerable masks), BatchNorm2d (train/eval forward and
 * backward) and the gradient helpers add_into / scale. Registered by py_ops_backward.c.
 * The GIL is released around the kernels; C statuses become exceptions once it is back. */
#include <math.h>
#include <string.h>

#include "python/py_grad_util.h"

static const vc_backend *be(void) { return vc_backend_cpu(); }

/* cross_entropy(logits [M, Ncls], labels [M] integer, label_smoothing, ignore_index, need_grad)
 * -> (loss: float, dlogits [M, Ncls] or None) */
static PyObject *op_cross_entropy(PyObject *self, PyObject *args) {
    PyObject *zo, *lo;
    double eps;
    long long ignore;
    int need_grad, M, N;
    if (!PyArg_ParseTuple(args, "OOdLp", &zo, &lo, &eps, &ignore, &need_grad)) return NULL;
    if (!PyArray_Check(lo) || !PyArray_ISINTEGER((PyArrayObject *)lo))
        return PyErr_Format(PyExc_TypeError, "labels must be an integer NumPy array (int64 class indices)");
    PyArrayObject *z = NULL, *lab = NULL, *dz = NULL;
    PyObject *res = NULL;
    if (!(z = vc_py_float_array(zo, "logits", 2)) || vc_grad_dim(PyArray_DIM(z, 0), "logits", &M) ||
        vc_grad_dim(PyArray_DIM(z, 1), "logits", &N))
        goto done;
    /* Any integer dtype is widened to int64 (a copy only when it is not already int64). */
    if (!(lab = (PyArrayObject *)PyArray_FROM_OTF(lo, NPY_INT64, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST))) goto done;
    if (PyArray_NDIM(lab) != 1 || PyArray_DIM(lab, 0) != M) {
        PyErr_Format(PyExc_ValueError, "labels must have shape (%d,) to match logits (%d, %d)", M, M, N);
        goto done;
    }
    if (!(eps >= 0.0 && eps <= 1.0)) {
        PyErr_Format(PyExc_ValueError, "label_smoothing must be in [0, 1], got %g", eps);
        goto done;
    }
    if (need_grad && !(dz = vc_grad_new(2, PyArray_DIMS(z), 0))) goto done;
    {
        float loss = NAN, *pdz = dz ? PyArray_DATA(dz) : NULL;
        const float *pz = PyArray_DATA(z);
        const int64_t *pl = PyArray_DATA(lab);
        vc_status st;
        Py_BEGIN_ALLOW_THREADS st = be()->cross_entropy(&loss, pdz, pz, pl, M, N, (float)eps, (int64_t)ignore);
        Py_END_ALLOW_THREADS
        if (st != VC_OK) {
            vc_py_raise(st);
            goto done;
        }
        PyObject *pyloss = PyFloat_FromDouble(loss);
        if (!pyloss) goto done;
        res = Py_BuildValue("(NO)", pyloss, dz ? (PyObject *)dz : Py_None);
    }
done:
    Py_XDECREF(z);
    Py_XDECREF(lab);
    Py_XDECREF(dz);
    return res;
}

/* dropout(x, p, seed) -> y;  drop_path(x [B, ...], p, seed) -> y. Backward: the same call on dout. */
static PyObject *dropout_common(PyObject *args, int per_sample) {
    PyObject *xo;
    double p;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OdK", &xo, &p, &seed)) return NULL;
    if (!(p >= 0.0 && p <= 1.0)) return PyErr_Format(PyExc_ValueError, "dropout probability must be in [0, 1], got %g", p);
    PyArrayObject *x = vc_py_float_array(xo, "x", -1), *y = NULL;
    if (!x) return NULL;
    int B = 0;
    if (per_sample && (PyArray_NDIM(x) < 1 || vc_grad_dim(PyArray_DIM(x, 0), "x (batch dimension)", &B))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "drop_path: x needs a batch dimension");
    } else if ((y = vc_grad_new(PyArray_NDIM(x), PyArray_DIMS(x), 0))) {
        float *py = PyArray_DATA(y);
        const float *px = PyArray_DATA(x);
        const size_t n = (size_t)PyArray_SIZE(x);
        Py_BEGIN_ALLOW_THREADS
        if (per_sample)
            be()->drop_path(py, px, B, n / (size_t)B, (float)p, (uint64_t)seed);
        else
            be()->dropout(py, px, n, (float)p, (uint64_t)seed);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(x);
    return (PyObject *)y;
}
static PyObject *op_dropout(PyObject *self, PyObject *args) { return dropout_common(args, 0); }
static PyObject *op_drop_path(PyObject *self, PyObject *args) { return dropout_common(args, 1); }

/* Optional [C] float32 input (None -> NULL); writeable selects an in-place output array. */
static int opt_vec(PyObject *o, const char *what, npy_intp C, int writeable, PyArrayObject **out) {
    *out = NULL;
    if (o == Py_None) return 0;
    npy_intp d[1] = {C};
    *out = writeable ? vc_py_out_array(o, what) : vc_py_float_array(o, what, 1);
    return *out && !vc_grad_shape(*out, what, 1, d) ? 0 : -1;
}

/* batchnorm_forward(x [B,C,H,W], gamma, beta, running_mean, running_var (each [C] or None),
 * training, momentum, eps) -> (y, save_mean [C], save_rstd [C]); running stats updated in place. */
static PyObject *op_batchnorm_forward(PyObject *self, PyObject *args) {
    PyObject *xo, *go, *bo, *mo, *vo;
    int training, B, C;
    double momentum, eps;
    if (!PyArg_ParseTuple(args, "OOOOOpdd", &xo, &go, &bo, &mo, &vo, &training, &momentum, &eps)) return NULL;
    PyArrayObject *x = NULL, *gam = NULL, *bet = NULL, *rm = NULL, *rv = NULL, *y = NULL, *sm = NULL, *sr = NULL;
    PyObject *res = NULL;
    if (!(x = vc_py_float_array(xo, "x", 4)) || vc_grad_dim(PyArray_DIM(x, 0), "x", &B) ||
        vc_grad_dim(PyArray_DIM(x, 1), "x", &C) || opt_vec(go, "weight", C, 0, &gam) || opt_vec(bo, "bias", C, 0, &bet) ||
        opt_vec(mo, "running_mean", C, 1, &rm) || opt_vec(vo, "running_var", C, 1, &rv))
        goto done;
    if (!(momentum >= 0.0 && momentum <= 1.0) || !(eps > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "batch_norm: momentum must be in [0, 1] and eps positive");
        goto done;
    }
    if (!rm != !rv) {
        PyErr_SetString(PyExc_ValueError, "batch_norm: give both running_mean and running_var, or neither");
        goto done;
    }
    npy_intp cd[1] = {C};
    if (!(y = vc_grad_new(4, PyArray_DIMS(x), 0)) || !(sm = vc_grad_new(1, cd, 0)) || !(sr = vc_grad_new(1, cd, 0)))
        goto done;
    {
        float *py = PyArray_DATA(y), *psm = PyArray_DATA(sm), *psr = PyArray_DATA(sr);
        float *prm = rm ? PyArray_DATA(rm) : NULL, *prv = rv ? PyArray_DATA(rv) : NULL;
        const float *px = PyArray_DATA(x), *pg = gam ? PyArray_DATA(gam) : NULL, *pb = bet ? PyArray_DATA(bet) : NULL;
        const size_t HW = (size_t)PyArray_DIM(x, 2) * PyArray_DIM(x, 3);
        vc_status st;
        Py_BEGIN_ALLOW_THREADS st = be()->batchnorm_forward(py, psm, psr, prm, prv, px, pg, pb, B, C, HW,
                                                            (float)momentum, (float)eps, training);
        Py_END_ALLOW_THREADS
        if (st != VC_OK) {
            vc_py_raise(st);
            goto done;
        }
    }
    res = vc_grad_tuple(3, &y, &sm, &sr);
done:
    Py_XDECREF(x);
    Py_XDECREF(gam);
    Py_XDECREF(bet);
    Py_XDECREF(rm);
    Py_XDECREF(rv);
    Py_XDECREF(y);
    Py_XDECREF(sm);
    Py_XDECREF(sr);
    return res;
}

/* batchnorm_backward(x, gamma or None, save_mean, save_rstd, dout, training, need_dx, dgamma, dbeta)
 * -> (dx, dgamma, dbeta); dgamma/dbeta are None without gamma (no affine). */
static PyObject *op_batchnorm_backward(PyObject *self, PyObject *args) {
    PyObject *xo, *go, *mo, *ro, *dyo, *dgo, *dbo;
    int training, need_dx, B, C;
    if (!PyArg_ParseTuple(args, "OOOOOppOO", &xo, &go, &mo, &ro, &dyo, &training, &need_dx, &dgo, &dbo)) return NULL;
    PyArrayObject *x = NULL, *gam = NULL, *sm = NULL, *sr = NULL, *dy = NULL, *dx = NULL, *dg = NULL, *db = NULL;
    PyObject *res = NULL;
    if (!(x = vc_py_float_array(xo, "x", 4)) || vc_grad_dim(PyArray_DIM(x, 0), "x", &B) ||
        vc_grad_dim(PyArray_DIM(x, 1), "x", &C) || opt_vec(go, "weight", C, 0, &gam))
        goto done;
    npy_intp cd[1] = {C};
    if (!(sm = vc_py_float_array(mo, "save_mean", 1)) || vc_grad_shape(sm, "save_mean", 1, cd) ||
        !(sr = vc_py_float_array(ro, "save_rstd", 1)) || vc_grad_shape(sr, "save_rstd", 1, cd) ||
        !(dy = vc_py_float_array(dyo, "dout", 4)) || vc_grad_shape(dy, "dout", 4, PyArray_DIMS(x)))
        goto done;
    if (need_dx && !(dx = vc_grad_new(4, PyArray_DIMS(x), 0))) goto done;
    if (gam && (!(dg = vc_grad_acc(dgo, "dweight", 1, cd)) || !(db = vc_grad_acc(dbo, "dbias", 1, cd)))) goto done;
    {
        float *pdx = dx ? PyArray_DATA(dx) : NULL, *pdg = dg ? PyArray_DATA(dg) : NULL;
        float *pdb = db ? PyArray_DATA(db) : NULL;
        const float *px = PyArray_DATA(x), *pg = gam ? PyArray_DATA(gam) : NULL, *psm = PyArray_DATA(sm);
        const float *psr = PyArray_DATA(sr), *pdy = PyArray_DATA(dy);
        const size_t HW = (size_t)PyArray_DIM(x, 2) * PyArray_DIM(x, 3);
        Py_BEGIN_ALLOW_THREADS be()->batchnorm_backward(pdx, pdg, pdb, pdy, px, psm, psr, pg, B, C, HW, training);
        Py_END_ALLOW_THREADS
    }
    res = vc_grad_tuple(3, &dx, &dg, &db);
done:
    Py_XDECREF(x);
    Py_XDECREF(gam);
    Py_XDECREF(sm);
    Py_XDECREF(sr);
    Py_XDECREF(dy);
    Py_XDECREF(dx);
    Py_XDECREF(dg);
    Py_XDECREF(db);
    return res;
}

/* add_into(acc, x): acc += x in place (acc writeable float32, same shape); returns acc. */
static PyObject *op_add_into(PyObject *self, PyObject *args) {
    PyObject *ao, *xo;
    if (!PyArg_ParseTuple(args, "OO", &ao, &xo)) return NULL;
    PyArrayObject *acc = vc_py_out_array(ao, "acc"), *x = NULL;
    PyObject *res = NULL;
    if (!acc || !(x = vc_py_float_array(xo, "x", -1)) || vc_grad_shape(x, "x", PyArray_NDIM(acc), PyArray_DIMS(acc)))
        goto done;
    {
        float *pa = PyArray_DATA(acc);
        const float *px = PyArray_DATA(x);
        const size_t n = (size_t)PyArray_SIZE(acc);
        Py_BEGIN_ALLOW_THREADS be()->add_into(pa, px, n);
        Py_END_ALLOW_THREADS
    }
    res = (PyObject *)acc;
    acc = NULL;
done:
    Py_XDECREF(acc);
    Py_XDECREF(x);
    return res;
}

/* scale(x, alpha) -> alpha * x (a new array) */
static PyObject *op_scale(PyObject *self, PyObject *args) {
    PyObject *xo;
    double alpha;
    if (!PyArg_ParseTuple(args, "Od", &xo, &alpha)) return NULL;
    PyArrayObject *x = vc_py_float_array(xo, "x", -1), *y = NULL;
    if (!x) return NULL;
    if ((y = vc_grad_new(PyArray_NDIM(x), PyArray_DIMS(x), 0))) {
        float *py = PyArray_DATA(y);
        const float *px = PyArray_DATA(x);
        const size_t n = (size_t)PyArray_SIZE(x);
        Py_BEGIN_ALLOW_THREADS be()->scale(py, px, (float)alpha, n);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(x);
    return (PyObject *)y;
}

static PyMethodDef methods[] = {
    {"op_cross_entropy", op_cross_entropy, METH_VARARGS,
     "cross_entropy(logits, labels, label_smoothing, ignore_index, need_grad) -> (loss, dlogits)"},
    {"op_dropout", op_dropout, METH_VARARGS, "dropout(x, p, seed) -> y (backward: the same call on dout)"},
    {"op_drop_path", op_drop_path, METH_VARARGS, "drop_path(x, p, seed) -> y (backward: the same call on dout)"},
    {"op_batchnorm_forward", op_batchnorm_forward, METH_VARARGS,
     "batchnorm_forward(x, w, b, running_mean, running_var, training, momentum, eps) -> (y, mean, rstd)"},
    {"op_batchnorm_backward", op_batchnorm_backward, METH_VARARGS,
     "batchnorm_backward(x, w, mean, rstd, dout, training, need_dx, dw, db) -> (dx, dw, db)"},
    {"op_add_into", op_add_into, METH_VARARGS, "add_into(acc, x): acc += x in place; returns acc"},
    {"op_scale", op_scale, METH_VARARGS, "scale(x, alpha) -> alpha * x"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_ops_train(PyObject *m) { return PyModule_AddFunctions(m, methods); }
