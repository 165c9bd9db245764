/* Multi-head scaled dot-product attention, one (image, head) pair per task.
 *
 * q, k, v: [B*T, ld] with head h at columns h*D .. h*D+D-1, so the projections are read
 * in place (no transposes or copies). Per pair: S = q k^T (GEMM), row softmax with the
 * 1/sqrt(D) scale folded in, out = S v (GEMM). Pairs run on the OpenMP threads, each with
 * single-threaded BLAS and its own T x T scratch.
 * Training with attention dropout (transformers: softmax -> dropout -> . V): out = drop(P) v,
 * where drop is the dropout kernel's mask over the index of P in [B,H,T,T], so the dropped
 * pair is rebuilt from P and the seed in backward instead of being kept. */
#include <math.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/blas.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

static int max_threads(void) { return vc_get_num_threads(); }

size_t cpu_attention_scratch(int B, int T, int H) { return (size_t)max_threads() * T * T; }

/* probs [B,H,T,T] (NULL-able) receives P before dropout; p_drop in [0, 1). */
void cpu_attention_dropout(float *out, int ld_out, const float *q, const float *k, const float *v, int ld, int B,
                           int T, int H, int D, float *probs, float p_drop, uint64_t seed, float *scratch) {
    const float scale = 1.f / sqrtf((float)D);
    const size_t tt = (size_t)T * T;
    const int pairs = B * H;
    const int nt = max_threads();
#pragma omp parallel for schedule(dynamic) num_threads(nt) if (pairs > 1)
    for (int p = 0; p < pairs; p++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const int b = p / H, h = p % H;
        const size_t row0 = (size_t)b * T;
        const float *qh = q + row0 * ld + (size_t)h * D;
        const float *kh = k + row0 * ld + (size_t)h * D;
        const float *vh = v + row0 * ld + (size_t)h * D;
        float *own = scratch + (size_t)tid * tt;
        float *s = probs ? probs + (size_t)p * tt : own;
        vc_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.f, qh, ld, kh, ld, 0.f, s, T);
        cpu_softmax_rows_serial(s, T, T, scale);
        if (p_drop > 0.f) { /* into the thread's scratch (in place when probs is NULL) */
            cpu_dropout_slice(own, s, tt, p_drop, seed, (uint64_t)p * tt);
            s = own;
        }
        vc_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.f, s, T, vh, ld, 0.f,
                 out + row0 * ld_out + (size_t)h * D, ld_out);
    }
}

void cpu_attention(float *out, int ld_out, const float *q, const float *k, const float *v, int ld, int B, int T,
                   int H, int D, float *probs, float *scratch) {
    cpu_attention_dropout(out, ld_out, q, k, v, ld, B, T, H, D, probs, 0.f, 0, scratch);
}
