/* The two separable 8-bit passes of Pillow's resampler.
 *
 * Every output sample is 2^21 (one half, for rounding) plus the integer dot product of uint8
 * inputs and fixed-point weights, shifted down by VC_PRECISION_BITS and clipped to 0..255: the
 * same integers Pillow computes, so the result is identical whatever the summation order.
 * Channels are independent (Pillow's RGB, RGBX, CMYK, L all resample band by band).
 */
#include "image/resample_internal.h"

#include "vc.h"

#define HALF (1 << (VC_PRECISION_BITS - 1))

static inline uint8_t clip8(int32_t ss) {
    int32_t v = ss >> VC_PRECISION_BITS; /* arithmetic shift, as Pillow's lookup index */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One output row of the horizontal pass; `c` is a constant after inlining, so each channel
 * count gets its own unrolled loop. */
static inline __attribute__((always_inline)) void hrow(uint8_t *restrict out, const uint8_t *restrict in, int c,
                                                       size_t out_w, const vc_axis_coeffs *ac) {
    for (size_t xx = 0; xx < out_w; xx++) {
        const int32_t *k = ac->k + xx * (size_t)ac->ksize;
        const uint8_t *p = in + (size_t)ac->first[xx] * c;
        int n = ac->count[xx];
        int32_t s0 = HALF, s1 = HALF, s2 = HALF, s3 = HALF;
        for (int x = 0; x < n; x++) {
            int32_t w = k[x];
            s0 += p[x * c + 0] * w;
            if (c > 1) s1 += p[x * c + 1] * w;
            if (c > 2) s2 += p[x * c + 2] * w;
            if (c > 3) s3 += p[x * c + 3] * w;
        }
        out[xx * c + 0] = clip8(s0);
        if (c > 1) out[xx * c + 1] = clip8(s1);
        if (c > 2) out[xx * c + 2] = clip8(s2);
        if (c > 3) out[xx * c + 3] = clip8(s3);
    }
}

void vc_pass_horizontal(uint8_t *out, const uint8_t *in, size_t in_stride, size_t row0, size_t rows, int c,
                        size_t out_w, const vc_axis_coeffs *ac, int nthreads) {
    const size_t out_stride = out_w * (size_t)c;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (size_t y = 0; y < rows; y++) {
        const uint8_t *src = in + (row0 + y) * in_stride;
        uint8_t *dst = out + y * out_stride;
        switch (c) {
        case 1: hrow(dst, src, 1, out_w, ac); break;
        case 2: hrow(dst, src, 2, out_w, ac); break;
        case 3: hrow(dst, src, 3, out_w, ac); break;
        default: hrow(dst, src, 4, out_w, ac); break;
        }
    }
}

/* Columns handled together by the vertical pass: accumulators stay in L1 and vectorise. */
#define VBLOCK 1024

void vc_pass_vertical(uint8_t *out, const uint8_t *in, size_t in_stride, size_t w, int c, size_t out_h,
                      const vc_axis_coeffs *ac, int row_shift, int nthreads) {
    const size_t row_len = w * (size_t)c;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (size_t yy = 0; yy < out_h; yy++) {
        const int32_t *k = ac->k + yy * (size_t)ac->ksize;
        const size_t y0 = (size_t)(ac->first[yy] - row_shift);
        const int n = ac->count[yy];
        uint8_t *dst = out + yy * row_len;
        int32_t acc[VBLOCK];
        for (size_t j0 = 0; j0 < row_len; j0 += VBLOCK) {
            const size_t len = row_len - j0 < VBLOCK ? row_len - j0 : VBLOCK;
            for (size_t j = 0; j < len; j++) acc[j] = HALF;
            for (int y = 0; y < n; y++) {
                const uint8_t *restrict src = in + (y0 + (size_t)y) * in_stride + j0;
                const int32_t wy = k[y];
                for (size_t j = 0; j < len; j++) acc[j] += src[j] * wy;
            }
            for (size_t j = 0; j < len; j++) dst[j0 + j] = clip8(acc[j]);
        }
    }
}
