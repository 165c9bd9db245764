/* Backward of 2-D convolution (NCHW), one path per forward path of conv.c, chosen by the
 * same conditions (conv_im2col.h):
 *   pointwise  per image: din = W^T dO (GEMM), dW += dO x^T (GEMM)
 *   depthwise  per channel plane, direct: dW[ky,kx] += sum dO * shifted x (on a zero-padded
 *              copy of x, as the forward), din by scattering w * dO into a padded plane
 *   general    per (image, group): cols = im2col(x); dW_g += dO_g cols^T; dcols = W_g^T dO_g;
 *              din = col2im(dcols), the adjoint of im2col (overlapping windows add up)
 * din is assigned, dweight and dbias accumulate; each may be NULL to skip it.
 * Legend: B batch, Ci/Co channels in/out, H,W in size, Ho,Wo out size, kh,kw kernel, G groups,
 * Cg = Ci/G, Cog = Co/G, K = Cg*kh*kw, s stride, p padding, d dilation. */
#include <immintrin.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/conv_im2col.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

/* ---- depthwise ---- */

/* Floats of one thread's depthwise scratch: k*k double accumulators, then the padded x plane
 * and the padded dx plane (the AVX-512 path pads dO by k-1-p instead, which can be larger); a
 * multiple of 16 floats so every block stays 64-byte aligned. */
static size_t dw_block(int k, int H, int W, int p) {
    const size_t plane = (size_t)(H + 2 * p) * (W + 2 * p), flipped = (size_t)(H + k - 1) * (W + k - 1);
    return ((size_t)2 * k * k + plane + (plane > flipped ? plane : flipped) + 15) & ~(size_t)15;
}

/* Stride 1 on AVX-512 (ConvNeXt's 7x7, MobileViT's 3x3).
 * dW: per filter row ky, one register accumulator per tap kx sweeps the plane 16 outputs at a
 * time: each dO vector is loaded once per (ky, tap group) and every tap's sum is reduced across
 * lanes once per plane (the generic loop reduces once per row and tap).
 * dX: the transposed convolution is the forward correlation of dO, zero-padded by k-1-p, with
 * the filter turned by 180 degrees, so it runs the forward's register-tiled kernel. */
enum { DW_TAPS = 8, DW_MAX_K = 15 };

__attribute__((target("avx512f"), always_inline)) static inline void dw_taps_s1(double *acc, const float *xpad,
                                                                               int Wp, const float *g, int Ho,
                                                                               int Wo, const int nk) {
    __m512 a[DW_TAPS];
    for (int j = 0; j < nk; j++) a[j] = _mm512_setzero_ps();
    for (int oy = 0; oy < Ho; oy++) {
        const float *row = xpad + (size_t)oy * Wp, *go = g + (size_t)oy * Wo;
        for (int ox = 0; ox < Wo; ox += 16) {
            const __mmask16 m = Wo - ox >= 16 ? 0xFFFF : (__mmask16)((1u << (Wo - ox)) - 1);
            const __m512 gv = _mm512_maskz_loadu_ps(m, go + ox);
            for (int j = 0; j < nk; j++) a[j] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(m, row + ox + j), a[j]);
        }
    }
    for (int j = 0; j < nk; j++) acc[j] += (double)_mm512_reduce_add_ps(a[j]);
}

__attribute__((target("avx512f"))) static void depthwise_plane_backward_s1_avx512(float *dx, double *acc,
                                                                               const float *x, const float *g,
                                                                               const float *w, int H, int W, int k,
                                                                               int p, int Ho, int Wo, float *xpad,
                                                                               float *dpad) {
    if (acc) {
        const int Wp = W + 2 * p;
        memset(xpad, 0, sizeof(float) * (size_t)(H + 2 * p) * Wp);
        for (int y = 0; y < H; y++) memcpy(xpad + (size_t)(y + p) * Wp + p, x + (size_t)y * W, sizeof(float) * W);
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx += DW_TAPS) {
                const float *src = xpad + (size_t)ky * Wp + kx;
                double *dst = acc + ky * k + kx;
                switch (k - kx < DW_TAPS ? k - kx : DW_TAPS) { /* constant tap counts: registers, no spills */
                case 1: dw_taps_s1(dst, src, Wp, g, Ho, Wo, 1); break;
                case 2: dw_taps_s1(dst, src, Wp, g, Ho, Wo, 2); break;
                case 3: dw_taps_s1(dst, src, Wp, g, Ho, Wo, 3); break;
                case 4: dw_taps_s1(dst, src, Wp, g, Ho, Wo, 4); break;
                case 5: dw_taps_s1(dst, src, Wp, g, Ho, Wo, 5); break;
                case 6: dw_taps_s1(dst, src, Wp, g, Ho, Wo, 6); break;
                case 7: dw_taps_s1(dst, src, Wp, g, Ho, Wo, 7); break;
                default: dw_taps_s1(dst, src, Wp, g, Ho, Wo, DW_TAPS); break;
                }
            }
    }
    if (dx) {
        float turned[DW_MAX_K * DW_MAX_K];
        for (int i = 0; i < k * k; i++) turned[i] = w[k * k - 1 - i];
        cpu_depthwise_plane_s1_avx512(dx, g, turned, 0.f, Ho, Wo, k, k - 1 - p, H, W, dpad);
    }
}

/* One image-channel pair. x[H,W], g = dO [Ho,Wo], w [k,k]; acc[k*k] += dW contributions;
 * dx[H,W] (assign) when not NULL. xpad, dpad: (H+2p) x (W+2p) scratch planes. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void depthwise_plane_backward(
    float *dx, double *acc, const float *x, const float *g, const float *w, int H, int W, int k, int s, int p, int Ho,
    int Wo, float *xpad, float *dpad) {
    const int Wp = W + 2 * p;
    const size_t padn = (size_t)(H + 2 * p) * Wp;
    if (acc) {
        memset(xpad, 0, sizeof(float) * padn);
        for (int y = 0; y < H; y++) memcpy(xpad + (size_t)(y + p) * Wp + p, x + (size_t)y * W, sizeof(float) * W);
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                double sum = 0.0; /* rows in float (vectorised), the plane in double */
                for (int oy = 0; oy < Ho; oy++) {
                    const float *src = xpad + (size_t)(oy * s + ky) * Wp + kx, *go = g + (size_t)oy * Wo;
                    float rs = 0.f;
                    if (s == 1) {
#pragma omp simd reduction(+ : rs)
                        for (int ox = 0; ox < Wo; ox++) rs += go[ox] * src[ox];
                    } else {
                        for (int ox = 0; ox < Wo; ox++) rs += go[ox] * src[ox * s];
                    }
                    sum += rs;
                }
                acc[ky * k + kx] += sum;
            }
    }
    if (!dx) return;
    memset(dpad, 0, sizeof(float) * padn);
    for (int oy = 0; oy < Ho; oy++) {
        const float *go = g + (size_t)oy * Wo;
        for (int ky = 0; ky < k; ky++) {
            float *row = dpad + (size_t)(oy * s + ky) * Wp;
            for (int kx = 0; kx < k; kx++) {
                const float wv = w[ky * k + kx];
                float *dst = row + kx;
                if (s == 1) {
#pragma omp simd
                    for (int ox = 0; ox < Wo; ox++) dst[ox] += wv * go[ox];
                } else {
                    for (int ox = 0; ox < Wo; ox++) dst[ox * s] += wv * go[ox];
                }
            }
        }
    }
    for (int y = 0; y < H; y++) memcpy(dx + (size_t)y * W, dpad + (size_t)(y + p) * Wp + p, sizeof(float) * W);
}

/* One channel per task, all images inside it, so dweight[c] has a single writer. */
static void depthwise_backward(float *din, float *dweight, const float *dout, const float *in, const float *w, int B,
                               int C, int H, int W, int k, int s, int p, int Ho, int Wo, float *scratch) {
    const size_t blk = dw_block(k, H, W, p), plane = (size_t)(H + 2 * p) * (W + 2 * p);
    const int fast = s == 1 && k <= DW_MAX_K && p <= k - 1 && vc_cpu()->avx512f;
#pragma omp parallel num_threads(vc_get_num_threads())
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *mine = scratch + (size_t)tid * blk;
        double *acc = dweight ? (double *)mine : NULL;
        float *xpad = mine + (size_t)2 * k * k, *dpad = xpad + plane;
#pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            if (acc)
                for (int j = 0; j < k * k; j++) acc[j] = 0.0;
            for (int b = 0; b < B; b++) {
                const size_t ic = (size_t)b * C + c;
                float *dx = din ? din + ic * H * W : NULL;
                if (fast)
                    depthwise_plane_backward_s1_avx512(dx, acc, in + ic * H * W, dout + ic * Ho * Wo,
                                                       w + (size_t)c * k * k, H, W, k, p, Ho, Wo, xpad, dpad);
                else
                    depthwise_plane_backward(dx, acc, in + ic * H * W, dout + ic * Ho * Wo, w + (size_t)c * k * k, H,
                                             W, k, s, p, Ho, Wo, xpad, dpad);
            }
            if (acc)
                for (int j = 0; j < k * k; j++) dweight[(size_t)c * k * k + j] += (float)acc[j];
        }
    }
}

/* ---- entry points ---- */

size_t cpu_conv2d_backward_scratch(int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw, int ph,
                                   int pw, int dh, int dw, int groups) {
    if (vc_conv_is_depthwise(Ci, Co, groups, kh, kw, sh, sw, ph, pw, dh, dw))
        return (size_t)vc_get_num_threads() * dw_block(kh, H, W, ph);
    if (vc_conv_is_pointwise(kh, kw, sh, sw, ph, pw, groups)) return 0;
    const int Ho = vc_conv_out_size(H, kh, sh, ph, dh), Wo = vc_conv_out_size(W, kw, sw, pw, dw);
    return (size_t)(Ci / groups) * kh * kw * Ho * Wo;
}

/* din [B,Ci,H,W] (assign), dweight [Co,Ci/G,kh,kw] (+=), dbias [Co] (+=), each NULL-able;
 * dout [B,Co,Ho,Wo]; in [B,Ci,H,W] (the forward input, read only for dweight); w as dweight;
 * scratch: cpu_conv2d_backward_scratch(...) floats, 64-byte aligned. */
void cpu_conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in, const float *w,
                         int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                         int dw, int groups, float *scratch) {
    const int Ho = vc_conv_out_size(H, kh, sh, ph, dh), Wo = vc_conv_out_size(W, kw, sw, pw, dw);
    const size_t HWo = (size_t)Ho * Wo, HW = (size_t)H * W;
    if (dbias) cpu_sum_planes_into(dbias, dout, B, Co, HWo);
    if (vc_conv_is_depthwise(Ci, Co, groups, kh, kw, sh, sw, ph, pw, dh, dw)) {
        if (din || dweight) depthwise_backward(din, dweight, dout, in, w, B, Ci, H, W, kh, sh, ph, Ho, Wo, scratch);
        return;
    }
    if (vc_conv_is_pointwise(kh, kw, sh, sw, ph, pw, groups)) {
        for (int b = 0; b < B; b++) {
            const float *g = dout + (size_t)b * Co * HWo;
            if (din) cpu_gemm_tn(Ci, (int)HW, Co, w, Ci, g, (int)HW, 0.f, din + (size_t)b * Ci * HW, (int)HW);
            if (dweight) cpu_gemm_nt(Co, Ci, (int)HW, g, (int)HW, in + (size_t)b * Ci * HW, (int)HW, 1.f, dweight, Ci);
        }
        return;
    }
    const int Cg = Ci / groups, Cog = Co / groups, K = Cg * kh * kw;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < groups; g++) {
            const size_t xoff = ((size_t)b * Ci + (size_t)g * Cg) * HW;
            const float *go = dout + ((size_t)b * Co + (size_t)g * Cog) * HWo;
            if (dweight) {
                cpu_im2col(scratch, in + xoff, Cg, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo);
                cpu_gemm_nt(Cog, K, (int)HWo, go, (int)HWo, scratch, (int)HWo, 1.f, dweight + (size_t)g * Cog * K, K);
            }
            if (din) {
                cpu_gemm_tn(K, (int)HWo, Cog, w + (size_t)g * Cog * K, K, go, (int)HWo, 0.f, scratch, (int)HWo);
                cpu_col2im(din + xoff, scratch, Cg, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo);
            }
        }
}
