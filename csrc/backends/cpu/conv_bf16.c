/* 2-D convolution, forward and backward, with bf16 GEMMs (mixed-precision training).
 *
 * The contracts of cpu_conv2d / cpu_conv2d_backward (arguments, scratch sizes, din assigned,
 * dweight and dbias accumulated, NULL-able gradients), with every GEMM on bf16-rounded operands
 * and fp32 accumulation (cpu_gemm_bf16, see bf16.h). Inputs, weights and dout stay fp32 (the
 * master copies) and are rounded only as the GEMM packs them; bias, bias gradient and every
 * output are fp32. Paths, by the conditions of conv_im2col.h:
 *   pointwise  per image: out = W . x;  din = W^T . dO;  dW += dO . x^T
 *   general    per (image, group) on im2col columns: out_g = W_g . cols;  dW_g += dO_g . cols^T;
 *              dcols = W_g^T . dO_g, din = col2im(dcols)
 *   per-channel (groups == Ci > 1: depthwise, channel multipliers) stays fp32, in conv.c and
 *              conv_backward.c: each output reads only kh*kw inputs of one channel, so there is
 *              no GEMM to speed up (the direct kernels are bound by memory, not by multiplies)
 *              and rounding would cost accuracy for nothing.
 * Legend: B batch, Ci/Co channels in/out, H,W in size, Ho,Wo out size, kh,kw kernel, G groups,
 * Cg = Ci/G, Cog = Co/G, K = Cg*kh*kw. */
#include "backends/cpu/bf16.h"
#include "backends/cpu/conv_im2col.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

static int per_channel(int Ci, int groups) { return groups > 1 && groups == Ci; }

/* out[rows, n] += bias[row]: the GEMM has no bias term; added after it, as conv.c does. */
static void add_row_bias(float *out, const float *bias, int rows, size_t n) {
#pragma omp parallel for schedule(static) if ((size_t)rows * n > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int r = 0; r < rows; r++) {
        float *row = out + (size_t)r * n;
        const float v = bias[r];
#pragma omp simd
        for (size_t i = 0; i < n; i++) row[i] += v;
    }
}

void cpu_conv2d_bf16(float *out, const float *in, const float *w, const float *bias, int B, int Ci, int H, int W,
                     int Co, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups,
                     float *scratch) {
    if (per_channel(Ci, groups)) {
        cpu_conv2d(out, in, w, bias, B, Ci, H, W, Co, kh, kw, sh, sw, ph, pw, dh, dw, groups, scratch);
        return;
    }
    const int Ho = vc_conv_out_size(H, kh, sh, ph, dh), Wo = vc_conv_out_size(W, kw, sw, pw, dw);
    const size_t HWo = (size_t)Ho * Wo, HW = (size_t)H * W;
    if (vc_conv_is_pointwise(kh, kw, sh, sw, ph, pw, groups)) {
        for (int b = 0; b < B; b++) {
            float *o = out + (size_t)b * Co * HWo;
            cpu_gemm_bf16(0, 0, Co, (int)HWo, Ci, w, Ci, in + (size_t)b * Ci * HW, (int)HWo, 0.f, o, (int)HWo);
            if (bias) add_row_bias(o, bias, Co, HWo);
        }
        return;
    }
    const int Cg = Ci / groups, Cog = Co / groups, K = Cg * kh * kw;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < groups; g++) {
            float *o = out + ((size_t)b * Co + (size_t)g * Cog) * HWo;
            cpu_im2col(scratch, in + ((size_t)b * Ci + (size_t)g * Cg) * HW, Cg, H, W, kh, kw, sh, sw, ph, pw, dh, dw,
                       Ho, Wo);
            cpu_gemm_bf16(0, 0, Cog, (int)HWo, K, w + (size_t)g * Cog * K, K, scratch, (int)HWo, 0.f, o, (int)HWo);
            if (bias) add_row_bias(o, bias + (size_t)g * Cog, Cog, HWo);
        }
}

void cpu_conv2d_backward_bf16(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                              const float *w, int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw,
                              int ph, int pw, int dh, int dw, int groups, float *scratch) {
    if (per_channel(Ci, groups)) {
        cpu_conv2d_backward(din, dweight, dbias, dout, in, w, B, Ci, H, W, Co, kh, kw, sh, sw, ph, pw, dh, dw, groups,
                            scratch);
        return;
    }
    const int Ho = vc_conv_out_size(H, kh, sh, ph, dh), Wo = vc_conv_out_size(W, kw, sw, pw, dw);
    const size_t HWo = (size_t)Ho * Wo, HW = (size_t)H * W;
    if (dbias) cpu_sum_planes_into(dbias, dout, B, Co, HWo); /* fp32, from the unrounded dout */
    if (vc_conv_is_pointwise(kh, kw, sh, sw, ph, pw, groups)) {
        for (int b = 0; b < B; b++) {
            const float *g = dout + (size_t)b * Co * HWo, *x = in + (size_t)b * Ci * HW;
            if (din) cpu_gemm_bf16(1, 0, Ci, (int)HW, Co, w, Ci, g, (int)HW, 0.f, din + (size_t)b * Ci * HW, (int)HW);
            if (dweight) cpu_gemm_bf16(0, 1, Co, Ci, (int)HW, g, (int)HW, x, (int)HW, 1.f, dweight, Ci);
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
                cpu_gemm_bf16(0, 1, Cog, K, (int)HWo, go, (int)HWo, scratch, (int)HWo, 1.f,
                              dweight + (size_t)g * Cog * K, K);
            }
            if (din) {
                cpu_gemm_bf16(1, 0, K, (int)HWo, Cog, w + (size_t)g * Cog * K, K, go, (int)HWo, 0.f, scratch,
                              (int)HWo);
                cpu_col2im(din + xoff, scratch, Cg, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo);
            }
        }
}
