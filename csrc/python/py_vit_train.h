/* Training bindings of the C ViT (py_vit_train.c); registered from py_vit.c's hook. */
#ifndef VC_PY_VIT_TRAIN_H
#define VC_PY_VIT_TRAIN_H

#include "python/pyutil.h"

int vc_py_register_vit_train(PyObject *m);

#endif
