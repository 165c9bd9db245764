/* The micro-kernel of the AVX-512 fp32 GEMM (gemm_f32.c): one tile of c, mr <= MR rows by
 * nr <= 16*nv columns, from kc values of k of A and B:
 *
 *   c[i, j] = alpha * sum_p A(i, p) B(p, j) + beta c[i, j]   (beta == 0: c not read)
 *
 * A(i, p) is ap[i + p*a_step] (a packed panel, a_step = MR; or a^T read in place, a_step = lda)
 * or, in the "rows" instances, ap[i*a_step + p] (a read in place, each row contiguous in k).
 * B(p, j) is bp[p*NR + j], a packed panel (zero past nr, 64-byte aligned). (Reading b in place
 * too was tried for short c: from memory, its rows 128 bytes at a time, it ran at half speed.)
 *
 * Registers: mr*nv accumulators (28 at 14 x 2), nv B vectors and one broadcast of A out of the
 * 32 zmm; per k, nv loads, mr broadcasts, mr*nv FMAs. 28 independent FMA chains hide the FMA
 * latency on 2 pipes: on data in L1 it runs at the FMA peak (245 GFLOP/s on one Zen 5 core),
 * with A packed or read from rows alike. mr, nv and the A layout are compile-time constants in
 * each instance below, so the loops unroll and the accumulators live in registers. */
#include <immintrin.h>

#include "backends/cpu/gemm_f32.h"

#define F32_TARGET "avx512f"

enum { MR = GEMM_F32_MR, NV = GEMM_F32_NV };

__attribute__((target(F32_TARGET))) static inline __mmask16 first_lanes(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

__attribute__((target(F32_TARGET), always_inline)) static inline void tile(const int mr, const int nv,
                                                                          const int a_rows, int kc,
                                                                          const float *restrict ap, size_t a_step,
                                                                          const float *restrict bp,
                                                                          float *c, size_t ldc, int nr, float alpha,
                                                                          float beta) {
    __m512 acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_setzero_ps();
    /* The tile of c is read (or written) only after the k loop; started now, its cache lines
     * arrive during the FMAs. (c is the one operand never packed: after a pass over the other
     * K blocks it is often no longer in L2, and waiting for its lines cost 10% on wide GEMMs.) */
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) _mm_prefetch((const char *)(c + (size_t)i * ldc + 16 * j), _MM_HINT_T0);
    const size_t a_next = a_rows ? 1 : a_step, a_row = a_rows ? a_step : 1;
    for (int p = 0; p < kc; p++) {
        __m512 bv[NV];
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) bv[j] = _mm512_load_ps(bp + 16 * j);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            const __m512 av = _mm512_set1_ps(ap[i * a_row]);
#pragma GCC unroll 4
            for (int j = 0; j < nv; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
        ap += a_next;
        bp += GEMM_F32_NR;
    }
    __mmask16 mask[NV];
#pragma GCC unroll 4
    for (int j = 0; j < nv; j++) mask[j] = first_lanes(nr - 16 * j);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        float *row = c + (size_t)i * ldc;
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) {
            __m512 v = _mm512_mul_ps(acc[i][j], va);
            if (beta != 0.f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[j], row + 16 * j), v);
            _mm512_mask_storeu_ps(row + 16 * j, mask[j], v);
        }
    }
}

#define TILE_INSTANCE(layout, rows, m, v)                                                                        \
    __attribute__((target(F32_TARGET))) static void tile_##layout##_##m##x##v(                                  \
        int kc, const float *ap, size_t a_step, const float *bp, float *c, size_t ldc, int nr, float alpha,        \
        float beta) {                                                                                            \
        tile(m, v, rows, kc, ap, a_step, bp, c, ldc, nr, alpha, beta);                                            \
    }
#define TILE_INSTANCES(m)                                                                                        \
    TILE_INSTANCE(panel, 0, m, 1) TILE_INSTANCE(panel, 0, m, 2) TILE_INSTANCE(rows, 1, m, 1)                     \
    TILE_INSTANCE(rows, 1, m, 2)
TILE_INSTANCES(1) TILE_INSTANCES(2) TILE_INSTANCES(3) TILE_INSTANCES(4) TILE_INSTANCES(5) TILE_INSTANCES(6)
TILE_INSTANCES(7) TILE_INSTANCES(8) TILE_INSTANCES(9) TILE_INSTANCES(10) TILE_INSTANCES(11) TILE_INSTANCES(12)
TILE_INSTANCES(13) TILE_INSTANCES(14)

_Static_assert(MR == 14 && NV == 2, "the table below lists MR x NV instances");
#define ROW_COUNTS(layout)                                                                                       \
    {{tile_##layout##_1x1, tile_##layout##_1x2},   {tile_##layout##_2x1, tile_##layout##_2x2},                   \
     {tile_##layout##_3x1, tile_##layout##_3x2},   {tile_##layout##_4x1, tile_##layout##_4x2},                   \
     {tile_##layout##_5x1, tile_##layout##_5x2},   {tile_##layout##_6x1, tile_##layout##_6x2},                   \
     {tile_##layout##_7x1, tile_##layout##_7x2},   {tile_##layout##_8x1, tile_##layout##_8x2},                   \
     {tile_##layout##_9x1, tile_##layout##_9x2},   {tile_##layout##_10x1, tile_##layout##_10x2},                 \
     {tile_##layout##_11x1, tile_##layout##_11x2}, {tile_##layout##_12x1, tile_##layout##_12x2},                 \
     {tile_##layout##_13x1, tile_##layout##_13x2}, {tile_##layout##_14x1, tile_##layout##_14x2}}
const gemm_f32_tile_fn gemm_f32_tiles[2][GEMM_F32_MR][GEMM_F32_NV] = {ROW_COUNTS(panel), ROW_COUNTS(rows)};
