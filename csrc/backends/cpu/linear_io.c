/* Fully connected layer on weights stored [in, out] (GPT-2's Conv1D):
 * out[M,N] (+)= in[M,K] . w[K,N] + bias. The checkpoint's layout is used as is: no
 * transposed copy of the weights. Few rows (decode steps) take the skinny kernel, which
 * streams w once; more rows are compute-bound and go to BLAS (split as cpu_gemm_nn does). */
#include "backends/cpu/cpu.h"
#include "vc.h"

void cpu_linear_io(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                   int accumulate) {
    if (M <= 0 || N <= 0) return;
    if (vc_skinny_nn_ok(M, N, K)) {
        cpu_skinny_nn(out, in, w, bias, M, N, K, accumulate);
        return;
    }
    cpu_gemm_nn(M, N, K, in, K, w, N, accumulate ? 1.f : 0.f, out, N);
    if (!bias) return;
#pragma omp parallel for schedule(static) if ((size_t)M * N > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int m = 0; m < M; m++) {
        float *row = out + (size_t)m * N;
#pragma omp simd
        for (int n = 0; n < N; n++) row[n] += bias[n];
    }
}
