/* Gradient utilities for training loops: the global p-norm of many gradient arrays
 * (accumulated in double), in-place scaling, and a NaN / infinity check.
 *
 * All three walk the spans in VC_CHUNK-element chunks numbered across spans (chunks.h).
 * The norm keeps one partial per chunk and adds the partials in chunk order afterwards, so
 * its value does not depend on the thread count.
 * ref: torch.nn.utils.clip_grad_norm_ / get_total_norm (the norm of the per-tensor norms is
 *      the norm of all elements as one vector; torch accumulates per tensor in float32). */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "train/chunks.h"
#include "train/optim.h"

/* ---- sum of squares in double ---- */
static double sumsq_scalar(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}
__attribute__((target("avx512f"))) static double sumsq_avx512(const float *x, size_t n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
        a0 = _mm512_fmadd_pd(lo, lo, a0);
        a1 = _mm512_fmadd_pd(hi, hi, a1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) + sumsq_scalar(x + i, n - i);
}
__attribute__((target("avx2,fma"))) static double sumsq_avx2(const float *x, size_t n) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        a0 = _mm256_fmadd_pd(lo, lo, a0);
        a1 = _mm256_fmadd_pd(hi, hi, a1);
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + sumsq_scalar(x + i, n - i);
}

/* ---- other norms (rarely used: scalar) ---- */
static double maxabs(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (isnan(a)) return NAN;
        if (a > m) m = a;
    }
    return m;
}
static double sum_pow(const float *x, size_t n, double p) {
    double s = 0;
    if (p == 1)
        for (size_t i = 0; i < n; i++) s += fabs((double)x[i]);
    else
        for (size_t i = 0; i < n; i++) s += pow(fabs((double)x[i]), p);
    return s;
}

/* first[0..count] over the spans; NULL (error set) when it cannot be allocated. */
static size_t *plan(const vc_fspan *x, size_t count, const char *what) {
    size_t *first = malloc((count + 1) * sizeof *first);
    if (!first) {
        vc_fail(VC_ERR_MEMORY, "%s: cannot allocate the work list for %zu arrays", what, count);
        return NULL;
    }
    first[0] = 0;
    for (size_t k = 0; k < count; k++) first[k + 1] = first[k] + vc_nchunks(x[k].n);
    return first;
}

static vc_status check_spans(const vc_fspan *x, size_t count, const char *what) {
    if (count && !x) return vc_fail(VC_ERR_ARG, "%s: no arrays", what);
    for (size_t k = 0; k < count; k++)
        if (x[k].n && !x[k].data) return vc_fail(VC_ERR_ARG, "%s: array %zu has no data", what, k);
    return VC_OK;
}

vc_status vc_grad_norm(const vc_fspan *x, size_t count, double p, double *out) {
    if (!out) return vc_fail(VC_ERR_ARG, "grad_norm: no output");
    *out = 0;
    if (!(p > 0)) return vc_fail(VC_ERR_ARG, "grad_norm: norm_type must be positive or inf, got %g", p);
    vc_status st = check_spans(x, count, "grad_norm");
    if (st != VC_OK || count == 0) return st;
    size_t *first = plan(x, count, "grad_norm");
    if (!first) return VC_ERR_MEMORY;
    const size_t total = first[count];
    double *part = malloc((total ? total : 1) * sizeof *part);
    if (!part) {
        free(first);
        return vc_fail(VC_ERR_MEMORY, "grad_norm: cannot allocate %zu partial sums", total);
    }
    const vc_cpu_features *f = vc_cpu();
    double (*sumsq)(const float *, size_t) = f->avx512f ? sumsq_avx512 : (f->avx2 && f->fma) ? sumsq_avx2 : sumsq_scalar;
    const int is_inf = isinf(p), is_two = p == 2;
#pragma omp parallel for schedule(static) if (total >= VC_TRAIN_PARALLEL_CHUNKS) num_threads(vc_get_num_threads())
    for (size_t ch = 0; ch < total; ch++) {
        size_t k = vc_chunk_owner(first, count, ch);
        size_t start = (ch - first[k]) * VC_CHUNK;
        size_t len = x[k].n - start < VC_CHUNK ? x[k].n - start : VC_CHUNK;
        const float *d = x[k].data + start;
        part[ch] = is_two ? sumsq(d, len) : is_inf ? maxabs(d, len) : sum_pow(d, len, p);
    }
    double acc = 0;
    for (size_t ch = 0; ch < total; ch++) {
        if (!is_inf) acc += part[ch];
        else if (isnan(part[ch]) || part[ch] > acc) acc = part[ch];
        if (isnan(acc)) break;
    }
    *out = is_inf ? acc : is_two ? sqrt(acc) : pow(acc, 1.0 / p);
    free(part);
    free(first);
    return VC_OK;
}

/* ---- scale ---- */
#define SCALE_BODY \
    for (size_t i = 0; i < n; i++) x[i] *= s;
static void scale_plain(float *x, size_t n, float s) { SCALE_BODY }
__attribute__((target("avx2"))) static void scale_avx2(float *x, size_t n, float s) { SCALE_BODY }
__attribute__((target("avx512f"))) static void scale_avx512(float *x, size_t n, float s) { SCALE_BODY }

vc_status vc_grad_scale(const vc_fspan *x, size_t count, float s) {
    vc_status st = check_spans(x, count, "grad_scale");
    if (st != VC_OK || count == 0) return st;
    size_t *first = plan(x, count, "grad_scale");
    if (!first) return VC_ERR_MEMORY;
    const size_t total = first[count];
    const vc_cpu_features *f = vc_cpu();
    void (*fn)(float *, size_t, float) = f->avx512f ? scale_avx512 : f->avx2 ? scale_avx2 : scale_plain;
#pragma omp parallel for schedule(static) if (total >= VC_TRAIN_PARALLEL_CHUNKS) num_threads(vc_get_num_threads())
    for (size_t ch = 0; ch < total; ch++) {
        size_t k = vc_chunk_owner(first, count, ch);
        size_t start = (ch - first[k]) * VC_CHUNK;
        size_t len = x[k].n - start < VC_CHUNK ? x[k].n - start : VC_CHUNK;
        fn(x[k].data + start, len, s);
    }
    free(first);
    return VC_OK;
}

/* ---- finiteness: an all-ones exponent is NaN or infinity; an integer OR-reduction vectorises ---- */
#define FINITE_BODY                                      \
    uint32_t bad = 0;                                    \
    for (size_t i = 0; i < n; i++) {                     \
        uint32_t u;                                      \
        memcpy(&u, x + i, sizeof u);                     \
        bad |= (u & 0x7f800000u) == 0x7f800000u;         \
    }                                                    \
    return bad == 0;
static int finite_plain(const float *x, size_t n) { FINITE_BODY }
__attribute__((target("avx2"))) static int finite_avx2(const float *x, size_t n) { FINITE_BODY }
__attribute__((target("avx512f,avx512bw"))) static int finite_avx512(const float *x, size_t n) { FINITE_BODY }

int vc_grad_all_finite(const vc_fspan *x, size_t count) {
    if (check_spans(x, count, "all_finite") != VC_OK) return 0;
    const vc_cpu_features *f = vc_cpu();
    int (*fn)(const float *, size_t) =
        f->avx512f && f->avx512bw ? finite_avx512 : f->avx2 ? finite_avx2 : finite_plain;
    int ok = 1;
    for (size_t k = 0; k < count && ok; k++) {
        const size_t n = x[k].n, nch = vc_nchunks(n);
        const float *d = x[k].data;
        int all = 1;
#pragma omp parallel for schedule(static) reduction(&& : all) if (nch >= VC_TRAIN_PARALLEL_CHUNKS) num_threads(vc_get_num_threads())
        for (size_t ch = 0; ch < nch; ch++) {
            size_t start = ch * VC_CHUNK, len = n - start < VC_CHUNK ? n - start : VC_CHUNK;
            all = all && fn(d + start, len);
        }
        ok = all;
    }
    return ok;
}
