/* CPU backend kernels (see ops/backend.h for the contracts). */
#ifndef VC_CPU_H
#define VC_CPU_H

#include <stddef.h>
#include <stdint.h>

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

void cpu_gemm_nn(int M, int N, int K, const float *a, int lda, const float *b, int ldb, float beta, float *c,
                 int ldc);
int vc_conv_out_size(int in, int k, int stride, int pad, int dil);
/* One depthwise plane, stride 1, AVX-512 only: out[Ho,Wo] = bias + in[H,W] (zero-padded by p)
 * correlated with w[k,k]; pad: (H+2p) x (W+2p) floats of scratch. The backward reuses it. */
void cpu_depthwise_plane_s1_avx512(float *out, const float *in, const float *w, float bias, int H, int W, int k, int p,
                                   int Ho, int Wo, float *pad);
void cpu_conv2d(float *out, const float *in, const float *w, const float *bias, int B, int Ci, int H, int W, int Co,
                int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups, float *scratch);
size_t cpu_conv2d_scratch(int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                          int dw, int groups);
void cpu_layernorm_channels(float *out, const float *in, const float *w, const float *b, int B, int C, size_t HW,
                            float eps);
void cpu_global_avg_pool(float *out, const float *in, int B, int C, size_t HW);
void cpu_scale_channels_add(float *out, const float *x, const float *scale, const float *residual, int B, int C,
                            size_t HW);
void cpu_resize_bilinear(float *out, const float *in, int B, int C, int H, int W, int Ho, int Wo);
void cpu_concat_channels(float *out, const float *a, int Ca, const float *b, int Cb, int B, size_t HW);
void cpu_patch_unfold(float *patches, const float *x, int B, int C, int H, int W, int ph, int pw);
void cpu_patch_fold(float *x, const float *patches, int B, int C, int H, int W, int ph, int pw);

/* Autoregressive decoders (gemm_skinny.c, linear_io.c, attention_kv.c, token_embed.c). */
#define VC_SKINNY_NT_MAX_M 64 /* rows up to which the skinny GEMMs beat BLAS (decode steps) */
#define VC_SKINNY_NN_MAX_M 64
int vc_skinny_nt_ok(int M, int N, int K);
int vc_skinny_nn_ok(int M, int N, int K);
void cpu_skinny_nt(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                   int accumulate);
void cpu_skinny_nn(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                   int accumulate);
void cpu_linear_io(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                   int accumulate);
void cpu_attention_kv(float *out, int ld_out, const float *q, int ldq, const float *const *k, const float *const *v,
                      int ldkv, int n_rows, int Tq, int Tk, int H, int D, float scale, int causal, float *scratch);
size_t cpu_attention_kv_scratch(int Tk);
void cpu_token_embed(float *out, const float *wte, const int32_t *ids, int n_rows, int T, int C, const float *wpe,
                     int pos0);

/* Elements per OpenMP chunk for streaming kernels: big enough to amortise the fork. */
#define VC_CHUNK 16384

#endif
