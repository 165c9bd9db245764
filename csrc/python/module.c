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

/* One line per binding file: each adds its functions and types to the module. */
static int (*const register_hooks[])(PyObject *) = {
    vc_py_register_core,
    vc_py_register_model,
    vc_py_register_io,
    vc_py_register_image,
    vc_py_register_text,
    vc_py_register_generate,
    vc_py_register_vit,
    vc_py_register_convnext,
    vc_py_register_mobilevit,
    vc_py_register_ops,
    vc_py_register_ops_backward,
    vc_py_register_optim,
    vc_py_register_bf16,
    vc_py_register_gemm,
    vc_py_register_gpt2,
};

PyMODINIT_FUNC PyInit__C(void) {
    import_array();
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    for (size_t i = 0; i < sizeof register_hooks / sizeof register_hooks[0]; i++) {
        if (register_hooks[i](m)) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
