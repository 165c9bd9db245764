/* Internals shared by gpt2.c (model, parameters, the layer stack), gpt2_cache.c (the
 * per-row KV cache) and gpt2_session.c (sessions, the generate callback). */
#ifndef VC_GPT2_INTERNAL_H
#define VC_GPT2_INTERNAL_H

#include "core/arena.h"
#include "models/gpt2.h"
#include "models/params.h"

typedef struct {
    const float *ln1_w, *ln1_b, *attn_w, *attn_b, *attn_proj_w, *attn_proj_b;        /* causal self-attention */
    const float *lnx_w, *lnx_b, *xq_w, *xq_b, *xkv_w, *xkv_b, *xproj_w, *xproj_b;    /* cross-attention */
    const float *ln2_w, *ln2_b, *fc_w, *fc_b, *mlp_proj_w, *mlp_proj_b;              /* MLP */
} vc_gpt2_block;

struct vc_gpt2 {
    vc_gpt2_config cfg;
    const vc_backend *be;
    const float *wte, *wpe, *lnf_w, *lnf_b, *lm_head, *proj_w, *proj_b;
    vc_gpt2_block *blocks;
    vc_param_table params;
};

/* Self-attention cache: `n_slots` slots of [L][2][cap][C] floats (per layer: keys, then values,
 * one C-wide row per token, head h at column h*D). Each live row owns one slot; row_slot maps
 * rows to slots. Rows are re-pointed at their parents' slots rather than moved: a slot is
 * copied only when a parent has more than one child. */
typedef struct {
    float *data;
    int n_layer, C;
    int n_slots, cap;  /* slots allocated, tokens per slot */
    int n_rows, len;   /* live rows, tokens each holds */
    int32_t *row_slot, *row_input;  /* [n_slots]: slot and input row of each live row */
    int32_t *new_slot, *new_input;  /* [n_slots] reorder scratch */
    unsigned char *claimed, *used;  /* [n_slots] reorder scratch */
} vc_gpt2_cache;

struct vc_gpt2_session {
    vc_gpt2 *m;
    int n_inputs, Te;
    float *cross_kv; /* [L][n_inputs][Te][2C]: keys | values of each encoder token, per layer */
    vc_gpt2_cache cache;
    const float **ptrs; /* [4 * ptrs_rows]: per-row key/value pointers handed to attention_kv */
    int ptrs_rows;
    vc_arena arena;     /* per-call activations; grows only for a larger call than any before */
};

/* Keys of `layer` in `slot`: [cap][C]; the values follow at + cap*C. */
static inline float *vc_gpt2_slot_keys(const vc_gpt2_cache *c, int slot, int layer) {
    return c->data + (((size_t)slot * c->n_layer + (size_t)layer) * 2) * (size_t)c->cap * c->C;
}

/* vc_gpt2_cache: ensure room for `rows` rows of `tokens` tokens, keeping what it holds. */
vc_status vc_gpt2_cache_reserve(vc_gpt2_cache *c, const vc_backend *be, int rows, int tokens, int max_tokens);
/* Prefill: n_rows fresh rows (row i in slot i, input i), nothing held. */
vc_status vc_gpt2_cache_start(vc_gpt2_cache *c, const vc_backend *be, int n_rows, int max_tokens);
/* Row i continues row parent[i] of the previous call (see generate.h); previous rows that no
 * entry names are dropped. Fails (VC_ERR_ARG) on a parent outside the previous rows. */
vc_status vc_gpt2_cache_reorder(vc_gpt2_cache *c, const vc_backend *be, const int32_t *parent, int n_rows,
                                int max_tokens);
void vc_gpt2_cache_free(vc_gpt2_cache *c, const vc_backend *be);

/* The layer stack (gpt2.c): appends T tokens to each of the cache's n_rows rows (the cache
 * already maps them to slots and holds cache.len tokens each) and writes next-token logits,
 * [n_rows, V] for each row's last token, or [n_rows * T, V] with all_positions.
 * input_rows[i]: the encoder input row i attends to (cross-attention models). */
vc_status vc_gpt2_run(vc_gpt2_session *s, const int32_t *tokens, int T, const int32_t *input_rows, float *logits,
                      int all_positions);

#endif
