/* 2-D convolution, NCHW, with three paths chosen per call (conditions in conv_im2col.h):
 *   pointwise  1x1, stride 1, no padding, groups 1: one GEMM per image, out = W . x
 *   depthwise  groups == Cin == Cout, dilation 1: direct, per channel plane, on a zero-padded
 *              copy of the plane so the inner loop has no bounds checks and vectorises
 *   general    im2col per (image, group) + GEMM
 * Legend: B batch, Ci/Co channels in/out, H,W in size, Ho,Wo out size, k kernel, G groups. */
#include <immintrin.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/blas.h"
#include "backends/cpu/conv_im2col.h"
#include "backends/cpu/cpu.h"
#include "vc.h"

int vc_conv_out_size(int in, int k, int stride, int pad, int dil) {
    long span = (long)dil * (k - 1) + 1;
    long n = (long)in + 2L * pad - span;
    return n < 0 ? 0 : (int)(n / stride + 1);
}

/* Rows [m0, m1) x columns [n0, n1) of c = a . b + beta c, plus bias[m] on row m (NULL: none),
 * added while the block is still in cache. */
static void gemm_nn_block(int m0, int m1, int n0, int n1, int K, const float *a, int lda, const float *b, int ldb,
                          float beta, float *c, int ldc, const float *bias) {
    vc_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m1 - m0, n1 - n0, K, 1.f, a + (size_t)m0 * lda, lda, b + n0,
             ldb, beta, c + (size_t)m0 * ldc + n0, ldc);
    if (!bias) return;
    for (int m = m0; m < m1; m++) {
        float *row = c + (size_t)m * ldc;
        const float v = bias[m];
#pragma omp simd
        for (int n = n0; n < n1; n++) row[n] += v;
    }
}

/* c[M,N] = a[M,K] . b[K,N] + beta c (+ bias per row), one parallel region, split by column
 * blocks (or row blocks when N is narrow). */
static void gemm_nn_bias(int M, int N, int K, const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc, const float *bias) {
    if (M <= 0 || N <= 0) return;
    const int nt = vc_kernel_threads();
    if (nt == 1 || 2.0 * M * N * K < 4e6) {
        gemm_nn_block(0, M, 0, N, K, a, lda, b, ldb, beta, c, ldc, bias);
        return;
    }
    const int split_cols = N >= 64 * nt;
    const int extent = split_cols ? N : M;
    int block = (extent + nt - 1) / nt;
    if (split_cols) block = (block + 15) & ~15;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int lo = t * block, hi = lo + block < extent ? lo + block : extent;
        if (lo >= hi) continue;
        if (split_cols)
            gemm_nn_block(0, M, lo, hi, K, a, lda, b, ldb, beta, c, ldc, bias);
        else
            gemm_nn_block(lo, hi, 0, N, K, a, lda, b, ldb, beta, c, ldc, bias);
    }
}

void cpu_gemm_nn(int M, int N, int K, const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    gemm_nn_bias(M, N, K, a, lda, b, ldb, beta, c, ldc, NULL);
}

/* ---- depthwise ---- */

/* One output plane from one input plane; pad: a (H+2p) x (W+2p) scratch. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void depthwise_plane(
    float *out, const float *in, const float *w, float bias, int H, int W, int k, int stride, int p, int Ho, int Wo,
    float *pad) {
    const int Hp = H + 2 * p, Wp = W + 2 * p;
    memset(pad, 0, sizeof(float) * (size_t)Hp * Wp);
    for (int y = 0; y < H; y++) memcpy(pad + (size_t)(y + p) * Wp + p, in + (size_t)y * W, sizeof(float) * W);
    for (int oy = 0; oy < Ho; oy++) {
        float *o = out + (size_t)oy * Wo;
        for (int ox = 0; ox < Wo; ox++) o[ox] = bias;
        for (int ky = 0; ky < k; ky++) {
            const float *row = pad + (size_t)(oy * stride + ky) * Wp;
            for (int kx = 0; kx < k; kx++) {
                const float wv = w[ky * k + kx];
                const float *src = row + kx;
                if (stride == 1) {
#pragma omp simd
                    for (int ox = 0; ox < Wo; ox++) o[ox] += wv * src[ox];
                } else {
                    for (int ox = 0; ox < Wo; ox++) o[ox] += wv * src[ox * stride];
                }
            }
        }
    }
}

/* Stride 1, AVX-512: each 16-wide run of an output row accumulates all k*k taps in one
 * register before it is stored once (the generic loop above streams the row k*k times). */
__attribute__((target("avx512f"))) void cpu_depthwise_plane_s1_avx512(float *out, const float *in, const float *w,
                                                                      float bias, int H, int W, int k, int p, int Ho,
                                                                      int Wo, float *pad) {
    const int Hp = H + 2 * p, Wp = W + 2 * p;
    memset(pad, 0, sizeof(float) * (size_t)Hp * Wp);
    for (int y = 0; y < H; y++) memcpy(pad + (size_t)(y + p) * Wp + p, in + (size_t)y * W, sizeof(float) * W);
    for (int oy = 0; oy < Ho; oy++) {
        for (int ox = 0; ox < Wo; ox += 16) {
            const __mmask16 m = Wo - ox >= 16 ? 0xFFFF : (__mmask16)((1u << (Wo - ox)) - 1);
            __m512 acc = _mm512_set1_ps(bias);
            for (int ky = 0; ky < k; ky++) {
                const float *row = pad + (size_t)(oy + ky) * Wp + ox;
                const float *wr = w + ky * k;
                for (int kx = 0; kx < k; kx++)
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, row + kx), _mm512_set1_ps(wr[kx]), acc);
            }
            _mm512_mask_storeu_ps(out + (size_t)oy * Wo + ox, m, acc);
        }
    }
}

static void conv_depthwise(float *out, const float *in, const float *w, const float *bias, int B, int C, int H, int W,
                           int k, int stride, int pad, int Ho, int Wo, float *scratch) {
    const size_t pad_plane = (size_t)(H + 2 * pad) * (W + 2 * pad);
    const int fast = stride == 1 && vc_cpu()->avx512f;
#pragma omp parallel num_threads(vc_get_num_threads())
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *mine = scratch + (size_t)tid * pad_plane;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++)
                if (fast)
                    cpu_depthwise_plane_s1_avx512(out + ((size_t)b * C + c) * Ho * Wo,
                                                  in + ((size_t)b * C + c) * H * W, w + (size_t)c * k * k,
                                                  bias ? bias[c] : 0.f, H, W, k, pad, Ho, Wo, mine);
                else
                    depthwise_plane(out + ((size_t)b * C + c) * Ho * Wo, in + ((size_t)b * C + c) * H * W,
                                    w + (size_t)c * k * k, bias ? bias[c] : 0.f, H, W, k, stride, pad, Ho, Wo, mine);
    }
}

size_t cpu_conv2d_scratch(int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                          int dw, int groups) {
    const int Ho = vc_conv_out_size(H, kh, sh, ph, dh), Wo = vc_conv_out_size(W, kw, sw, pw, dw);
    if (vc_conv_is_depthwise(Ci, Co, groups, kh, kw, sh, sw, ph, pw, dh, dw))
        return (size_t)vc_get_num_threads() * (H + 2 * ph) * (W + 2 * pw);
    if (vc_conv_is_pointwise(kh, kw, sh, sw, ph, pw, groups)) return 0;
    return (size_t)(Ci / groups) * kh * kw * Ho * Wo;
}

void cpu_conv2d(float *out, const float *in, const float *w, const float *bias, int B, int Ci, int H, int W, int Co,
                int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups, float *scratch) {
    const int Ho = vc_conv_out_size(H, kh, sh, ph, dh), Wo = vc_conv_out_size(W, kw, sw, pw, dw);
    const size_t HWo = (size_t)Ho * Wo;
    if (vc_conv_is_depthwise(Ci, Co, groups, kh, kw, sh, sw, ph, pw, dh, dw)) {
        conv_depthwise(out, in, w, bias, B, Ci, H, W, kh, sh, ph, Ho, Wo, scratch);
        return;
    }
    if (vc_conv_is_pointwise(kh, kw, sh, sw, ph, pw, groups)) {
        for (int b = 0; b < B; b++)
            gemm_nn_bias(Co, (int)HWo, Ci, w, Ci, in + (size_t)b * Ci * H * W, (int)HWo, 0.f, out + (size_t)b * Co * HWo,
                         (int)HWo, bias);
        return;
    }
    const int Cg = Ci / groups, Cog = Co / groups, K = Cg * kh * kw;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < groups; g++) {
            cpu_im2col(scratch, in + ((size_t)b * Ci + (size_t)g * Cg) * H * W, Cg, H, W, kh, kw, sh, sw, ph, pw, dh, dw,
                   Ho, Wo);
            gemm_nn_bias(Cog, (int)HWo, K, w + (size_t)g * Cog * K, K, scratch, (int)HWo, 0.f,
                         out + ((size_t)b * Co + (size_t)g * Cog) * HWo, (int)HWo, bias ? bias + (size_t)g * Cog : NULL);
        }
}
