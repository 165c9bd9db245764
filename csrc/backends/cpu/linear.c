/* Fully connected layer: out[M,N] (+)= in[M,K] . w[N,K]^T + bias.
 *
 * visionc runs one thread pool (OpenMP) and calls OpenBLAS single-threaded inside it:
 * two pools that each spin on the same cores slow each other down badly. So the GEMM is
 * split here, into column blocks of the output (rows of w) when N is wide enough, else
 * into row blocks. */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/blas.h"
#include "backends/cpu/cpu.h"
#include "vc.h"

void cpu_gemm_nt(int M, int N, int K, const float *a, int lda, const float *w, int ldw, float beta, float *c,
                 int ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef _OPENMP
    const int nt = omp_in_parallel() ? 1 : vc_get_num_threads();
#else
    const int nt = 1;
#endif
    const double flops = 2.0 * M * N * K;
    if (nt == 1 || flops < 4e6) {
        vc_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, a, lda, w, ldw, beta, c, ldc);
        return;
    }
    /* Column blocks keep each thread's share of w private (w is the larger operand for
     * inference-sized M); blocks are multiples of 16 floats so stores stay vector aligned. */
    const int split_cols = N >= 16 * nt;
    const int extent = split_cols ? N : M;
    int block = (extent + nt - 1) / nt;
    if (split_cols) block = (block + 15) & ~15;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int lo = t * block, hi = lo + block < extent ? lo + block : extent;
        if (lo >= hi) continue;
        if (split_cols)
            vc_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, hi - lo, K, 1.f, a, lda, w + (size_t)lo * ldw, ldw,
                     beta, c + lo, ldc);
        else
            vc_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, hi - lo, N, K, 1.f, a + (size_t)lo * lda, lda, w, ldw,
                     beta, c + (size_t)lo * ldc, ldc);
    }
}

void cpu_linear(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                int accumulate) {
    if (vc_skinny_nt_ok(M, N, K)) { /* decode steps: stream w once (gemm_skinny.c) */
        cpu_skinny_nt(out, in, w, bias, M, N, K, accumulate);
        return;
    }
    cpu_gemm_nt(M, N, K, in, K, w, K, accumulate ? 1.f : 0.f, out, N);
    if (!bias) return;
#pragma omp parallel for schedule(static) if ((size_t)M * N > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int m = 0; m < M; m++) {
        float *row = out + (size_t)m * N;
#pragma omp simd
        for (int n = 0; n < N; n++) row[n] += bias[n];
    }
}
