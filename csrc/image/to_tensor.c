/* Table-driven uint8 HWC -> float32 CHW conversion (see to_tensor.h for why a table is exact). */
#include <math.h>

#include "image/resample_internal.h"
#include "image/to_tensor.h"

vc_status vc_pixel_lut(float *lut, int channels, int rescale_mode, double rescale, const float *mean,
                       const float *std) {
    if (channels < 1 || channels > 4) return vc_fail(VC_ERR_ARG, "channels must be 1..4, got %d", channels);
    if (rescale_mode < VC_RESCALE_NONE || rescale_mode > VC_RESCALE_DIV_F32)
        return vc_fail(VC_ERR_ARG, "rescale mode must be 0..2, got %d", rescale_mode);
    if (rescale_mode != VC_RESCALE_NONE && !isfinite(rescale))
        return vc_fail(VC_ERR_ARG, "rescale_factor must be finite, got %g", rescale);
    if ((mean == NULL) != (std == NULL)) return vc_fail(VC_ERR_ARG, "mean and std must be given together");
    for (int c = 0; mean && c < channels; c++) {
        if (!isfinite(mean[c])) return vc_fail(VC_ERR_ARG, "image_mean[%d] must be finite, got %g", c, mean[c]);
        if (!isfinite(std[c]) || std[c] == 0.0f)
            return vc_fail(VC_ERR_ARG, "image_std[%d] must be finite and non-zero, got %g", c, std[c]);
    }
    const float div = (float)rescale;
    for (int c = 0; c < channels; c++) {
        for (int x = 0; x < 256; x++) {
            float v;
            switch (rescale_mode) {
            case VC_RESCALE_MUL_F64: v = (float)((double)x * rescale); break;
            case VC_RESCALE_DIV_F32: v = (float)x / div; break;
            default: v = (float)x; break;
            }
            /* Two float32 operations, subtract then divide: not a fused multiply-add, not a
             * multiplication by 1/std (both would change the last bit). */
            if (mean) v = (v - mean[c]) / std[c];
            lut[c * 256 + x] = v;
        }
    }
    return VC_OK;
}

static inline void fill(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}

vc_status vc_u8_to_chw_f32(const uint8_t *src, size_t h, size_t w, size_t src_stride, int c,
                           const vc_axis_window *wy, const vc_axis_window *wx, const float *lut, const float *pad,
                           int flip, float *dst, int max_threads) {
    vc_status st;
    if (c < 1 || c > 4) return vc_fail(VC_ERR_ARG, "channels must be 1..4, got %d", c);
    if ((st = vc_axis_window_check(wy, h, "vertical")) != VC_OK) return st;
    if ((st = vc_axis_window_check(wx, w, "horizontal")) != VC_OK) return st;
    const size_t oh = wy->len, ow = wx->len, plane = oh * ow;
    float *planes[4];
    for (int k = 0; k < c; k++) planes[k] = dst + (size_t)(flip ? c - 1 - k : k) * plane;

    const int nthreads = vc_resample_threads(plane * (size_t)c * 4, max_threads);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (size_t y = 0; y < oh; y++) {
        if (y < wy->lo || y >= wy->hi) {
            for (int k = 0; k < c; k++) fill(planes[k] + y * ow, ow, pad[k]);
            continue;
        }
        const uint8_t *in = src + (size_t)((ptrdiff_t)y + wy->offset) * src_stride;
        const uint8_t *p = in + (size_t)((ptrdiff_t)wx->lo + wx->offset) * (size_t)c;
        for (int k = 0; k < c; k++) {
            float *out = planes[k] + y * ow;
            const float *t = lut + k * 256;
            fill(out, wx->lo, pad[k]);
            for (size_t x = wx->lo; x < wx->hi; x++) out[x] = t[p[(x - wx->lo) * (size_t)c + (size_t)k]];
            fill(out + wx->hi, ow - wx->hi, pad[k]);
        }
    }
    return VC_OK;
}

ptrdiff_t vc_first_nonfinite_f32(const float *x, size_t n) {
    /* Cheap pass first (vectorises; NaN or inf makes the sum non-finite or NaN), exact search only
     * on failure. Chunked so one huge finite sum cannot overflow to inf. */
    const size_t chunk = 4096;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t len = n - i0 < chunk ? n - i0 : chunk;
        float s = 0.0f;
        for (size_t i = 0; i < len; i++) s += x[i0 + i] * 0.0f;
        if (s != 0.0f || isnan(s)) {
            for (size_t i = 0; i < len; i++)
                if (!isfinite(x[i0 + i])) return (ptrdiff_t)(i0 + i);
        }
    }
    return -1;
}
