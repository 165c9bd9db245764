/* Shared pieces of the checkpoint bindings (py_io.c, py_safetensors.c, py_torch_bin.c):
 * the MappedFile owner object and ndarray construction over mapped tensor data. */
#ifndef VC_PY_IO_H
#define VC_PY_IO_H

#include "io/dtype.h"
#include "io/mapfile.h"
#include "python/pyutil.h"

/* vc_py_raise for messages that quote file contents: bytes that are not valid UTF-8 (from a
 * hostile file, or a multi-byte character cut by the message length limit) are shown as
 * \xNN instead of turning the error into a UnicodeDecodeError. Returns NULL. */
PyObject *vc_py_io_raise(vc_status s);

/* A new visionc._C.MappedFile owning `m` (it unmaps when the last array viewing it dies).
 * Takes ownership of `m` even on failure. */
PyObject *vc_py_mapped_file_new(vc_mapfile *m);

/* Deferred copy/conversion into a freshly allocated array, run later without the GIL. */
typedef struct {
    PyArrayObject *arr; /* borrowed: kept alive by the result being built */
    const void *src;
    vc_io_dtype dtype;
    int ndim;
    const int64_t *shape, *stride; /* stride NULL: dense C order */
} vc_py_io_job;

typedef struct {
    vc_py_io_job *jobs;
    size_t n, cap;
} vc_py_io_jobs;

/* Returns a new reference to the array for one tensor. Zero-copy view of `data` with base
 * `owner` when the element type is native to NumPy, the layout is dense C order (stride NULL
 * or `contiguous`) and the pointer is aligned; otherwise a new array plus a job appended to
 * `jobs` (F16/BF16 become float32, strided tensors are gathered). NULL with an exception. */
PyObject *vc_py_io_array(PyObject *owner, const void *data, vc_io_dtype dt, int ndim, const int64_t *shape,
                         const int64_t *stride, int contiguous, vc_py_io_jobs *jobs);

/* Runs and clears the jobs with the GIL released. */
void vc_py_io_run_jobs(vc_py_io_jobs *jobs);
void vc_py_io_jobs_free(vc_py_io_jobs *jobs);

/* A JSON tree as Python objects (dict/list/str/int/float/bool/None); new reference or NULL. */
struct vc_json;
PyObject *vc_py_json_to_object(const struct vc_json *v);

/* Method tables of the binding files, added by vc_py_register_io. */
extern PyMethodDef vc_py_safetensors_methods[];
extern PyMethodDef vc_py_torch_bin_methods[];
extern PyMethodDef vc_py_json_methods[];

#endif
