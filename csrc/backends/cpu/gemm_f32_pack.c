/* Packing for the AVX-512 fp32 GEMM (layouts in gemm_f32.h).
 *
 * A panel (W = MR) or a B panel (W = NR) is W "lanes" of op(x) over kc values of k, stored
 * k-major: dst[k*W + lane]. The source is row-major either way round:
 *   lanes contiguous (a^T, b):    each k is one contiguous run of W floats: a masked copy;
 *   k contiguous     (a, b^T):    each lane is a row of the source: 16 rows x 16 k are loaded
 *                                 and transposed in registers, so every source cache line is
 *                                 read once and whole (a scalar gather would cost more than the
 *                                 GEMM itself saves on ViT shapes, where packing is ~1/400 of
 *                                 the work per element but used to take ~1/10 of the time).
 * Lanes past the source's edge are written as zero.
 *
 * Every helper is inlined into an entry point with a constant width W, and walks pointers
 * rather than int indices: Python's build flags include -fwrapv, under which GCC would keep a
 * runtime W and int index arithmetic in the inner loops (measured: the copy ran 2-6x slower). */
#include <immintrin.h>

#include "backends/cpu/gemm_f32.h"

#define F32_TARGET "avx512f"

enum { PREFETCH_AHEAD = 64 }; /* floats: 4 cache lines */

#define INLINE __attribute__((target(F32_TARGET), always_inline)) static inline

INLINE __mmask16 first_lanes(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Panels of W lanes from a source whose lanes are contiguous: src points at (k0, x0) of a
 * row-major [K, ...] matrix; panel p, row k, lane l at dst[(p*kc + k)*W + l] = src[k*ld + p*W + l]
 * for the n lanes p*W + l < n, zero for the rest of the last panel. k outermost: each source row
 * is read once, start to end. (Panel by panel, a 14-float panel row would use a quarter of a
 * cache line whose other quarters only the next panels read, after KC rows at a fixed stride
 * have gone through the same few L1 sets: with ld = 768 or 3072 floats every access missed.) */
INLINE void pack_copy(float *dst, const int W, const float *src, size_t ld, int n, int kc) {
    const int full = n / W, rest = n - full * W;
    const size_t panel = (size_t)kc * W;
    for (int k = 0; k < kc; k++, src += ld, dst += W) {
        const float *s = src;
        float *d = dst;
        for (int p = 0; p < full; p++, s += W, d += panel)
            for (int v = 0; v < W; v += 16)
                _mm512_mask_storeu_ps(d + v, first_lanes(W - v), _mm512_maskz_loadu_ps(first_lanes(W - v), s + v));
        if (rest)
            for (int v = 0; v < W; v += 16)
                _mm512_mask_storeu_ps(d + v, first_lanes(W - v), _mm512_maskz_loadu_ps(first_lanes(rest - v), s + v));
    }
}

/* Row i of r becomes column i: on return r[k] holds element k of every input row. Three
 * rounds of shuffles: 32-bit pairs, 64-bit pairs (within 128-bit lanes), then 128-bit lanes. */
INLINE void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) { /* lane L: r_i[4L], r_i+1[4L], r_i[4L+1], r_i+1[4L+1] | ..+2, +3 */
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) { /* u[g+e], lane L: rows g..g+3 of column 4L+e */
        const __m512d t0 = _mm512_castps_pd(t[g]), t1 = _mm512_castps_pd(t[g + 1]);
        const __m512d t2 = _mm512_castps_pd(t[g + 2]), t3 = _mm512_castps_pd(t[g + 3]);
        u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    for (int e = 0; e < 4; e++) {
        /* v: groups 0,1 (then 2,3) at lanes 0,2; w: at lanes 1,3 */
        const __m512 v01 = _mm512_shuffle_f32x4(u[e], u[4 + e], _MM_SHUFFLE(2, 0, 2, 0));
        const __m512 w01 = _mm512_shuffle_f32x4(u[e], u[4 + e], _MM_SHUFFLE(3, 1, 3, 1));
        const __m512 v23 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], _MM_SHUFFLE(2, 0, 2, 0));
        const __m512 w23 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], _MM_SHUFFLE(3, 1, 3, 1));
        r[e] = _mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(2, 0, 2, 0));      /* column e      */
        r[8 + e] = _mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(3, 1, 3, 1));  /* column 8 + e  */
        r[4 + e] = _mm512_shuffle_f32x4(w01, w23, _MM_SHUFFLE(2, 0, 2, 0));  /* column 4 + e  */
        r[12 + e] = _mm512_shuffle_f32x4(w01, w23, _MM_SHUFFLE(3, 1, 3, 1)); /* column 12 + e */
    }
}

/* 16 lanes (rows <= 16 of them real) of one panel: d[k*W + i] = row i at k, k < kc; src points at
 * row 0, k0. Whole 16 x 16 blocks keep r in registers; the k tail goes through memory. */
INLINE void transpose_rows(float *d, const int W, __mmask16 store, const float *src, size_t ld, int rows, int kc) {
    int k = 0;
    for (; k + 16 <= kc; k += 16, src += 16, d += 16 * W) {
        /* 16 rows read side by side are 16 streams, more than the hardware prefetchers follow:
         * weights come from memory (they do not stay cached between two uses), so ask for each
         * row's lines 4 loads ahead (+2-4% on ViT-B's linear layers). */
        if (k + PREFETCH_AHEAD < kc)
            for (int i = 0; i < rows; i++) _mm_prefetch((const char *)(src + i * ld + PREFETCH_AHEAD), _MM_HINT_T0);
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_loadu_ps(src + i * ld) : _mm512_setzero_ps();
        transpose16(r);
        for (int j = 0; j < 16; j++) _mm512_mask_storeu_ps(d + j * W, store, r[j]);
    }
    if (k < kc) {
        const __mmask16 load = first_lanes(kc - k);
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(load, src + i * ld) : _mm512_setzero_ps();
        transpose16(r);
        for (int j = 0; j < kc - k; j++) _mm512_mask_storeu_ps(d + j * W, store, r[j]);
    }
}

/* Panels of W lanes, as pack_copy, from a source whose lanes are rows: src points at (x0, k0) of
 * a row-major [..., K] matrix; dst[(p*kc + k)*W + l] = src[(p*W + l)*ld + k]. Panel by panel,
 * 16 rows at a time (each 16 x 16 block loaded is whole cache lines, all used at once). */
INLINE void pack_transpose(float *dst, const int W, const float *src, size_t ld, int n, int kc) {
    for (int p = 0; p * W < n; p++, src += W * ld, dst += (size_t)kc * W) {
        const int lanes = n - p * W < W ? n - p * W : W;
        for (int g = 0; g < W; g += 16) {
            const int rows = lanes - g < 0 ? 0 : lanes - g < 16 ? lanes - g : 16;
            const __mmask16 store = first_lanes(W - g);
            if (rows == 0) /* past the source's edge: zeros, nothing to transpose */
                for (int k = 0; k < kc; k++) _mm512_mask_storeu_ps(dst + k * W + g, store, _mm512_setzero_ps());
            else
                transpose_rows(dst + g, W, store, src + g * ld, ld, rows, kc);
        }
    }
}

__attribute__((target(F32_TARGET))) void gemm_f32_pack_a(float *ap, const float *a, int lda, int trans_a, int i0,
                                                         int mc, int k0, int kc) {
    if (trans_a) /* a is [K,M] */
        pack_copy(ap, GEMM_F32_MR, a + (size_t)k0 * lda + i0, (size_t)lda, mc, kc);
    else /* a is [M,K] */
        pack_transpose(ap, GEMM_F32_MR, a + (size_t)i0 * lda + k0, (size_t)lda, mc, kc);
}

__attribute__((target(F32_TARGET))) void gemm_f32_pack_b(float *bp, const float *b, int ldb, int trans_b, int j0,
                                                         int nc, int k0, int kc) {
    if (trans_b) /* b is [N,K] */
        pack_transpose(bp, GEMM_F32_NR, b + (size_t)j0 * ldb + k0, (size_t)ldb, nc, kc);
    else /* b is [K,N] */
        pack_copy(bp, GEMM_F32_NR, b + (size_t)k0 * ldb + j0, (size_t)ldb, nc, kc);
}
