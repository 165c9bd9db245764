/* visionc._C.Model: the one Python type behind every C model. It owns the C model through a
 * small table of functions (parameter slots, binding, free) and keeps the arrays bound to
 * each slot alive; each family adds a constructor and a forward function of its own. */
#ifndef VC_PY_MODEL_H
#define VC_PY_MODEL_H

#include "core/tensor.h"
#include "models/train_opts.h"
#include "python/pyutil.h"

/* A family's training entry points, behind the Model methods of py_model_train.c. */
typedef struct {
    vc_status (*bind_grad)(void *m, int i, const vc_tensor *x); /* x NULL: unbind (frozen) */
    vc_status (*forward)(void *m, const float *px, int B, int H, int W, const int64_t *labels,
                         const vc_train_opts *o, float *loss, float *logits);
    vc_status (*backward)(void *m, const vc_backward_args *a);
    size_t (*memory)(const void *m); /* bytes of training activations held */
    int (*num_channels)(const void *m);
    int (*num_labels)(const void *m);
} vc_model_train_vtable;

typedef struct {
    const char *family;
    int (*num_params)(const void *m);
    const char *(*param_name)(const void *m, int i, int *ndim, int64_t shape[4]);
    vc_status (*bind)(void *m, int i, const vc_tensor *x);
    void (*free)(void *m);
    const vc_model_train_vtable *train; /* NULL: the family has no training */
} vc_model_vtable;

typedef struct {
    PyObject_HEAD void *model;
    const vc_model_vtable *vt;
    PyObject *bound; /* list of the arrays bound to each slot */
} PyModel;

/* Wraps a created C model (takes ownership; frees it on failure). */
PyObject *vc_py_model_new(void *model, const vc_model_vtable *vt);
/* The C model inside `obj` if it is a Model of `family`, else NULL with TypeError. */
void *vc_py_model_get(PyObject *obj, const char *family);
int vc_py_register_model(PyObject *m);

/* Model methods of training (py_model_train.c), listed in the Model type's method table. */
PyObject *vc_py_model_bind_grad(PyModel *self, PyObject *args);
PyObject *vc_py_model_train_forward(PyModel *self, PyObject *args, PyObject *kw);
PyObject *vc_py_model_backward(PyModel *self, PyObject *args, PyObject *kw);
PyObject *vc_py_model_train_memory(PyModel *self, PyObject *noargs);

#endif
