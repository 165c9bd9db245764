/* A bump planner for training memory: one block per batch shape, carved into many buffers.
 *
 * Run the same carving code twice: first with base NULL to measure (every buffer gets NULL,
 * `off` sums the sizes), then over a block of that size to hand out the pointers. One code
 * path for both passes keeps the size and the layout from drifting apart. */
#ifndef VC_TRAIN_MEM_H
#define VC_TRAIN_MEM_H

#include <stddef.h>

#include "core/asan.h"

typedef struct {
    char *base;  /* NULL: measuring pass */
    size_t off;  /* bytes handed out (64-byte aligned pieces) */
    size_t high; /* the furthest `off` has reached: below it, the block is being carved again */
} vc_bump;

static inline float *vc_bump_floats(vc_bump *b, size_t n) {
    const size_t gap = b->off, off = gap + VC_ASAN_REDZONE, bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    b->off = off + bytes;
    if (!b->base) return NULL;
    /* A fresh piece gets a poisoned redzone before it (an overflow of the block's last piece is
     * ASan's own heap overflow). A piece carved again over an area that units live at different
     * times share (checkpointing) gets none: it could lie inside another unit's buffer. */
    if (gap >= b->high) vc_asan_poison(b->base + gap, VC_ASAN_REDZONE);
    vc_asan_unpoison(b->base + off, bytes);
    if (b->off > b->high) b->high = b->off;
    return (float *)(b->base + off);
}

/* Seed of one dropout site: a different stream per (step seed, layer, site). */
static inline unsigned long long vc_site_seed(unsigned long long seed, int layer, int site) {
    return seed ^ (0x9e3779b97f4a7c15ULL * (unsigned long long)(layer * 16 + site + 1));
}

#endif
