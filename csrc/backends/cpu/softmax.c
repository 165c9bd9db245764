/* Row softmax with a scale folded in: x = softmax(scale * x) per row. */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/vmath.h"
#include "vc.h"

static void row_scalar(float *x, int n, float scale) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = fmaxf(mx, x[i] * scale);
    float sum = 0.f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] * scale - mx);
        sum += x[i];
    }
    float inv = 1.f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

__attribute__((target("avx512f"))) static void row_avx512(float *x, int n, float scale) {
    const __m512 s = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_mul_ps(_mm512_loadu_ps(x + i), s));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), s));
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = vc_exp512(_mm512_fmsub_ps(_mm512_loadu_ps(x + i), s, mx));
        _mm512_storeu_ps(x + i, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = vc_exp512(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, x + i), s, mx));
        _mm512_mask_storeu_ps(x + i, m, e);
        vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(vsum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

__attribute__((target("avx2,fma"))) static void row_avx2(float *x, int n, float scale) {
    const __m256 s = _mm256_set1_ps(scale);
    float mx = -INFINITY;
    int i = 0;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_mul_ps(_mm256_loadu_ps(x + i), s));
    float lanes[8];
    _mm256_storeu_ps(lanes, vmax);
    for (int l = 0; l < 8; l++) mx = fmaxf(mx, lanes[l]);
    for (int j = i; j < n; j++) mx = fmaxf(mx, x[j] * scale);
    const __m256 vmx = _mm256_set1_ps(mx);
    __m256 vsum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = vc_exp256(_mm256_fmsub_ps(_mm256_loadu_ps(x + i), s, vmx));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    _mm256_storeu_ps(lanes, vsum);
    float sum = 0.f;
    for (int l = 0; l < 8; l++) sum += lanes[l];
    for (int j = i; j < n; j++) {
        x[j] = expf(x[j] * scale - mx);
        sum += x[j];
    }
    float inv = 1.f / sum;
    for (int j = 0; j < n; j++) x[j] *= inv;
}

typedef void (*row_fn)(float *, int, float);

static row_fn pick_row(void) {
    const vc_cpu_features *c = vc_cpu();
    if (c->avx512f) return row_avx512;
    if (c->avx2 && c->fma) return row_avx2;
    return row_scalar;
}

/* For callers already inside a parallel region (attention). */
void cpu_softmax_rows_serial(float *x, size_t rows, int cols, float scale) {
    row_fn fn = pick_row();
    for (size_t r = 0; r < rows; r++) fn(x + r * (size_t)cols, cols, scale);
}

void cpu_softmax_rows(float *x, size_t rows, int cols, float scale) {
    row_fn fn = pick_row();
#pragma omp parallel for schedule(static) if (rows * (size_t)cols > VC_CHUNK) num_threads(vc_get_num_threads())
    for (size_t r = 0; r < rows; r++) fn(x + r * (size_t)cols, cols, scale);
}
