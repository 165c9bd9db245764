/* CPU backend kernels (see ops/backend.h for the contracts). */
#ifndef VC_CPU_H
#define VC_CPU_H

#include <stddef.h>

/* c[M,N] = a[M,K] . w[N,K]^T + beta c, split over the OpenMP threads. */
void cpu_gemm_nt(int M, int N, int K, const float *a, int lda, const float *w, int ldw, float beta, float *c,
                 int ldc);
void cpu_linear(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                int accumulate);
void cpu_layernorm(float *out, const float *in, const float *w, const float *b, size_t rows, int C, float eps);
void cpu_gelu(float *x, size_t n);
void cpu_gelu_tanh(float *x, size_t n);
void cpu_silu(float *x, size_t n);
void cpu_add(float *out, const float *a, const float *b, size_t n);
void cpu_softmax_rows(float *x, size_t rows, int cols, float scale);
void cpu_softmax_rows_serial(float *x, size_t rows, int cols, float scale);
void cpu_attention(float *out, int ld_out, const float *q, const float *k, const float *v, int ld, int B, int T,
                   int H, int D, float *probs, float *scratch);
size_t cpu_attention_scratch(int B, int T, int H);
void cpu_patch_embed(float *out, const float *px, const float *w, const float *bias, int B, int Cin, int Hi,
                     int Wi, int P, int Cout, float *scratch);

/* Elements per OpenMP chunk for streaming kernels: big enough to amortise the fork. */
#define VC_CHUNK 16384

#endif
