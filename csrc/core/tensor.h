/* vc_tensor: a view of memory owned elsewhere, with element type, shape and strides.
 *
 * It is how arrays cross the boundary into the core (NumPy arrays, mmap'd checkpoint
 * tensors): the core checks a view's dtype, shape and layout once, at the boundary, and
 * kernels then take plain pointers and sizes. Strides are in elements.
 */
#ifndef VC_TENSOR_H
#define VC_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

enum { VC_MAX_DIMS = 8 };

typedef enum { VC_F32 = 0, VC_F16, VC_BF16, VC_F64, VC_I64, VC_I32, VC_I8, VC_U8, VC_BOOL } vc_dtype;

typedef struct {
    void *data;
    vc_dtype dtype;
    int ndim;
    int64_t shape[VC_MAX_DIMS];
    int64_t strides[VC_MAX_DIMS];
} vc_tensor;

const char *vc_dtype_name(vc_dtype t);
size_t vc_dtype_size(vc_dtype t);

/* A dense row-major view of `data` (strides filled in). Fails on a bad rank or negative size. */
vc_status vc_tensor_init(vc_tensor *t, void *data, vc_dtype dtype, int ndim, const int64_t *shape);
/* Element count, or -1 if it overflows int64. */
int64_t vc_tensor_numel(const vc_tensor *t);
int vc_tensor_is_contiguous(const vc_tensor *t);
/* Checks dtype, rank, every dimension and row-major layout against the expectation;
 * the message names `what`. */
vc_status vc_tensor_check(const vc_tensor *t, const char *what, vc_dtype dtype, int ndim, const int64_t *shape);

#endif
