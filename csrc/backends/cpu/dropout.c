/* Dropout and stochastic depth (drop path) with a counter-based random source.
 *
 * Legend: n elements; B samples of per_sample elements each (drop path).
 * The keep decision for element (or sample) i is a pure function of (seed, i):
 *   key  = mix64(seed ^ K0)                       (so nearby seeds give unrelated streams)
 *   bits = mix64(key + (i + 1) * golden)          (the i-th splitmix64 output from key)
 *   keep = (bits >> 32) < round((1 - p) * 2^32)
 * so the mask does not depend on the thread count or on how the loop is split, and nothing
 * needs storing: the backward regenerates it. Backward of dropout IS dropout applied to dout
 * with the same p and seed (dx = dout * mask / (1 - p)); the same holds for drop path. Use a
 * different seed per layer and per step.
 *   dropout    out = keep ? x / (1 - p) : 0          (torch: x * (bernoulli(1-p) / (1-p)))
 *   drop path  out[b] = keep_b ? x[b] / (1 - p) : 0   (timm / transformers drop_path, scale_by_keep)
 * p = 1 gives zeros (as torch); p = 0 copies. */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t stream_key(uint64_t seed) { return mix64(seed ^ 0x5851f42d4c957f2dULL); }

/* 1 when element i is kept; thresh = keep probability in units of 2^-32 (0 .. 2^32). */
static inline int keep_at(uint64_t key, uint64_t i, uint64_t thresh) {
    return (mix64(key + (i + 1) * 0x9e3779b97f4a7c15ULL) >> 32) < thresh;
}

static uint64_t keep_threshold(float p) {
    const double keep = 1.0 - (double)p;
    if (!(keep > 0.0)) return 0; /* p >= 1 (or NaN): drop everything */
    return (uint64_t)(keep * 4294967296.0 + 0.5);
}

/* out[n] (may equal in), in[n]; p in [0, 1]. */
void cpu_dropout(float *out, const float *in, size_t n, float p, uint64_t seed) {
    if (p <= 0.f) {
        if (out != in) memcpy(out, in, n * sizeof(float));
        return;
    }
    const uint64_t key = stream_key(seed), thresh = keep_threshold(p);
    const float scale = p >= 1.f ? 0.f : 1.f / (1.f - p);
#pragma omp parallel for schedule(static) if (n > VC_CHUNK) num_threads(vc_get_num_threads())
    for (size_t i = 0; i < n; i++) out[i] = keep_at(key, i, thresh) ? in[i] * scale : 0.f;
}

/* out[n] (may equal in), in[n]: elements first .. first + n - 1 of the stream; serial. */
void cpu_dropout_slice(float *out, const float *in, size_t n, float p, uint64_t seed, uint64_t first) {
    if (p <= 0.f) {
        if (out != in) memcpy(out, in, n * sizeof(float));
        return;
    }
    const uint64_t key = stream_key(seed), thresh = keep_threshold(p);
    const float scale = p >= 1.f ? 0.f : 1.f / (1.f - p);
    for (size_t i = 0; i < n; i++) out[i] = keep_at(key, first + i, thresh) ? in[i] * scale : 0.f;
}

/* out[B, per_sample] (may equal in), in[B, per_sample]; p in [0, 1]: whole samples are dropped. */
void cpu_drop_path(float *out, const float *in, int B, size_t per_sample, float p, uint64_t seed) {
    if (p <= 0.f) {
        if (out != in) memcpy(out, in, (size_t)B * per_sample * sizeof(float));
        return;
    }
    const uint64_t key = stream_key(seed), thresh = keep_threshold(p);
    const float keep_prob = 1.f - p;
    for (int b = 0; b < B; b++) {
        const int keep = p < 1.f && keep_at(key, (uint64_t)b, thresh);
        const float *x = in + (size_t)b * per_sample;
        float *o = out + (size_t)b * per_sample;
        /* a true division, as transformers' x.div(keep_prob) */
#pragma omp parallel for simd schedule(static) if (per_sample > 4 * VC_CHUNK) num_threads(vc_get_num_threads())
        for (size_t i = 0; i < per_sample; i++) o[i] = keep ? x[i] / keep_prob : 0.f;
    }
}
