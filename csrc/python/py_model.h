/* visionc._C.Model: the one Python type behind every C model. It owns the C model through a
 * small table of functions (parameter slots, binding, free) and keeps the arrays bound to
 * each slot alive; each family adds a constructor and a forward function of its own. */
#ifndef VC_PY_MODEL_H
#define VC_PY_MODEL_H

#include "core/tensor.h"
#include "python/pyutil.h"

typedef struct {
    const char *family;
    int (*num_params)(const void *m);
    const char *(*param_name)(const void *m, int i, int *ndim, int64_t shape[4]);
    vc_status (*bind)(void *m, int i, const vc_tensor *x);
    void (*free)(void *m);
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

#endif
