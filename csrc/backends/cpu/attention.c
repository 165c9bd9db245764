/* Multi-head scaled dot-product attention, one head at a time over the whole batch.
 *
 * q, k, v: [B*T, ld] with head h at columns h*D .. h*D+D-1, so the projections are read
 * in place (no transposes or copies). Per head: S = q k^T for every image in one strided
 * batched GEMM, a row softmax with the 1/sqrt(D) scale folded in, then out = S v in a second
 * batched GEMM. OpenBLAS spreads each batched call over its threads. */
#include <math.h>

#include "backends/cpu/blas.h"
#include "backends/cpu/cpu.h"

size_t cpu_attention_scratch(int B, int T, int H) { return (size_t)B * T * T; }

void cpu_attention(float *out, int ld_out, const float *q, const float *k, const float *v, int ld, int B, int T,
                   int H, int D, float *probs, float *scratch) {
    const float scale = 1.f / sqrtf((float)D);
    const size_t tt = (size_t)T * T;
    for (int h = 0; h < H; h++) {
        /* S for head h of image b at s + b*s_stride, rows of length T. */
        float *s = probs ? probs + (size_t)h * tt : scratch;
        const size_t s_stride = probs ? (size_t)H * tt : tt;
        const float *qh = q + (size_t)h * D, *kh = k + (size_t)h * D, *vh = v + (size_t)h * D;
        vc_sgemm_batch_strided(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.f, qh, ld, (size_t)T * ld, kh, ld,
                               (size_t)T * ld, 0.f, s, T, s_stride, B);
        if (s_stride == tt) {
            cpu_softmax_rows(s, (size_t)B * T, T, scale);
        } else {
#pragma omp parallel for schedule(static)
            for (int b = 0; b < B; b++) cpu_softmax_rows_serial(s + b * s_stride, T, T, scale);
        }
        vc_sgemm_batch_strided(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.f, s, T, s_stride, vh, ld,
                               (size_t)T * ld, 0.f, out + (size_t)h * D, ld_out, (size_t)T * ld_out, B);
    }
}
