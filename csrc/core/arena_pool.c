#include "core/arena_pool.h"

#include <stddef.h>
#include <stdlib.h>

vc_status vc_arena_pool_init(vc_arena_pool *p, const struct vc_backend *be) {
    p->be = be;
    p->free_list = NULL;
    return pthread_mutex_init(&p->lock, NULL) ? vc_fail(VC_ERR_INTERNAL, "cannot create a mutex") : VC_OK;
}

void vc_arena_pool_destroy(vc_arena_pool *p) {
    for (vc_arena_node *n = p->free_list; n;) {
        vc_arena_node *next = n->next;
        vc_arena_free(&n->arena);
        free(n);
        n = next;
    }
    p->free_list = NULL;
    pthread_mutex_destroy(&p->lock);
}

vc_arena *vc_arena_pool_take(vc_arena_pool *p) {
    pthread_mutex_lock(&p->lock);
    vc_arena_node *n = p->free_list;
    if (n) p->free_list = n->next;
    pthread_mutex_unlock(&p->lock);
    if (!n) {
        n = malloc(sizeof *n);
        if (!n) {
            vc_fail(VC_ERR_MEMORY, "out of memory for an activation arena");
            return NULL;
        }
        vc_arena_init(&n->arena, p->be);
    }
    return &n->arena;
}

void vc_arena_pool_give(vc_arena_pool *p, vc_arena *a) {
    vc_arena_node *n = (vc_arena_node *)((char *)a - offsetof(vc_arena_node, arena));
    pthread_mutex_lock(&p->lock);
    n->next = p->free_list;
    p->free_list = n;
    pthread_mutex_unlock(&p->lock);
}
