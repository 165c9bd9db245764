/* Token + position embeddings of a decoder: out[r*T + t] = wte[ids[r*T + t]] + wpe[pos0 + t].
 * The caller has checked every id against the vocabulary and pos0 + T against the table. */
#include "backends/cpu/cpu.h"
#include "vc.h"

void cpu_token_embed(float *out, const float *wte, const int32_t *ids, int n_rows, int T, int C, const float *wpe,
                     int pos0) {
    const size_t n = (size_t)n_rows * T;
#pragma omp parallel for schedule(static) if (n * C > VC_CHUNK) num_threads(vc_get_num_threads())
    for (size_t i = 0; i < n; i++) {
        const float *e = wte + (size_t)ids[i] * C, *p = wpe + (size_t)(pos0 + (int)(i % T)) * C;
        float *o = out + i * C;
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
    }
}
