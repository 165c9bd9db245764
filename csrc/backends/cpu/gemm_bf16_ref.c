/* bf16 GEMM without AVX512_BF16: fp32 GEMM of bf16-rounded copies.
 *
 * A product of two bf16 values (8-bit significands) is exact in fp32, so rounding the inputs
 * and running the ordinary fp32 GEMM gives what vdpbf16ps computes, up to the order of the
 * fp32 additions. That keeps results the same on every CPU and the speed of OpenBLAS. */
#include <stdlib.h>

#include "backends/cpu/bf16.h"
#include "backends/cpu/blas.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

/* A bf16-rounded copy of rows x cols floats at stride ld (packed to stride cols), or NULL. */
static float *rounded_copy(const float *src, int rows, int cols, int ld) {
    size_t n;
    if (!vc_mul_ok((size_t)rows, (size_t)cols, &n) || !vc_mul_ok(n, sizeof(float), &n)) return NULL;
    float *dst = malloc(n ? n : 1);
    if (!dst) return NULL;
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) dst[(size_t)r * cols + k] = vc_bf16_round(src[(size_t)r * ld + k]);
    return dst;
}

/* No memory for copies: round on the fly (slow, but the answer is the same). */
static void scalar_gemm(int ta, int tb, int M, int N, int K, const float *a, int lda, const float *b, int ldb,
                        float beta, float *c, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0.f;
            for (int k = 0; k < K; k++) {
                float x = ta ? a[(size_t)k * lda + i] : a[(size_t)i * lda + k];
                float y = tb ? b[(size_t)j * ldb + k] : b[(size_t)k * ldb + j];
                s += vc_bf16_round(x) * vc_bf16_round(y);
            }
            float *o = c + (size_t)i * ldc + j;
            *o = beta == 0.f ? s : beta * *o + s;
        }
}

void cpu_gemm_bf16_ref(int ta, int tb, int M, int N, int K, const float *a, int lda, const float *b, int ldb,
                       float beta, float *c, int ldc) {
    float *ar = ta ? rounded_copy(a, K, M, lda) : rounded_copy(a, M, K, lda);
    float *br = tb ? rounded_copy(b, N, K, ldb) : rounded_copy(b, K, N, ldb);
    if (!ar || !br) {
        free(ar);
        free(br);
        scalar_gemm(ta, tb, M, N, K, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    const int la = ta ? M : K, lb = tb ? K : N;
    if (!ta && tb) cpu_gemm_nt(M, N, K, ar, la, br, lb, beta, c, ldc);
    else if (!ta && !tb) cpu_gemm_nn(M, N, K, ar, la, br, lb, beta, c, ldc);
    else if (ta && !tb) cpu_gemm_tn(M, N, K, ar, la, br, lb, beta, c, ldc);
    else vc_sgemm(CblasRowMajor, CblasTrans, CblasTrans, M, N, K, 1.f, ar, la, br, lb, beta, c, ldc);
    free(ar);
    free(br);
}
