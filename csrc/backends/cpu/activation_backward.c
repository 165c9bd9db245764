/* Backward of the element-wise activations: dx[i] = dout[i] * f'(x[i]).
 *
 * Legend: n elements. x is the PRE-activation input: the forward kernels work in place, so a
 * training caller must keep a copy of x (or recompute it) for the backward. dx may equal dout.
 *   exact GELU   f'(x) = Phi(x) + x phi(x) = 0.5 (1 + erf(x/sqrt2)) + x exp(-x^2/2) / sqrt(2 pi)
 *   tanh GELU    u = a (x + b x^3), t = tanh u:  f'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) a (1 + 3 b x^2)
 *                (evaluated through sigmoids, see below)
 *   SiLU         s = sigmoid(x):  f'(x) = s (1 + x (1 - s))
 *   ReLU         f'(x) = x > 0 (0 at x == 0, as torch's threshold_backward)
 * AVX-512 / AVX2 bodies reuse vmath.h's exp and erf; the widest the CPU has is used. */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "backends/cpu/vmath.h"
#include "vc.h"

typedef void (*bwd_fn)(float *dx, const float *dout, const float *x, size_t n);

#define SQRT1_2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f
#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_B 0.044715f

/* ---- exact GELU ---- */
static void gelu_bwd_scalar(float *dx, const float *dout, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        const float d = 0.5f * (1.f + vc_erf_scalar(v * SQRT1_2)) + v * INV_SQRT_2PI * expf(-0.5f * v * v);
        dx[i] = dout[i] * d;
    }
}
__attribute__((target("avx512f"))) static void gelu_bwd_avx512(float *dx, const float *dout, const float *x,
                                                               size_t n) {
    size_t i = 0;
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.f);
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 cdf = _mm512_mul_ps(half, _mm512_add_ps(one, vc_erf512(_mm512_mul_ps(v, _mm512_set1_ps(SQRT1_2)))));
        __m512 pdf = _mm512_mul_ps(_mm512_set1_ps(INV_SQRT_2PI),
                                   vc_exp512(_mm512_mul_ps(_mm512_set1_ps(-0.5f), _mm512_mul_ps(v, v))));
        _mm512_storeu_ps(dx + i, _mm512_mul_ps(_mm512_loadu_ps(dout + i), _mm512_fmadd_ps(v, pdf, cdf)));
    }
    gelu_bwd_scalar(dx + i, dout + i, x + i, n - i);
}
__attribute__((target("avx2,fma"))) static void gelu_bwd_avx2(float *dx, const float *dout, const float *x,
                                                              size_t n) {
    size_t i = 0;
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 cdf = _mm256_mul_ps(half, _mm256_add_ps(one, vc_erf256(_mm256_mul_ps(v, _mm256_set1_ps(SQRT1_2)))));
        __m256 pdf = _mm256_mul_ps(_mm256_set1_ps(INV_SQRT_2PI),
                                   vc_exp256(_mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(v, v))));
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dout + i), _mm256_fmadd_ps(v, pdf, cdf)));
    }
    gelu_bwd_scalar(dx + i, dout + i, x + i, n - i);
}

/* ---- tanh GELU ----
 * With t = tanh u: 0.5 (1 + t) = sigmoid(2u) and 0.5 (1 - t) = sigmoid(-2u), so
 *   f'(x) = sp + 2 x sp sm u'   with sp = sigmoid(2u), sm = sigmoid(-2u), u' = a (1 + 3 b x^2).
 * Both sigmoids come from e = exp(-2|u|) <= 1 without cancellation: 1/(1+e) and e/(1+e).
 * (Forming 1 + t and 1 - t^2 from t itself loses everything once |t| rounds to 1, which for
 * x near -5 halves or zeroes a gradient that torch, and the truth, keep at ~1e-6.) */
static void gelu_tanh_bwd_scalar(float *dx, const float *dout, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float v = x[i], v2 = v * v;
        const float u = SQRT_2_OVER_PI * (v + GELU_B * v2 * v);
        const float e = expf(-2.f * fabsf(u)), big = 1.f / (1.f + e), small = e * big;
        const float sp = u >= 0.f ? big : small, sm = u >= 0.f ? small : big;
        const float d = sp + 2.f * v * sp * sm * SQRT_2_OVER_PI * (1.f + 3.f * GELU_B * v2);
        dx[i] = dout[i] * d;
    }
}
__attribute__((target("avx512f"))) static void gelu_tanh_bwd_avx512(float *dx, const float *dout, const float *x,
                                                                    size_t n) {
    size_t i = 0;
    const __m512 one = _mm512_set1_ps(1.f), two = _mm512_set1_ps(2.f), zero = _mm512_setzero_ps();
    const __m512 a = _mm512_set1_ps(SQRT_2_OVER_PI), b = _mm512_set1_ps(GELU_B), b3 = _mm512_set1_ps(3.f * GELU_B);
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i), v2 = _mm512_mul_ps(v, v);
        __m512 u = _mm512_mul_ps(a, _mm512_fmadd_ps(_mm512_mul_ps(b, v), v2, v));
        __m512 e = vc_exp512(_mm512_mul_ps(_mm512_set1_ps(-2.f), _mm512_abs_ps(u)));
        __m512 big = _mm512_div_ps(one, _mm512_add_ps(one, e)), small = _mm512_mul_ps(e, big);
        __mmask16 pos = _mm512_cmp_ps_mask(u, zero, _CMP_GE_OQ);
        __m512 sp = _mm512_mask_blend_ps(pos, small, big), sm = _mm512_mask_blend_ps(pos, big, small);
        __m512 du = _mm512_mul_ps(a, _mm512_fmadd_ps(b3, v2, one));
        __m512 d = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_mul_ps(two, v), _mm512_mul_ps(sp, sm)), du, sp);
        _mm512_storeu_ps(dx + i, _mm512_mul_ps(_mm512_loadu_ps(dout + i), d));
    }
    gelu_tanh_bwd_scalar(dx + i, dout + i, x + i, n - i);
}
__attribute__((target("avx2,fma"))) static void gelu_tanh_bwd_avx2(float *dx, const float *dout, const float *x,
                                                                   size_t n) {
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.f), two = _mm256_set1_ps(2.f), zero = _mm256_setzero_ps();
    const __m256 a = _mm256_set1_ps(SQRT_2_OVER_PI), b = _mm256_set1_ps(GELU_B), b3 = _mm256_set1_ps(3.f * GELU_B);
    const __m256 sign = _mm256_set1_ps(-0.f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), v2 = _mm256_mul_ps(v, v);
        __m256 u = _mm256_mul_ps(a, _mm256_fmadd_ps(_mm256_mul_ps(b, v), v2, v));
        __m256 e = vc_exp256(_mm256_mul_ps(_mm256_set1_ps(-2.f), _mm256_andnot_ps(sign, u)));
        __m256 big = _mm256_div_ps(one, _mm256_add_ps(one, e)), small = _mm256_mul_ps(e, big);
        __m256 pos = _mm256_cmp_ps(u, zero, _CMP_GE_OQ);
        __m256 sp = _mm256_blendv_ps(small, big, pos), sm = _mm256_blendv_ps(big, small, pos);
        __m256 du = _mm256_mul_ps(a, _mm256_fmadd_ps(b3, v2, one));
        __m256 d = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(two, v), _mm256_mul_ps(sp, sm)), du, sp);
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dout + i), d));
    }
    gelu_tanh_bwd_scalar(dx + i, dout + i, x + i, n - i);
}

/* ---- SiLU ---- */
static void silu_bwd_scalar(float *dx, const float *dout, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float s = 1.f / (1.f + expf(-x[i]));
        dx[i] = dout[i] * (s * (1.f + x[i] * (1.f - s)));
    }
}
__attribute__((target("avx512f"))) static void silu_bwd_avx512(float *dx, const float *dout, const float *x,
                                                               size_t n) {
    size_t i = 0;
    const __m512 one = _mm512_set1_ps(1.f);
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, vc_exp512(_mm512_sub_ps(_mm512_setzero_ps(), v))));
        __m512 d = _mm512_mul_ps(s, _mm512_fmadd_ps(v, _mm512_sub_ps(one, s), one));
        _mm512_storeu_ps(dx + i, _mm512_mul_ps(_mm512_loadu_ps(dout + i), d));
    }
    silu_bwd_scalar(dx + i, dout + i, x + i, n - i);
}
__attribute__((target("avx2,fma"))) static void silu_bwd_avx2(float *dx, const float *dout, const float *x,
                                                              size_t n) {
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, vc_exp256(_mm256_sub_ps(_mm256_setzero_ps(), v))));
        __m256 d = _mm256_mul_ps(s, _mm256_fmadd_ps(v, _mm256_sub_ps(one, s), one));
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dout + i), d));
    }
    silu_bwd_scalar(dx + i, dout + i, x + i, n - i);
}

/* ---- ReLU: a select, which the compiler vectorises on its own ---- */
static void relu_bwd(float *dx, const float *dout, const float *x, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.f ? dout[i] : 0.f;
}

static bwd_fn pick(bwd_fn f512, bwd_fn f256, bwd_fn f) {
    const vc_cpu_features *c = vc_cpu();
    if (c->avx512f) return f512;
    if (c->avx2 && c->fma) return f256;
    return f;
}

static void run_chunked(bwd_fn fn, float *dx, const float *dout, const float *x, size_t n) {
    const size_t nchunks = (n + VC_CHUNK - 1) / VC_CHUNK;
#pragma omp parallel for schedule(static) if (nchunks > 1) num_threads(vc_get_num_threads())
    for (size_t c = 0; c < nchunks; c++) {
        const size_t start = c * VC_CHUNK, len = n - start < VC_CHUNK ? n - start : VC_CHUNK;
        fn(dx + start, dout + start, x + start, len);
    }
}

/* dx[n] (assign, may equal dout), dout[n], x[n] (pre-activation) for each of the four. */
void cpu_gelu_backward(float *dx, const float *dout, const float *x, size_t n) {
    run_chunked(pick(gelu_bwd_avx512, gelu_bwd_avx2, gelu_bwd_scalar), dx, dout, x, n);
}
void cpu_gelu_tanh_backward(float *dx, const float *dout, const float *x, size_t n) {
    run_chunked(pick(gelu_tanh_bwd_avx512, gelu_tanh_bwd_avx2, gelu_tanh_bwd_scalar), dx, dout, x, n);
}
void cpu_silu_backward(float *dx, const float *dout, const float *x, size_t n) {
    run_chunked(pick(silu_bwd_avx512, silu_bwd_avx2, silu_bwd_scalar), dx, dout, x, n);
}
void cpu_relu_backward(float *dx, const float *dout, const float *x, size_t n) { run_chunked(relu_bwd, dx, dout, x, n); }
