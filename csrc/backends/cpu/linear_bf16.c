/* bf16 linear layer, forward and backward, and the dispatch between the AVX512_BF16 kernel
 * and the plain-C path. Mixed-precision training calls these in place of cpu_linear /
 * cpu_linear_backward: inputs and weights stay fp32 (the master copy) and are rounded to bf16
 * only inside the GEMM; bias, bias gradient and every output are fp32. */
#include <stdatomic.h>

#include "backends/cpu/bf16.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

static atomic_int native_off; /* set by tests to exercise the fallback */

int cpu_bf16_native(void) {
    const vc_cpu_features *f = vc_cpu();
    return !atomic_load_explicit(&native_off, memory_order_relaxed) && f->avx512f && f->avx512bw && f->avx512vl &&
           f->avx512_bf16;
}

void cpu_bf16_set_native(int on) { atomic_store(&native_off, !on); }

void cpu_gemm_bf16(int ta, int tb, int M, int N, int K, const float *a, int lda, const float *b, int ldb, float beta,
                   float *c, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* empty sum */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) c[(size_t)i * ldc + j] = beta == 0.f ? 0.f : beta * c[(size_t)i * ldc + j];
        return;
    }
    if (cpu_bf16_native() && cpu_gemm_bf16_native(ta, tb, M, N, K, a, lda, b, ldb, beta, c, ldc) == 0) return;
    cpu_gemm_bf16_ref(ta, tb, M, N, K, a, lda, b, ldb, beta, c, ldc);
}

void cpu_linear_bf16(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                     int accumulate) {
    cpu_gemm_bf16(0, 1, M, N, K, in, K, w, K, accumulate ? 1.f : 0.f, out, N);
    if (!bias) return;
#pragma omp parallel for schedule(static) if ((size_t)M * N > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int m = 0; m < M; m++) {
        float *row = out + (size_t)m * N;
#pragma omp simd
        for (int n = 0; n < N; n++) row[n] += bias[n];
    }
}

/* din[M,K] = dout[M,N] . w[N,K]; dw[N,K] += dout^T . in[M,K]; db in fp32 from the fp32 dout. */
void cpu_linear_backward_bf16(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                              int M, int N, int K) {
    if (din) cpu_gemm_bf16(0, 0, M, K, N, dout, N, w, K, 0.f, din, K);
    if (dw) cpu_gemm_bf16(1, 0, N, K, M, dout, N, in, K, 1.f, dw, K);
    if (db) cpu_sum_rows_into(db, dout, (size_t)M, N, (size_t)N);
}
