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
