/* Backward of the NCHW data-movement and reduction kernels of spatial.c: global average
 * pooling, per-channel scale + residual, bilinear resize (align_corners=False), channel
 * concatenation. (MobileViT's unfold and fold are permutations: each one's backward is the
 * other, so the backend table points at spatial.c's kernels for them.)
 * Legend: B batch, C channels, HW = H*W pixels, Ho,Wo resized size. */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

/* acc[C] += sum over images and pixels of x[B,C,HW]. One channel per task (single writer per
 * acc element: the result does not depend on the thread count); double accumulation. */
void cpu_sum_planes_into(float *acc, const float *x, int B, int C, size_t HW) {
#pragma omp parallel for schedule(static) if ((size_t)B * C * HW > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int b = 0; b < B; b++) {
            const float *p = x + ((size_t)b * C + c) * HW;
#pragma omp simd reduction(+ : s)
            for (size_t i = 0; i < HW; i++) s += p[i];
        }
        acc[c] += (float)s;
    }
}

/* din[B,C,HW] = dout[B,C] / HW at every pixel (assign). */
void cpu_global_avg_pool_backward(float *din, const float *dout, int B, int C, size_t HW) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * C * HW > VC_CHUNK) \
    num_threads(vc_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float g = dout[(size_t)b * C + c] / (float)HW;
            float *p = din + ((size_t)b * C + c) * HW;
#pragma omp simd
            for (size_t i = 0; i < HW; i++) p[i] = g;
        }
}

/* Forward: out = residual + scale[c] * x.
 * dx[B,C,HW] = scale[c] * dout (assign; may equal dout; scale NULL means 1);
 * dscale[C] += sum over b, pixels of dout * x; dresidual[B,C,HW] = dout (assign).
 * dx, dscale, dresidual are each NULL-able; x [B,C,HW] is read only for dscale. */
void cpu_scale_channels_add_backward(float *dx, float *dscale, float *dresidual, const float *dout, const float *x,
                                     const float *scale, int B, int C, size_t HW) {
    const size_t n = (size_t)B * C * HW;
    if (dscale) { /* before dx, which may overwrite dout */
#pragma omp parallel for schedule(static) if (n > VC_CHUNK) num_threads(vc_get_num_threads())
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int b = 0; b < B; b++) {
                const size_t off = ((size_t)b * C + c) * HW;
                const float *g = dout + off, *xp = x + off;
#pragma omp simd reduction(+ : s)
                for (size_t i = 0; i < HW; i++) s += g[i] * xp[i];
            }
            dscale[c] += (float)s;
        }
    }
    if (dresidual && dresidual != dout) memcpy(dresidual, dout, n * sizeof(float));
    if (!dx) return;
#pragma omp parallel for collapse(2) schedule(static) if (n > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const size_t off = ((size_t)b * C + c) * HW;
            const float s = scale ? scale[c] : 1.f;
            const float *g = dout + off;
            float *d = dx + off;
#pragma omp simd
            for (size_t i = 0; i < HW; i++) d[i] = s * g[i];
        }
}

/* torch's source index for align_corners=False, clamped at 0 (the same as spatial.c). */
static float src_index(int o, float scale) {
    float s = ((float)o + 0.5f) * scale - 0.5f;
    return s < 0.f ? 0.f : s;
}

/* din[B,C,H,W] (assign) = the adjoint of the forward's interpolation applied to dout[B,C,Ho,Wo]:
 * each output pixel hands its gradient back to its four taps with the forward's weights. One
 * plane per task, so the scattered adds never race. */
void cpu_resize_bilinear_backward(float *din, const float *dout, int B, int C, int H, int W, int Ho, int Wo) {
    const float sy = (float)H / (float)Ho, sx = (float)W / (float)Wo;
#pragma omp parallel for collapse(2) schedule(static) num_threads(vc_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float *p = din + ((size_t)b * C + c) * H * W;
            const float *g = dout + ((size_t)b * C + c) * Ho * Wo;
            memset(p, 0, sizeof(float) * H * W);
            for (int oy = 0; oy < Ho; oy++) {
                const float fy = src_index(oy, sy);
                const int y0 = (int)fy, y1 = y0 + (y0 < H - 1);
                const float ly = fy - (float)y0, hy = 1.f - ly;
                for (int ox = 0; ox < Wo; ox++) {
                    const float fx = src_index(ox, sx);
                    const int x0 = (int)fx, x1 = x0 + (x0 < W - 1);
                    const float lx = fx - (float)x0, hx = 1.f - lx;
                    const float v = g[(size_t)oy * Wo + ox];
                    p[(size_t)y0 * W + x0] += hy * hx * v;
                    p[(size_t)y0 * W + x1] += hy * lx * v;
                    p[(size_t)y1 * W + x0] += ly * hx * v;
                    p[(size_t)y1 * W + x1] += ly * lx * v;
                }
            }
        }
}

/* Split dout[B, Ca+Cb, HW] into da[B,Ca,HW] and db[B,Cb,HW] (assign; either NULL-able). */
void cpu_concat_channels_backward(float *da, float *db, const float *dout, int Ca, int Cb, int B, size_t HW) {
    for (int i = 0; i < B; i++) {
        const float *src = dout + (size_t)i * (Ca + Cb) * HW;
        if (da) memcpy(da + (size_t)i * Ca * HW, src, sizeof(float) * Ca * HW);
        if (db) memcpy(db + (size_t)i * Cb * HW, src + (size_t)Ca * HW, sizeof(float) * Cb * HW);
    }
}
