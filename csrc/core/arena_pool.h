/* A free list of arenas so that concurrent forward calls on one model each get their own
 * activation memory; an idle arena keeps its size for the next call. */
#ifndef VC_ARENA_POOL_H
#define VC_ARENA_POOL_H

#include <pthread.h>

#include "core/arena.h"

typedef struct vc_arena_node {
    vc_arena arena;
    struct vc_arena_node *next;
} vc_arena_node;

typedef struct {
    const struct vc_backend *be;
    pthread_mutex_t lock;
    vc_arena_node *free_list;
} vc_arena_pool;

vc_status vc_arena_pool_init(vc_arena_pool *p, const struct vc_backend *be);
void vc_arena_pool_destroy(vc_arena_pool *p);
/* An arena for one call (NULL with an error set if out of memory); give it back after. */
vc_arena *vc_arena_pool_take(vc_arena_pool *p);
void vc_arena_pool_give(vc_arena_pool *p, vc_arena *a);

#endif
