/* JSON tree -> Python objects, and _C._json_loads, which exposes the C parser to the tests
 * (and to Python code that wants the same strictness as the checkpoint readers). */
#include "io/json.h"
#include "python/py_io.h"

PyObject *vc_py_json_to_object(const vc_json *v) {
    size_t n, len;
    const char *s;
    int64_t i;
    double d;
    int b;
    switch (vc_json_type_of(v)) {
    case VC_JSON_NULL: Py_RETURN_NONE;
    case VC_JSON_BOOL: vc_json_bool(v, &b); return PyBool_FromLong(b);
    case VC_JSON_NUMBER:
        if (vc_json_int64(v, &i)) return PyLong_FromLongLong(i);
        vc_json_double(v, &d);
        return PyFloat_FromDouble(d);
    case VC_JSON_STRING: s = vc_json_string(v, &len); return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "strict");
    case VC_JSON_ARRAY: {
        n = vc_json_size(v);
        PyObject *l = PyList_New((Py_ssize_t)n);
        for (size_t k = 0; l && k < n; k++) {
            PyObject *x = vc_py_json_to_object(vc_json_at(v, k)); /* depth bounded by the parser */
            if (!x) Py_CLEAR(l);
            else PyList_SET_ITEM(l, (Py_ssize_t)k, x);
        }
        return l;
    }
    case VC_JSON_OBJECT: {
        n = vc_json_size(v);
        PyObject *o = PyDict_New();
        for (size_t k = 0; o && k < n; k++) {
            s = vc_json_key_at(v, k, &len);
            PyObject *key = PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "strict");
            PyObject *x = key ? vc_py_json_to_object(vc_json_at(v, k)) : NULL;
            if (!x || PyDict_SetItem(o, key, x) < 0) Py_CLEAR(o);
            Py_XDECREF(key);
            Py_XDECREF(x);
        }
        return o;
    }
    }
    return PyErr_Format(PyExc_RuntimeError, "bad JSON node");
}

static PyObject *json_loads(PyObject *self, PyObject *args) {
    Py_buffer buf;
    int depth = 0;
    if (!PyArg_ParseTuple(args, "y*|i:_json_loads", &buf, &depth)) return NULL;
    vc_json *root = NULL;
    vc_status s;
    Py_BEGIN_ALLOW_THREADS
    s = vc_json_parse(buf.buf, (size_t)buf.len, depth, &root);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    if (s) return vc_py_io_raise(s);
    PyObject *r = vc_py_json_to_object(root);
    vc_json_free(root);
    return r;
}

PyMethodDef vc_py_json_methods[] = {
    {"_json_loads", json_loads, METH_VARARGS,
     "_json_loads(data: bytes, max_depth=0) -> object\n\nStrict JSON parse with the C parser (integers that fit int64 "
     "are exact ints; other numbers are floats). ValueError on any deviation from RFC 8259."},
    {NULL, NULL, 0, NULL},
};
