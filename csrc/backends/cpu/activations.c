/* Element-wise activations: exact GELU, tanh GELU, SiLU, add.
 * Each has AVX-512, AVX2 and scalar bodies; the widest the CPU supports is used. */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/vmath.h"
#include "vc.h"

typedef void (*unary_fn)(float *x, size_t n);

#define SQRT1_2 0.70710678118654752f
#define SQRT_2_OVER_PI 0.7978845608028654f

/* ---- exact GELU: 0.5 x (1 + erf(x / sqrt 2)) ---- */
static void gelu_scalar(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.f + vc_erf_scalar(x[i] * SQRT1_2));
}
__attribute__((target("avx512f"))) static void gelu_avx512(float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 e = vc_erf512(_mm512_mul_ps(v, _mm512_set1_ps(SQRT1_2)));
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v),
                                              _mm512_add_ps(_mm512_set1_ps(1.f), e)));
    }
    gelu_scalar(x + i, n - i);
}
__attribute__((target("avx2,fma"))) static void gelu_avx2(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = vc_erf256(_mm256_mul_ps(v, _mm256_set1_ps(SQRT1_2)));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v),
                                              _mm256_add_ps(_mm256_set1_ps(1.f), e)));
    }
    gelu_scalar(x + i, n - i);
}

/* ---- tanh GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanh(u) = 1 - 2/(exp(2u)+1) ---- */
static void gelu_tanh_scalar(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.f + tanhf(SQRT_2_OVER_PI * (v + 0.044715f * v * v * v)));
    }
}
__attribute__((target("avx512f"))) static void gelu_tanh_avx512(float *x, size_t n) {
    size_t i = 0;
    const __m512 one = _mm512_set1_ps(1.f), two = _mm512_set1_ps(2.f);
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 u = _mm512_mul_ps(_mm512_set1_ps(SQRT_2_OVER_PI),
                                 _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v), _mm512_mul_ps(v, v), v));
        __m512 t = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(vc_exp512(_mm512_mul_ps(two, u)), one)));
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(one, t)));
    }
    gelu_tanh_scalar(x + i, n - i);
}
__attribute__((target("avx2,fma"))) static void gelu_tanh_avx2(float *x, size_t n) {
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.f), two = _mm256_set1_ps(2.f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 u = _mm256_mul_ps(_mm256_set1_ps(SQRT_2_OVER_PI),
                                 _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), v), _mm256_mul_ps(v, v), v));
        __m256 t = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(vc_exp256(_mm256_mul_ps(two, u)), one)));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(one, t)));
    }
    gelu_tanh_scalar(x + i, n - i);
}

/* ---- SiLU: x / (1 + exp(-x)) ---- */
static void silu_scalar(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.f + expf(-x[i]));
}
__attribute__((target("avx512f"))) static void silu_avx512(float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 d = _mm512_add_ps(_mm512_set1_ps(1.f), vc_exp512(_mm512_sub_ps(_mm512_setzero_ps(), v)));
        _mm512_storeu_ps(x + i, _mm512_div_ps(v, d));
    }
    silu_scalar(x + i, n - i);
}
__attribute__((target("avx2,fma"))) static void silu_avx2(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 d = _mm256_add_ps(_mm256_set1_ps(1.f), vc_exp256(_mm256_sub_ps(_mm256_setzero_ps(), v)));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, d));
    }
    silu_scalar(x + i, n - i);
}

static unary_fn pick(unary_fn f512, unary_fn f256, unary_fn f) {
    const vc_cpu_features *c = vc_cpu();
    if (c->avx512f) return f512;
    if (c->avx2 && c->fma) return f256;
    return f;
}

static void run_chunked(unary_fn fn, float *x, size_t n) {
    size_t nchunks = (n + VC_CHUNK - 1) / VC_CHUNK;
#pragma omp parallel for schedule(static) if (nchunks > 1) num_threads(vc_get_num_threads())
    for (size_t c = 0; c < nchunks; c++) {
        size_t start = c * VC_CHUNK;
        size_t len = n - start < VC_CHUNK ? n - start : VC_CHUNK;
        fn(x + start, len);
    }
}

void cpu_gelu(float *x, size_t n) { run_chunked(pick(gelu_avx512, gelu_avx2, gelu_scalar), x, n); }
void cpu_gelu_tanh(float *x, size_t n) {
    run_chunked(pick(gelu_tanh_avx512, gelu_tanh_avx2, gelu_tanh_scalar), x, n);
}
void cpu_silu(float *x, size_t n) { run_chunked(pick(silu_avx512, silu_avx2, silu_scalar), x, n); }

void cpu_add(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 4 * VC_CHUNK) num_threads(vc_get_num_threads())
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
