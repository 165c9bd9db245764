/* Layer norm over the last dimension of x[rows, C] (two passes: mean, then variance,
 * as PyTorch computes it, which keeps rows with a large mean accurate). */
#include <math.h>

#include "backends/cpu/cpu.h"
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
