/* _C.convnext_new / _C.convnext_forward: the C ConvNeXt behind visionc's ConvNeXt classes. */
#include "python/py_model.h"

#include "models/convnext.h"
#include "models/convnext_train.h"

static int convnext_channels(const void *m) { return vc_convnext_get_config(m)->num_channels; }
static int convnext_labels(const void *m) { return vc_convnext_get_config(m)->num_labels; }

static const vc_model_train_vtable convnext_train = {
    (vc_status(*)(void *, int, const vc_tensor *))vc_convnext_bind_grad,
    (vc_status(*)(void *, const float *, int, int, int, const int64_t *, const vc_train_opts *, float *,
                  float *))vc_convnext_train_forward,
    (vc_status(*)(void *, const vc_backward_args *))vc_convnext_backward,
    (size_t(*)(const void *))vc_convnext_train_saved_bytes,
    convnext_channels,
    convnext_labels,
};

static const vc_model_vtable convnext_vtable = {
    "convnext",
    (int (*)(const void *))vc_convnext_num_params,
    (const char *(*)(const void *, int, int *, int64_t *))vc_convnext_param_name,
    (vc_status(*)(void *, int, const vc_tensor *))vc_convnext_bind,
    (void (*)(void *))vc_convnext_free,
    &convnext_train,
};

static int int_list(PyObject *seq, int *out, int max, const char *what) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n < 1 || n > max) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s must have 1..%d entries", what, max);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        out[i] = (int)v;
    }
    Py_DECREF(fast);
    return (int)n;
}

static PyObject *convnext_new(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"depths", "dims", "num_channels", "stem_patch", "kernel_size", "mlp_ratio",
                             "layer_scale", "num_labels", "eps", "head_eps", NULL};
    PyObject *depths, *dims;
    vc_convnext_config c = {0};
    double eps, head_eps;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOiiiipidd", kwlist, &depths, &dims, &c.num_channels, &c.stem_patch,
                                     &c.kernel_size, &c.mlp_ratio, &c.layer_scale, &c.num_labels, &eps, &head_eps))
        return NULL;
    int nd = int_list(depths, c.depths, VC_CONVNEXT_MAX_STAGES, "depths");
    if (nd < 0) return NULL;
    int nw = int_list(dims, c.dims, VC_CONVNEXT_MAX_STAGES, "dims");
    if (nw < 0) return NULL;
    if (nd != nw) return PyErr_Format(PyExc_ValueError, "depths has %d stages but dims has %d", nd, nw);
    c.num_stages = nd;
    c.eps = (float)eps;
    c.head_eps = (float)head_eps;
    vc_convnext *m;
    vc_status st = vc_convnext_create(&c, vc_backend_cpu(), &m);
    if (st) return vc_py_raise(st);
    return vc_py_model_new(m, &convnext_vtable);
}

/* convnext_forward(model, px, stages (tuple of indices), pooled, logits, stem)
 *   -> (maps tuple, pooled|None, logits|None, stem|None) */
static PyObject *convnext_forward(PyObject *self, PyObject *args) {
    PyObject *model_obj, *px_obj, *stages_obj;
    int want_pooled, want_logits, want_stem;
    if (!PyArg_ParseTuple(args, "OOOppp", &model_obj, &px_obj, &stages_obj, &want_pooled, &want_logits, &want_stem))
        return NULL;
    vc_convnext *model = vc_py_model_get(model_obj, "convnext");
    if (!model) return NULL;
    const vc_convnext_config *c = vc_convnext_get_config(model);
    int idx[VC_CONVNEXT_MAX_STAGES];
    int nidx = PySequence_Size(stages_obj) == 0 ? 0 : int_list(stages_obj, idx, VC_CONVNEXT_MAX_STAGES, "stages");
    if (nidx < 0) return NULL;
    for (int i = 0; i < nidx; i++)
        if (idx[i] < 0 || idx[i] >= c->num_stages)
            return PyErr_Format(PyExc_ValueError, "stage index %d out of range (0..%d)", idx[i], c->num_stages - 1);
    PyArrayObject *px = vc_py_float_array(px_obj, "pixel_values", 4);
    if (!px) return NULL;
    PyObject *maps = NULL, *pooled = NULL, *logits = NULL, *stem = NULL, *result = NULL;
    float *map_ptrs[VC_CONVNEXT_MAX_STAGES] = {0};
    npy_intp *d = PyArray_DIMS(px);
    if (d[1] != c->num_channels) {
        PyErr_Format(PyExc_ValueError, "pixel_values has %ld channels, the model expects %d", (long)d[1],
                     c->num_channels);
        goto done;
    }
    if (d[0] < 1 || d[0] > (1 << 20) || d[2] > (1 << 15) || d[3] > (1 << 15)) {
        PyErr_SetString(PyExc_ValueError, "pixel_values: empty batch or too large");
        goto done;
    }
    const int B = (int)d[0], H = (int)d[2], W = (int)d[3];
    if (!(maps = PyTuple_New(nidx))) goto done;
    for (int i = 0; i < nidx; i++) {
        int hs, ws;
        vc_convnext_stage_size(model, idx[i], H, W, &hs, &ws);
        npy_intp md[4] = {B, c->dims[idx[i]], hs > 0 ? hs : 0, ws > 0 ? ws : 0};
        PyObject *a = PyArray_SimpleNew(4, md, NPY_FLOAT32);
        if (!a) goto done;
        PyTuple_SET_ITEM(maps, i, a);
        map_ptrs[idx[i]] = PyArray_DATA((PyArrayObject *)a);
    }
    npy_intp pd[2] = {B, c->dims[c->num_stages - 1]}, ld[2] = {B, c->num_labels};
    if (want_pooled && !(pooled = PyArray_SimpleNew(2, pd, NPY_FLOAT32))) goto done;
    if (want_logits && !(logits = PyArray_SimpleNew(2, ld, NPY_FLOAT32))) goto done;
    int h0, w0;
    vc_convnext_stage_size(model, 0, H, W, &h0, &w0);
    npy_intp sd[4] = {B, c->dims[0], h0 > 0 ? h0 : 0, w0 > 0 ? w0 : 0};
    if (want_stem && !(stem = PyArray_SimpleNew(4, sd, NPY_FLOAT32))) goto done;
    vc_convnext_outputs out = {stem ? PyArray_DATA((PyArrayObject *)stem) : NULL, nidx ? map_ptrs : NULL, pooled ? PyArray_DATA((PyArrayObject *)pooled) : NULL,
                               logits ? PyArray_DATA((PyArrayObject *)logits) : NULL};
    vc_status st;
    const float *pxd = PyArray_DATA(px);
    Py_BEGIN_ALLOW_THREADS st = vc_convnext_forward(model, pxd, B, H, W, &out);
    Py_END_ALLOW_THREADS if (st) {
        vc_py_raise(st);
        goto done;
    }
    result = Py_BuildValue("(OOOO)", maps, pooled ? pooled : Py_None, logits ? logits : Py_None,
                           stem ? stem : Py_None);
done:
    Py_XDECREF(maps);
    Py_XDECREF(pooled);
    Py_XDECREF(logits);
    Py_XDECREF(stem);
    Py_DECREF(px);
    return result;
}

static PyMethodDef methods[] = {
    {"convnext_new", (PyCFunction)(void (*)(void))convnext_new, METH_VARARGS | METH_KEYWORDS, "A C ConvNeXt."},
    {"convnext_forward", convnext_forward, METH_VARARGS, "convnext_forward(model, px, stages, pooled, logits)"},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_convnext(PyObject *m) { return PyModule_AddFunctions(m, methods); }
