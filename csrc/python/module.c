/* visionc._C: the CPython extension. Each py_*.c file adds its functions through a
 * register hook, so that one file owns each part of the binding. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL visionc_ARRAY_API
#include <numpy/arrayobject.h>

#include "python/py_model.h"
#include "python/pyutil.h"

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "visionc._C", "visionc C core", -1, NULL,
};

PyMODINIT_FUNC PyInit__C(void) {
    import_array();
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    if (vc_py_register_core(m) || vc_py_register_model(m) || vc_py_register_io(m) || vc_py_register_image(m) || vc_py_register_text(m) ||
        vc_py_register_generate(m) || vc_py_register_vit(m) || vc_py_register_ops(m) ||
        vc_py_register_convnext(m) || vc_py_register_mobilevit(m) || vc_py_register_gpt2(m)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
