/* Placeholder until the MobileViT binding lands. */
#include "python/pyutil.h"

int vc_py_register_mobilevit(PyObject *m) { return 0; }
