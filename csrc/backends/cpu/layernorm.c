/* Layer norm over the last dimension of x[rows, C] (two passes: mean, then variance,
 * as PyTorch computes it, which keeps rows with a large mean accurate). */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "vc.h"
#include "vc.h"

__attribute__((target_clones("avx512f", "avx2", "default"))) static void layernorm_row(
    float *out, const float *x, const float *w, const float *b, int C, float eps) {
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < C; i++) sum += x[i];
    const float mean = sum / (float)C;
    float var = 0.f;
#pragma omp simd reduction(+ : var)
    for (int i = 0; i < C; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    const float rstd = 1.f / sqrtf(var / (float)C + eps);
    if (w) {
#pragma omp simd
        for (int i = 0; i < C; i++) out[i] = (x[i] - mean) * rstd * w[i] + b[i];
    } else {
#pragma omp simd
        for (int i = 0; i < C; i++) out[i] = (x[i] - mean) * rstd;
    }
}

void cpu_layernorm(float *out, const float *in, const float *w, const float *b, size_t rows, int C, float eps) {
#pragma omp parallel for schedule(static) if (rows * (size_t)C > VC_CHUNK) num_threads(vc_get_num_threads())
    for (size_t r = 0; r < rows; r++) layernorm_row(out + r * C, in + r * C, w, b, C, eps);
}

/* LayerNorm2d: normalise x[B, C, HW] over C at every pixel (timm's LayerNorm2d, ConvNeXt).
 * Pixels are the vector lanes: each pass walks the channel planes in order. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void layernorm_channels_block(
    float *out, const float *x, const float *w, const float *b, int C, size_t HW, size_t p0, size_t n, float eps,
    float *mean, float *rstd) {
    for (size_t i = 0; i < n; i++) mean[i] = rstd[i] = 0.f;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * HW + p0;
#pragma omp simd
        for (size_t i = 0; i < n; i++) mean[i] += xc[i];
    }
    for (size_t i = 0; i < n; i++) mean[i] /= (float)C;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * HW + p0;
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float d = xc[i] - mean[i];
            rstd[i] += d * d;
        }
    }
    for (size_t i = 0; i < n; i++) rstd[i] = 1.f / sqrtf(rstd[i] / (float)C + eps);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * HW + p0;
        float *oc = out + (size_t)c * HW + p0;
        const float wc = w[c], bc = b[c];
#pragma omp simd
        for (size_t i = 0; i < n; i++) oc[i] = (xc[i] - mean[i]) * rstd[i] * wc + bc;
    }
}

void cpu_layernorm_channels(float *out, const float *in, const float *w, const float *b, int B, int C, size_t HW,
                            float eps) {
    enum { BLOCK = 256 };
    const size_t nblk = (HW + BLOCK - 1) / BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * C * HW > VC_CHUNK) \
    num_threads(vc_get_num_threads())
    for (int bi = 0; bi < B; bi++)
        for (size_t k = 0; k < nblk; k++) {
            float mean[BLOCK], rstd[BLOCK];
            size_t p0 = k * BLOCK, n = HW - p0 < BLOCK ? HW - p0 : BLOCK;
            layernorm_channels_block(out + (size_t)bi * C * HW, in + (size_t)bi * C * HW, w, b, C, HW, p0, n, eps, mean,
                                     rstd);
        }
}
