/* Training bindings of the C MobileViT (py_mobilevit_train.c); registered from py_mobilevit.c's hook. */
#ifndef VC_PY_MOBILEVIT_TRAIN_H
#define VC_PY_MOBILEVIT_TRAIN_H

#include "python/pyutil.h"

int vc_py_register_mobilevit_train(PyObject *m);

#endif
