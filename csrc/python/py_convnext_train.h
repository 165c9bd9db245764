/* Training bindings of the C ConvNeXt (py_convnext_train.c); registered from py_convnext.c's hook. */
#ifndef VC_PY_CONVNEXT_TRAIN_H
#define VC_PY_CONVNEXT_TRAIN_H

#include "python/pyutil.h"

int vc_py_register_convnext_train(PyObject *m);

#endif
