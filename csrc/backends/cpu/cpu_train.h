/* CPU backend: training kernels (backward passes, loss, dropout, batch norm).
 * Contracts are documented on the vc_backend members in ops/backend.h; this header only
 * declares the CPU implementations and the helpers the training files share.
 * Kept apart from cpu.h so forward and training work merge without touching each other. */
#ifndef VC_CPU_TRAIN_H
#define VC_CPU_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

/* c[M,N] = a[K,M]^T . b[K,N] + beta c, split over the OpenMP threads (BLAS single-threaded). */
void cpu_gemm_tn(int M, int N, int K, const float *a, int lda, const float *b, int ldb, float beta, float *c,
                 int ldc);
/* acc[N] += column sums of x[M, ld] (first N columns), in double; parallel over columns. */
void cpu_sum_rows_into(float *acc, const float *x, size_t M, int N, size_t ld);
/* acc[C] += sum over b and HW of x[B, C, HW], in double; parallel over channels. */
void cpu_sum_planes_into(float *acc, const float *x, int B, int C, size_t HW);

void cpu_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int M,
                         int N, int K);
void cpu_linear_kn_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                            int M, int N, int K);

void cpu_layernorm_train(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b,
                         size_t rows, int C, float eps);
void cpu_layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *mean,
                            const float *rstd, const float *w, size_t rows, int C);
void cpu_layernorm_channels_train(float *out, float *mean, float *rstd, const float *in, const float *w,
                                  const float *b, int B, int C, size_t HW, float eps);
void cpu_layernorm_channels_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                                     const float *mean, const float *rstd, const float *w, int B, int C, size_t HW);

void cpu_gelu_backward(float *dx, const float *dout, const float *x, size_t n);
void cpu_gelu_tanh_backward(float *dx, const float *dout, const float *x, size_t n);
void cpu_silu_backward(float *dx, const float *dout, const float *x, size_t n);
void cpu_relu_backward(float *dx, const float *dout, const float *x, size_t n);

void cpu_softmax_backward(float *dx, const float *dy, const float *y, size_t rows, int cols, float scale);
void cpu_attention_backward(float *dq, float *dk, float *dv, int ld, const float *dout, int ld_out, const float *q,
                            const float *k, const float *v, const float *probs, int B, int T, int H, int D,
                            float *scratch);
size_t cpu_attention_backward_scratch(int B, int T, int H);

void cpu_conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in, const float *w,
                         int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                         int dw, int groups, float *scratch);
size_t cpu_conv2d_backward_scratch(int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw, int ph,
                                   int pw, int dh, int dw, int groups);
void cpu_patch_embed_backward(float *dpx, float *dw, float *db, const float *dout, const float *px, const float *w,
                              int B, int Cin, int Hi, int Wi, int P, int Cout, float *scratch);
size_t cpu_patch_embed_backward_scratch(int B, int Cin, int Hi, int Wi, int P);

void cpu_global_avg_pool_backward(float *din, const float *dout, int B, int C, size_t HW);
void cpu_scale_channels_add_backward(float *dx, float *dscale, float *dresidual, const float *dout, const float *x,
                                     const float *scale, int B, int C, size_t HW);
void cpu_resize_bilinear_backward(float *din, const float *dout, int B, int C, int H, int W, int Ho, int Wo);
void cpu_concat_channels_backward(float *da, float *db, const float *dout, int Ca, int Cb, int B, size_t HW);

vc_status cpu_cross_entropy(float *loss, float *dlogits, const float *logits, const int64_t *labels, int M, int Ncls,
                            float label_smoothing, int64_t ignore_index);
void cpu_dropout(float *out, const float *in, size_t n, float p, uint64_t seed);
/* Elements first .. first + n - 1 of cpu_dropout's stream for `seed`, serially: out[i] is what
 * cpu_dropout over the whole tensor writes at first + i. For kernels that drop slices of a
 * tensor inside their own threads (attention probabilities). out may equal in. */
void cpu_dropout_slice(float *out, const float *in, size_t n, float p, uint64_t seed, uint64_t first);
void cpu_drop_path(float *out, const float *in, int B, size_t per_sample, float p, uint64_t seed);
vc_status cpu_batchnorm_forward(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                float *running_var, const float *in, const float *gamma, const float *beta, int B,
                                int C, size_t HW, float momentum, float eps, int training);
void cpu_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *save_mean, const float *save_rstd, const float *gamma, int B, int C,
                            size_t HW, int training);

void cpu_add_into(float *acc, const float *x, size_t n);
void cpu_scale(float *out, const float *x, float alpha, size_t n);

void cpu_attention_dropout(float *out, int ld_out, const float *q, const float *k, const float *v, int ld, int B,
                           int T, int H, int D, float *probs, float p, uint64_t seed, float *scratch);
void cpu_attention_dropout_backward(float *dq, float *dk, float *dv, int ld, const float *dout, int ld_out,
                                    const float *q, const float *k, const float *v, const float *probs, int B, int T,
                                    int H, int D, float p, uint64_t seed, float *scratch);

#endif
