/* bf16 GEMM with fp32 accumulation (CPU backend). See gemm_bf16.c for the kernel and
 * gemm_bf16_ref.c for the path taken on CPUs without AVX512_BF16.
 *
 * Semantics, everywhere: both operands are rounded to bf16 (round to nearest even, as torch's
 * Tensor.bfloat16()), every product of two bf16 values is exact in fp32, and the products are
 * summed in fp32. So the result equals fp32 GEMM of the bf16-rounded inputs up to the order of
 * the fp32 additions. (vdpbf16ps treats bf16 denormals, |x| < 1.2e-38, as zero; the fallback
 * does not. Nothing in a network lives there.) */
#ifndef VC_CPU_BF16_H
#define VC_CPU_BF16_H

#include <stdint.h>
#include <string.h>

/* bf16 bits of f, rounded to nearest even; NaN -> 0x7fc0 (torch's c10::BFloat16 does the same). */
static inline uint16_t vc_bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* f rounded to the nearest bf16, as a float. */
static inline float vc_bf16_round(float f) {
    uint32_t u = (uint32_t)vc_bf16_bits(f) << 16;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

/* c[M,N] = op(a) . op(b) + beta c with op(a)[M,K], op(b)[K,N] in bf16, fp32 accumulation.
 * trans_a: a is stored [K,M] (lda >= M) instead of [M,K]; trans_b: b is stored [N,K] (the
 * linear layer's weight) instead of [K,N]. Split over the OpenMP threads like cpu_gemm_nt. */
void cpu_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, const float *a, int lda, const float *b, int ldb,
                   float beta, float *c, int ldc);
/* The AVX512_BF16 kernel; returns -1 (nothing written) when it cannot allocate its packed copies. */
int cpu_gemm_bf16_native(int trans_a, int trans_b, int M, int N, int K, const float *a, int lda, const float *b,
                         int ldb, float beta, float *c, int ldc);
/* Plain-C path: fp32 GEMM (OpenBLAS) of bf16-rounded copies; allocation-free scalar loop as
 * the last resort. */
void cpu_gemm_bf16_ref(int trans_a, int trans_b, int M, int N, int K, const float *a, int lda, const float *b,
                       int ldb, float beta, float *c, int ldc);

/* 1 when the AVX512_BF16 kernel is in use: the CPU has it and it is not switched off. */
int cpu_bf16_native(void);
/* Switches the native kernel off (0) or back on (1; no effect on CPUs without it), so tests can
 * run the fallback on any machine. */
void cpu_bf16_set_native(int on);

/* The linear layer and its backward (contracts of vc_backend.linear / linear_backward) with
 * every GEMM in bf16; bias, bias gradient and outputs fp32. */
void cpu_linear_bf16(float *out, const float *in, const float *w, const float *bias, int M, int N, int K,
                     int accumulate);
void cpu_linear_backward_bf16(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                              int M, int N, int K);

/* conv2d and its backward (contracts and scratch sizes of cpu_conv2d / cpu_conv2d_backward)
 * with bf16 GEMMs; per-channel convs (depthwise) run the fp32 kernels. See conv_bf16.c. */
void cpu_conv2d_bf16(float *out, const float *in, const float *w, const float *bias, int B, int Ci, int H, int W,
                     int Co, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups,
                     float *scratch);
void cpu_conv2d_backward_bf16(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                              const float *w, int B, int Ci, int H, int W, int Co, int kh, int kw, int sh, int sw,
                              int ph, int pw, int dh, int dw, int groups, float *scratch);

#endif
