/* Backward of the fully connected layer, and the transposed-A GEMM it needs.
 *
 * Legend: M rows (batch x tokens), N output features, K input features. Row-major.
 *   forward   out[M,N] = in[M,K] . w[N,K]^T + b[N]
 *   backward  din[M,K] = dout[M,N] . w[N,K]          (assign)
 *             dw[N,K] += dout[M,N]^T . in[M,K]       (accumulate)
 *             db[N]   += sum over rows of dout       (accumulate)
 * As in the forward, BLAS runs single-threaded and the GEMMs are split over our own OpenMP
 * threads (see linear.c for why). */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/blas.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

/* c[M,N] = a[K,M]^T . b[K,N] + beta c. Threads take column blocks of c when N is wide (each
 * block reads a column strip of b), else row blocks (a column strip of a). Either way no two
 * threads write the same element, so beta=1 accumulation is race-free and deterministic. */
void cpu_gemm_tn(int M, int N, int K, const float *a, int lda, const float *b, int ldb, float beta, float *c,
                 int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* empty sum: c = beta c, which BLAS would also do, but be explicit */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) c[(size_t)i * ldc + j] *= beta;
        return;
    }
#ifdef _OPENMP
    const int nt = vc_kernel_threads();
#else
    const int nt = 1;
#endif
    if (nt == 1 || 2.0 * M * N * K < 4e6) {
        vc_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.f, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    const int split_cols = N >= 64 * nt;
    const int extent = split_cols ? N : M;
    int block = (extent + nt - 1) / nt;
    if (split_cols) block = (block + 15) & ~15;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int lo = t * block, hi = lo + block < extent ? lo + block : extent;
        if (lo >= hi) continue;
        if (split_cols)
            vc_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, hi - lo, K, 1.f, a, lda, b + lo, ldb, beta, c + lo,
                     ldc);
        else /* rows lo..hi of c are columns lo..hi of a */
            vc_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hi - lo, N, K, 1.f, a + lo, lda, b, ldb, beta,
                     c + (size_t)lo * ldc, ldc);
    }
}

/* acc[N] += sum_m x[m, n]. Threads own column blocks (no reduction across threads, so the
 * result does not depend on the thread count); double accumulators because bias gradients
 * sum thousands of terms of both signs. */
void cpu_sum_rows_into(float *acc, const float *x, size_t M, int N, size_t ld) {
    enum { BLK = 64 };
    const int nblk = (N + BLK - 1) / BLK;
#pragma omp parallel for schedule(static) if (M * (size_t)N > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int blk = 0; blk < nblk; blk++) {
        const int lo = blk * BLK, n = N - lo < BLK ? N - lo : BLK;
        double s[BLK] = {0};
        for (size_t m = 0; m < M; m++) {
            const float *row = x + m * ld + lo;
#pragma omp simd
            for (int j = 0; j < n; j++) s[j] += row[j];
        }
        for (int j = 0; j < n; j++) acc[lo + j] += (float)s[j];
    }
}

/* in[M,K], w[N,K], dout[M,N]; din[M,K] (assign), dw[N,K] (+=), db[N] (+=); each NULL-able. */
void cpu_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int M,
                         int N, int K) {
    if (din) cpu_gemm_nn(M, K, N, dout, N, w, K, 0.f, din, K);
    if (dw) cpu_gemm_tn(N, K, M, dout, N, in, K, 1.f, dw, K);
    if (db) cpu_sum_rows_into(db, dout, (size_t)M, N, (size_t)N);
}

/* Weights stored w[K,N] (out = in . w + b, GPT-2 Conv1D): din = dout . w^T, dw[K,N] += in^T . dout. */
void cpu_linear_kn_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                            int M, int N, int K) {
    if (din) cpu_gemm_nt(M, K, N, dout, N, w, N, 0.f, din, K);
    if (dw) cpu_gemm_tn(K, N, M, in, K, dout, N, 1.f, dw, N);
    if (db) cpu_sum_rows_into(db, dout, (size_t)M, N, (size_t)N);
}
