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

void cpu_attention_kv(float *out, int ld_out, const float *q, int ldq, const float *const *k, const float *const *v,
                      int ldkv, int n_rows, int Tq, int Tk, int H, int D, float scale, int causal, float *scratch) {
    const long pairs = (long)H * n_rows;
    const double work = (double)pairs * Tq * Tk * D;
    const int nt = work < 65536 ? 1 : vc_get_num_threads();
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
            scores(s, q + row * ldq + (size_t)h * D, kh, ldkv, n, D);
            cpu_softmax_rows_serial(s, 1, n, scale);
            weighted_sum(out + row * ld_out + (size_t)h * D, s, vh, ldkv, n, D);
        }
    }
}
