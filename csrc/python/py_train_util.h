/* Argument helpers shared by the per-family training bindings (py_*_train.c). */
#ifndef VC_PY_TRAIN_UTIL_H
#define VC_PY_TRAIN_UTIL_H

#include "python/pyutil.h"

/* labels: None -> *out NULL; else an int64 [B] array (new reference in *keep) whose values lie
 * in [0, num_labels); a value outside raises ValueError naming it and its position. */
int vc_py_train_labels(PyObject *obj, int B, int num_labels, PyArrayObject **keep, const int64_t **out);

/* Parses pixel_values (float32 [B, C, H, W], C == channels); new reference or NULL. */
PyArrayObject *vc_py_train_pixels(PyObject *obj, int channels, int *B, int *H, int *W);

#endif
