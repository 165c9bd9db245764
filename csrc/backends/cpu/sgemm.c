/* vc_sgemm: every fp32 GEMM of the CPU backend comes through here.
 *
 * OpenBLAS chooses its kernels when it loads, and OPENBLAS_CORETYPE=Haswell (set on some
 * machines) pins its AVX2 ones: half the GEMM speed of an AVX-512 CPU. So on CPUs with
 * AVX-512F visionc runs its own kernel (gemm_f32.c), whatever OpenBLAS was told, and keeps
 * OpenBLAS for other CPUs, for small GEMMs when OpenBLAS runs its own AVX-512 kernels (see
 * small_for_openblas), for column-major calls (visionc makes none), for argument errors (its
 * xerbla reports them, as cblas_sgemm does), if the kernel cannot allocate its packing
 * buffers, and when VISIONC_GEMM=openblas asks for it (comparisons; an escape hatch). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backends/cpu/blas.h"
#include "backends/cpu/gemm_f32.h"
#include "vc.h"

static int route = -1; /* vc_gemm_route once decided */

vc_gemm_route vc_sgemm_route(void) {
    if (route < 0) { /* benign race: every thread computes the same value */
        const char *env = getenv("VISIONC_GEMM");
        const int forced = env && strcmp(env, "openblas") == 0;
        route = !forced && vc_cpu()->avx512f ? VC_GEMM_AVX512 : VC_GEMM_OPENBLAS;
    }
    return (vc_gemm_route)route;
}

/* OpenBLAS runs its AVX-512 kernels (it was not pinned to older ones by OPENBLAS_CORETYPE)? */
static int openblas_avx512 = -1;

static int openblas_has_avx512(void) {
    if (openblas_avx512 < 0) {
        const char *core = scipy_openblas_get_corename();
        static const char *const avx512_cores[] = {"skylakex", "cooperlake", "sapphirerapids"};
        int found = 0;
        for (size_t i = 0; core && i < sizeof avx512_cores / sizeof avx512_cores[0]; i++)
            found |= strcasecmp(core, avx512_cores[i]) == 0;
        openblas_avx512 = found;
    }
    return openblas_avx512;
}

/* Small GEMMs, where OpenBLAS's AVX-512 build beats our kernel: it has "small matrix" kernels
 * without packing, for up to 1e6 multiply-adds, while ours still packs B. Measured, one thread,
 * operands in cache: b not transposed, ours 5-15% slower up to 96^3 (64^3: 2.4 vs 2.2 us); b
 * transposed (attention's T x T x 64), ours 1.2-5x slower at T <= 16, even at T = 24, faster
 * from T = 32 (0.61 vs 0.84 us). Its AVX2 build loses to ours at every size, so this applies
 * only when OpenBLAS runs AVX-512 kernels. */
static int small_for_openblas(int tb, int M, int N, int K) {
    const double mnk = (double)M * N * K;
    return mnk <= (tb ? 40e3 : 1e6) && openblas_has_avx512();
}

static int trans_flag(enum CBLAS_TRANSPOSE t) {
    switch (t) {
    case CblasNoTrans:
    case CblasConjNoTrans: return 0; /* conjugation is a no-op on real matrices */
    case CblasTrans:
    case CblasConjTrans: return 1;
    default: return -1;
    }
}

static int at_least_1(int x) { return x > 1 ? x : 1; }

void vc_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans_a, enum CBLAS_TRANSPOSE trans_b, blasint M,
              blasint N, blasint K, float alpha, const float *A, blasint lda, const float *B, blasint ldb, float beta,
              float *C, blasint ldc) {
    const int ta = trans_flag(trans_a), tb = trans_flag(trans_b);
    /* Row-major calls with valid arguments (every call visionc makes); anything else, OpenBLAS. */
    const int ours = order == CblasRowMajor && ta >= 0 && tb >= 0 && M >= 0 && N >= 0 && K >= 0 &&
                     lda >= at_least_1(ta ? M : K) && ldb >= at_least_1(tb ? K : N) && ldc >= at_least_1(N);
    if (ours && vc_sgemm_route() == VC_GEMM_AVX512 && !small_for_openblas(tb, M, N, K) &&
        cpu_gemm_f32_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
        return;
    scipy_cblas_sgemm(order, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void vc_sgemm_batch_strided(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans_a, enum CBLAS_TRANSPOSE trans_b,
                            blasint M, blasint N, blasint K, float alpha, const float *A, blasint lda,
                            blasint stride_a, const float *B, blasint ldb, blasint stride_b, float beta, float *C,
                            blasint ldc, blasint stride_c, blasint count) {
    if (vc_sgemm_route() != VC_GEMM_AVX512) {
        scipy_cblas_sgemm_batch_strided(order, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b,
                                        beta, C, ldc, stride_c, count);
        return;
    }
    for (blasint i = 0; i < count; i++)
        vc_sgemm(order, trans_a, trans_b, M, N, K, alpha, A + (ptrdiff_t)i * stride_a, lda,
                 B + (ptrdiff_t)i * stride_b, ldb, beta, C + (ptrdiff_t)i * stride_c, ldc);
}
