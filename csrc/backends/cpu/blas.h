/* fp32 GEMM entry points for the CPU kernels: CBLAS sgemm signatures, routed by sgemm.c to
 * visionc's AVX-512 kernel (gemm_f32.c) or to OpenBLAS (the scipy-openblas32 wheel, whose
 * symbols carry a scipy_ prefix). */
#ifndef VC_BLAS_H
#define VC_BLAS_H

#include <cblas.h>

/* Exactly cblas_sgemm: C = alpha op(A) op(B) + beta C, either storage order; beta == 0 never
 * reads C. Single-threaded: callers split GEMMs over their own OpenMP threads. */
void vc_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans_a, enum CBLAS_TRANSPOSE trans_b, blasint M,
              blasint N, blasint K, float alpha, const float *A, blasint lda, const float *B, blasint ldb, float beta,
              float *C, blasint ldc);

/* Exactly cblas_sgemm_batch_strided: `count` GEMMs, the i-th on A + i*stride_a, B + i*stride_b,
 * C + i*stride_c. */
void vc_sgemm_batch_strided(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans_a, enum CBLAS_TRANSPOSE trans_b,
                            blasint M, blasint N, blasint K, float alpha, const float *A, blasint lda,
                            blasint stride_a, const float *B, blasint ldb, blasint stride_b, float beta, float *C,
                            blasint ldc, blasint stride_c, blasint count);

/* Which GEMM vc_sgemm uses for shapes worth our kernel: VC_GEMM_AVX512 on CPUs with AVX-512F,
 * unless the environment variable VISIONC_GEMM=openblas (read once) asks for OpenBLAS. */
typedef enum { VC_GEMM_OPENBLAS = 0, VC_GEMM_AVX512 = 1 } vc_gemm_route;
vc_gemm_route vc_sgemm_route(void);

static inline void vc_blas_set_num_threads(int n) { scipy_openblas_set_num_threads(n); }

#endif
