/* Gradient plumbing: accumulate one gradient into another (a tensor consumed by two ops, a
 * residual branch, micro-batches) and scale a gradient (loss scaling, averaging).
 * Legend: n elements. Streaming loops; the compiler vectorises them. */
#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

/* acc[n] += x[n]; x may equal acc (doubling). */
void cpu_add_into(float *acc, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 4 * VC_CHUNK) num_threads(vc_get_num_threads())
    for (size_t i = 0; i < n; i++) acc[i] += x[i];
}

/* out[n] = alpha * x[n]; out may equal x. */
void cpu_scale(float *out, const float *x, float alpha, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 4 * VC_CHUNK) num_threads(vc_get_num_threads())
    for (size_t i = 0; i < n; i++) out[i] = alpha * x[i];
}
