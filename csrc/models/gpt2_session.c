/* GPT-2 decoding sessions: cross-attention K/V computed once per input, the per-row KV
 * cache, and the next-logits callback of generate/generate.h driving both. */
#include <stdlib.h>

#include "models/gpt2_internal.h"

void vc_gpt2_session_free(vc_gpt2_session *s) {
    if (!s) return;
    const vc_backend *be = s->m->be;
    vc_gpt2_cache_free(&s->cache, be);
    if (s->cross_kv) be->free(s->cross_kv);
    free(s->ptrs);
    vc_arena_free(&s->arena);
    free(s);
}

int vc_gpt2_session_rows(const vc_gpt2_session *s) { return s->cache.n_rows; }
int vc_gpt2_session_len(const vc_gpt2_session *s) { return s->cache.len; }

/* cross_kv[l] = c_attn_l(enc or enc_to_dec_proj(enc)): [n_inputs * Te, 2C] per layer. */
static vc_status cross_kv(vc_gpt2_session *s, const float *enc) {
    const vc_gpt2 *m = s->m;
    const vc_gpt2_config *c = &m->cfg;
    const vc_backend *be = m->be;
    const size_t rows = (size_t)s->n_inputs * s->Te, C = c->n_embd;
    size_t floats, bytes;
    if (rows > (size_t)1 << 30 || !vc_mul_ok(rows * 2 * C, (size_t)c->n_layer, &floats) ||
        !vc_mul_ok(floats, sizeof(float), &bytes))
        return vc_fail(VC_ERR_ARG, "encoder states of %d inputs x %d tokens are too large", s->n_inputs, s->Te);
    if (!(s->cross_kv = be->alloc(bytes)))
        return vc_fail(VC_ERR_MEMORY, "cannot allocate %zu bytes for cross-attention keys/values", bytes);
    float *proj = NULL;
    if (c->has_enc_proj) {
        if (!(proj = be->alloc(rows * C * sizeof(float))))
            return vc_fail(VC_ERR_MEMORY, "out of memory projecting the encoder states");
        be->linear(proj, enc, m->proj_w, m->proj_b, (int)rows, (int)C, c->encoder_hidden_size, 0);
        enc = proj;
    }
    for (int l = 0; l < c->n_layer; l++)
        be->linear_io(s->cross_kv + (size_t)l * rows * 2 * C, enc, m->blocks[l].xkv_w, m->blocks[l].xkv_b, (int)rows,
                      (int)(2 * C), (int)C, 0);
    if (proj) be->free(proj);
    return VC_OK;
}

vc_status vc_gpt2_session_create(vc_gpt2 *m, const float *enc, int n_inputs, int Te, int max_rows, int max_len,
                                 vc_gpt2_session **out) {
    const vc_gpt2_config *c = &m->cfg;
    *out = NULL;
    vc_status st = vc_params_check_bound(&m->params);
    if (st) return st;
    if (c->add_cross_attention) {
        if (!enc || n_inputs <= 0 || Te <= 0)
            return vc_fail(VC_ERR_ARG, "this decoder cross-attends: it needs encoder states (at least one input of "
                                       "at least one token)");
        if (n_inputs > (1 << 20) || Te > (1 << 20))
            return vc_fail(VC_ERR_ARG, "encoder states: %d inputs x %d tokens is out of range", n_inputs, Te);
    } else {
        if (enc) return vc_fail(VC_ERR_ARG, "this decoder has no cross-attention (add_cross_attention is false)");
        n_inputs = Te = 0;
    }
    vc_gpt2_session *s = calloc(1, sizeof *s);
    if (!s) return vc_fail(VC_ERR_MEMORY, "out of memory for a decoding session");
    s->m = m;
    s->n_inputs = n_inputs;
    s->Te = Te;
    s->cache.n_layer = c->n_layer;
    s->cache.C = c->n_embd;
    vc_arena_init(&s->arena, m->be);
    /* hints only: clamp them to what the model can hold */
    max_rows = max_rows < 1 ? 1 : (max_rows > 65536 ? 65536 : max_rows);
    max_len = max_len < 1 ? 1 : (max_len > c->n_positions ? c->n_positions : max_len);
    st = vc_gpt2_cache_reserve(&s->cache, m->be, max_rows, max_len, c->n_positions);
    if (!st && c->add_cross_attention) st = cross_kv(s, enc);
    if (st) {
        vc_gpt2_session_free(s);
        return st;
    }
    *out = s;
    return VC_OK;
}

vc_status vc_gpt2_next_logits(void *ctx, const vc_gen_step *step, float *logits) {
    vc_gpt2_session *s = ctx;
    const vc_gpt2_config *c = &s->m->cfg;
    vc_gpt2_cache *cache = &s->cache;
    vc_status st;
    if (step->n_rows <= 0 || step->n_tokens <= 0)
        return vc_fail(VC_ERR_ARG, "decoder step with %d rows of %d tokens", step->n_rows, step->n_tokens);
    if (step->step == 0) { /* prefill: fresh rows, one per prompt */
        if (step->past_len != 0) return vc_fail(VC_ERR_ARG, "the prefill call must have past_len 0");
        if (c->add_cross_attention && step->n_rows != s->n_inputs)
            return vc_fail(VC_ERR_ARG, "the prefill has %d rows but the encoder states hold %d inputs", step->n_rows,
                           s->n_inputs);
        st = vc_gpt2_cache_start(cache, s->m->be, step->n_rows, c->n_positions);
    } else {
        if (step->past_len != cache->len || step->prev_n_rows != cache->n_rows)
            return vc_fail(VC_ERR_ARG, "decoder step says rows hold %d tokens in %d rows; the cache holds %d in %d",
                           step->past_len, step->prev_n_rows, cache->len, cache->n_rows);
        if (step->parent_rows)
            st = vc_gpt2_cache_reorder(cache, s->m->be, step->parent_rows, step->n_rows, c->n_positions);
        else
            st = step->n_rows == cache->n_rows
                     ? VC_OK
                     : vc_fail(VC_ERR_ARG, "decoder step changes the rows (%d -> %d) without parent_rows",
                               cache->n_rows, step->n_rows);
    }
    if (st) return st;
    return vc_gpt2_run(s, step->tokens, step->n_tokens, step->input_rows ? step->input_rows : cache->row_input, logits,
                       0);
}

vc_status vc_gpt2_forward(vc_gpt2 *m, const float *enc, int Te, const int32_t *ids, int n, int T, float *logits) {
    if (n <= 0 || T <= 0) return vc_fail(VC_ERR_ARG, "decoder_input_ids must hold at least one token per row");
    vc_gpt2_session *s;
    vc_status st = vc_gpt2_session_create(m, enc, m->cfg.add_cross_attention ? n : 0, Te, n, T, &s);
    if (st) return st;
    st = vc_gpt2_cache_start(&s->cache, m->be, n, m->cfg.n_positions);
    if (!st) st = vc_gpt2_run(s, ids, T, s->cache.row_input, logits, 1);
    vc_gpt2_session_free(s);
    return st;
}
