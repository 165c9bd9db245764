#include "core/arena.h"

#include "core/asan.h"
#include "ops/backend.h"

#define ARENA_ALIGN 64

void vc_arena_init(vc_arena *a, const struct vc_backend *be) {
    a->be = be;
    a->base = NULL;
    a->capacity = a->used = a->peak = 0;
    a->overflowed = 0;
}

vc_status vc_arena_reserve(vc_arena *a, size_t bytes) {
    a->used = 0;
    if (a->base) vc_asan_unpoison(a->base, a->capacity); /* the last call's redzones */
    if (bytes <= a->capacity) return VC_OK;
    if (a->base) a->be->free(a->base);
    a->base = a->be->alloc(bytes);
    if (!a->base) {
        a->capacity = 0;
        return vc_fail(VC_ERR_MEMORY, "cannot allocate %zu bytes of activation memory", bytes);
    }
    a->capacity = bytes;
    return VC_OK;
}

void vc_arena_reset(vc_arena *a) {
    a->used = 0;
    if (a->base) vc_asan_unpoison(a->base, a->capacity);
}

float *vc_arena_floats(vc_arena *a, size_t n) {
    size_t bytes;
    if (!vc_mul_ok(n, sizeof(float), &bytes) || bytes > SIZE_MAX - ARENA_ALIGN) {
        vc_fail(VC_ERR_MEMORY, "activation buffer of %zu floats overflows size_t", n);
        return NULL;
    }
    bytes = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); /* after a redzone (core/asan.h) */
    if (a->used + bytes + VC_ASAN_REDZONE > a->capacity) {
        a->overflowed = 1;
        vc_fail(VC_ERR_INTERNAL, "activation arena too small (%zu + %zu > %zu bytes)", a->used, bytes,
                a->capacity);
        return NULL;
    }
    vc_asan_poison(a->base + a->used, VC_ASAN_REDZONE); /* until the next reserve */
    float *p = (float *)(a->base + a->used + VC_ASAN_REDZONE);
    a->used += VC_ASAN_REDZONE + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void vc_arena_free(vc_arena *a) {
    if (a->base) a->be->free(a->base);
    a->base = NULL;
    a->capacity = a->used = 0;
}

vc_status vc_arena_carve(vc_arena *a, int n, const size_t *sizes, float **const *ptrs) {
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes;
        if (!vc_mul_ok(sizes[i] ? sizes[i] : 1, sizeof(float), &bytes) ||
            total > SIZE_MAX - bytes - ARENA_ALIGN - VC_ASAN_REDZONE)
            return vc_fail(VC_ERR_MEMORY, "activation memory size overflows");
        total += ((bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1)) + VC_ASAN_REDZONE;
    }
    vc_status st = vc_arena_reserve(a, total);
    if (st) return st;
    for (int i = 0; i < n; i++)
        if (!(*ptrs[i] = vc_arena_floats(a, sizes[i] ? sizes[i] : 1))) return VC_ERR_INTERNAL;
    return VC_OK;
}
