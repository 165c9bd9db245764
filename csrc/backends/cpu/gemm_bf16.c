/* bf16 GEMM on AVX512_BF16: c[M,N] = op(a)[M,K] . op(b)[K,N] + beta c, fp32 accumulation.
 *
 * vdpbf16ps multiplies PAIRS: lane i of the fp32 accumulator gets a[2i]*b[2i] + a[2i+1]*b[2i+1]
 * from two registers of 32 bf16. So both operands are packed once per call into "k-pair"
 * panels, each 32-bit word holding two consecutive-k bf16 values (low half = even k):
 *   A panel (MR rows):  ap[kp*MR + r]  = (a[r, 2kp], a[r, 2kp+1])
 *   B panel (NR cols):  bp[kp*NR + j]  = (b[2kp, j], b[2kp+1, j])
 * The micro-kernel keeps an MR x NR tile of C in 24 zmm accumulators: per k-pair it loads NR/16
 * B vectors and broadcasts one A word per row (an embedded-broadcast memory operand). Packing
 * per call (not a cached copy per weight) keeps the weights' fp32 master copy the only state:
 * the optimizer changes them every step, and packing costs O(NK) against the GEMM's O(MNK).
 *
 * Blocking: KC k-pairs of a B panel (NR*KC*4 = 24 KiB) stay in L1 while the kernel walks
 * the MR-row panels of an MC-row block of A (MC*KC*4 = 96 KiB, L2).
 * Threads: each packs a share of the panels (a barrier), then computes C column panels
 * (rows when there are fewer panels than threads), so no two threads write one element. */
#ifdef _OPENMP
#include <omp.h>
#endif
#include <immintrin.h>
#include <stdlib.h>

#include "backends/cpu/bf16.h"
#include "vc.h"

#define BF16_TARGET "avx512f,avx512bf16,avx512bw,avx512vl"

enum { MR = 8, NV = 3, NR = 16 * NV, KC = 128, MC = 192 };
_Static_assert(MR % 8 == 0 && NR % 8 == 0, "pack_panel_rows stores 8 panel rows at a time");

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

/* Packing writes panels of R rows of op(src), op(src)[r,k] = trans ? src[k*ld + r] : src[r*ld + k],
 * k-pair interleaved as above: panel p, pair kp, row r at dst[(p*KP + kp)*R + r]. Rows past
 * `rows` and k = K (odd K) are zero, so the kernel needs no edge cases in k and the padded
 * rows/columns of a tile are simply not stored.
 * Rounding is vcvtne(2)ps2bf16: nearest even like vc_bf16_bits, 16 or 32 values an instruction
 * (the scalar rounding cost as much as the multiplies on conv shapes, where M or N is small
 * against K). It reads fp32 denormals as zero; rounded one by one they became bf16 denormals,
 * which vdpbf16ps reads as zero anyway (bf16.h); only values within 2^-134 under 2^-126, that
 * round up to the smallest normal, differ. A NaN stays a NaN (its payload may differ). */

/* Lane mask of the first n (clamped to 0..16) lanes. */
static inline __mmask16 first_lanes(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* words[r] (r < 8) holds 16 k-pair words (pairs kp0 .. kp0+15) of panel row r0 + r; stores them
 * down the panel, dst[(kp0 + j)*R + r0 + r] for j < n, as 8-word runs: an 8 x 16 transpose in
 * registers (32-bit unpacks within 128-bit lanes, then lane shuffles), not 128 scalar stores. */
__attribute__((target(BF16_TARGET))) static inline void store_down8(uint32_t *dst, size_t R, const __m512i w[8],
                                                                    int n) {
    const __m512i t0 = _mm512_unpacklo_epi32(w[0], w[1]), t1 = _mm512_unpackhi_epi32(w[0], w[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(w[2], w[3]), t3 = _mm512_unpackhi_epi32(w[2], w[3]);
    const __m512i t4 = _mm512_unpacklo_epi32(w[4], w[5]), t5 = _mm512_unpackhi_epi32(w[4], w[5]);
    const __m512i t6 = _mm512_unpacklo_epi32(w[6], w[7]), t7 = _mm512_unpackhi_epi32(w[6], w[7]);
    /* u[i], lane L: pair 4L + i of rows 0-3 (u[i + 4]: rows 4-7) */
    const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
    const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
    const __m512i u4 = _mm512_unpacklo_epi64(t4, t6), u5 = _mm512_unpackhi_epi64(t4, t6);
    const __m512i u6 = _mm512_unpacklo_epi64(t5, t7), u7 = _mm512_unpackhi_epi64(t5, t7);
    /* out[q]: pairs 2q and 2q+1, rows 0-7 each */
    const __m512i a04 = _mm512_shuffle_i32x4(u0, u4, 0x44), a15 = _mm512_shuffle_i32x4(u1, u5, 0x44);
    const __m512i b04 = _mm512_shuffle_i32x4(u0, u4, 0xEE), b15 = _mm512_shuffle_i32x4(u1, u5, 0xEE);
    const __m512i a26 = _mm512_shuffle_i32x4(u2, u6, 0x44), a37 = _mm512_shuffle_i32x4(u3, u7, 0x44);
    const __m512i b26 = _mm512_shuffle_i32x4(u2, u6, 0xEE), b37 = _mm512_shuffle_i32x4(u3, u7, 0xEE);
    const __m512i out[8] = {_mm512_shuffle_i32x4(a04, a15, 0x88), _mm512_shuffle_i32x4(a26, a37, 0x88),
                            _mm512_shuffle_i32x4(a04, a15, 0xDD), _mm512_shuffle_i32x4(a26, a37, 0xDD),
                            _mm512_shuffle_i32x4(b04, b15, 0x88), _mm512_shuffle_i32x4(b26, b37, 0x88),
                            _mm512_shuffle_i32x4(b04, b15, 0xDD), _mm512_shuffle_i32x4(b26, b37, 0xDD)};
    for (int q = 0; q < 8 && 2 * q < n; q++) {
        _mm256_storeu_si256((__m256i *)(dst + (size_t)(2 * q) * R), _mm512_castsi512_si256(out[q]));
        if (2 * q + 1 < n)
            _mm256_storeu_si256((__m256i *)(dst + (size_t)(2 * q + 1) * R), _mm512_extracti64x4_epi64(out[q], 1));
    }
}

/* op(src) rows are src rows (contiguous in k): one panel, R a multiple of 8. 32 consecutive
 * floats rounded in order ARE 16 k-pair words (low half = even k); 8 rows are converted side
 * by side, 16 pairs at a time, and stored down the panel by store_down8. */
__attribute__((target(BF16_TARGET))) static void pack_panel_rows(uint32_t *dst, const float *src, size_t ld, int r0,
                                                                 int nrows, int R, int K) {
    const int KP = (K + 1) / 2;
    for (int g = 0; g < R; g += 8)
        for (int kp0 = 0; kp0 < KP; kp0 += 16) {
            const int nf = K - 2 * kp0; /* floats left in each row; k >= K reads as zero */
            __m512i w[8];
            for (int r = 0; r < 8; r++) {
                if (g + r >= nrows) { /* rows past the matrix: zero */
                    w[r] = _mm512_setzero_si512();
                    continue;
                }
                const float *row = src + (size_t)(r0 + g + r) * ld + 2 * kp0;
                const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(nf), row);
                const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(nf - 16), row + 16);
                w[r] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
            }
            store_down8(dst + (size_t)kp0 * R + g, (size_t)R, w, KP - kp0 < 16 ? KP - kp0 : 16);
        }
}

/* op(src) rows are src columns: pair kp of EVERY panel from source rows 2kp and 2kp+1, so each
 * row is streamed once (panel by panel, a narrow panel would re-read every cache line R/16 of
 * whose floats it uses, once per panel). Words: bf16(lo[r]) | bf16(hi[r]) << 16, 16 at a time. */
__attribute__((target(BF16_TARGET))) static void pack_pair_cols(uint32_t *dst, const float *src, size_t ld, int kp,
                                                                int rows, int R, int K) {
    const int KP = (K + 1) / 2, np = (rows + R - 1) / R;
    const float *lo = src + (size_t)(2 * kp) * ld, *hi = 2 * kp + 1 < K ? lo + ld : NULL;
    for (int p = 0; p < np; p++) {
        uint32_t *d = dst + ((size_t)p * KP + kp) * R;
        const int n = rows - p * R < R ? rows - p * R : R;
        const float *l = lo + (size_t)p * R, *h = hi ? hi + (size_t)p * R : NULL;
        for (int r = 0; r < R; r += 16) { /* lanes past n load zeros: the padding rows */
            const __mmask16 m = first_lanes(n - r);
            const __m512i wl = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, l + r)));
            const __m512i wh =
                h ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, h + r)))
                  : _mm512_setzero_si512();
            _mm512_mask_storeu_epi32(d + r, first_lanes(R - r), _mm512_or_si512(wl, _mm512_slli_epi32(wh, 16)));
        }
    }
}

/* Packs every panel of op(src) (rows x K); called by all threads of a team (no barrier). */
static void pack_all(uint32_t *dst, const float *src, size_t ld, int trans, int rows, int R, int K) {
    const int KP = (K + 1) / 2, np = (rows + R - 1) / R;
    if (trans) {
#pragma omp for schedule(static) nowait
        for (int kp = 0; kp < KP; kp++) pack_pair_cols(dst, src, ld, kp, rows, R, K);
    } else {
#pragma omp for schedule(static) nowait
        for (int p = 0; p < np; p++)
            pack_panel_rows(dst + (size_t)p * KP * R, src, ld, p * R, rows - p * R < R ? rows - p * R : R, R, K);
    }
}

/* c tile (mr <= MR rows, nr <= 16*nv columns) = beta c + sum over kc k-pairs (first block) or
 * c + sum (later blocks of K). nv (1..NV) vectors of columns are computed: a last column panel
 * only as wide as it needs (a 49-wide C, ConvNeXt's 7x7 maps, is 48 + 1 columns: at full width
 * its second panel would cost as much as the first). Always inlined with a constant nv, so
 * each width is its own fully unrolled kernel. */
__attribute__((target(BF16_TARGET), always_inline)) static inline void micro(int kc, const uint32_t *ap,
                                                                             const uint32_t *bp, float *c, int ldc,
                                                                             int mr, int nr, float beta, int first,
                                                                             const int nv) {
    __m512 acc[MR][NV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_setzero_ps();
    for (int p = 0; p < kc; p++) {
        __m512bh b[NV];
        for (int j = 0; j < nv; j++) b[j] = (__m512bh)_mm512_load_si512((const void *)(bp + (size_t)p * NR + 16 * j));
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[(size_t)p * MR + i]);
            for (int j = 0; j < nv; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, b[j]);
        }
    }
    __mmask16 mask[NV];
    for (int j = 0; j < nv; j++) {
        int cols = nr - 16 * j;
        mask[j] = cols >= 16 ? (__mmask16)0xffff : cols <= 0 ? (__mmask16)0 : (__mmask16)((1u << cols) - 1);
    }
    const __m512 vb = _mm512_set1_ps(beta);
    for (int i = 0; i < mr && i < MR; i++) {
        float *row = c + (size_t)i * ldc;
        for (int j = 0; j < nv; j++) {
            __m512 v = acc[i][j];
            if (!first) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[j], row + 16 * j), v);
            else if (beta != 0.f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[j], row + 16 * j), v);
            _mm512_mask_storeu_ps(row + 16 * j, mask[j], v);
        }
    }
}

typedef struct {
    int M, N, KP;
    const uint32_t *ap, *bp; /* [mpanels][KP][MR], [npanels][KP][NR] */
    float *c;
    int ldc;
    float beta;
} job;

/* Row panels [pm0, pm1) x column panels [pn0, pn1) of c. */
__attribute__((target(BF16_TARGET))) static void compute(const job *jb, int pm0, int pm1, int pn0, int pn1) {
    const int MCP = MC / MR;
    for (int k0 = 0; k0 < jb->KP; k0 += KC) {
        const int kc = jb->KP - k0 < KC ? jb->KP - k0 : KC;
        for (int m0 = pm0; m0 < pm1; m0 += MCP) {
            const int m1 = m0 + MCP < pm1 ? m0 + MCP : pm1;
            for (int pn = pn0; pn < pn1; pn++) {
                const uint32_t *bpp = jb->bp + ((size_t)pn * jb->KP + k0) * NR;
                const int nr = jb->N - pn * NR, nv = nr >= NR ? NV : (nr + 15) / 16;
                for (int pm = m0; pm < m1; pm++) {
                    const uint32_t *app = jb->ap + ((size_t)pm * jb->KP + k0) * MR;
                    float *cp = jb->c + (size_t)pm * MR * jb->ldc + (size_t)pn * NR;
                    const int mr = jb->M - pm * MR;
                    if (nv == 1) micro(kc, app, bpp, cp, jb->ldc, mr, nr, jb->beta, k0 == 0, 1);
                    else if (nv == 2) micro(kc, app, bpp, cp, jb->ldc, mr, nr, jb->beta, k0 == 0, 2);
                    else micro(kc, app, bpp, cp, jb->ldc, mr, nr, jb->beta, k0 == 0, NV);
                }
            }
        }
    }
}

int cpu_gemm_bf16_native(int ta, int tb, int M, int N, int K, const float *a, int lda, const float *b, int ldb,
                         float beta, float *c, int ldc) {
    const int KP = (K + 1) / 2, mp = (int)div_up((size_t)M, MR), np = (int)div_up((size_t)N, NR);
    size_t abytes, bbytes;
    if (!vc_mul_ok((size_t)mp * MR * 4, (size_t)KP, &abytes) || !vc_mul_ok((size_t)np * NR * 4, (size_t)KP, &bbytes))
        return -1;
    uint32_t *ap = aligned_alloc(64, div_up(abytes, 64) * 64), *bp = aligned_alloc(64, div_up(bbytes, 64) * 64);
    if (!ap || !bp) {
        free(ap);
        free(bp);
        return -1;
    }
#ifdef _OPENMP
    int nt = omp_in_parallel() ? 1 : vc_get_num_threads();
#else
    int nt = 1;
#endif
    if (2.0 * M * N * K < 4e6) nt = 1; /* a fork costs more than it saves */
    const job jb = {M, N, KP, ap, bp, c, ldc, beta};
    /* op(b) is [K,N]: its column panels are rows of b when trans_b (b stored [N,K]). */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        pack_all(ap, a, (size_t)lda, ta, M, MR, K);
        pack_all(bp, b, (size_t)ldb, !tb, N, NR, K);
#pragma omp barrier
#ifdef _OPENMP
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
#else
        const int t = 0, n = 1;
#endif
        if (np >= n)
            compute(&jb, 0, mp, (int)((long)np * t / n), (int)((long)np * (t + 1) / n));
        else
            compute(&jb, (int)((long)mp * t / n), (int)((long)mp * (t + 1) / n), 0, np);
    }
    free(ap);
    free(bp);
    return 0;
}
