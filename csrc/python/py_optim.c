/* visionc._C optim_* functions: the optimizer kernels of csrc/train on lists of NumPy arrays.
 *
 * Parameters and optimizer state are updated in place, so they must be writeable
 * C-contiguous float32 arrays; gradients need only be float32 (a strided one is copied).
 * Each call holds a reference to every array, checks that sizes agree, and releases the
 * GIL around the C work. visionc.optim is the Python API over these. */
#include "python/pyutil.h"

#include "train/optim.h"

static PyObject *new_none(void) { Py_RETURN_NONE; }

/* New references to each array of a list, their data pointers and sizes. */
typedef struct {
    Py_ssize_t n;
    PyObject **refs;
    float **data;
    size_t *size;
} arrays;

static void arrays_free(arrays *a) {
    if (a->refs)
        for (Py_ssize_t i = 0; i < a->n; i++) Py_XDECREF(a->refs[i]);
    PyMem_Free(a->refs);
    PyMem_Free(a->data);
    PyMem_Free(a->size);
    a->refs = NULL;
    a->data = NULL;
    a->size = NULL;
}

/* Fills `a` from the sequence `seq`. n < 0: any length, else exactly n. out: the arrays are
 * written in place. Returns 0, or -1 with an exception set (a is then released). */
static int arrays_get(arrays *a, PyObject *seq, Py_ssize_t n, const char *what, int out) {
    a->refs = NULL;
    a->data = NULL;
    a->size = NULL;
    a->n = 0;
    PyObject *fast = PySequence_Fast(seq, "");
    if (!fast) {
        PyErr_Format(PyExc_TypeError, "%s must be a list of arrays, got %s", what, Py_TYPE(seq)->tp_name);
        return -1;
    }
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    if (n >= 0 && len != n) {
        PyErr_Format(PyExc_ValueError, "%s has %zd arrays, expected %zd", what, len, n);
        Py_DECREF(fast);
        return -1;
    }
    size_t cnt = len ? (size_t)len : 1;
    a->refs = PyMem_Calloc(cnt, sizeof *a->refs);
    a->data = PyMem_Calloc(cnt, sizeof *a->data);
    a->size = PyMem_Calloc(cnt, sizeof *a->size);
    if (!a->refs || !a->data || !a->size) {
        PyErr_NoMemory();
        goto fail;
    }
    a->n = len;
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        char name[96];
        PyOS_snprintf(name, sizeof name, "%s[%zd]", what, i);
        PyArrayObject *arr = out ? vc_py_out_array(item, name) : vc_py_float_array(item, name, -1);
        if (!arr) goto fail;
        a->refs[i] = (PyObject *)arr;
        a->data[i] = PyArray_DATA(arr);
        a->size[i] = (size_t)PyArray_SIZE(arr);
    }
    Py_DECREF(fast);
    return 0;
fail:
    Py_DECREF(fast);
    arrays_free(a);
    return -1;
}

/* Every array of `b` must have as many elements as the matching one of `a`. */
static int same_sizes(const arrays *a, const arrays *b, const char *what_a, const char *what_b) {
    for (Py_ssize_t i = 0; i < a->n; i++)
        if (a->size[i] != b->size[i]) {
            PyErr_Format(PyExc_ValueError, "%s[%zd] has %zu elements but %s[%zd] has %zu", what_b, i, b->size[i],
                         what_a, i, a->size[i]);
            return -1;
        }
    return 0;
}

/* optim_adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs or None, steps,
 *            lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled) -> None */
static PyObject *optim_adam(PyObject *self, PyObject *args) {
    PyObject *po, *go, *mo, *vo, *xo, *so;
    vc_adam_hparams h;
    if (!PyArg_ParseTuple(args, "OOOOOOdddddpp", &po, &go, &mo, &vo, &xo, &so, &h.lr, &h.beta1, &h.beta2, &h.eps,
                          &h.weight_decay, &h.amsgrad, &h.decoupled))
        return NULL;
    arrays P = {0}, G = {0}, M = {0}, V = {0}, X = {0};
    vc_adam_tensor *t = NULL;
    PyObject *steps = NULL, *res = NULL;
    if (arrays_get(&P, po, -1, "params", 1) || arrays_get(&G, go, P.n, "grads", 0) ||
        arrays_get(&M, mo, P.n, "exp_avgs", 1) || arrays_get(&V, vo, P.n, "exp_avg_sqs", 1))
        goto done;
    if (h.amsgrad && arrays_get(&X, xo, P.n, "max_exp_avg_sqs", 1)) goto done;
    if (same_sizes(&P, &G, "params", "grads") || same_sizes(&P, &M, "params", "exp_avgs") ||
        same_sizes(&P, &V, "params", "exp_avg_sqs") || (h.amsgrad && same_sizes(&P, &X, "params", "max_exp_avg_sqs")))
        goto done;
    if (!(steps = PySequence_Fast(so, "steps must be a list of ints"))) goto done;
    if (PySequence_Fast_GET_SIZE(steps) != P.n) {
        PyErr_Format(PyExc_ValueError, "steps has %zd entries, expected %zd", PySequence_Fast_GET_SIZE(steps), P.n);
        goto done;
    }
    if (!(t = PyMem_Calloc(P.n ? (size_t)P.n : 1, sizeof *t))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < P.n; i++) {
        long long s = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(steps, i));
        if (s == -1 && PyErr_Occurred()) goto done;
        t[i] = (vc_adam_tensor){P.data[i], G.data[i], M.data[i], V.data[i], h.amsgrad ? X.data[i] : NULL, P.size[i], s};
    }
    vc_status st;
    Py_BEGIN_ALLOW_THREADS st = vc_adam_update(t, (size_t)P.n, &h);
    Py_END_ALLOW_THREADS
    if (st != VC_OK) vc_py_raise(st);
    else res = new_none();
done:
    PyMem_Free(t);
    Py_XDECREF(steps);
    arrays_free(&P);
    arrays_free(&G);
    arrays_free(&M);
    arrays_free(&V);
    arrays_free(&X);
    return res;
}

/* optim_sgd(params, grads, momentum_buffers or None, init_flags or None,
 *           lr, momentum, dampening, weight_decay, nesterov) -> None */
static PyObject *optim_sgd(PyObject *self, PyObject *args) {
    PyObject *po, *go, *bo, *fo;
    vc_sgd_hparams h;
    if (!PyArg_ParseTuple(args, "OOOOddddp", &po, &go, &bo, &fo, &h.lr, &h.momentum, &h.dampening, &h.weight_decay,
                          &h.nesterov))
        return NULL;
    arrays P = {0}, G = {0}, B = {0};
    vc_sgd_tensor *t = NULL;
    PyObject *flags = NULL, *res = NULL;
    const int mom = h.momentum != 0;
    if (arrays_get(&P, po, -1, "params", 1) || arrays_get(&G, go, P.n, "grads", 0) ||
        same_sizes(&P, &G, "params", "grads"))
        goto done;
    if (mom) {
        if (arrays_get(&B, bo, P.n, "momentum_buffers", 1) || same_sizes(&P, &B, "params", "momentum_buffers"))
            goto done;
        if (!(flags = PySequence_Fast(fo, "init_flags must be a list of bools"))) goto done;
        if (PySequence_Fast_GET_SIZE(flags) != P.n) {
            PyErr_Format(PyExc_ValueError, "init_flags has %zd entries, expected %zd", PySequence_Fast_GET_SIZE(flags),
                         P.n);
            goto done;
        }
    }
    if (!(t = PyMem_Calloc(P.n ? (size_t)P.n : 1, sizeof *t))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < P.n; i++) {
        int init = 0;
        if (mom && (init = PyObject_IsTrue(PySequence_Fast_GET_ITEM(flags, i))) < 0) goto done;
        t[i] = (vc_sgd_tensor){P.data[i], G.data[i], mom ? B.data[i] : NULL, P.size[i], init};
    }
    vc_status st;
    Py_BEGIN_ALLOW_THREADS st = vc_sgd_update(t, (size_t)P.n, &h);
    Py_END_ALLOW_THREADS
    if (st != VC_OK) vc_py_raise(st);
    else res = new_none();
done:
    PyMem_Free(t);
    Py_XDECREF(flags);
    arrays_free(&P);
    arrays_free(&G);
    arrays_free(&B);
    return res;
}

/* The arrays of `a` as spans (PyMem; NULL with MemoryError). */
static vc_fspan *spans(const arrays *a) {
    vc_fspan *s = PyMem_Calloc(a->n ? (size_t)a->n : 1, sizeof *s);
    if (!s) return (vc_fspan *)PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < a->n; i++) s[i] = (vc_fspan){a->data[i], a->size[i]};
    return s;
}

/* optim_grad_norm(arrays, norm_type) -> float */
static PyObject *optim_grad_norm(PyObject *self, PyObject *args) {
    PyObject *ao;
    double p;
    if (!PyArg_ParseTuple(args, "Od", &ao, &p)) return NULL;
    arrays A;
    if (arrays_get(&A, ao, -1, "arrays", 0)) return NULL;
    PyObject *res = NULL;
    vc_fspan *s = spans(&A);
    if (s) {
        double norm;
        vc_status st;
        Py_BEGIN_ALLOW_THREADS st = vc_grad_norm(s, (size_t)A.n, p, &norm);
        Py_END_ALLOW_THREADS
        res = st == VC_OK ? PyFloat_FromDouble(norm) : vc_py_raise(st);
    }
    PyMem_Free(s);
    arrays_free(&A);
    return res;
}

/* optim_grad_scale_(arrays, s) -> None: every array *= float32(s) in place */
static PyObject *optim_grad_scale_(PyObject *self, PyObject *args) {
    PyObject *ao;
    double sc;
    if (!PyArg_ParseTuple(args, "Od", &ao, &sc)) return NULL;
    arrays A;
    if (arrays_get(&A, ao, -1, "arrays", 1)) return NULL;
    PyObject *res = NULL;
    vc_fspan *s = spans(&A);
    if (s) {
        vc_status st;
        Py_BEGIN_ALLOW_THREADS st = vc_grad_scale(s, (size_t)A.n, (float)sc);
        Py_END_ALLOW_THREADS
        res = st == VC_OK ? new_none() : vc_py_raise(st);
    }
    PyMem_Free(s);
    arrays_free(&A);
    return res;
}

/* optim_all_finite(arrays) -> bool */
static PyObject *optim_all_finite(PyObject *self, PyObject *ao) {
    arrays A;
    if (arrays_get(&A, ao, -1, "arrays", 0)) return NULL;
    PyObject *res = NULL;
    vc_fspan *s = spans(&A);
    if (s) {
        int ok;
        Py_BEGIN_ALLOW_THREADS ok = vc_grad_all_finite(s, (size_t)A.n);
        Py_END_ALLOW_THREADS
        res = PyBool_FromLong(ok);
    }
    PyMem_Free(s);
    arrays_free(&A);
    return res;
}

static PyMethodDef methods[] = {
    {"optim_adam", optim_adam, METH_VARARGS,
     "optim_adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay, "
     "amsgrad, decoupled): one Adam (decoupled=False) or AdamW step, in place."},
    {"optim_sgd", optim_sgd, METH_VARARGS,
     "optim_sgd(params, grads, momentum_buffers, init_flags, lr, momentum, dampening, weight_decay, nesterov): "
     "one SGD step, in place."},
    {"optim_grad_norm", optim_grad_norm, METH_VARARGS,
     "optim_grad_norm(arrays, norm_type) -> the norm of all elements as one vector (double accumulation)."},
    {"optim_grad_scale_", optim_grad_scale_, METH_VARARGS, "optim_grad_scale_(arrays, s): every array *= s."},
    {"optim_all_finite", optim_all_finite, METH_O, "optim_all_finite(arrays) -> True when no element is NaN/inf."},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_optim(PyObject *m) { return PyModule_AddFunctions(m, methods); }
