/* Activation arena: one block per forward call, reused across calls.
 *
 * A model's forward asks the arena for its intermediate buffers; the arena grows only
 * when a larger shape than any before arrives, so steady-state calls do no malloc.
 * Memory comes from the backend (host memory on CPU, device memory on CUDA).
 */
#ifndef VC_ARENA_H
#define VC_ARENA_H

#include <stddef.h>

#include "vc.h"

struct vc_backend;

typedef struct {
    const struct vc_backend *be;
    char *base;
    size_t capacity; /* bytes allocated */
    size_t used;     /* bytes handed out since the last reset */
    size_t peak;     /* largest `used` seen: the next reserve() sizes to at least this */
    int overflowed;  /* a request did not fit; reserve() must grow before the next call */
} vc_arena;

void vc_arena_init(vc_arena *a, const struct vc_backend *be);
/* Makes sure `bytes` are available, reallocating (and dropping contents) if needed. */
vc_status vc_arena_reserve(vc_arena *a, size_t bytes);
void vc_arena_reset(vc_arena *a);
/* 64-byte aligned float buffer of n elements, or NULL with an error set if it does not fit. */
float *vc_arena_floats(vc_arena *a, size_t n);
void vc_arena_free(vc_arena *a);



/* Reserves room for n buffers of sizes[i] floats and points *ptrs[i] at each, in order. */
vc_status vc_arena_carve(vc_arena *a, int n, const size_t *sizes, float **const *ptrs);
#endif
