/* GPT-2 decoder: config checks, parameter table and the layer stack.
 *
 *   x = wte[ids] + wpe[positions]                                             [M = rows*T, C]
 *   per block:  x += c_proj(causal_attn(c_attn(LN1(x)), cache))
 *               x += c_proj(attn(q_attn(LNx(x)), cross K/V of the row's input))   (cross-attention)
 *               x += mlp_c_proj(act(c_fc(LN2(x))))
 *   logits = LN_f(x) . lm_head^T     (last position of each row while decoding)
 *
 * Keys and values of the new tokens are appended to each row's cache slot before the
 * attention, which then reads past and present keys from the slot alone.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/gpt2_internal.h"

vc_status vc_gpt2_create(const vc_gpt2_config *cfg, const vc_backend *be, vc_gpt2 **out) {
    const vc_gpt2_config *c = cfg;
    *out = NULL;
    if (c->vocab_size <= 0 || c->n_positions <= 0 || c->n_embd <= 0 || c->n_layer <= 0 || c->n_head <= 0 ||
        c->n_inner <= 0)
        return vc_fail(VC_ERR_ARG, "GPT-2 config: sizes must be positive (vocab_size %d, n_positions %d, n_embd %d, "
                                   "n_layer %d, n_head %d, n_inner %d)",
                       c->vocab_size, c->n_positions, c->n_embd, c->n_layer, c->n_head, c->n_inner);
    if (c->n_embd % c->n_head)
        return vc_fail(VC_ERR_ARG, "GPT-2 config: n_embd %d is not a multiple of n_head %d", c->n_embd, c->n_head);
    if (c->vocab_size > (1 << 24) || c->n_positions > (1 << 20) || c->n_embd > (1 << 16) ||
        c->n_inner > (1 << 18) || c->n_layer > 1024)
        return vc_fail(VC_ERR_ARG, "GPT-2 config: sizes out of the supported range");
    if (!(c->layer_norm_epsilon > 0.f) || !isfinite(c->layer_norm_epsilon))
        return vc_fail(VC_ERR_ARG, "GPT-2 config: layer_norm_epsilon must be a positive number");
    if (c->add_cross_attention && (c->encoder_hidden_size <= 0 || c->encoder_hidden_size > (1 << 16)))
        return vc_fail(VC_ERR_ARG, "GPT-2 config: encoder_hidden_size %d out of range", c->encoder_hidden_size);
    if (c->add_cross_attention && !c->has_enc_proj && c->encoder_hidden_size != c->n_embd)
        return vc_fail(VC_ERR_ARG, "GPT-2 config: encoder states of width %d need enc_to_dec_proj to reach n_embd %d",
                       c->encoder_hidden_size, c->n_embd);

    vc_gpt2 *m = calloc(1, sizeof *m);
    if (!m) return vc_fail(VC_ERR_MEMORY, "out of memory creating GPT-2");
    m->cfg = *c;
    if (!c->add_cross_attention) m->cfg.has_enc_proj = 0, m->cfg.encoder_hidden_size = 0;
    m->be = be;
    m->blocks = calloc((size_t)c->n_layer, sizeof *m->blocks);
    if (!m->blocks || vc_params_init(&m->params, 8 + 26 * c->n_layer)) {
        free(m->blocks);
        free(m);
        return vc_fail(VC_ERR_MEMORY, "out of memory creating GPT-2");
    }
    const int64_t C = c->n_embd, I = c->n_inner, V = c->vocab_size;
    vc_param_table *t = &m->params;
    vc_status st = VC_OK;
#define ADD(field, shape, name, l) \
    if (!st) st = vc_params_add(t, &(field), sizeof(shape) / sizeof(int64_t), shape, name, l, 0)
    ADD(m->wte, VC_SHAPE2(V, C), "transformer.wte.weight", 0);
    ADD(m->wpe, VC_SHAPE2(c->n_positions, C), "transformer.wpe.weight", 0);
    for (int l = 0; l < c->n_layer; l++) {
        vc_gpt2_block *b = &m->blocks[l];
        ADD(b->ln1_w, VC_SHAPE1(C), "transformer.h.%d.ln_1.weight", l);
        ADD(b->ln1_b, VC_SHAPE1(C), "transformer.h.%d.ln_1.bias", l);
        ADD(b->attn_w, VC_SHAPE2(C, 3 * C), "transformer.h.%d.attn.c_attn.weight", l);
        ADD(b->attn_b, VC_SHAPE1(3 * C), "transformer.h.%d.attn.c_attn.bias", l);
        ADD(b->attn_proj_w, VC_SHAPE2(C, C), "transformer.h.%d.attn.c_proj.weight", l);
        ADD(b->attn_proj_b, VC_SHAPE1(C), "transformer.h.%d.attn.c_proj.bias", l);
        if (c->add_cross_attention) {
            ADD(b->lnx_w, VC_SHAPE1(C), "transformer.h.%d.ln_cross_attn.weight", l);
            ADD(b->lnx_b, VC_SHAPE1(C), "transformer.h.%d.ln_cross_attn.bias", l);
            ADD(b->xq_w, VC_SHAPE2(C, C), "transformer.h.%d.crossattention.q_attn.weight", l);
            ADD(b->xq_b, VC_SHAPE1(C), "transformer.h.%d.crossattention.q_attn.bias", l);
            ADD(b->xkv_w, VC_SHAPE2(C, 2 * C), "transformer.h.%d.crossattention.c_attn.weight", l);
            ADD(b->xkv_b, VC_SHAPE1(2 * C), "transformer.h.%d.crossattention.c_attn.bias", l);
            ADD(b->xproj_w, VC_SHAPE2(C, C), "transformer.h.%d.crossattention.c_proj.weight", l);
            ADD(b->xproj_b, VC_SHAPE1(C), "transformer.h.%d.crossattention.c_proj.bias", l);
        }
        ADD(b->ln2_w, VC_SHAPE1(C), "transformer.h.%d.ln_2.weight", l);
        ADD(b->ln2_b, VC_SHAPE1(C), "transformer.h.%d.ln_2.bias", l);
        ADD(b->fc_w, VC_SHAPE2(C, I), "transformer.h.%d.mlp.c_fc.weight", l);
        ADD(b->fc_b, VC_SHAPE1(I), "transformer.h.%d.mlp.c_fc.bias", l);
        ADD(b->mlp_proj_w, VC_SHAPE2(I, C), "transformer.h.%d.mlp.c_proj.weight", l);
        ADD(b->mlp_proj_b, VC_SHAPE1(C), "transformer.h.%d.mlp.c_proj.bias", l);
    }
    ADD(m->lnf_w, VC_SHAPE1(C), "transformer.ln_f.weight", 0);
    ADD(m->lnf_b, VC_SHAPE1(C), "transformer.ln_f.bias", 0);
    if (!c->tie_word_embeddings) ADD(m->lm_head, VC_SHAPE2(V, C), "lm_head.weight", 0);
    if (m->cfg.has_enc_proj) {
        ADD(m->proj_w, VC_SHAPE2(C, c->encoder_hidden_size), "enc_to_dec_proj.weight", 0);
        ADD(m->proj_b, VC_SHAPE1(C), "enc_to_dec_proj.bias", 0);
    }
#undef ADD
    if (st) {
        vc_gpt2_free(m);
        return st;
    }
    *out = m;
    return VC_OK;
}

void vc_gpt2_free(vc_gpt2 *m) {
    if (!m) return;
    vc_params_free(&m->params);
    free(m->blocks);
    free(m);
}

const vc_gpt2_config *vc_gpt2_get_config(const vc_gpt2 *m) { return &m->cfg; }
int vc_gpt2_num_params(const vc_gpt2 *m) { return m->params.n; }
const char *vc_gpt2_param_name(const vc_gpt2 *m, int i, int *ndim, int64_t shape[4]) {
    return vc_params_name(&m->params, i, ndim, shape);
}
vc_status vc_gpt2_bind(vc_gpt2 *m, int i, const vc_tensor *x) { return vc_params_bind(&m->params, i, x); }

/* ---- the layer stack ------------------------------------------------------------------------ */

enum { NBUF = 6 };

static float layer_scale(const vc_gpt2_config *c, int l) {
    float s = c->scale_attn_weights ? 1.f / sqrtf((float)(c->n_embd / c->n_head)) : 1.f;
    return c->scale_attn_by_inverse_layer_idx ? s / (float)(l + 1) : s;
}

static vc_status ensure_ptrs(vc_gpt2_session *s, int rows) {
    if (rows <= s->ptrs_rows) return VC_OK;
    const float **p = realloc(s->ptrs, (size_t)rows * 4 * sizeof *p);
    if (!p) return vc_fail(VC_ERR_MEMORY, "out of memory for attention row pointers");
    s->ptrs = p;
    s->ptrs_rows = rows;
    return VC_OK;
}

static vc_status run(vc_gpt2_session *s, const int32_t *tokens, int T, const int32_t *input_rows, float *logits,
                     int all_positions) {
    vc_gpt2 *m = s->m;
    const vc_gpt2_config *c = &m->cfg;
    const vc_backend *be = m->be;
    vc_gpt2_cache *cache = &s->cache;
    const int n_rows = cache->n_rows, past = cache->len, Tk = past + T;
    const int C = c->n_embd, H = c->n_head, D = C / H, I = c->n_inner, V = c->vocab_size;
    const float eps = c->layer_norm_epsilon;
    const size_t M = (size_t)n_rows * T;

    /* kernels index rows with int: keep every [M, width] product well inside it */
    if (M > (size_t)1 << 22)
        return vc_fail(VC_ERR_ARG, "%d rows of %d tokens are too many for one decoder call", n_rows, T);
    for (size_t i = 0; i < M; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return vc_fail(VC_ERR_ARG, "token id %d at row %zu is outside the vocabulary [0, %d)", (int)tokens[i],
                           i / T, V);
    if (c->add_cross_attention)
        for (int r = 0; r < n_rows; r++)
            if (input_rows[r] < 0 || input_rows[r] >= s->n_inputs)
                return vc_fail(VC_ERR_ARG, "input_rows[%d] = %d is not an input (%d inputs)", r, (int)input_rows[r],
                               s->n_inputs);
    vc_status st = vc_gpt2_cache_reserve(cache, be, n_rows, Tk, c->n_positions);
    if (!st) st = ensure_ptrs(s, n_rows);
    if (st) return st;

    float *x, *h, *qkv, *ctx, *ff, *scratch;
    const int span = Tk > s->Te ? Tk : s->Te;
    size_t sz[NBUF] = {M * C, M * C, M * 3 * C, M * C, M * (size_t)I, be->attention_kv_scratch(span)};
    float **const ptrs[NBUF] = {&x, &h, &qkv, &ctx, &ff, &scratch};
    if ((st = vc_arena_carve(&s->arena, NBUF, sz, ptrs))) return st;

    const float **kp = s->ptrs, **vp = s->ptrs + n_rows, **xk = s->ptrs + 2 * n_rows, **xv = s->ptrs + 3 * n_rows;
    be->token_embed(x, m->wte, tokens, n_rows, T, C, m->wpe, past);
    for (int l = 0; l < c->n_layer; l++) {
        const vc_gpt2_block *b = &m->blocks[l];
        const float scale = layer_scale(c, l);
        /* causal self-attention over the row's cache, the new tokens appended first */
        be->layernorm(h, x, b->ln1_w, b->ln1_b, M, C, eps);
        be->linear_io(qkv, h, b->attn_w, b->attn_b, (int)M, 3 * C, C, 0);
        for (int r = 0; r < n_rows; r++) {
            float *keys = vc_gpt2_slot_keys(cache, cache->row_slot[r], l), *vals = keys + (size_t)cache->cap * C;
            for (int t = 0; t < T; t++) {
                const float *src = qkv + ((size_t)r * T + t) * 3 * C;
                memcpy(keys + (size_t)(past + t) * C, src + C, sizeof(float) * C);
                memcpy(vals + (size_t)(past + t) * C, src + 2 * C, sizeof(float) * C);
            }
            kp[r] = keys, vp[r] = vals;
        }
        be->attention_kv(ctx, C, qkv, 3 * C, kp, vp, C, n_rows, T, Tk, H, D, scale, 1, scratch);
        be->linear_io(x, ctx, b->attn_proj_w, b->attn_proj_b, (int)M, C, C, 1);
        /* cross-attention: the K/V of the row's input, computed once per session */
        if (c->add_cross_attention) {
            be->layernorm(h, x, b->lnx_w, b->lnx_b, M, C, eps);
            be->linear_io(qkv, h, b->xq_w, b->xq_b, (int)M, C, C, 0);
            for (int r = 0; r < n_rows; r++) {
                xk[r] = s->cross_kv + (((size_t)l * s->n_inputs + input_rows[r]) * s->Te) * 2 * C;
                xv[r] = xk[r] + C;
            }
            be->attention_kv(ctx, C, qkv, C, xk, xv, 2 * C, n_rows, T, s->Te, H, D, scale, 0, scratch);
            be->linear_io(x, ctx, b->xproj_w, b->xproj_b, (int)M, C, C, 1);
        }
        be->layernorm(h, x, b->ln2_w, b->ln2_b, M, C, eps);
        be->linear_io(ff, h, b->fc_w, b->fc_b, (int)M, I, C, 0);
        vc_apply_activation(be, c->act, ff, M * I);
        be->linear_io(x, ff, b->mlp_proj_w, b->mlp_proj_b, (int)M, C, I, 1);
    }
    const float *head = m->lm_head ? m->lm_head : m->wte;
    if (all_positions) {
        be->layernorm(h, x, m->lnf_w, m->lnf_b, M, C, eps);
        be->linear(logits, h, head, NULL, (int)M, V, C, 0);
    } else { /* decoding needs the last position of each row only */
        for (int r = 0; r < n_rows; r++)
            be->layernorm(h + (size_t)r * C, x + ((size_t)r * T + T - 1) * C, m->lnf_w, m->lnf_b, 1, C, eps);
        be->linear(logits, h, head, NULL, n_rows, V, C, 0);
    }
    cache->len = Tk;
    return VC_OK;
}

vc_status vc_gpt2_run(vc_gpt2_session *s, const int32_t *tokens, int T, const int32_t *input_rows, float *logits,
                      int all_positions) {
    int saved;
    vc_threads_pin(0, &saved); /* attention_kv's per-thread scratch is sized for the count its kernels run */
    const vc_status st = run(s, tokens, T, input_rows, logits, all_positions);
    vc_threads_unpin(saved);
    return st;
}
