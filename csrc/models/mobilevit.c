/* MobileViT topology and inference forward (NCHW); each normed conv is followed by BatchNorm in
 * eval mode (running statistics). The training pass is mobilevit_train.c.
 *
 * Legend: B batch, C block channels, d transformer width, h x w map, E expanded channels.
 *   stem      x = silu(conv3x3/2(px))
 *   layer 0,1 inverted residuals: y = bn(conv1x1(silu(bn(dw3x3/s(silu(bn(conv1x1(x)))))))) (+ x if s = 1 and C_in = C_out)
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

#include "models/mobilevit_internal.h"
#include "models/mobilevit_train.h"

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

/* The tables one topology pass fills: bufs is NULL on the gradient pass. */
typedef struct {
    vc_param_table *t, *bufs;
} mv_tables;

static vc_status conv_slots(mv_tables *tb, mv_conv *cv, const char *prefix, int i, int cin, int cout, int k,
                            int stride, int groups, int bn, int act) {
    char fmt[2 * VC_PARAM_NAME_MAX]; /* vc_params_add truncates the formatted name to the slot size */
    static const char *const pnames[] = {"normalization.weight", "normalization.bias"};
    static const char *const bnames[] = {"normalization.running_mean", "normalization.running_var"};
    cv->cin = cin, cv->cout = cout, cv->k = k, cv->stride = stride, cv->groups = groups, cv->bn = bn, cv->act = act;
    cv->gamma = cv->beta = cv->rmean = cv->rvar = NULL;
    snprintf(fmt, sizeof fmt, "%s.convolution.weight", prefix);
    vc_status st = vc_params_add(tb->t, &cv->w, 4, VC_SHAPE4(cout, cin / groups, k, k), fmt, i, 0);
    if (st || !bn) return st;
    const float **pf[] = {&cv->gamma, &cv->beta}, **bf[] = {&cv->rmean, &cv->rvar};
    for (int j = 0; j < 2 && !st; j++) {
        snprintf(fmt, sizeof fmt, "%s.%s", prefix, pnames[j]);
        st = vc_params_add(tb->t, pf[j], 1, VC_SHAPE1(cout), fmt, i, 0);
    }
    for (int j = 0; j < 2 && !st && tb->bufs; j++) {
        snprintf(fmt, sizeof fmt, "%s.%s", prefix, bnames[j]);
        st = vc_params_add(tb->bufs, bf[j], 1, VC_SHAPE1(cout), fmt, i, 0);
    }
    return st;
}

static vc_status ir_slots(mv_tables *tb, mv_ir *ir, const char *prefix, int i, int cin, int cout, int E,
                          int stride) {
    char p[VC_PARAM_NAME_MAX / 2]; /* prefixes are short; the slot name gets the rest */
    vc_status st;
    snprintf(p, sizeof p, "%s.expand_1x1", prefix);
    if ((st = conv_slots(tb, &ir->expand, p, i, cin, E, 1, 1, 1, 1, 1))) return st;
    snprintf(p, sizeof p, "%s.conv_3x3", prefix);
    if ((st = conv_slots(tb, &ir->dw, p, i, E, E, 3, stride, E, 1, 1))) return st;
    snprintf(p, sizeof p, "%s.reduce_1x1", prefix);
    if ((st = conv_slots(tb, &ir->reduce, p, i, E, cout, 1, 1, 1, 1, 0))) return st;
    ir->residual = stride == 1 && cin == cout;
    return VC_OK;
}

/* Builds the topology over tb (names, shapes, the fields slots point to). first: unit start
 * slots (NULL-able). layers: the transformer layers' storage, sum(depth) entries. */
static vc_status build(const vc_mobilevit_config *c, mv_tables *tb, mv_net *n, vc_encoder_layer *layers,
                       int *first) {
    const int *nk = c->neck, K = c->kernel;
    vc_param_table *t = tb->t;
    int dummy[MV_UNITS + 1];
    if (!first) first = dummy;
    first[MV_U_STEM] = t->n;
    vc_status st = conv_slots(tb, &n->stem, "conv_stem", 0, c->num_channels, nk[0], 3, 2, 1, 1, 1);
    first[MV_U_IR0] = t->n;
    if (!st) st = ir_slots(tb, &n->ir0[0], "encoder.layer.0.layer.%d", 0, nk[0], nk[1], expanded(c, nk[0]), 1);
    for (int j = 0; j < 3 && !st; j++) {
        int cin = j == 0 ? nk[1] : nk[2];
        first[MV_U_IR1 + j] = t->n;
        st = ir_slots(tb, &n->ir1[j], "encoder.layer.1.layer.%d", j, cin, nk[2], expanded(c, cin), j == 0 ? 2 : 1);
    }
    vc_encoder_layer *next = layers;
    for (int b = 0; b < 3 && !st; b++) {
        mv_block *k = &n->blocks[b];
        const int li = b + 2, cin = nk[li], C = nk[li + 1], d = c->hidden[b];
        first[MV_U_BLK0 + b] = t->n;
        k->C = C, k->d = d, k->depth = c->depth[b], k->mlp = (int)((double)d * c->mlp_ratio);
        st = ir_slots(tb, &k->down, "encoder.layer.%d.downsampling_layer", li, cin, C, expanded(c, cin), 2);
        if (!st) st = conv_slots(tb, &k->kxk, "encoder.layer.%d.conv_kxk", li, C, C, K, 1, 1, 1, 1);
        if (!st) st = conv_slots(tb, &k->c1x1, "encoder.layer.%d.conv_1x1", li, C, d, 1, 1, 1, 0, 0);
        k->layers = next;
        for (int j = 0; j < k->depth && !st; j++) {
            char prefix[VC_PARAM_NAME_MAX];
            snprintf(prefix, sizeof prefix, "encoder.layer.%d.transformer.layer.%%d.", li);
            st = vc_encoder_layer_slots(t, next++, prefix, j, d, k->mlp, c->qkv_bias);
        }
        if (!st) st = vc_params_add(t, &k->ln_w, 1, VC_SHAPE1(d), "encoder.layer.%d.layernorm.weight", li, 0);
        if (!st) st = vc_params_add(t, &k->ln_b, 1, VC_SHAPE1(d), "encoder.layer.%d.layernorm.bias", li, 0);
        if (!st) st = conv_slots(tb, &k->proj, "encoder.layer.%d.conv_projection", li, d, C, 1, 1, 1, 1, 1);
        if (!st) st = conv_slots(tb, &k->fusion, "encoder.layer.%d.fusion", li, 2 * C, C, K, 1, 1, 1, 1);
    }
    first[MV_U_EXP] = t->n;
    if (!st) st = conv_slots(tb, &n->exp, "conv_1x1_exp", 0, nk[5], nk[6], 1, 1, 1, 1, 1);
    first[MV_U_HEAD] = t->n;
    n->cls_w = n->cls_b = NULL;
    if (!st && c->num_labels > 0) {
        st = vc_params_add(t, &n->cls_w, 2, VC_SHAPE2(c->num_labels, nk[6]), "classifier.weight", 0, 0);
        if (!st) st = vc_params_add(t, &n->cls_b, 1, VC_SHAPE1(c->num_labels), "classifier.bias", 0, 0);
    }
    first[MV_UNITS] = t->n;
    return st;
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
    const size_t nl = nlayers ? (size_t)nlayers : 1;
    m->all_layers = calloc(nl, sizeof *m->all_layers);
    m->all_grads = calloc(nl, sizeof *m->all_grads);
    const int cap = 192 + 16 * nlayers;
    if (!m->all_layers || !m->all_grads || vc_params_init(&m->params, cap) || vc_params_init(&m->grads, cap) ||
        vc_params_init(&m->buffers, 128) || vc_arena_pool_init(&m->arenas, be)) {
        free(m->all_layers);
        free(m->all_grads);
        vc_params_free(&m->params);
        vc_params_free(&m->grads);
        vc_params_free(&m->buffers);
        free(m);
        return vc_fail(VC_ERR_MEMORY, "out of memory creating MobileViT");
    }
    mv_tables wt = {&m->params, &m->buffers}, gt = {&m->grads, NULL};
    vc_status st = build(c, &wt, &m->w, m->all_layers, m->unit_first);
    if (!st) st = build(c, &gt, &m->g, m->all_grads, NULL);
    if (st) {
        vc_mobilevit_free(m);
        return st;
    }
    *out = m;
    return VC_OK;
}

void vc_mobilevit_free(vc_mobilevit *m) {
    if (!m) return;
    vc_mobilevit_train_free(m->train);
    vc_arena_pool_destroy(&m->arenas);
    vc_params_free(&m->params);
    vc_params_free(&m->grads);
    vc_params_free(&m->buffers);
    free(m->all_layers);
    free(m->all_grads);
    free(m);
}

const vc_mobilevit_config *vc_mobilevit_get_config(const vc_mobilevit *m) { return &m->cfg; }
int vc_mobilevit_num_params(const vc_mobilevit *m) { return m->params.n; }
const char *vc_mobilevit_param_name(const vc_mobilevit *m, int i, int *ndim, int64_t shape[4]) {
    return vc_params_name(&m->params, i, ndim, shape);
}
vc_status vc_mobilevit_bind(vc_mobilevit *m, int i, const vc_tensor *x) { return vc_params_bind(&m->params, i, x); }
int vc_mobilevit_num_buffers(const vc_mobilevit *m) { return m->buffers.n; }
const char *vc_mobilevit_buffer_name(const vc_mobilevit *m, int i, int *ndim, int64_t shape[4]) {
    return vc_params_name(&m->buffers, i, ndim, shape);
}
vc_status vc_mobilevit_bind_buffer(vc_mobilevit *m, int i, const vc_tensor *x) {
    return vc_params_bind(&m->buffers, i, x);
}

static int conv_out(const mv_conv *cv, int in) { return (in + 2 * (cv->k / 2) - cv->k) / cv->stride + 1; }

void vc_mobilevit_stage_size(const vc_mobilevit *m, int stage, int H, int W, int *Hs, int *Ws) {
    int h = conv_out(&m->w.stem, H), w = conv_out(&m->w.stem, W);
    for (int s = 1; s <= stage; s++) h = conv_out(&m->w.blocks[0].down.dw, h), w = conv_out(&m->w.blocks[0].down.dw, w);
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
        c->be->conv2d(out, in, cv->w, NULL, c->B, cv->cin, *h, *w, cv->cout, cv->k, cv->k, cv->stride, cv->stride,
                      pad, pad, 1, 1, cv->groups, c->conv_scratch);
        if (cv->bn) /* eval mode: the running statistics, read only (the cast is the kernel's signature) */
            (void)c->be->batchnorm_forward(out, NULL, NULL, (float *)cv->rmean, (float *)cv->rvar, out, cv->gamma, cv->beta,
                                           c->B, cv->cout, (size_t)ho * wo, VC_MOBILEVIT_BN_MOMENTUM, VC_MOBILEVIT_BN_EPS, 0);
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
    conv(c, &m->w.stem, c->x, px, &h, &w, 1);
    inverted_residual(c, &m->w.ir0[0], &h, &w);
    if (!c->sizing && out->stage_maps && out->stage_maps[0])
        memcpy(out->stage_maps[0], c->x, sizeof(float) * c->B * cfg->neck[1] * h * w);
    for (int j = 0; j < 3; j++) inverted_residual(c, &m->w.ir1[j], &h, &w);
    if (!c->sizing && out->stage_maps && out->stage_maps[1])
        memcpy(out->stage_maps[1], c->x, sizeof(float) * c->B * cfg->neck[2] * h * w);
    for (int b = 0; b < 3; b++) {
        mobilevit_block(c, &m->w.blocks[b], cfg, &h, &w);
        if (!c->sizing && out->stage_maps && out->stage_maps[b + 2])
            memcpy(out->stage_maps[b + 2], c->x, sizeof(float) * c->B * cfg->neck[b + 3] * h * w);
    }
    if (!(out->last_hidden || out->pooled || out->logits)) return;
    float *last = out->last_hidden ? out->last_hidden : c->t1;
    conv(c, &m->w.exp, last, c->x, &h, &w, 1);
    if (c->sizing) return;
    const int C = cfg->neck[6];
    c->be->global_avg_pool(pooled, last, c->B, C, (size_t)h * w);
    if (out->pooled) memcpy(out->pooled, pooled, sizeof(float) * c->B * C);
    if (out->logits) c->be->linear(out->logits, pooled, m->w.cls_w, m->w.cls_b, c->B, cfg->num_labels, C, 0);
}

static vc_status mobilevit_forward_batch(vc_mobilevit *m, const float *px, int B, int H, int W,
                                         const vc_mobilevit_outputs *out) {
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    if (vc_params_check_bound(&m->params) || vc_params_check_bound(&m->buffers)) return VC_ERR_ARG;
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
