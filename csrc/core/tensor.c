#include "core/tensor.h"

#include <stdio.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [VC_F32] = {"float32", 4}, [VC_F16] = {"float16", 2}, [VC_BF16] = {"bfloat16", 2}, [VC_F64] = {"float64", 8},
    [VC_I64] = {"int64", 8},   [VC_I32] = {"int32", 4},   [VC_I8] = {"int8", 1},       [VC_U8] = {"uint8", 1},
    [VC_BOOL] = {"bool", 1},
};

const char *vc_dtype_name(vc_dtype t) {
    return (unsigned)t < sizeof dtypes / sizeof dtypes[0] ? dtypes[t].name : "unknown";
}

size_t vc_dtype_size(vc_dtype t) { return (unsigned)t < sizeof dtypes / sizeof dtypes[0] ? dtypes[t].size : 0; }

vc_status vc_tensor_init(vc_tensor *t, void *data, vc_dtype dtype, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > VC_MAX_DIMS) return vc_fail(VC_ERR_ARG, "tensor rank %d outside 0..%d", ndim, VC_MAX_DIMS);
    t->data = data;
    t->dtype = dtype;
    t->ndim = ndim;
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] < 0) return vc_fail(VC_ERR_ARG, "tensor dimension %d is negative", d);
        t->shape[d] = shape[d];
        t->strides[d] = stride;
        if (shape[d] && __builtin_mul_overflow(stride, shape[d], &stride))
            return vc_fail(VC_ERR_ARG, "tensor size overflows");
    }
    return VC_OK;
}

int64_t vc_tensor_numel(const vc_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        if (__builtin_mul_overflow(n, t->shape[d], &n)) return -1;
    return n;
}

int vc_tensor_is_contiguous(const vc_tensor *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expect) return 0;
        expect *= t->shape[d];
    }
    return 1;
}

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < ndim && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (used < n) snprintf(buf + used, n - used, ndim == 1 ? ",)" : ")");
}

vc_status vc_tensor_check(const vc_tensor *t, const char *what, vc_dtype dtype, int ndim, const int64_t *shape) {
    if (t->dtype != dtype)
        return vc_fail(VC_ERR_TYPE, "%s: expected %s, got %s", what, vc_dtype_name(dtype), vc_dtype_name(t->dtype));
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char want[128], got[128];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(got, sizeof got, t->ndim, t->shape);
        return vc_fail(VC_ERR_ARG, "%s: expected shape %s, got %s", what, want, got);
    }
    if (!vc_tensor_is_contiguous(t)) return vc_fail(VC_ERR_ARG, "%s: must be a dense row-major (C-contiguous) array", what);
    if (!t->data && vc_tensor_numel(t) > 0) return vc_fail(VC_ERR_ARG, "%s: no data", what);
    return VC_OK;
}
