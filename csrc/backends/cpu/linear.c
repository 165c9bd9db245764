/* Fully connected layer: out[M,N] (+)= in[M,K] . w[N,K]^T + bias.
 *
 * visionc runs one thread pool (OpenMP) and calls its GEMM (vc_sgemm: visionc's AVX-512
 * kernel, or OpenBLAS) single-threaded inside it: two pools that each spin on the same cores
 * slow each other down badly. So the GEMM is split here, into column blocks of the output
 * (rows of w) when N is wide enough, else into row blocks. */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/blas.h"
#include "backends/cpu/cpu.h"
#include "vc.h"

/* One block of the output: columns [n0, n1) of rows [m0, m1), bias added while it is in cache. */
static void gemm_nt_block(int m0, int m1, int n0, int n1, int K, const float *a, int lda, const float *w, int ldw,
                          float beta, float *c, int ldc, const float *bias) {
    vc_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m1 - m0, n1 - n0, K, 1.f, a + (size_t)m0 * lda, lda,
             w + (size_t)n0 * ldw, ldw, beta, c + (size_t)m0 * ldc + n0, ldc);
    if (!bias) return;
    for (int m = m0; m < m1; m++) {
        float *row = c + (size_t)m * ldc;
#pragma omp simd
        for (int n = n0; n < n1; n++) row[n] += bias[n];
    }
}

/* c[M,N] = a[M,K] . w[N,K]^T + beta c (+ bias[N]), split over the threads in one parallel
 * region: column blocks of the output (rows of w) when N is wide enough, else row blocks. */
static void gemm_nt_bias(int M, int N, int K, const float *a, int lda, const float *w, int ldw, float beta, float *c,
                         int ldc, const float *bias) {
    if (M <= 0 || N <= 0) return;
#ifdef _OPENMP
    const int nt = vc_kernel_threads();
#else
    const int nt = 1;
#endif
    if (nt == 1 || 2.0 * M * N * K < 4e6) {
        gemm_nt_block(0, M, 0, N, K, a, lda, w, ldw, beta, c, ldc, bias);
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
            gemm_nt_block(0, M, lo, hi, K, a, lda, w, ldw, beta, c, ldc, bias);
        else
            gemm_nt_block(lo, hi, 0, N, K, a, lda, w, ldw, beta, c, ldc, bias);
    }
}

void cpu_gemm_nt(int M, int N, int K, const float *a, int lda, const float *w, int ldw, float beta, float *c,
                 int ldc) {
    gemm_nt_bias(M, N, K, a, lda, w, ldw, beta, c, ldc, NULL);
}

void cpu_linear(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                int accumulate) {
    if (vc_skinny_nt_ok(M, N, K)) { /* decode steps: stream w once (gemm_skinny.c) */
        cpu_skinny_nt(out, in, w, bias, M, N, K, accumulate);
        return;
    }
    gemm_nt_bias(M, N, K, in, K, w, K, accumulate ? 1.f : 0.f, out, N, bias);
}
