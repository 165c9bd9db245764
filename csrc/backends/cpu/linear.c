/* Fully connected layer on OpenBLAS: out[M,N] (+)= in[M,K] . w[N,K]^T + bias. */
#include "backends/cpu/blas.h"
#include "backends/cpu/cpu.h"

void cpu_linear(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                int accumulate) {
    vc_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, in, K, w, K, accumulate ? 1.f : 0.f, out, N);
    if (!bias) return;
#pragma omp parallel for schedule(static) if ((size_t)M * N > VC_CHUNK)
    for (int m = 0; m < M; m++) {
        float *row = out + (size_t)m * N;
#pragma omp simd
        for (int n = 0; n < N; n++) row[n] += bias[n];
    }
}
