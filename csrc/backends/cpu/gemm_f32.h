/* fp32 GEMM on AVX-512F (gemm_f32.c: blocking; gemm_f32_tile.c: micro-kernel; gemm_f32_pack.c:
 * packing), chosen over OpenBLAS by vc_sgemm (sgemm.c).
 *
 * Packed layouts (both zero-padded to full panels, so the micro-kernel never reads past them):
 *   A panel, MR rows of op(a):    ap[k*MR + r] = op(a)[i0 + r, k0 + k]
 *   B panel, NR columns of op(b): bp[k*NR + j] = op(b)[k0 + k, j0 + j]
 * op(x) = x, or x^T when its trans flag is set; every matrix is row-major with its own leading
 * dimension. */
#ifndef VC_CPU_GEMM_F32_H
#define VC_CPU_GEMM_F32_H

#include <stddef.h>

/* Register tile MR x NR (NV zmm vectors of 16 floats per row): MR*NV = 28 accumulators, NV
 * vectors of B and one broadcast of A fill the 32 zmm registers. */
enum { GEMM_F32_MR = 14, GEMM_F32_NV = 2, GEMM_F32_NR = 16 * GEMM_F32_NV };

/* c[M,N] = alpha op(a)[M,K] . op(b)[K,N] + beta c, one thread; beta == 0 never reads c.
 * Needs AVX-512F (vc_cpu()->avx512f). Returns 0, or -1 when the packing buffers could not be
 * allocated (c untouched: the caller falls back to OpenBLAS). */
int cpu_gemm_f32_avx512(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc);

/* One tile of c (gemm_f32_tile.c): gemm_f32_tiles[a_rows][mr - 1][nv - 1] computes mr rows by
 * nr <= 16*nv columns, c = alpha A.B + beta c over kc values of k, with A(i, p) at
 * ap[i + p*a_step] (a_rows 0: a packed panel, or a^T in place) or ap[i*a_step + p] (a_rows 1: rows
 * of a in place), B(p, j) at bp[p*NR + j] (a packed panel). */
typedef void (*gemm_f32_tile_fn)(int kc, const float *ap, size_t a_step, const float *bp, float *c, size_t ldc,
                                 int nr, float alpha, float beta);
extern const gemm_f32_tile_fn gemm_f32_tiles[2][GEMM_F32_MR][GEMM_F32_NV];

/* The A panels of rows [i0, i0 + mc) x k in [k0, k0 + kc) of op(a): panel p (rows i0 + p*MR ..)
 * at ap + p*kc*MR; the last panel's rows past mc are zero. */
void gemm_f32_pack_a(float *ap, const float *a, int lda, int trans_a, int i0, int mc, int k0, int kc);
/* The B panels of columns [j0, j0 + nc) x k in [k0, k0 + kc) of op(b): panel p (columns
 * j0 + p*NR ..) at bp + p*kc*NR; the last panel's columns past nc are zero. */
void gemm_f32_pack_b(float *bp, const float *b, int ldb, int trans_b, int j0, int nc, int k0, int kc);

#endif
