/* im2col and its adjoint col2im (see conv_im2col.h), used by the general path of every conv
 * kernel. Legend: Cg channels, H,W in size, Ho,Wo out size, kh,kw kernel, s stride, p padding,
 * d dilation. */
#include <string.h>

#include "backends/cpu/conv_im2col.h"
#include "backends/cpu/cpu.h"
#include "vc.h"

void cpu_im2col(float *cols, const float *img, int Cg, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                int dh, int dw, int Ho, int Wo) {
    const size_t HWo = (size_t)Ho * Wo;
#pragma omp parallel for collapse(3) schedule(static) if ((size_t)Cg * kh * kw * HWo > VC_CHUNK) \
    num_threads(vc_get_num_threads())
    for (int c = 0; c < Cg; c++)
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++) {
                float *dst = cols + (((size_t)c * kh + ky) * kw + kx) * HWo;
                const float *plane = img + (size_t)c * H * W;
                for (int oy = 0; oy < Ho; oy++) {
                    const int y = oy * sh - ph + ky * dh;
                    float *d = dst + (size_t)oy * Wo;
                    if (y < 0 || y >= H) {
                        memset(d, 0, sizeof(float) * Wo);
                        continue;
                    }
                    const float *row = plane + (size_t)y * W;
                    for (int ox = 0; ox < Wo; ox++) {
                        const int x = ox * sw - pw + kx * dw;
                        d[ox] = (x >= 0 && x < W) ? row[x] : 0.f;
                    }
                }
            }
}

/* One channel per task: the (ky, kx) windows of a channel overlap, so they stay on one thread. */
void cpu_col2im(float *img, const float *cols, int Cg, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                int dh, int dw, int Ho, int Wo) {
    const size_t HWo = (size_t)Ho * Wo;
#pragma omp parallel for schedule(static) if ((size_t)Cg * kh * kw * HWo > VC_CHUNK) \
    num_threads(vc_get_num_threads())
    for (int c = 0; c < Cg; c++) {
        float *plane = img + (size_t)c * H * W;
        memset(plane, 0, sizeof(float) * H * W);
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++) {
                const float *src = cols + (((size_t)c * kh + ky) * kw + kx) * HWo;
                for (int oy = 0; oy < Ho; oy++) {
                    const int y = oy * sh - ph + ky * dh;
                    if (y < 0 || y >= H) continue;
                    float *row = plane + (size_t)y * W;
                    const float *s = src + (size_t)oy * Wo;
                    for (int ox = 0; ox < Wo; ox++) {
                        const int x = ox * sw - pw + kx * dw;
                        if (x >= 0 && x < W) row[x] += s[ox];
                    }
                }
            }
    }
}
