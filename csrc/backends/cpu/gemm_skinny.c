/* Skinny GEMMs for token-by-token decoding: a few activation rows (the live beams of a
 * batch: M <= VC_SKINNY_NT_MAX_M / VC_SKINNY_NN_MAX_M) against a large weight matrix.
 *
 * A decode step multiplies one or a few rows by every weight of the model, so its time is
 * the time to stream the weights from memory once. OpenBLAS's blocked sgemm packs both
 * operands and runs M=1 tiles at well under that rate; these kernels read each weight once,
 * straight from its stored layout, with the rows' partial sums in registers (or, for 1-4 rows
 * of the nn kernel, in L1 while w streams past row by row):
 *
 *   nt: out[M,N] = in[M,K] . w[N,K]^T   (nn.Linear weights, the tied LM head)
 *   nn: out[M,N] = in[M,K] . w[K,N]     (GPT-2 Conv1D weights, stored [in, out])
 *
 * then out = product + bias (+ out when accumulating). Columns (nt: rows of w) are split
 * over the OpenMP threads, so each weight byte is read by exactly one thread.
 * AVX-512 only: vc_skinny_{nt,nn}_ok() say whether a call can come here; others use BLAS. */
#include <immintrin.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/cpu.h"
#include "vc.h"

enum {
    MB = 4,  /* nt: activation rows per register tile */
    NB = 4,  /* nt: weight rows per tile (MB x NB dot products in flight) */
    NN_MAX_ROWS = 6, NN_MAX_VECS = 6, /* nn register tiles: at most 6 rows x 6 16-float vectors */
    NN_WIDE_MAX_M = 8, /* nn: up to this many rows, 4 x 96 tiles; beyond, 6 x 64 */
    KBLK = 128, /* nn: rows of w per tile pass: a 128-row panel (32-48 KB) stays in L1 */
    PF = 8,  /* nn: rows of w prefetched ahead: the tile walks w with a stride of N floats */
};

/* Row counts up to which these kernels beat OpenBLAS on weights streamed from memory (GPT-2
 * shapes 768 x 3072, 3072 x 768, 50257 x 768, one thread: 1.4-2x at 5..64 rows, 2-4x below):
 * OpenBLAS repacks the whole weight operand on every call, which a decode step cannot amortise. */
int vc_skinny_nt_ok(int M, int N, int K) {
    return M >= 1 && M <= VC_SKINNY_NT_MAX_M && N >= 1 && K >= 1 && vc_cpu()->avx512f;
}
int vc_skinny_nn_ok(int M, int N, int K) {
    return M >= 1 && M <= VC_SKINNY_NN_MAX_M && N >= 1 && K >= 1 && vc_cpu()->avx512f;
}

static int threads_for(size_t weight_floats) {
#ifdef _OPENMP
    if (omp_in_parallel()) return 1;
#endif
    /* below ~64 KB of weights a fork costs more than it saves */
    return weight_floats < 16384 ? 1 : vc_get_num_threads();
}

/* Columns (nt: weight rows) per work item: about CHUNKS items per thread, handed out
 * dynamically, so that a thread the OS preempts (a busy, shared machine) delays the kernel
 * by one item rather than by its whole static share; multiples of `unit` keep tiles whole. */
enum { CHUNKS = 6 };
static int chunk(int N, int nt, int unit) {
    const int items = nt > 1 ? nt * CHUNKS : 1;
    const int per = ((N + items - 1) / items + unit - 1) / unit * unit;
    return per > 0 ? per : unit;
}

static inline __mmask16 tail_mask(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

/* ---- nt: MB x NB dot products of length K per tile ---------------------------------------- */

__attribute__((always_inline, target("avx512f"))) static inline void nt_tile(float *out, int ldo, const float *x,
                                                                          int K, const float *w, int mb, int nb,
                                                                          const float *bias, int accumulate,
                                                                          int prefetch) {
    __m512 acc[MB][NB];
#pragma GCC unroll 4
    for (int i = 0; i < MB; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) acc[i][j] = _mm512_setzero_ps();
    for (int k = 0; k < K; k += 16) {
        const __mmask16 m = tail_mask(K - k);
        /* The next tile's rows, one cache line each per step: with several activation rows
         * the FMAs per weight byte delay the hardware prefetcher's stream. */
        if (prefetch)
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++) _mm_prefetch((const char *)(w + (size_t)(NB + j) * K + k), _MM_HINT_T0);
        __m512 wv[NB];
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++)
            wv[j] = j < nb ? _mm512_maskz_loadu_ps(m, w + (size_t)j * K + k) : _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int i = 0; i < MB; i++) {
            if (i >= mb) break;
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)i * K + k);
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++)
                if (j < nb) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MB; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) {
            if (i >= mb || j >= nb) continue;
            float s = _mm512_reduce_add_ps(acc[i][j]);
            if (bias) s += bias[j];
            float *o = out + (size_t)i * ldo + j;
            *o = accumulate ? *o + s : s;
        }
}

/* Full tiles get compile-time row counts (one body per mb), so the accumulators stay in
 * registers; the last, partial tile of weight rows takes the generic body. */
__attribute__((target("avx512f"))) static void nt_range(float *out, const float *in, const float *w, const float *bias,
                                                        int M, int N, int K, int n0, int n1, int accumulate) {
    for (int n = n0; n < n1; n += NB) {
        const int nb = n1 - n < NB ? n1 - n : NB;
        for (int m = 0; m < M; m += MB) {
            const int mb = M - m < MB ? M - m : MB;
            float *o = out + (size_t)m * N + n;
            const float *x = in + (size_t)m * K, *wn = w + (size_t)n * K, *bn = bias ? bias + n : NULL;
            const int pf = m == 0 && n + 2 * NB <= n1; /* first pass over these rows reads memory */
            if (nb < NB) nt_tile(o, N, x, K, wn, mb, nb, bn, accumulate, 0);
            else if (mb == 4) nt_tile(o, N, x, K, wn, 4, NB, bn, accumulate, pf);
            else if (mb == 3) nt_tile(o, N, x, K, wn, 3, NB, bn, accumulate, pf);
            else if (mb == 2) nt_tile(o, N, x, K, wn, 2, NB, bn, accumulate, pf);
            else nt_tile(o, N, x, K, wn, 1, NB, bn, accumulate, pf);
        }
    }
}

void cpu_skinny_nt(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                   int accumulate) {
    const int nt = threads_for((size_t)N * K);
    const int per = chunk(N, nt, NB);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int n0 = 0; n0 < N; n0 += per) nt_range(out, in, w, bias, M, N, K, n0, n0 + per < N ? n0 + per : N, accumulate);
}

/* ---- nn: register tiles of mn rows x (nc x 16) columns, K in blocks of KBLK rows ------------ */

/* A tile of mn x 16nc outputs over rows k0..k1 of w. first: start from bias (+ out when
 * accumulating), else continue the partial sums in out. The KBLK-row panel of w a tile walks
 * stays in L1 for the row blocks that follow, so w comes from memory once. mn, nc and (for
 * whole tiles) mb are compile-time constants, so the accumulators stay in registers. */
__attribute__((always_inline, target("avx512f"))) static inline void nn_tile(float *out, int ldo, const float *x,
                                                                          int ldx, const float *w, int ldw, int k0,
                                                                          int k1, int mb, int ncols,
                                                                          const float *bias, int first, int accumulate,
                                                                          const int mn, const int nc) {
    __m512 acc[NN_MAX_ROWS][NN_MAX_VECS];
    __mmask16 msk[NN_MAX_VECS];
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++) msk[c] = tail_mask(ncols - 16 * c > 0 ? ncols - 16 * c : 0);
#pragma GCC unroll 8
    for (int i = 0; i < mn; i++)
#pragma GCC unroll 8
        for (int c = 0; c < nc; c++) {
            const float *o = out + (size_t)i * ldo + 16 * c;
            __m512 v = _mm512_setzero_ps();
            if (i < mb && (!first || accumulate)) v = _mm512_maskz_loadu_ps(msk[c], o);
            if (i < mb && first && bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(msk[c], bias + 16 * c));
            acc[i][c] = v;
        }
    for (int k = k0; k < k1; k++) {
        const float *wk = w + (size_t)k * ldw;
        if (k + PF < k1)
#pragma GCC unroll 8
            for (int c = 0; c < nc; c++) _mm_prefetch((const char *)(wk + (size_t)PF * ldw + 16 * c), _MM_HINT_T0);
        __m512 wv[NN_MAX_VECS];
#pragma GCC unroll 8
        for (int c = 0; c < nc; c++) wv[c] = _mm512_maskz_loadu_ps(msk[c], wk + 16 * c);
#pragma GCC unroll 8
        for (int i = 0; i < mn; i++) {
            if (i >= mb) break;
            const __m512 xb = _mm512_set1_ps(x[(size_t)i * ldx + k]);
#pragma GCC unroll 8
            for (int c = 0; c < nc; c++) acc[i][c] = _mm512_fmadd_ps(xb, wv[c], acc[i][c]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mn; i++)
#pragma GCC unroll 8
        for (int c = 0; c < nc; c++)
            if (i < mb && msk[c]) _mm512_mask_storeu_ps(out + (size_t)i * ldo + 16 * c, msk[c], acc[i][c]);
}

/* k-blocks outermost: a block's rows are read across the item's whole column range (a few
 * hundred contiguous bytes per row) before the next block, which the hardware prefetchers
 * follow better than one panel at a time down all K rows. */
__attribute__((always_inline, target("avx512f"))) static inline void nn_range(float *out, const float *in,
                                                                           const float *w, const float *bias, int M,
                                                                           int N, int K, int n0, int n1,
                                                                           int accumulate, const int mn,
                                                                           const int nc) {
    for (int k0 = 0; k0 < K; k0 += KBLK) {
        const int k1 = K - k0 < KBLK ? K : k0 + KBLK, first = k0 == 0;
        for (int n = n0; n < n1; n += 16 * nc) {
            const int ncols = n1 - n < 16 * nc ? n1 - n : 16 * nc;
            const float *wn = w + n, *bn = bias ? bias + n : NULL;
            for (int m = 0; m < M; m += mn) {
                const int mb = M - m < mn ? M - m : mn;
                float *o = out + (size_t)m * N + n;
                const float *x = in + (size_t)m * K;
#define NN_TILE(rows) nn_tile(o, N, x, K, wn, N, k0, k1, rows, 16 * nc, bn, first, accumulate, mn, nc)
                if (ncols < 16 * nc) nn_tile(o, N, x, K, wn, N, k0, k1, mb, ncols, bn, first, accumulate, mn, nc);
                else if (mb == mn) NN_TILE(mn);
                else if (mb == 5) NN_TILE(5);
                else if (mb == 4) NN_TILE(4);
                else if (mb == 3) NN_TILE(3);
                else if (mb == 2) NN_TILE(2);
                else NN_TILE(1);
#undef NN_TILE
            }
        }
    }
}

/* Two tile shapes: up to 8 rows, 4 x 96 (a wider panel: more contiguous bytes per row of w
 * while memory is the limit); more rows, 6 x 64 (more FMAs per load of w once compute is). */
__attribute__((target("avx512f"))) static void nn_range_4x6(float *out, const float *in, const float *w,
                                                            const float *bias, int M, int N, int K, int n0, int n1,
                                                            int accumulate) {
    nn_range(out, in, w, bias, M, N, K, n0, n1, accumulate, 4, 6);
}
__attribute__((target("avx512f"))) static void nn_range_6x4(float *out, const float *in, const float *w,
                                                            const float *bias, int M, int N, int K, int n0, int n1,
                                                            int accumulate) {
    nn_range(out, in, w, bias, M, N, K, n0, n1, accumulate, 6, 4);
}

/* ---- nn, row-streaming: out rows as accumulators in L1/L2, w read row by row --------------- */

/* For one to a few rows, reading w row after row (sequential streams) beats the register
 * tiles, which walk it in 64-column panels with a stride of N floats; past a few rows the
 * extra loads and stores of the output rows cost more than the panel walk. */
enum { KB = 4, NN_ROWS_MAX_M = 4 }; /* KB: rows of w per pass over the output rows */

/* One pass of KB rows of w over the output rows, mb (1..NN_ROWS_MAX_M) a compile-time
 * constant so that the broadcast activations stay in registers across the columns. */
__attribute__((always_inline, target("avx512f"))) static inline void nn_rows_pass(float *out, const float *in,
                                                                               const float *w, int M, int N, int K,
                                                                               int k, int kb, int n0, int n1) {
    __m512 xb[NN_ROWS_MAX_M][KB];
#pragma GCC unroll 4
    for (int m = 0; m < NN_ROWS_MAX_M; m++)
#pragma GCC unroll 4
        for (int j = 0; j < KB; j++)
            xb[m][j] = m < M && j < kb ? _mm512_set1_ps(in[(size_t)m * K + k + j]) : _mm512_setzero_ps();
    const float *wk = w + (size_t)k * N;
    for (int n = n0; n < n1; n += 16) {
        const __mmask16 msk = tail_mask(n1 - n);
        __m512 wv[KB];
#pragma GCC unroll 4
        for (int j = 0; j < KB; j++)
            wv[j] = j < kb ? _mm512_maskz_loadu_ps(msk, wk + (size_t)j * N + n) : _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int m = 0; m < NN_ROWS_MAX_M; m++) {
            if (m >= M) break;
            float *o = out + (size_t)m * N + n;
            __m512 v = _mm512_maskz_loadu_ps(msk, o);
#pragma GCC unroll 4
            for (int j = 0; j < KB; j++)
                if (j < kb) v = _mm512_fmadd_ps(xb[m][j], wv[j], v);
            _mm512_mask_storeu_ps(o, msk, v);
        }
    }
}

__attribute__((target("avx512f"))) static void nn_rows_range(float *out, const float *in, const float *w,
                                                             const float *bias, int M, int N, int K, int n0, int n1,
                                                             int accumulate) {
    /* out = (accumulate ? out : 0) + bias, then += x[m,k] w[k,:] for k in order */
    for (int m = 0; m < M; m++) {
        float *o = out + (size_t)m * N;
        for (int n = n0; n < n1; n += 16) {
            const __mmask16 msk = tail_mask(n1 - n);
            __m512 v = accumulate ? _mm512_maskz_loadu_ps(msk, o + n) : _mm512_setzero_ps();
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(msk, bias + n));
            _mm512_mask_storeu_ps(o + n, msk, v);
        }
    }
    for (int k = 0; k < K; k += KB) {
        const int kb = K - k < KB ? K - k : KB;
        if (kb < KB) nn_rows_pass(out, in, w, M, N, K, k, kb, n0, n1);
        else if (M == 1) nn_rows_pass(out, in, w, 1, N, K, k, KB, n0, n1);
        else if (M == 2) nn_rows_pass(out, in, w, 2, N, K, k, KB, n0, n1);
        else if (M == 3) nn_rows_pass(out, in, w, 3, N, K, k, KB, n0, n1);
        else nn_rows_pass(out, in, w, 4, N, K, k, KB, n0, n1);
    }
}

void cpu_skinny_nn(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                   int accumulate) {
    const int nt = threads_for((size_t)N * K);
    const int per = chunk(N, nt, M <= NN_WIDE_MAX_M ? 96 : 64);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int n0 = 0; n0 < N; n0 += per) {
        const int n1 = n0 + per < N ? n0 + per : N;
        if (M <= NN_ROWS_MAX_M) nn_rows_range(out, in, w, bias, M, N, K, n0, n1, accumulate);
        else if (M <= NN_WIDE_MAX_M) nn_range_4x6(out, in, w, bias, M, N, K, n0, n1, accumulate);
        else nn_range_6x4(out, in, w, bias, M, N, K, n0, n1, accumulate);
    }
}
