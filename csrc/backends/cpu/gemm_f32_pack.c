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
 * Lanes past the source's edge are written as zero. */
#include <immintrin.h>

#include "backends/cpu/gemm_f32.h"

#define F32_TARGET "avx512f"

enum { PREFETCH_AHEAD = 64 }; /* floats: 4 cache lines */

__attribute__((target(F32_TARGET))) static inline __mmask16 first_lanes(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Panels of W lanes: dst[(p*kc + k)*W + lane] = src[(k0 + k)*ld + x0 + p*W + lane] for the n
 * lanes p*W + lane < n, zero for the rest of the last panel. k outermost: each source row is read
 * once, start to end. (Panel by panel, a 14-float panel row would use a quarter of a cache line
 * whose other quarters only the next panels read, after KC rows at a fixed stride have gone
 * through the same few L1 sets: with ld = 768 or 3072 floats every access missed L1.) */
__attribute__((target(F32_TARGET))) static void pack_copy(float *dst, int W, const float *src, int ld, int x0, int n,
                                                          int k0, int kc) {
    const int panels = (n + W - 1) / W;
    for (int k = 0; k < kc; k++) {
        const float *s = src + (size_t)(k0 + k) * ld + x0;
        for (int p = 0; p < panels; p++) {
            float *d = dst + ((size_t)p * kc + k) * W;
            for (int v = 0; v < W; v += 16)
                _mm512_mask_storeu_ps(d + v, first_lanes(W - v),
                                      _mm512_maskz_loadu_ps(first_lanes(n - p * W - v), s + p * W + v));
        }
    }
}

/* Row i of r becomes column i: on return r[k] holds element k of every input row. Three
 * rounds of shuffles: 32-bit pairs, 64-bit pairs (within 128-bit lanes), then 128-bit lanes. */
__attribute__((target(F32_TARGET))) static inline void transpose16(__m512 r[16]) {
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

/* One panel of W lanes: dst[k*W + lane] = src[(x0 + lane)*ld + k0 + k] for lane < n <= W,
 * zero for n <= lane < W. */
__attribute__((target(F32_TARGET))) static void transpose_panel(float *dst, int W, const float *src, int ld, int x0,
                                                                int n, int k0, int kc) {
    for (int g = 0; g < W; g += 16) { /* 16 lanes at a time */
        const int rows = n - g < 0 ? 0 : n - g < 16 ? n - g : 16;
        const __mmask16 store = first_lanes(W - g);
        if (rows == 0) { /* past the source's edge: zeros, nothing to transpose */
            for (int k = 0; k < kc; k++) _mm512_mask_storeu_ps(dst + (size_t)k * W + g, store, _mm512_setzero_ps());
            continue;
        }
        for (int k = 0; k < kc; k += 16) {
            const int kn = kc - k < 16 ? kc - k : 16;
            const __mmask16 load = first_lanes(kn);
            __m512 r[16];
            /* 16 rows read side by side are 16 streams, more than the hardware prefetchers
             * follow: weights come from memory (they do not stay cached between two uses), so
             * ask for each row's lines 4 loads ahead (+2-4% on ViT-B's linear layers). */
            if (k + PREFETCH_AHEAD < kc)
                for (int i = 0; i < rows; i++)
                    _mm_prefetch((const char *)(src + (size_t)(x0 + g + i) * ld + k0 + k + PREFETCH_AHEAD),
                                 _MM_HINT_T0);
            for (int i = 0; i < 16; i++)
                r[i] = i < rows ? _mm512_maskz_loadu_ps(load, src + (size_t)(x0 + g + i) * ld + k0 + k)
                                : _mm512_setzero_ps();
            transpose16(r);
            float *d = dst + (size_t)k * W + g;
            for (int j = 0; j < kn; j++) _mm512_mask_storeu_ps(d + (size_t)j * W, store, r[j]);
        }
    }
}

/* Panels of W lanes, as pack_copy, from a source whose lanes are rows: panel by panel (each
 * 16 x 16 block it loads is whole cache lines, all used at once). */
static void pack_transpose(float *dst, int W, const float *src, int ld, int x0, int n, int k0, int kc) {
    for (int p = 0; p * W < n; p++)
        transpose_panel(dst + (size_t)p * kc * W, W, src, ld, x0 + p * W, n - p * W < W ? n - p * W : W, k0, kc);
}

void gemm_f32_pack_a(float *ap, const float *a, int lda, int trans_a, int i0, int mc, int k0, int kc) {
    if (trans_a) pack_copy(ap, GEMM_F32_MR, a, lda, i0, mc, k0, kc);         /* a is [K,M] */
    else pack_transpose(ap, GEMM_F32_MR, a, lda, i0, mc, k0, kc);            /* a is [M,K] */
}

void gemm_f32_pack_b(float *bp, const float *b, int ldb, int trans_b, int j0, int nc, int k0, int kc) {
    if (trans_b) pack_transpose(bp, GEMM_F32_NR, b, ldb, j0, nc, k0, kc);    /* b is [N,K] */
    else pack_copy(bp, GEMM_F32_NR, b, ldb, j0, nc, k0, kc);                 /* b is [K,N] */
}
