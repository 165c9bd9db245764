/* MobileViT forward (NCHW), BatchNorm folded into the convolutions.
 *
 * Legend: B batch, C block channels, d transformer width, h x w map, E expanded channels.
 *   stem      x = silu(conv3x3/2(px))
 *   layer 0,1 inverted residuals: y = conv1x1(silu(dw3x3/s(silu(conv1x1(x))))) (+ x if s = 1 and C_in = C_out)
 *   layer 2-4 [inverted residual /2], then the MobileViT block:
 *             r = x; t = conv1x1_nobias(silu(conv3x3(x)))        -> [B, d, h, w]
 *             (bilinear to even h, w if needed) unfold 2x2 -> [B*4, h*w/4, d]
 *             transformer layers (pre-norm, SiLU MLP), layer norm, fold (and resize back)
 *             x = silu(conv3x3(cat(r, silu(conv1x1(t)))))
 *   head      last = silu(conv1x1(x)); pooled = mean_HW(last); logits = classifier(pooled)
 * ref: transformers/models/mobilevit/modeling_mobilevit.py (MobileViTInvertedResidual,
 * MobileViTLayer.unfolding/folding, MobileViTEncoder).
 */
#include "models/mobilevit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena_pool.h"
#include "models/params.h"

typedef struct {
    const float *w, *b; /* b is the folded BatchNorm shift (NULL for conv_1x1) */
    int cin, cout, k, stride, groups;
} mv_conv;

typedef struct {
    mv_conv expand, dw, reduce;
    int residual;
} mv_ir;

typedef struct {
    int has_down, C, d, depth, mlp;
    mv_ir down;
    mv_conv kxk, c1x1, proj, fusion;
    vc_encoder_layer *layers;
    const float *ln_w, *ln_b;
} mv_block;

struct vc_mobilevit {
    vc_mobilevit_config cfg;
    const vc_backend *be;
    mv_conv stem, exp;
    mv_ir ir0[1], ir1[3];
    mv_block blocks[3];
    vc_encoder_layer *all_layers;
    const float *cls_w, *cls_b;
    vc_param_table params;
    vc_arena_pool arenas;
};

/* transformers' make_divisible(value, 8) */
static int make_divisible(double v) {
    int nv = (int)(v + 4.0) / 8 * 8;
    if (nv < 8) nv = 8;
    if (nv < 0.9 * v) nv += 8;
    return nv;
}

static int expanded(const vc_mobilevit_config *c, int cin) {
    return make_divisible(nearbyint((double)cin * c->expand_ratio)); /* Python round(): half to even */
}

static vc_status conv_slots(vc_param_table *t, mv_conv *cv, const char *prefix, int i, int cin, int cout, int k,
                            int stride, int groups, int bias) {
    char fmt[2 * VC_PARAM_NAME_MAX]; /* vc_params_add truncates the formatted name to the slot size */
    cv->cin = cin, cv->cout = cout, cv->k = k, cv->stride = stride, cv->groups = groups;
    snprintf(fmt, sizeof fmt, "%s.convolution.weight", prefix);
    vc_status st = vc_params_add(t, &cv->w, 4, VC_SHAPE4(cout, cin / groups, k, k), fmt, i, 0);
    if (st || !bias) {
        cv->b = NULL;
        return st;
    }
    snprintf(fmt, sizeof fmt, "%s.convolution.bias", prefix);
    return vc_params_add(t, &cv->b, 1, VC_SHAPE1(cout), fmt, i, 0);
}

static vc_status ir_slots(vc_param_table *t, mv_ir *ir, const char *prefix, int i, int cin, int cout, int E,
                          int stride) {
    char p[VC_PARAM_NAME_MAX / 2]; /* prefixes are short; the slot name gets the rest */
    vc_status st;
    snprintf(p, sizeof p, "%s.expand_1x1", prefix);
    if ((st = conv_slots(t, &ir->expand, p, i, cin, E, 1, 1, 1, 1))) return st;
    snprintf(p, sizeof p, "%s.conv_3x3", prefix);
    if ((st = conv_slots(t, &ir->dw, p, i, E, E, 3, stride, E, 1))) return st;
    snprintf(p, sizeof p, "%s.reduce_1x1", prefix);
    if ((st = conv_slots(t, &ir->reduce, p, i, E, cout, 1, 1, 1, 1))) return st;
    ir->residual = stride == 1 && cin == cout;
    return VC_OK;
}

vc_status vc_mobilevit_create(const vc_mobilevit_config *c, const vc_backend *be, vc_mobilevit **out) {
    *out = NULL;
    for (int i = 0; i < 7; i++)
        if (c->neck[i] <= 0 || c->neck[i] > (1 << 15)) return vc_fail(VC_ERR_ARG, "MobileViT config: bad neck_hidden_sizes");
    int nlayers = 0;
    for (int i = 0; i < 3; i++) {
        if (c->hidden[i] <= 0 || c->hidden[i] > (1 << 15) || c->depth[i] < 0 || c->depth[i] > 64 ||
            c->num_heads <= 0 || c->hidden[i] % c->num_heads)
            return vc_fail(VC_ERR_ARG, "MobileViT config: hidden_sizes[%d]=%d must be a positive multiple of "
                                       "num_attention_heads=%d", i, c->hidden[i], c->num_heads);
        nlayers += c->depth[i];
    }
    if (c->num_channels <= 0 || c->patch != 2 || c->kernel <= 0 || c->kernel % 2 == 0 || !(c->expand_ratio > 0) ||
        !(c->mlp_ratio > 0) || !(c->layer_norm_eps > 0) || c->num_labels < 0)
        return vc_fail(VC_ERR_ARG, "MobileViT config: patch_size must be 2 and conv_kernel_size odd; ratios and eps "
                                   "positive");
    vc_mobilevit *m = calloc(1, sizeof *m);
    if (!m) return vc_fail(VC_ERR_MEMORY, "out of memory creating MobileViT");
    m->cfg = *c;
    m->be = be;
    m->all_layers = calloc(nlayers ? (size_t)nlayers : 1, sizeof *m->all_layers);
    if (!m->all_layers || vc_params_init(&m->params, 128 + 16 * nlayers) || vc_arena_pool_init(&m->arenas, be)) {
        free(m->all_layers);
        vc_params_free(&m->params);
        free(m);
        return vc_fail(VC_ERR_MEMORY, "out of memory creating MobileViT");
    }
    vc_param_table *t = &m->params;
    const int *n = c->neck, K = c->kernel;
    vc_status st = conv_slots(t, &m->stem, "conv_stem", 0, c->num_channels, n[0], 3, 2, 1, 1);
    if (!st) st = ir_slots(t, &m->ir0[0], "encoder.layer.0.layer.%d", 0, n[0], n[1], expanded(c, n[0]), 1);
    for (int j = 0; j < 3 && !st; j++) {
        int cin = j == 0 ? n[1] : n[2];
        st = ir_slots(t, &m->ir1[j], "encoder.layer.1.layer.%d", j, cin, n[2], expanded(c, cin), j == 0 ? 2 : 1);
    }
    vc_encoder_layer *next = m->all_layers;
    for (int b = 0; b < 3 && !st; b++) {
        mv_block *k = &m->blocks[b];
        const int li = b + 2, cin = n[li], C = n[li + 1], d = c->hidden[b];
        k->has_down = 1;
        k->C = C, k->d = d, k->depth = c->depth[b], k->mlp = (int)((double)d * c->mlp_ratio);
        st = ir_slots(t, &k->down, "encoder.layer.%d.downsampling_layer", li, cin, C, expanded(c, cin), 2);
        if (!st) st = conv_slots(t, &k->kxk, "encoder.layer.%d.conv_kxk", li, C, C, K, 1, 1, 1);
        if (!st) st = conv_slots(t, &k->c1x1, "encoder.layer.%d.conv_1x1", li, C, d, 1, 1, 1, 0);
        k->layers = next;
        for (int j = 0; j < k->depth && !st; j++) {
            char prefix[VC_PARAM_NAME_MAX];
            snprintf(prefix, sizeof prefix, "encoder.layer.%d.transformer.layer.%%d.", li);
            st = vc_encoder_layer_slots(t, next++, prefix, j, d, k->mlp, c->qkv_bias);
        }
        if (!st) st = vc_params_add(t, &k->ln_w, 1, VC_SHAPE1(d), "encoder.layer.%d.layernorm.weight", li, 0);
        if (!st) st = vc_params_add(t, &k->ln_b, 1, VC_SHAPE1(d), "encoder.layer.%d.layernorm.bias", li, 0);
        if (!st) st = conv_slots(t, &k->proj, "encoder.layer.%d.conv_projection", li, d, C, 1, 1, 1, 1);
        if (!st) st = conv_slots(t, &k->fusion, "encoder.layer.%d.fusion", li, 2 * C, C, K, 1, 1, 1);
    }
    if (!st) st = conv_slots(t, &m->exp, "conv_1x1_exp", 0, n[5], n[6], 1, 1, 1, 1);
    if (!st && c->num_labels > 0) {
        st = vc_params_add(t, &m->cls_w, 2, VC_SHAPE2(c->num_labels, n[6]), "classifier.weight", 0, 0);
        if (!st) st = vc_params_add(t, &m->cls_b, 1, VC_SHAPE1(c->num_labels), "classifier.bias", 0, 0);
    }
    if (st) {
        vc_mobilevit_free(m);
        return st;
    }
    *out = m;
    return VC_OK;
}

void vc_mobilevit_free(vc_mobilevit *m) {
    if (!m) return;
    vc_arena_pool_destroy(&m->arenas);
    vc_params_free(&m->params);
    free(m->all_layers);
    free(m);
}

const vc_mobilevit_config *vc_mobilevit_get_config(const vc_mobilevit *m) { return &m->cfg; }
int vc_mobilevit_num_params(const vc_mobilevit *m) { return m->params.n; }
const char *vc_mobilevit_param_name(const vc_mobilevit *m, int i, int *ndim, int64_t shape[4]) {
    return vc_params_name(&m->params, i, ndim, shape);
}
vc_status vc_mobilevit_bind(vc_mobilevit *m, int i, const vc_tensor *x) { return vc_params_bind(&m->params, i, x); }

static int conv_out(const mv_conv *cv, int in) { return (in + 2 * (cv->k / 2) - cv->k) / cv->stride + 1; }

void vc_mobilevit_stage_size(const vc_mobilevit *m, int stage, int H, int W, int *Hs, int *Ws) {
    int h = conv_out(&m->stem, H), w = conv_out(&m->stem, W);
    for (int s = 1; s <= stage; s++) h = conv_out(&m->blocks[0].down.dw, h), w = conv_out(&m->blocks[0].down.dw, w);
    *Hs = h, *Ws = w;
}

/* ---- the walk, used twice: once to size the buffers (be == NULL), once to compute ---- */

typedef struct {
    size_t map, tokens, mlp, attn, conv;  /* largest sizes seen, in floats */
} mv_plan;

typedef struct {
    const vc_backend *be;
    int sizing; /* 1: only record buffer sizes into plan; 0: compute */
    mv_plan *plan;
    int B;
    float *x, *t1, *t2, *t3, *conv_scratch;
    vc_encoder_scratch enc;
} mv_ctx;

static void note(size_t *slot, size_t v) {
    if (v > *slot) *slot = v;
}

/* out = act(conv(in)); returns the output size through *h, *w. */
static void conv(mv_ctx *c, const mv_conv *cv, float *out, const float *in, int *h, int *w, int act) {
    const int ho = conv_out(cv, *h), wo = conv_out(cv, *w), pad = cv->k / 2;
    if (c->sizing) {
        note(&c->plan->map, (size_t)c->B * cv->cout * ho * wo);
        note(&c->plan->conv, c->be->conv2d_scratch(c->B, cv->cin, *h, *w, cv->cout, cv->k, cv->k, cv->stride,
                                                   cv->stride, pad, pad, 1, 1, cv->groups));
    } else {
        c->be->conv2d(out, in, cv->w, cv->b, c->B, cv->cin, *h, *w, cv->cout, cv->k, cv->k, cv->stride, cv->stride,
                      pad, pad, 1, 1, cv->groups, c->conv_scratch);
        if (act) c->be->silu(out, (size_t)c->B * cv->cout * ho * wo);
    }
    *h = ho, *w = wo;
}

/* x (in place via t1/t2) -> inverted residual output, left in c->x. */
static void inverted_residual(mv_ctx *c, const mv_ir *ir, int *h, int *w) {
    int hh = *h, ww = *w;
    conv(c, &ir->expand, c->t1, c->x, &hh, &ww, 1);
    conv(c, &ir->dw, c->t2, c->t1, &hh, &ww, 1);
    conv(c, &ir->reduce, c->t1, c->t2, &hh, &ww, 0);
    if (!c->sizing) {
        const size_t n = (size_t)c->B * ir->reduce.cout * hh * ww;
        if (ir->residual)
            c->be->add(c->x, c->x, c->t1, n);
        else {
            float *tmp = c->x; /* the output becomes the stream */
            c->x = c->t1;
            c->t1 = tmp;
        }
    }
    *h = hh, *w = ww;
}

static void mobilevit_block(mv_ctx *c, const mv_block *k, const vc_mobilevit_config *cfg, int *h, int *w) {
    inverted_residual(c, &k->down, h, w);
    int hh = *h, ww = *w;
    const int B = c->B, d = k->d;
    conv(c, &k->kxk, c->t1, c->x, &hh, &ww, 1);        /* x stays as the residual */
    conv(c, &k->c1x1, c->t2, c->t1, &hh, &ww, 0);      /* [B, d, h, w] in t2 */
    const int he = (hh + 1) / 2 * 2, we = (ww + 1) / 2 * 2; /* next multiple of the patch size */
    const int resized = he != hh || we != ww;
    const int N = (he / 2) * (we / 2), S = 4 * B;       /* S sequences of N tokens */
    if (c->sizing) {
        note(&c->plan->map, (size_t)B * d * he * we);
        note(&c->plan->tokens, (size_t)S * N * d);
        note(&c->plan->mlp, (size_t)S * N * k->mlp);
        note(&c->plan->attn, c->be->attention_scratch(S, N, cfg->num_heads));
        note(&c->plan->map, (size_t)B * 2 * k->C * hh * ww);
    } else {
        const vc_backend *be = c->be;
        float *src = c->t2;
        if (resized) {
            be->resize_bilinear(c->t1, c->t2, B, d, hh, ww, he, we);
            src = c->t1;
        }
        float *tokens = c->t3;
        be->patch_unfold(tokens, src, B, d, he, we, 2, 2);
        for (int j = 0; j < k->depth; j++)
            vc_encoder_layer_forward(be, &k->layers[j], tokens, S, N, d, cfg->num_heads, k->mlp, cfg->act,
                                     cfg->layer_norm_eps, &c->enc, NULL);
        be->layernorm(tokens, tokens, k->ln_w, k->ln_b, (size_t)S * N, d, cfg->layer_norm_eps);
        float *folded = resized ? c->t1 : c->t2;
        be->patch_fold(folded, tokens, B, d, he, we, 2, 2);
        if (resized) be->resize_bilinear(c->t2, c->t1, B, d, he, we, hh, ww);
    }
    conv(c, &k->proj, c->t1, c->t2, &hh, &ww, 1);      /* [B, C, h, w] */
    if (!c->sizing) c->be->concat_channels(c->t3, c->x, k->C, c->t1, k->C, B, (size_t)hh * ww);
    conv(c, &k->fusion, c->x, c->t3, &hh, &ww, 1);
    *h = hh, *w = ww;
}

static void walk(mv_ctx *c, const vc_mobilevit *m, const float *px, int H, int W, const vc_mobilevit_outputs *out,
                 float *pooled) {
    const vc_mobilevit_config *cfg = &m->cfg;
    int h = H, w = W;
    if (c->sizing) note(&c->plan->map, (size_t)c->B * cfg->num_channels * H * W);
    conv(c, &m->stem, c->x, px, &h, &w, 1);
    inverted_residual(c, &m->ir0[0], &h, &w);
    if (!c->sizing && out->stage_maps && out->stage_maps[0])
        memcpy(out->stage_maps[0], c->x, sizeof(float) * c->B * cfg->neck[1] * h * w);
    for (int j = 0; j < 3; j++) inverted_residual(c, &m->ir1[j], &h, &w);
    if (!c->sizing && out->stage_maps && out->stage_maps[1])
        memcpy(out->stage_maps[1], c->x, sizeof(float) * c->B * cfg->neck[2] * h * w);
    for (int b = 0; b < 3; b++) {
        mobilevit_block(c, &m->blocks[b], cfg, &h, &w);
        if (!c->sizing && out->stage_maps && out->stage_maps[b + 2])
            memcpy(out->stage_maps[b + 2], c->x, sizeof(float) * c->B * cfg->neck[b + 3] * h * w);
    }
    if (!(out->last_hidden || out->pooled || out->logits)) return;
    float *last = out->last_hidden ? out->last_hidden : c->t1;
    conv(c, &m->exp, last, c->x, &h, &w, 1);
    if (c->sizing) return;
    const int C = cfg->neck[6];
    c->be->global_avg_pool(pooled, last, c->B, C, (size_t)h * w);
    if (out->pooled) memcpy(out->pooled, pooled, sizeof(float) * c->B * C);
    if (out->logits) c->be->linear(out->logits, pooled, m->cls_w, m->cls_b, c->B, cfg->num_labels, C, 0);
}

static vc_status mobilevit_forward_batch(vc_mobilevit *m, const float *px, int B, int H, int W,
                                         const vc_mobilevit_outputs *out) {
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    if (vc_params_check_bound(&m->params)) return VC_ERR_ARG;
    if (out->logits && m->cfg.num_labels == 0) return vc_fail(VC_ERR_ARG, "this model has no classifier");
    int hl, wl;
    vc_mobilevit_stage_size(m, 4, H, W, &hl, &wl);
    if (hl < 1 || wl < 1) return vc_fail(VC_ERR_ARG, "input %dx%d is too small for MobileViT (at least 32x32)", H, W);
    if ((size_t)H * W > ((size_t)1 << 26)) return vc_fail(VC_ERR_ARG, "input %dx%d is too large", H, W);

    mv_plan plan = {0};
    mv_ctx c = {.be = m->be, .sizing = 1, .plan = &plan, .B = B};
    walk(&c, m, px, H, W, out, NULL);
    float *pooled;
    const size_t sizes[13] = {plan.map, plan.map, plan.map, plan.map, plan.conv, plan.tokens, plan.tokens,
                              plan.tokens, plan.tokens, plan.tokens, plan.mlp, plan.attn,
                              (size_t)B * m->cfg.neck[6]};
    float **const ptrs[13] = {&c.x, &c.t1, &c.t2, &c.t3, &c.conv_scratch, &c.enc.h, &c.enc.q, &c.enc.k,
                              &c.enc.v, &c.enc.ctx, &c.enc.mlp, &c.enc.attn_scratch, &pooled};
    vc_arena *arena = vc_arena_pool_take(&m->arenas);
    if (!arena) return VC_ERR_MEMORY;
    vc_status st = vc_arena_carve(arena, 13, sizes, ptrs);
    if (st) {
        vc_arena_pool_give(&m->arenas, arena);
        return st;
    }
    c.sizing = 0;
    walk(&c, m, px, H, W, out, pooled);
    vc_arena_pool_give(&m->arenas, arena);
    return VC_OK;
}

/* Images [lo, hi) of a batch, every pointer offset to image lo (see vc_parallel_chunks). */
typedef struct {
    vc_mobilevit *m;
    const float *px;
    int H, W;
    const vc_mobilevit_outputs *out;
} mv_chunk_job;

static vc_status mobilevit_chunk(void *ctx, int lo, int hi) {
    const mv_chunk_job *j = ctx;
    const vc_mobilevit_config *c = &j->m->cfg;
    float *maps[VC_MOBILEVIT_STAGES] = {0};
    vc_mobilevit_outputs o = {0};
    int hs, ws;
    if (j->out->stage_maps) {
        for (int i = 0; i < VC_MOBILEVIT_STAGES; i++) {
            if (!j->out->stage_maps[i]) continue;
            vc_mobilevit_stage_size(j->m, i, j->H, j->W, &hs, &ws);
            maps[i] = j->out->stage_maps[i] + (size_t)lo * c->neck[i + 1] * hs * ws;
        }
        o.stage_maps = maps;
    }
    vc_mobilevit_stage_size(j->m, 4, j->H, j->W, &hs, &ws);
    if (j->out->last_hidden) o.last_hidden = j->out->last_hidden + (size_t)lo * c->neck[6] * hs * ws;
    if (j->out->pooled) o.pooled = j->out->pooled + (size_t)lo * c->neck[6];
    if (j->out->logits) o.logits = j->out->logits + (size_t)lo * c->num_labels;
    return mobilevit_forward_batch(j->m, j->px + (size_t)lo * c->num_channels * j->H * j->W, hi - lo, j->H, j->W,
                                   &o);
}

vc_status vc_mobilevit_forward(vc_mobilevit *m, const float *px, int B, int H, int W, const vc_mobilevit_outputs *out) {
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    mv_chunk_job job = {m, px, H, W, out};
    return vc_parallel_chunks(B, mobilevit_chunk, &job);
}
