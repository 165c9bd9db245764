#include "python/py_model.h"

#include <string.h>

static void model_dealloc(PyModel *self) {
    if (self->model) self->vt->free(self->model);
    Py_XDECREF(self->bound);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *model_param_specs(PyModel *self, PyObject *noargs) {
    int n = self->vt->num_params(self->model);
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (int i = 0; i < n; i++) {
        int ndim;
        int64_t shape[4];
        const char *name = self->vt->param_name(self->model, i, &ndim, shape);
        PyObject *shp = PyTuple_New(ndim);
        if (!shp) goto fail;
        for (int d = 0; d < ndim; d++) PyTuple_SET_ITEM(shp, d, PyLong_FromLongLong(shape[d]));
        PyObject *item = Py_BuildValue("(sN)", name, shp);
        if (!item) goto fail;
        PyList_SET_ITEM(list, i, item);
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *model_bind(PyModel *self, PyObject *args) {
    int i;
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "iO", &i, &obj)) return NULL;
    int ndim;
    int64_t shape[4];
    const char *name = self->vt->param_name(self->model, i, &ndim, shape);
    if (!name) return PyErr_Format(PyExc_IndexError, "parameter slot %d out of range", i);
    vc_tensor t;
    if (vc_py_tensor_view(obj, name, &t)) return NULL;
    vc_status st = self->vt->bind(self->model, i, &t);
    if (st) return vc_py_raise(st);
    Py_INCREF(obj);
    PyList_SetItem(self->bound, i, obj); /* steals; releases the array bound before */
    Py_RETURN_NONE;
}

static PyObject *model_family(PyModel *self, void *closure) { return PyUnicode_FromString(self->vt->family); }

static PyMethodDef model_methods[] = {
    {"param_specs", (PyCFunction)model_param_specs, METH_NOARGS, "[(name, shape)] of every parameter slot."},
    {"bind", (PyCFunction)model_bind, METH_VARARGS, "bind(slot, float32 array): zero-copy; the array is kept alive."},
    {"bind_grad", (PyCFunction)vc_py_model_bind_grad, METH_VARARGS,
     "bind_grad(slot, float32 array | None): backward accumulates into it; None: frozen."},
    {"train_forward", (PyCFunction)(void (*)(void))vc_py_model_train_forward, METH_VARARGS | METH_KEYWORDS,
     "train_forward(px, labels | None, *, hidden_dropout=0, attention_dropout=0, classifier_dropout=0, "
     "drop_path_rate=0, label_smoothing=0, seed=0, checkpointing=False, bf16=False, eval=False) -> (loss | None, "
     "logits); eval: an eval-mode forward kept for backward (no regularisers, BatchNorm on running statistics)"},
    {"backward", (PyCFunction)(void (*)(void))vc_py_model_backward, METH_VARARGS | METH_KEYWORDS,
     "backward(grad_logits=None, input_grad=None): adds the kept forward's parameter gradients into the bound "
     "arrays; grad_logits (float32 (B, L)) replaces the loss by sum(logits * grad_logits); input_grad (float32 "
     "(B, C, H, W), writeable) receives d objective / d pixel_values (GIL released)."},
    {"train_memory", (PyCFunction)vc_py_model_train_memory, METH_NOARGS,
     "bytes of training activation memory the model holds"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef model_getset[] = {
    {"family", (getter)model_family, NULL, "model family", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PyModelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "visionc._C.Model",
    .tp_basicsize = sizeof(PyModel),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)model_dealloc,
    .tp_methods = model_methods,
    .tp_getset = model_getset,
    .tp_doc = "A C model: made by a family's constructor (e.g. _C.vit_new), run by its forward function.",
};

PyObject *vc_py_model_new(void *model, const vc_model_vtable *vt) {
    PyModel *self = PyObject_New(PyModel, &PyModelType);
    if (!self) {
        vt->free(model);
        return NULL;
    }
    self->model = model;
    self->vt = vt;
    int n = vt->num_params(model);
    self->bound = PyList_New(n);
    if (!self->bound) {
        Py_DECREF(self);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        Py_INCREF(Py_None);
        PyList_SET_ITEM(self->bound, i, Py_None);
    }
    return (PyObject *)self;
}

void *vc_py_model_get(PyObject *obj, const char *family) {
    if (!PyObject_TypeCheck(obj, &PyModelType) || strcmp(((PyModel *)obj)->vt->family, family) != 0) {
        PyErr_Format(PyExc_TypeError, "expected a %s model", family);
        return NULL;
    }
    return ((PyModel *)obj)->model;
}

int vc_py_register_model(PyObject *m) {
    if (PyType_Ready(&PyModelType) < 0) return -1;
    Py_INCREF(&PyModelType);
    if (PyModule_AddObject(m, "Model", (PyObject *)&PyModelType) < 0) {
        Py_DECREF(&PyModelType);
        return -1;
    }
    return 0;
}
