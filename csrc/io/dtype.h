/* Element types of checkpoint files, shared by the safetensors and torch readers, and the
 * conversions needed to hand half-precision weights to float32 kernels. */
#ifndef VC_IO_DTYPE_H
#define VC_IO_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    VC_IO_F64,
    VC_IO_F32,
    VC_IO_F16,
    VC_IO_BF16,
    VC_IO_I64,
    VC_IO_I32,
    VC_IO_I16,
    VC_IO_I8,
    VC_IO_U8,
    VC_IO_BOOL,
    VC_IO_NDTYPES
} vc_io_dtype;

/* Most dimensions a tensor may have (NumPy's own limit is 64). */
#define VC_IO_MAX_DIMS 64

/* Bytes per element (1..8). */
size_t vc_io_dtype_size(vc_io_dtype t);
/* safetensors spelling: "F32", "BF16", "BOOL", ... */
const char *vc_io_dtype_name(vc_io_dtype t);
/* Parses a safetensors dtype name (exact, case-sensitive); returns 1 on success. */
int vc_io_dtype_from_name(const char *s, size_t len, vc_io_dtype *out);

/* Exact widening conversions (every half and bfloat16 value, NaN payloads and subnormals
 * included, is representable in float32). `src` needs no alignment. */
float vc_io_f16_to_f32(uint16_t h);
float vc_io_bf16_to_f32(uint16_t h);
void vc_io_f16_to_f32_n(const void *src, float *dst, size_t n);
void vc_io_bf16_to_f32_n(const void *src, float *dst, size_t n);

/* Element type of the array handed to Python: F16 and BF16 become F32, others stay. */
static inline vc_io_dtype vc_io_dtype_out(vc_io_dtype t) {
    return (t == VC_IO_F16 || t == VC_IO_BF16) ? VC_IO_F32 : t;
}

/* Whether an array of `nonzero` elements (the product of the non-zero dims) can be handed
 * to NumPy: its byte size, in both the file's and the output element type, must fit in a
 * signed pointer difference. NumPy checks this even when another dim is 0. */
static inline int vc_io_size_ok(size_t nonzero, vc_io_dtype t) {
    size_t a = vc_io_dtype_size(t), b = vc_io_dtype_size(vc_io_dtype_out(t)), bytes;
    return !__builtin_mul_overflow(nonzero, a > b ? a : b, &bytes) && bytes <= (size_t)PTRDIFF_MAX;
}

/* Copies an n-d strided tensor (strides in elements, all >= 0) into a dense C-order buffer
 * of type vc_io_dtype_out(t), converting F16/BF16. The caller has checked that every
 * addressed element lies inside the source buffer. */
void vc_io_gather(const void *src, vc_io_dtype t, int ndim, const int64_t *shape, const int64_t *stride,
                  void *dst);

#endif
