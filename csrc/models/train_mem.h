/* A bump planner for training memory: one block per batch shape, carved into many buffers.
 *
 * Run the same carving code twice: first with base NULL to measure (every buffer gets NULL,
 * `off` sums the sizes), then over a block of that size to hand out the pointers. One code
 * path for both passes keeps the size and the layout from drifting apart. */
#ifndef VC_TRAIN_MEM_H
#define VC_TRAIN_MEM_H

#include <stddef.h>

typedef struct {
    char *base;  /* NULL: measuring pass */
    size_t off;  /* bytes handed out (64-byte aligned pieces) */
} vc_bump;

static inline float *vc_bump_floats(vc_bump *b, size_t n) {
    size_t off = b->off;
    b->off += (n * sizeof(float) + 63) & ~(size_t)63;
    return b->base ? (float *)(b->base + off) : NULL;
}

/* Seed of one dropout site: a different stream per (step seed, layer, site). */
static inline unsigned long long vc_site_seed(unsigned long long seed, int layer, int site) {
    return seed ^ (0x9e3779b97f4a7c15ULL * (unsigned long long)(layer * 16 + site + 1));
}

#endif
