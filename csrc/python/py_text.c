/* Placeholder: bindings for this part are added with the part itself. */
#include "python/pyutil.h"

int vc_py_register_text(PyObject *m) { return 0; }
