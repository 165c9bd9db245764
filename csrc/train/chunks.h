/* Work splitting for the optimizer kernels: the tensors of one call are cut into chunks of
 * at most VC_CHUNK elements, numbered consecutively across tensors, so that one OpenMP loop
 * balances a few large tensors and many small ones (biases, norm weights) alike. */
#ifndef VC_TRAIN_CHUNKS_H
#define VC_TRAIN_CHUNKS_H

#include <stddef.h>

#include "backends/cpu/cpu.h" /* VC_CHUNK */

/* Calls with fewer chunks than this run on the calling thread: a few hundred thousand
 * elements take tens of microseconds, less than waking a team (and a team left spinning
 * slows whatever runs next, e.g. another OpenMP runtime in the same process). */
#define VC_TRAIN_PARALLEL_CHUNKS 8

static inline size_t vc_nchunks(size_t n) { return n / VC_CHUNK + (n % VC_CHUNK != 0); }

/* first[0..count]: first[t] is the number of chunks before tensor t (ascending). Returns the
 * tensor that owns chunk c < first[count]: the last t with first[t] <= c (and a chunk). */
static inline size_t vc_chunk_owner(const size_t *first, size_t count, size_t c) {
    size_t lo = 0, hi = count; /* invariant: first[lo] <= c < first[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (first[mid] <= c) lo = mid;
        else hi = mid;
    }
    return lo;
}

#endif
