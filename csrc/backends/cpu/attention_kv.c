/* Attention of query rows against per-row key/value memories: a decoder's self-attention
 * over its KV cache and its cross-attention over encoder states.
 *
 * Row r holds Tq queries at q + (r*Tq + i)*ldq (head h at column h*D). Its keys are at
 * k[r] + t*ldkv + h*D for t < Tk, its values likewise at v[r]: each row names its own
 * memory, so the beams of one image share one cross-attention K/V block and cache rows
 * need not be contiguous. causal: query i sits at position Tk - Tq + i and sees the keys
 * t <= Tk - Tq + i (the keys of the tokens before it and its own).
 *
 * Per (head, row) pair and query: s = q.k over the visible keys, p = softmax(scale * s)
 * (the vectorised row softmax), out = p . V. Pairs run head-major, so consecutive pairs
 * on a thread are rows of one head whose shared K/V block stays in cache. */
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <string.h>

#include "backends/cpu/cpu.h"
#include "vc.h"

size_t cpu_attention_kv_scratch(int Tk) { return (size_t)vc_get_num_threads() * ((size_t)Tk + 16); }

__attribute__((target_clones("avx512f", "avx2", "default"))) static void scores(float *s, const float *q,
                                                                               const float *k, int ldkv, int n,
                                                                               int D) {
    for (int t = 0; t < n; t++) {
        const float *kt = k + (size_t)t * ldkv;
        float acc = 0.f;
#pragma omp simd reduction(+ : acc)
        for (int d = 0; d < D; d++) acc += q[d] * kt[d];
        s[t] = acc;
    }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void weighted_sum(float *o, const float *p,
                                                                                     const float *v, int ldkv, int n,
                                                                                     int D) {
    memset(o, 0, sizeof(float) * (size_t)D);
    for (int t = 0; t < n; t++) {
        const float *vt = v + (size_t)t * ldkv;
        const float pt = p[t];
#pragma omp simd
        for (int d = 0; d < D; d++) o[d] += pt * vt[d];
    }
}

/* ---- AVX-512 bodies for head sizes that are multiples of 16 (GPT-2: 64) ---- */

/* Sum of each of 16 vectors, as the 16 lanes of one vector: a transpose-and-add tree, so that
 * 16 dot products cost 30 shuffles instead of 16 full horizontal reductions. The tree leaves the
 * sum of v[SUM16_LANE[j]] in lane j (an involution: store input j at v[SUM16_LANE[j]]). */
static const int SUM16_LANE[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};

__attribute__((target("avx512f"))) static inline __m512 sum16(__m512 v[16]) {
    for (int n = 16, half = 8; n > 1; n /= 2, half /= 2) {
        /* level: pair vector i with i + n/2; lanes move by 8, 4, 2, 1 */
        for (int i = 0; i < n / 2; i++) {
            __m512 a = v[i], b = v[i + n / 2], lo, hi;
            if (half == 8) {
                lo = _mm512_shuffle_f32x4(a, b, 0x44), hi = _mm512_shuffle_f32x4(a, b, 0xEE);
            } else if (half == 4) {
                lo = _mm512_shuffle_f32x4(a, b, 0x88), hi = _mm512_shuffle_f32x4(a, b, 0xDD);
            } else if (half == 2) {
                lo = _mm512_shuffle_ps(a, b, 0x44), hi = _mm512_shuffle_ps(a, b, 0xEE);
            } else {
                lo = _mm512_shuffle_ps(a, b, 0x88), hi = _mm512_shuffle_ps(a, b, 0xDD);
            }
            v[i] = _mm512_add_ps(lo, hi);
        }
    }
    return v[0];
}

__attribute__((target("avx512f"))) static void scores_avx512(float *s, const float *q, const float *k, int ldkv, int n,
                                                            int D) {
    int t = 0;
    for (; t + 16 <= n; t += 16) {
        __m512 acc[16];
        for (int j = 0; j < 16; j++) {
            const float *kt = k + (size_t)(t + j) * ldkv;
            __m512 a = _mm512_mul_ps(_mm512_loadu_ps(q), _mm512_loadu_ps(kt));
            for (int d = 16; d < D; d += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(kt + d), a);
            acc[SUM16_LANE[j]] = a;
        }
        _mm512_storeu_ps(s + t, sum16(acc));
    }
    for (; t < n; t++) {
        const float *kt = k + (size_t)t * ldkv;
        __m512 a = _mm512_mul_ps(_mm512_loadu_ps(q), _mm512_loadu_ps(kt));
        for (int d = 16; d < D; d += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(kt + d), a);
        s[t] = _mm512_reduce_add_ps(a);
    }
}

enum { WS_MAX_D = 128 }; /* output row kept in registers: 8 vectors */

__attribute__((target("avx512f"))) static void weighted_sum_avx512(float *o, const float *p, const float *v, int ldkv,
                                                                  int n, int D) {
    __m512 acc[WS_MAX_D / 16];
    const int nv = D / 16;
    for (int c = 0; c < nv; c++) acc[c] = _mm512_setzero_ps();
    for (int t = 0; t < n; t++) {
        const float *vt = v + (size_t)t * ldkv;
        const __m512 pt = _mm512_set1_ps(p[t]);
        for (int c = 0; c < nv; c++) acc[c] = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vt + 16 * c), acc[c]);
    }
    for (int c = 0; c < nv; c++) _mm512_storeu_ps(o + 16 * c, acc[c]);
}

void cpu_attention_kv(float *out, int ld_out, const float *q, int ldq, const float *const *k, const float *const *v,
                      int ldkv, int n_rows, int Tq, int Tk, int H, int D, float scale, int causal, float *scratch) {
    const long pairs = (long)H * n_rows;
    const double work = (double)pairs * Tq * Tk * D;
    /* a fork and join costs ~10 us: not worth it for the self-attention of a decode step */
    const int nt = work < (1 << 20) ? 1 : vc_get_num_threads();
    const int wide = vc_cpu()->avx512f && D % 16 == 0 && D <= WS_MAX_D;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (long p = 0; p < pairs; p++) {
        int tid = 0;
#ifdef _OPENMP
        tid = nt > 1 ? omp_get_thread_num() : 0;
#endif
        const int h = (int)(p / n_rows), r = (int)(p % n_rows);
        float *s = scratch + (size_t)tid * ((size_t)Tk + 16);
        const float *kh = k[r] + (size_t)h * D, *vh = v[r] + (size_t)h * D;
        for (int i = 0; i < Tq; i++) {
            const size_t row = (size_t)r * Tq + i;
            const int n = causal ? Tk - Tq + i + 1 : Tk;
            float *o = out + row * ld_out + (size_t)h * D;
            if (wide) scores_avx512(s, q + row * ldq + (size_t)h * D, kh, ldkv, n, D);
            else scores(s, q + row * ldq + (size_t)h * D, kh, ldkv, n, D);
            cpu_softmax_rows_serial(s, 1, n, scale);
            if (wide) weighted_sum_avx512(o, s, vh, ldkv, n, D);
            else weighted_sum(o, s, vh, ldkv, n, D);
        }
    }
}
