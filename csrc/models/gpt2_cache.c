/* The GPT-2 decoder's self-attention KV cache: one slot per live row. Beam search reorders
 * rows every step; a row takes over its parent's slot when it is the parent's first child and
 * only further children copy it, so keeping one beam costs nothing and a finished row frees
 * its slot at once (see gpt2_internal.h for the layout). */
#include <stdlib.h>
#include <string.h>

#include "models/gpt2_internal.h"

static void free_index(vc_gpt2_cache *c) {
    free(c->row_slot), free(c->row_input), free(c->new_slot), free(c->new_input), free(c->claimed), free(c->used);
    c->row_slot = c->row_input = c->new_slot = c->new_input = NULL;
    c->claimed = c->used = NULL;
}

void vc_gpt2_cache_free(vc_gpt2_cache *c, const vc_backend *be) {
    if (c->data) be->free(c->data);
    c->data = NULL;
    free_index(c);
    c->n_slots = c->cap = c->n_rows = c->len = 0;
}

/* Grows an int32 / byte array to n entries, keeping its contents; 0 on failure (old kept). */
static int grow(void **p, size_t n, size_t elem) {
    void *q = realloc(*p, n * elem);
    if (!q) return 0;
    *p = q;
    return 1;
}

vc_status vc_gpt2_cache_reserve(vc_gpt2_cache *c, const vc_backend *be, int rows, int tokens, int max_tokens) {
    if (rows <= c->n_slots && tokens <= c->cap) return VC_OK;
    if (tokens > max_tokens)
        return vc_fail(VC_ERR_ARG, "sequence of %d tokens is longer than the model's n_positions (%d)", tokens,
                       max_tokens);
    const int slots = rows > c->n_slots ? rows : c->n_slots;
    int cap = c->cap;
    if (tokens > cap) { /* geometric growth: a generation longer than its hint reallocates O(log) times */
        cap = cap * 2 > tokens ? cap * 2 : tokens;
        if (cap > max_tokens) cap = max_tokens;
    }
    size_t floats, bytes;
    if (!vc_mul_ok((size_t)slots * c->n_layer * 2, (size_t)cap * c->C, &floats) ||
        !vc_mul_ok(floats, sizeof(float), &bytes))
        return vc_fail(VC_ERR_MEMORY, "KV cache of %d rows x %d tokens overflows size_t", slots, cap);
    float *data = be->alloc(bytes);
    if (!data) return vc_fail(VC_ERR_MEMORY, "cannot allocate a KV cache of %zu bytes (%d rows x %d tokens)", bytes,
                              slots, cap);
    if (slots > c->n_slots &&
        !(grow((void **)&c->row_slot, slots, 4) && grow((void **)&c->row_input, slots, 4) &&
          grow((void **)&c->new_slot, slots, 4) && grow((void **)&c->new_input, slots, 4) &&
          grow((void **)&c->claimed, slots, 1) && grow((void **)&c->used, slots, 1))) {
        be->free(data);
        return vc_fail(VC_ERR_MEMORY, "out of memory for the KV cache index");
    }
    /* Move what the live slots hold into the new layout (slot indices are unchanged). */
    const size_t run = (size_t)c->len * c->C;
    for (int s = 0; c->data && s < c->n_slots; s++)
        for (int l = 0; l < c->n_layer; l++)
            for (int kv = 0; kv < 2; kv++) {
                float *dst = data + (((size_t)s * c->n_layer + l) * 2 + kv) * (size_t)cap * c->C;
                memcpy(dst, vc_gpt2_slot_keys(c, s, l) + (size_t)kv * c->cap * c->C, run * sizeof(float));
            }
    if (c->data) be->free(c->data);
    c->data = data;
    c->n_slots = slots;
    c->cap = cap;
    return VC_OK;
}

vc_status vc_gpt2_cache_start(vc_gpt2_cache *c, const vc_backend *be, int n_rows, int max_tokens) {
    c->len = 0; /* forget any earlier generation before growing: nothing to move */
    c->n_rows = 0;
    vc_status st = vc_gpt2_cache_reserve(c, be, n_rows, c->cap > 0 ? c->cap : 1, max_tokens);
    if (st) return st;
    for (int i = 0; i < n_rows; i++) c->row_slot[i] = c->row_input[i] = i;
    c->n_rows = n_rows;
    return VC_OK;
}

static void copy_slot(const vc_gpt2_cache *c, int src, int dst) {
    const size_t run = (size_t)c->len * c->C * sizeof(float), half = (size_t)c->cap * c->C;
    for (int l = 0; l < c->n_layer; l++) {
        const float *s = vc_gpt2_slot_keys(c, src, l);
        float *d = vc_gpt2_slot_keys(c, dst, l);
        memcpy(d, s, run);
        memcpy(d + half, s + half, run);
    }
}

vc_status vc_gpt2_cache_reorder(vc_gpt2_cache *c, const vc_backend *be, const int32_t *parent, int n_rows,
                                int max_tokens) {
    const int prev = c->n_rows;
    for (int i = 0; i < n_rows; i++)
        if (parent[i] < 0 || parent[i] >= prev)
            return vc_fail(VC_ERR_ARG, "parent_rows[%d] = %d is not a row of the previous call (%d rows)", i,
                           (int)parent[i], prev);
    vc_status st = vc_gpt2_cache_reserve(c, be, n_rows, c->len, max_tokens);
    if (st) return st;
    memset(c->claimed, 0, (size_t)c->n_slots);
    memset(c->used, 0, (size_t)c->n_slots);
    /* First children take their parent's slot over. */
    for (int i = 0; i < n_rows; i++) {
        const int p = parent[i];
        c->new_input[i] = c->row_input[p];
        if (!c->claimed[p]) {
            c->claimed[p] = 1;
            c->new_slot[i] = c->row_slot[p];
            c->used[c->row_slot[p]] = 1;
        } else {
            c->new_slot[i] = -1;
        }
    }
    /* Further children copy it into a free slot: one of a dropped row, or never used. Their
     * sources are claimed slots, which nothing has written yet in this call. */
    int f = 0;
    for (int i = 0; i < n_rows; i++) {
        if (c->new_slot[i] >= 0) continue;
        while (f < c->n_slots && c->used[f]) f++;
        if (f == c->n_slots) return vc_fail(VC_ERR_INTERNAL, "KV cache: no free slot for row %d", i);
        c->used[f] = 1;
        c->new_slot[i] = f;
        copy_slot(c, c->row_slot[parent[i]], f);
    }
    int32_t *t = c->row_slot;
    c->row_slot = c->new_slot, c->new_slot = t;
    t = c->row_input, c->row_input = c->new_input, c->new_input = t;
    c->n_rows = n_rows;
    return VC_OK;
}
