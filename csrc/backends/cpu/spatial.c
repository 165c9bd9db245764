/* Spatial data movement and reductions on NCHW maps: global average pooling, per-channel
 * scale + residual (layer scale), bilinear resize (align_corners=False, as F.interpolate),
 * channel concatenation, and MobileViT's patch unfold / fold. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "vc.h"

void cpu_global_avg_pool(float *out, const float *in, int B, int C, size_t HW) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * C * HW > VC_CHUNK) \
    num_threads(vc_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *p = in + ((size_t)b * C + c) * HW;
            float s = 0.f;
#pragma omp simd reduction(+ : s)
            for (size_t i = 0; i < HW; i++) s += p[i];
            out[(size_t)b * C + c] = s / (float)HW;
        }
}

void cpu_scale_channels_add(float *out, const float *x, const float *scale, const float *residual, int B, int C,
                            size_t HW) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * C * HW > VC_CHUNK) \
    num_threads(vc_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const size_t off = ((size_t)b * C + c) * HW;
            const float s = scale ? scale[c] : 1.f;
            const float *xp = x + off, *rp = residual ? residual + off : NULL;
            float *op = out + off;
            if (rp) {
#pragma omp simd
                for (size_t i = 0; i < HW; i++) op[i] = rp[i] + s * xp[i];
            } else {
#pragma omp simd
                for (size_t i = 0; i < HW; i++) op[i] = s * xp[i];
            }
        }
}

/* torch's source index for linear modes with align_corners=False, clamped at 0. */
static float src_index(int o, float scale) {
    float s = ((float)o + 0.5f) * scale - 0.5f;
    return s < 0.f ? 0.f : s;
}

void cpu_resize_bilinear(float *out, const float *in, int B, int C, int H, int W, int Ho, int Wo) {
    const float sy = (float)H / (float)Ho, sx = (float)W / (float)Wo;
#pragma omp parallel for collapse(2) schedule(static) num_threads(vc_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *p = in + ((size_t)b * C + c) * H * W;
            float *o = out + ((size_t)b * C + c) * Ho * Wo;
            for (int oy = 0; oy < Ho; oy++) {
                float fy = src_index(oy, sy);
                int y0 = (int)fy, y1 = y0 + (y0 < H - 1);
                float ly = fy - (float)y0, hy = 1.f - ly;
                for (int ox = 0; ox < Wo; ox++) {
                    float fx = src_index(ox, sx);
                    int x0 = (int)fx, x1 = x0 + (x0 < W - 1);
                    float lx = fx - (float)x0, hx = 1.f - lx;
                    o[(size_t)oy * Wo + ox] = hy * (hx * p[(size_t)y0 * W + x0] + lx * p[(size_t)y0 * W + x1]) +
                                              ly * (hx * p[(size_t)y1 * W + x0] + lx * p[(size_t)y1 * W + x1]);
                }
            }
        }
}

void cpu_concat_channels(float *out, const float *a, int Ca, const float *b, int Cb, int B, size_t HW) {
    for (int i = 0; i < B; i++) {
        memcpy(out + (size_t)i * (Ca + Cb) * HW, a + (size_t)i * Ca * HW, sizeof(float) * Ca * HW);
        memcpy(out + ((size_t)i * (Ca + Cb) + Ca) * HW, b + (size_t)i * Cb * HW, sizeof(float) * Cb * HW);
    }
}

/* patches[(b*ph*pw + dy*pw + dx), i*npw + j, c] = x[b, c, i*ph + dy, j*pw + dx]  (H, W multiples of ph, pw) */
void cpu_patch_unfold(float *patches, const float *x, int B, int C, int H, int W, int ph, int pw) {
    const int nph = H / ph, npw = W / pw, N = nph * npw, P = ph * pw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(vc_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *plane = x + ((size_t)b * C + c) * H * W;
            for (int y = 0; y < H; y++) {
                const int i = y / ph, dy = y % ph;
                for (int xx = 0; xx < W; xx++) {
                    const int j = xx / pw, dx = xx % pw;
                    patches[(((size_t)b * P + dy * pw + dx) * N + (size_t)i * npw + j) * C + c] = plane[(size_t)y * W + xx];
                }
            }
        }
}

void cpu_patch_fold(float *x, const float *patches, int B, int C, int H, int W, int ph, int pw) {
    const int nph = H / ph, npw = W / pw, N = nph * npw, P = ph * pw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(vc_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float *plane = x + ((size_t)b * C + c) * H * W;
            for (int y = 0; y < H; y++) {
                const int i = y / ph, dy = y % ph;
                for (int xx = 0; xx < W; xx++) {
                    const int j = xx / pw, dx = xx % pw;
                    plane[(size_t)y * W + xx] = patches[(((size_t)b * P + dy * pw + dx) * N + (size_t)i * npw + j) * C + c];
                }
            }
        }
}
