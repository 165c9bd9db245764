/* Element types: sizes, names, exact half/bfloat16 -> float32 conversion, strided copy. */
#include "io/dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[VC_IO_NDTYPES] = {
    [VC_IO_F64] = {"F64", 8}, [VC_IO_F32] = {"F32", 4}, [VC_IO_F16] = {"F16", 2}, [VC_IO_BF16] = {"BF16", 2},
    [VC_IO_I64] = {"I64", 8}, [VC_IO_I32] = {"I32", 4}, [VC_IO_I16] = {"I16", 2}, [VC_IO_I8] = {"I8", 1},
    [VC_IO_U8] = {"U8", 1},   [VC_IO_BOOL] = {"BOOL", 1},
};

size_t vc_io_dtype_size(vc_io_dtype t) { return (unsigned)t < VC_IO_NDTYPES ? dtypes[t].size : 0; }

const char *vc_io_dtype_name(vc_io_dtype t) { return (unsigned)t < VC_IO_NDTYPES ? dtypes[t].name : "?"; }

int vc_io_dtype_from_name(const char *s, size_t len, vc_io_dtype *out) {
    for (int t = 0; t < VC_IO_NDTYPES; t++) {
        if (strlen(dtypes[t].name) == len && !memcmp(dtypes[t].name, s, len)) {
            *out = (vc_io_dtype)t;
            return 1;
        }
    }
    return 0;
}

static float bits_to_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

float vc_io_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (exp == 0x1F) return bits_to_f32(sign | 0x7F800000u | (mant << 13)); /* inf / NaN, payload kept */
    if (exp == 0) {
        if (!mant) return bits_to_f32(sign); /* signed zero */
        /* Subnormal half: shift the mantissa up until its leading 1 is the implicit bit. */
        uint32_t e = 127 - 15 + 1;
        while (!(mant & 0x400)) {
            mant <<= 1;
            e--;
        }
        return bits_to_f32(sign | (e << 23) | ((mant & 0x3FF) << 13));
    }
    return bits_to_f32(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

float vc_io_bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

/* Little-endian hosts only (checked at build time below): file bytes are little-endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "visionc io assumes a little-endian host");

void vc_io_f16_to_f32_n(const void *src, float *dst, size_t n) {
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = vc_io_f16_to_f32(h);
    }
}

void vc_io_bf16_to_f32_n(const void *src, float *dst, size_t n) {
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = vc_io_bf16_to_f32(h);
    }
}

/* Copies one contiguous run of `n` elements (innermost dimension has stride 1). */
static void copy_run(const unsigned char *s, vc_io_dtype t, size_t n, unsigned char *d) {
    if (t == VC_IO_F16) vc_io_f16_to_f32_n(s, (float *)(void *)d, n);
    else if (t == VC_IO_BF16) vc_io_bf16_to_f32_n(s, (float *)(void *)d, n);
    else memcpy(d, s, n * vc_io_dtype_size(t));
}

void vc_io_gather(const void *src, vc_io_dtype t, int ndim, const int64_t *shape, const int64_t *stride,
                  void *dst) {
    size_t isz = vc_io_dtype_size(t), osz = vc_io_dtype_size(vc_io_dtype_out(t));
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) return;
    if (ndim == 0) {
        copy_run(s, t, 1, d);
        return;
    }
    /* Odometer over all but the last dimension; the last is copied run by run when its
     * stride is 1, element by element otherwise. */
    int64_t idx[VC_IO_MAX_DIMS] = {0};
    size_t inner = (size_t)shape[ndim - 1];
    int64_t inner_stride = stride[ndim - 1];
    for (;;) {
        size_t off = 0;
        for (int i = 0; i < ndim - 1; i++) off += (size_t)idx[i] * (size_t)stride[i];
        if (inner_stride == 1) {
            copy_run(s + off * isz, t, inner, d);
            d += inner * osz;
        } else {
            for (size_t j = 0; j < inner; j++) {
                copy_run(s + (off + j * (size_t)inner_stride) * isz, t, 1, d);
                d += osz;
            }
        }
        int k = ndim - 2;
        while (k >= 0 && ++idx[k] == shape[k]) idx[k--] = 0;
        if (k < 0) break;
    }
}
