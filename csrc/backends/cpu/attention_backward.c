/* Backward of row softmax and of multi-head attention.
 *
 * Legend: B batch, T tokens, H heads, D head dim; q, k, v, dq, dk, dv are [B*T, ld] with head h
 * at columns h*D (the layout attention.c reads, so a fused qkv buffer works: pass pointers at
 * column offsets 0, C, 2C and ld = 3C); dout is [B*T, ld_out]; probs [B, H, T, T] is what the
 * forward saved: P = softmax(scale q k^T), scale = 1/sqrt(D).
 * Per (image, head), with O = drop(P) V (drop: attention dropout, the identity when p = 0):
 *   dV = drop(P)^T dO      dP = drop(dO V^T)     (the same mask and 1/(1-p) scale)
 *   dS = scale * P * (dP - rowsum(dP * P))      (softmax backward, scale folded in)
 *   dQ = dS K              dK = dS^T Q
 * drop(P) is rebuilt from P and the seed (attention.c) in the pair's scratch, which then takes
 * dP: one T x T scratch per thread either way. Pairs run on the OpenMP threads with
 * single-threaded BLAS. */
#include <math.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/blas.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

/* dx[n] = scale * y * (dy - sum(dy * y)); dx may equal dy. */
static void softmax_row_backward(float *dx, const float *dy, const float *y, int n, float scale) {
    float dot = 0.f;
#pragma omp simd reduction(+ : dot)
    for (int i = 0; i < n; i++) dot += dy[i] * y[i];
#pragma omp simd
    for (int i = 0; i < n; i++) dx[i] = scale * y[i] * (dy[i] - dot);
}

/* dx[rows,cols] (assign, may equal dy), dy[rows,cols], y[rows,cols] = softmax(scale * x). */
void cpu_softmax_backward(float *dx, const float *dy, const float *y, size_t rows, int cols, float scale) {
#pragma omp parallel for schedule(static) if (rows * (size_t)cols > VC_CHUNK) num_threads(vc_get_num_threads())
    for (size_t r = 0; r < rows; r++)
        softmax_row_backward(dx + r * cols, dy + r * cols, y + r * cols, cols, scale);
}

size_t cpu_attention_backward_scratch(int B, int T, int H) { return (size_t)vc_get_num_threads() * T * T; }

/* dq, dk, dv: [B*T, ld] (assign, head columns only); dout [B*T, ld_out]; q, k, v [B*T, ld];
 * probs [B,H,T,T] (before dropout); p_drop, seed: the forward's; scratch:
 * cpu_attention_backward_scratch(B, T, H) floats. */
void cpu_attention_dropout_backward(float *dq, float *dk, float *dv, int ld, const float *dout, int ld_out,
                                    const float *q, const float *k, const float *v, const float *probs, int B, int T,
                                    int H, int D, float p_drop, uint64_t seed, float *scratch) {
    const float scale = 1.f / sqrtf((float)D);
    const size_t tt = (size_t)T * T;
    const int pairs = B * H;
#pragma omp parallel for schedule(dynamic) num_threads(vc_get_num_threads()) if (pairs > 1)
    for (int p = 0; p < pairs; p++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const int b = p / H, h = p % H;
        const size_t row0 = (size_t)b * T, col = (size_t)h * D;
        const float *P = probs + (size_t)p * tt, *Pv = P; /* Pv: what multiplied V */
        const float *dO = dout + row0 * ld_out + col;
        const float *qh = q + row0 * ld + col, *kh = k + row0 * ld + col, *vh = v + row0 * ld + col;
        float *ds = scratch + (size_t)tid * tt;
        if (p_drop > 0.f) {
            cpu_dropout_slice(ds, P, tt, p_drop, seed, (uint64_t)p * tt);
            Pv = ds;
        }
        vc_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.f, Pv, T, dO, ld_out, 0.f, dv + row0 * ld + col,
                 ld);
        vc_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.f, dO, ld_out, vh, ld, 0.f, ds, T);
        if (p_drop > 0.f) cpu_dropout_slice(ds, ds, tt, p_drop, seed, (uint64_t)p * tt);
        for (int r = 0; r < T; r++)
            softmax_row_backward(ds + (size_t)r * T, ds + (size_t)r * T, P + (size_t)r * T, T, scale);
        vc_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.f, ds, T, kh, ld, 0.f, dq + row0 * ld + col, ld);
        vc_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.f, ds, T, qh, ld, 0.f, dk + row0 * ld + col, ld);
    }
}

void cpu_attention_backward(float *dq, float *dk, float *dv, int ld, const float *dout, int ld_out, const float *q,
                            const float *k, const float *v, const float *probs, int B, int T, int H, int D,
                            float *scratch) {
    cpu_attention_dropout_backward(dq, dk, dv, ld, dout, ld_out, q, k, v, probs, B, T, H, D, 0.f, 0, scratch);
}
