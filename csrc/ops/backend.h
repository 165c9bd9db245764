/* The backend seam: a table of kernels that model code calls through ops.h.
 *
 * Models never name a backend. The CPU backend lives in backends/cpu; a CUDA backend
 * fills the same table with device kernels taking device pointers.
 *
 * Dimension legend: M rows (batch x tokens), N output features, K input features,
 * B batch, T tokens, C channels, H heads, D head dim. All matrices row-major.
 */
#ifndef VC_BACKEND_H
#define VC_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

typedef struct vc_backend {
    const char *name;
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);

    /* out[M,N] (+)= in[M,K] . w[N,K]^T + bias[N]; bias may be NULL.
     * accumulate=1 adds to out (used to fuse residual connections). */
    void (*linear)(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                   int accumulate);
    /* Row-wise layer norm over the last dimension: out[rows,C]. out may equal in. */
    void (*layernorm)(float *out, const float *in, const float *w, const float *b, size_t rows, int C,
                      float eps);
    /* In place, exact (erf) GELU. */
    void (*gelu)(float *x, size_t n);
    /* In place, tanh-approximation GELU (GPT-2's gelu_new). */
    void (*gelu_tanh)(float *x, size_t n);
    /* In place SiLU. */
    void (*silu)(float *x, size_t n);
    /* out[i] = a[i] + b[i] */
    void (*add)(float *out, const float *a, const float *b, size_t n);
    /* In place softmax of each row of x[rows,cols] after multiplying by scale. */
    void (*softmax_rows)(float *x, size_t rows, int cols, float scale);
    /* Multi-head attention. q,k,v: rows of length ld (head h at column offset h*D) for
     * B*T tokens; out[B*T, ld_out] at column h*D. probs, if not NULL, receives
     * softmax(q k^T / sqrt(D)) as [B,H,T,T]. scratch: at least attention_scratch(...) floats. */
    void (*attention)(float *out, int ld_out, const float *q, const float *k, const float *v, int ld, int B,
                      int T, int H, int D, float *probs, float *scratch);
    size_t (*attention_scratch)(int B, int T, int H);
    /* Non-overlapping patches of px[B,Cin,Hi,Wi] (P x P, stride P, top-left aligned) projected
     * by w[Cout, Cin*P*P] + bias: out row (b, 1 + py*gw + px) of a [B, 1+gh*gw, Cout] buffer.
     * scratch: B*gh*gw*Cin*P*P floats. */
    void (*patch_embed)(float *out, const float *px, const float *w, const float *bias, int B, int Cin,
                        int Hi, int Wi, int P, int Cout, float *scratch);

    /* ---- convolutional models (NCHW maps) ---- */
    /* out[B,Co,Ho,Wo] = conv2d(in[B,Ci,H,W], w[Co, Ci/groups, kh, kw]) + bias (bias may be NULL),
     * zero padding; Ho = (H + 2ph - dh(kh-1) - 1)/sh + 1. scratch: conv2d_scratch(...) floats. */
    void (*conv2d)(float *out, const float *in, const float *w, const float *bias, int B, int Ci, int H, int W,
                   int Co, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups, float *scratch);
    size_t (*conv2d_scratch)(int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw, int ph, int pw,
                             int dh, int dw, int groups);
    /* LayerNorm2d: normalise over C at each pixel of x[B, C, HW]. out may equal in. */
    void (*layernorm_channels)(float *out, const float *in, const float *w, const float *b, int B, int C, size_t HW,
                               float eps);
    /* out[B, C] = mean over HW of in[B, C, HW]. */
    void (*global_avg_pool)(float *out, const float *in, int B, int C, size_t HW);
    /* out = residual + scale[c] * x (scale, residual may be NULL); out may alias x or residual. */
    void (*scale_channels_add)(float *out, const float *x, const float *scale, const float *residual, int B, int C,
                               size_t HW);
    /* Bilinear resize of in[B,C,H,W] to [B,C,Ho,Wo], align_corners=False (F.interpolate). */
    void (*resize_bilinear)(float *out, const float *in, int B, int C, int H, int W, int Ho, int Wo);
    /* out[B, Ca+Cb, HW] = cat(a[B,Ca,HW], b[B,Cb,HW]) along channels. */
    void (*concat_channels)(float *out, const float *a, int Ca, const float *b, int Cb, int B, size_t HW);
    /* MobileViT: x[B,C,H,W] <-> patches[B*ph*pw, (H/ph)*(W/pw), C], offset-major (see spatial.c). */
    void (*patch_unfold)(float *patches, const float *x, int B, int C, int H, int W, int ph, int pw);
    void (*patch_fold)(float *x, const float *patches, int B, int C, int H, int W, int ph, int pw);

    /* ---- training: backward kernels, loss, dropout, batch norm ----
     * Conventions (STYLE.md): activation gradients are ASSIGNED (din = ...); parameter
     * gradients ACCUMULATE (dw += ...), so a weight used twice, or several micro-batches, sum
     * their contributions: zero them once per optimizer step. A gradient output marked
     * "NULL-able" is skipped when NULL. Outputs must not alias inputs unless a line says so.
     * The reductions these kernels do themselves (bias, norm and scale gradients, batch-norm
     * statistics, the loss) give bit-identical results for any thread count; GEMMs split over
     * threads may not, in the last bits. Forward kernels
     * that work in place (gelu, silu) lose their input: a training caller keeps a copy. */

    /* Linear, w[N,K] (out = in . w^T + b): din[M,K] = dout[M,N] . w (assign);
     * dw[N,K] += dout^T . in[M,K]; db[N] += column sums of dout. din, dw, db NULL-able. */
    void (*linear_backward)(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                            int M, int N, int K);
    /* The same for weights stored w[K,N] (out = in . w + b; GPT-2 Conv1D): din = dout . w^T;
     * dw[K,N] += in^T . dout; db[N] += column sums of dout. */
    void (*linear_kn_backward)(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                               int M, int N, int K);
    /* layernorm that also saves mean[rows] and rstd[rows] = 1/sqrt(biased var + eps); same output
     * as layernorm. out may equal in. w, b NULL: no affine. */
    void (*layernorm_train)(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b,
                            size_t rows, int C, float eps);
    /* din[rows,C] (assign; may equal dout; NULL-able); dw[C] += sum dout * xhat, db[C] += sum dout
     * (NULL-able); in: the forward input; mean, rstd from layernorm_train; w[C] or NULL. */
    void (*layernorm_backward)(float *din, float *dw, float *db, const float *dout, const float *in,
                               const float *mean, const float *rstd, const float *w, size_t rows, int C);
    /* LayerNorm2d over C of x[B,C,HW], saving mean[B,HW] and rstd[B,HW]; out may equal in. */
    void (*layernorm_channels_train)(float *out, float *mean, float *rstd, const float *in, const float *w,
                                     const float *b, int B, int C, size_t HW, float eps);
    /* din[B,C,HW] (assign; may equal dout; NULL-able), dw[C], db[C] (+=, NULL-able). */
    void (*layernorm_channels_backward)(float *din, float *dw, float *db, const float *dout, const float *in,
                                        const float *mean, const float *rstd, const float *w, int B, int C, size_t HW);
    /* dx[n] = dout[n] * f'(x[n]) with x the PRE-activation input; dx may equal dout. */
    void (*gelu_backward)(float *dx, const float *dout, const float *x, size_t n);
    void (*gelu_tanh_backward)(float *dx, const float *dout, const float *x, size_t n);
    void (*silu_backward)(float *dx, const float *dout, const float *x, size_t n);
    void (*relu_backward)(float *dx, const float *dout, const float *x, size_t n); /* f'(0) = 0 */
    /* y[rows,cols] = softmax(scale * x): dx = scale * y * (dy - rowsum(dy * y)); dx may equal dy. */
    void (*softmax_backward)(float *dx, const float *dy, const float *y, size_t rows, int cols, float scale);
    /* Backward of attention (same layout: head h at columns h*D of rows of length ld, so dq, dk,
     * dv may point into one fused [B*T, 3C] buffer). dq, dk, dv: [B*T, ld] (assign, head columns
     * only); dout [B*T, ld_out]; q, k, v the forward inputs; probs [B,H,T,T] saved by the forward.
     * scratch: attention_backward_scratch(B, T, H) floats. */
    void (*attention_backward)(float *dq, float *dk, float *dv, int ld, const float *dout, int ld_out,
                               const float *q, const float *k, const float *v, const float *probs, int B, int T,
                               int H, int D, float *scratch);
    size_t (*attention_backward_scratch)(int B, int T, int H);
    /* Backward of conv2d, every path (same arguments as conv2d; dh, dw are the dilation):
     * din[B,Ci,H,W] (assign), dweight[Co,Ci/groups,kh,kw] (+=), dbias[Co] (+=), each NULL-able;
     * dout[B,Co,Ho,Wo]; in, w: the forward's. scratch: conv2d_backward_scratch(...) floats,
     * 8-byte aligned. */
    void (*conv2d_backward)(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                            const float *w, int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw,
                            int ph, int pw, int dh, int dw, int groups, float *scratch);
    size_t (*conv2d_backward_scratch)(int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw, int ph,
                                      int pw, int dh, int dw, int groups);
    /* Backward of patch_embed. dout has the forward's [B, 1+G, Cout] layout (row 0, the class
     * token slot, is ignored). dpx[B,Cin,Hi,Wi] (assign; pixels no patch covers get 0),
     * dw[Cout, Cin*P*P] (+=), db[Cout] (+=), each NULL-able.
     * scratch: patch_embed_backward_scratch(...) floats (one image's patches, G*Cin*P*P). */
    void (*patch_embed_backward)(float *dpx, float *dw, float *db, const float *dout, const float *px,
                                 const float *w, int B, int Cin, int Hi, int Wi, int P, int Cout, float *scratch);
    size_t (*patch_embed_backward_scratch)(int B, int Cin, int Hi, int Wi, int P);
    /* din[B,C,HW] = dout[B,C] / HW (assign). */
    void (*global_avg_pool_backward)(float *din, const float *dout, int B, int C, size_t HW);
    /* Of out = residual + scale[c] * x: dx = scale * dout (assign; may equal dout; scale NULL = 1),
     * dscale[C] += sum dout * x, dresidual = dout (assign). dx, dscale, dresidual NULL-able. */
    void (*scale_channels_add_backward)(float *dx, float *dscale, float *dresidual, const float *dout,
                                        const float *x, const float *scale, int B, int C, size_t HW);
    /* din[B,C,H,W] (assign) = adjoint of resize_bilinear applied to dout[B,C,Ho,Wo]. */
    void (*resize_bilinear_backward)(float *din, const float *dout, int B, int C, int H, int W, int Ho, int Wo);
    /* Split dout[B,Ca+Cb,HW] into da[B,Ca,HW], db[B,Cb,HW] (assign; either NULL-able). */
    void (*concat_channels_backward)(float *da, float *db, const float *dout, int Ca, int Cb, int B, size_t HW);
    /* Unfold and fold are permutations, each the other's inverse: dx = fold(dpatches) and
     * dpatches = unfold(dx) (assign); same arguments as patch_fold / patch_unfold. */
    void (*patch_unfold_backward)(float *dx, const float *dpatches, int B, int C, int H, int W, int ph, int pw);
    void (*patch_fold_backward)(float *dpatches, const float *dx, int B, int C, int H, int W, int ph, int pw);
    /* Mean cross-entropy of logits[M,Ncls] against labels[M] with PyTorch's label smoothing;
     * rows labelled ignore_index are left out of the mean (loss NaN if all are). loss[1];
     * dlogits[M,Ncls] = d loss / d logits (assign; NULL-able). VC_ERR_ARG, nothing written, on a
     * label outside [0, Ncls) or label_smoothing outside [0, 1]. */
    vc_status (*cross_entropy)(float *loss, float *dlogits, const float *logits, const int64_t *labels, int M,
                               int Ncls, float label_smoothing, int64_t ignore_index);
    /* out[n] = keep ? in / (1 - p) : 0 with keep drawn from a counter-based RNG keyed by
     * (seed, element index): independent of threads and regenerable, so the BACKWARD IS THE
     * SAME CALL on dout with the same p and seed. p in [0, 1]; out may equal in. */
    void (*dropout)(float *out, const float *in, size_t n, float p, uint64_t seed);
    /* Stochastic depth: out[b,:] = keep_b ? in[b,:] / (1 - p) : 0, keep_b keyed by (seed, b).
     * Backward: the same call on dout. out may equal in. */
    void (*drop_path)(float *out, const float *in, int B, size_t per_sample, float p, uint64_t seed);
    /* BatchNorm2d. training: batch statistics (biased variance) normalise; running_mean/var
     * (NULL-able) are updated as torch does (momentum, unbiased variance). Eval: running stats
     * (required) normalise. save_mean, save_rstd [C] receive the statistics used (NULL-able).
     * out may equal in. VC_ERR_ARG if training with B*HW < 2. gamma, beta NULL: no affine. */
    vc_status (*batchnorm_forward)(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                   float *running_var, const float *in, const float *gamma, const float *beta,
                                   int B, int C, size_t HW, float momentum, float eps, int training);
    /* din[B,C,HW] (assign; may equal dout; NULL-able), dgamma, dbeta [C] (+=, NULL-able), for the
     * mode the forward ran in (eval treats the statistics as constants). */
    void (*batchnorm_backward)(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                               const float *save_mean, const float *save_rstd, const float *gamma, int B, int C,
                               size_t HW, int training);
    /* acc[n] += x[n] (gradient of a tensor used twice). */
    void (*add_into)(float *acc, const float *x, size_t n);
    /* out[n] = alpha * x[n]; out may equal x. */
    void (*scale)(float *out, const float *x, float alpha, size_t n);
    /* attention and attention_backward with dropout on the attention probabilities (training,
     * transformers' attention_probs_dropout_prob): out = drop(P) V, drop(P) = what `dropout`
     * with (p, seed) makes of the whole probs tensor [B,H,T,T]. probs still receives P before
     * dropout (NULL-able in the forward; the backward needs it and rebuilds drop(P) from it and
     * the seed, so nothing more is kept). Same scratch sizes; p in [0, 1), p = 0: no dropout. */
    void (*attention_dropout)(float *out, int ld_out, const float *q, const float *k, const float *v, int ld, int B,
                              int T, int H, int D, float *probs, float p, uint64_t seed, float *scratch);
    void (*attention_dropout_backward)(float *dq, float *dk, float *dv, int ld, const float *dout, int ld_out,
                                       const float *q, const float *k, const float *v, const float *probs, int B,
                                       int T, int H, int D, float p, uint64_t seed, float *scratch);
    /* ---- bf16 compute (appended; see backends/cpu/bf16.h) ----
     * Operands rounded to bf16 (nearest even), products summed in fp32, fp32 out: equal to the
     * fp32 GEMM of the rounded inputs up to summation order, on every CPU.
     * c[M,N] = op(a) . op(b) + beta c; op(a)[M,K] is a stored [K,M] when trans_a; op(b)[K,N]
     * is b stored [N,K] when trans_b. */
    void (*gemm_bf16)(int trans_a, int trans_b, int M, int N, int K, const float *a, int lda, const float *b,
                      int ldb, float beta, float *c, int ldc);
    /* linear and linear_backward (same contracts) with bf16 GEMMs; bias and its gradient fp32. */
    void (*linear_bf16)(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                        int accumulate);
    void (*linear_backward_bf16)(float *din, float *dw, float *db, const float *dout, const float *in,
                                 const float *w, int M, int N, int K);
    /* conv2d and conv2d_backward (same contracts; scratch from conv2d_scratch and
     * conv2d_backward_scratch) with bf16 GEMMs for the pointwise and im2col paths, fp32 bias and
     * bias gradient; per-channel convs (groups == Ci > 1, depthwise) run in fp32: no GEMM there. */
    void (*conv2d_bf16)(float *out, const float *in, const float *w, const float *bias, int B, int Ci, int H, int W,
                        int Co, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups,
                        float *scratch);
    void (*conv2d_backward_bf16)(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                                 const float *w, int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw,
                                 int ph, int pw, int dh, int dw, int groups, float *scratch);
    /* ---- autoregressive decoders (GPT-2) ---- */
    /* out[M,N] (+)= in[M,K] . w[K,N] + bias[N]: weights stored [in, out] (GPT-2's Conv1D), used
     * in the checkpoint's layout. bias may be NULL. */
    void (*linear_io)(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                      int accumulate);
    /* Attention of n_rows rows of Tq queries, each row against its own keys/values: row r's
     * query i at q[(r*Tq+i)*ldq + h*D], key t at k[r][t*ldkv + h*D] (t < Tk), value at v[r] alike;
     * out[(r*Tq+i)*ld_out + h*D]. causal: query i sees keys t <= Tk - Tq + i. scores are scaled
     * by `scale`. scratch: attention_kv_scratch(Tk) floats. */
    void (*attention_kv)(float *out, int ld_out, const float *q, int ldq, const float *const *k,
                         const float *const *v, int ldkv, int n_rows, int Tq, int Tk, int H, int D, float scale,
                         int causal, float *scratch);
    size_t (*attention_kv_scratch)(int Tk);
    /* out[r*T+t, :C] = wte[ids[r*T+t]] + wpe[pos0+t] (ids and positions already checked). */
    void (*token_embed)(float *out, const float *wte, const int32_t *ids, int n_rows, int T, int C,
                        const float *wpe, int pos0);
} vc_backend;

const vc_backend *vc_backend_cpu(void);

#endif
