/* ViT forward pass (pre-norm transformer encoder over 16x16-style patches).
 *
 * Legend: B batch, T tokens (1 class token + G patches), C hidden size, I MLP size,
 * H heads, D = C / H head size, L labels.
 *
 *   x = [cls; patches(px) W_p + b_p] + pos                      [B, T, C]
 *   per layer:  x += Wo attn(LN1(x)) + bo;  x += W2 act(W1 LN2(x) + b1) + b2
 *   last_hidden = LN(x); logits = classifier(last_hidden[:, 0]); pooled = tanh(dense(last_hidden[:, 0]))
 */
#include "models/vit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

enum { MAX_NAME = 96 };

typedef struct {
    char name[MAX_NAME];
    int ndim;
    int64_t shape[4];
    const float **field; /* where the bound pointer goes */
} param_slot;

typedef struct {
    const float *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    const float *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} vit_layer;

/* A free list of arenas: each concurrent forward call takes its own. */
typedef struct arena_node {
    vc_arena arena;
    struct arena_node *next;
} arena_node;

struct vc_vit {
    vc_vit_config cfg;
    const vc_backend *be;
    const float *cls_token, *pos_embed, *patch_w, *patch_b, *ln_w, *ln_b;
    const float *pool_w, *pool_b, *cls_w, *cls_b;
    vit_layer *layers;
    param_slot *slots;
    int nslots;
    pthread_mutex_t lock;
    arena_node *free_arenas;
};

static void add_slot(vc_vit *m, const float **field, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                     const char *fmt, int layer) {
    param_slot *s = &m->slots[m->nslots++];
    snprintf(s->name, MAX_NAME, fmt, layer);
    int64_t dims[4] = {d0, d1, d2, d3};
    s->ndim = ndim;
    for (int i = 0; i < 4; i++) s->shape[i] = i < ndim ? dims[i] : 1;
    s->field = field;
    *field = NULL;
}

static int grid_side(const vc_vit_config *c) { return c->image_size / c->patch_size; }

vc_status vc_vit_create(const vc_vit_config *cfg, const vc_backend *be, vc_vit **out) {
    const vc_vit_config *c = cfg;
    *out = NULL;
    if (c->hidden_size <= 0 || c->num_layers <= 0 || c->num_heads <= 0 || c->intermediate_size <= 0 ||
        c->patch_size <= 0 || c->image_size <= 0 || c->num_channels <= 0 || c->num_labels < 0)
        return vc_fail(VC_ERR_ARG, "ViT config: sizes must be positive (hidden_size %d, num_hidden_layers %d, "
                                   "num_attention_heads %d, intermediate_size %d, patch_size %d, image_size %d, "
                                   "num_channels %d, num_labels %d)",
                       c->hidden_size, c->num_layers, c->num_heads, c->intermediate_size, c->patch_size,
                       c->image_size, c->num_channels, c->num_labels);
    if (c->hidden_size % c->num_heads)
        return vc_fail(VC_ERR_ARG, "ViT config: hidden_size %d is not a multiple of num_attention_heads %d",
                       c->hidden_size, c->num_heads);
    if (c->image_size < c->patch_size)
        return vc_fail(VC_ERR_ARG, "ViT config: image_size %d is smaller than patch_size %d", c->image_size,
                       c->patch_size);
    if (c->hidden_size > (1 << 16) || c->intermediate_size > (1 << 18) || c->num_layers > 1024 ||
        c->image_size > (1 << 14) || c->num_labels > (1 << 24))
        return vc_fail(VC_ERR_ARG, "ViT config: sizes out of the supported range");
    if (!(c->layer_norm_eps > 0.f) || !isfinite(c->layer_norm_eps))
        return vc_fail(VC_ERR_ARG, "ViT config: layer_norm_eps must be a positive number");

    vc_vit *m = calloc(1, sizeof *m);
    if (!m) return vc_fail(VC_ERR_MEMORY, "out of memory creating ViT");
    m->cfg = *c;
    if (m->cfg.pooler_size <= 0) m->cfg.pooler_size = c->hidden_size;
    m->be = be;
    m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
    m->slots = calloc(8 + 16 * (size_t)c->num_layers, sizeof *m->slots);
    if (!m->layers || !m->slots || pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m->layers);
        free(m->slots);
        free(m);
        return vc_fail(VC_ERR_MEMORY, "out of memory creating ViT");
    }

    const int64_t C = c->hidden_size, I = c->intermediate_size, P = c->patch_size;
    const int64_t T = 1 + (int64_t)grid_side(c) * grid_side(c);
    add_slot(m, &m->cls_token, 3, 1, 1, C, 0, "embeddings.cls_token", 0);
    add_slot(m, &m->pos_embed, 3, 1, T, C, 0, "embeddings.position_embeddings", 0);
    add_slot(m, &m->patch_w, 4, C, c->num_channels, P, P, "embeddings.patch_embeddings.projection.weight", 0);
    add_slot(m, &m->patch_b, 1, C, 0, 0, 0, "embeddings.patch_embeddings.projection.bias", 0);
    for (int l = 0; l < c->num_layers; l++) {
        vit_layer *y = &m->layers[l];
        add_slot(m, &y->ln1_w, 1, C, 0, 0, 0, "encoder.layer.%d.layernorm_before.weight", l);
        add_slot(m, &y->ln1_b, 1, C, 0, 0, 0, "encoder.layer.%d.layernorm_before.bias", l);
        add_slot(m, &y->q_w, 2, C, C, 0, 0, "encoder.layer.%d.attention.attention.query.weight", l);
        if (c->qkv_bias) add_slot(m, &y->q_b, 1, C, 0, 0, 0, "encoder.layer.%d.attention.attention.query.bias", l);
        add_slot(m, &y->k_w, 2, C, C, 0, 0, "encoder.layer.%d.attention.attention.key.weight", l);
        if (c->qkv_bias) add_slot(m, &y->k_b, 1, C, 0, 0, 0, "encoder.layer.%d.attention.attention.key.bias", l);
        add_slot(m, &y->v_w, 2, C, C, 0, 0, "encoder.layer.%d.attention.attention.value.weight", l);
        if (c->qkv_bias) add_slot(m, &y->v_b, 1, C, 0, 0, 0, "encoder.layer.%d.attention.attention.value.bias", l);
        add_slot(m, &y->o_w, 2, C, C, 0, 0, "encoder.layer.%d.attention.output.dense.weight", l);
        add_slot(m, &y->o_b, 1, C, 0, 0, 0, "encoder.layer.%d.attention.output.dense.bias", l);
        add_slot(m, &y->ln2_w, 1, C, 0, 0, 0, "encoder.layer.%d.layernorm_after.weight", l);
        add_slot(m, &y->ln2_b, 1, C, 0, 0, 0, "encoder.layer.%d.layernorm_after.bias", l);
        add_slot(m, &y->fc1_w, 2, I, C, 0, 0, "encoder.layer.%d.intermediate.dense.weight", l);
        add_slot(m, &y->fc1_b, 1, I, 0, 0, 0, "encoder.layer.%d.intermediate.dense.bias", l);
        add_slot(m, &y->fc2_w, 2, C, I, 0, 0, "encoder.layer.%d.output.dense.weight", l);
        add_slot(m, &y->fc2_b, 1, C, 0, 0, 0, "encoder.layer.%d.output.dense.bias", l);
    }
    add_slot(m, &m->ln_w, 1, C, 0, 0, 0, "layernorm.weight", 0);
    add_slot(m, &m->ln_b, 1, C, 0, 0, 0, "layernorm.bias", 0);
    if (c->has_pooler) {
        add_slot(m, &m->pool_w, 2, m->cfg.pooler_size, C, 0, 0, "pooler.dense.weight", 0);
        add_slot(m, &m->pool_b, 1, m->cfg.pooler_size, 0, 0, 0, "pooler.dense.bias", 0);
    }
    if (c->num_labels > 0) {
        add_slot(m, &m->cls_w, 2, c->num_labels, C, 0, 0, "classifier.weight", 0);
        add_slot(m, &m->cls_b, 1, c->num_labels, 0, 0, 0, "classifier.bias", 0);
    }
    *out = m;
    return VC_OK;
}

void vc_vit_free(vc_vit *m) {
    if (!m) return;
    for (arena_node *n = m->free_arenas; n;) {
        arena_node *next = n->next;
        vc_arena_free(&n->arena);
        free(n);
        n = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m->layers);
    free(m->slots);
    free(m);
}

int vc_vit_num_params(const vc_vit *m) { return m->nslots; }

const char *vc_vit_param_name(const vc_vit *m, int i, int *ndim, int64_t shape[4]) {
    if (i < 0 || i >= m->nslots) return NULL;
    *ndim = m->slots[i].ndim;
    memcpy(shape, m->slots[i].shape, sizeof m->slots[i].shape);
    return m->slots[i].name;
}

vc_status vc_vit_bind(vc_vit *m, int i, const float *data, int64_t numel) {
    if (i < 0 || i >= m->nslots) return vc_fail(VC_ERR_ARG, "parameter index %d out of range", i);
    const param_slot *s = &m->slots[i];
    int64_t want = 1;
    for (int d = 0; d < s->ndim; d++) want *= s->shape[d];
    if (numel != want)
        return vc_fail(VC_ERR_ARG, "parameter %s: expected %lld values, got %lld", s->name, (long long)want,
                       (long long)numel);
    *s->field = data;
    return VC_OK;
}

int vc_vit_num_tokens(const vc_vit *m, int H, int W, int interpolate) {
    const vc_vit_config *c = &m->cfg;
    if (H <= 0 || W <= 0) return vc_fail(VC_ERR_ARG, "pixel_values must have positive height and width"), -1;
    if (!interpolate && (H != c->image_size || W != c->image_size)) {
        vc_fail(VC_ERR_ARG,
                "input image size (%d*%d) doesn't match model (%d*%d); resize it or pass "
                "interpolate_pos_encoding=True",
                H, W, c->image_size, c->image_size);
        return -1;
    }
    if (H < c->patch_size || W < c->patch_size) {
        vc_fail(VC_ERR_ARG, "input image size (%d*%d) is smaller than one %dx%d patch", H, W, c->patch_size,
                c->patch_size);
        return -1;
    }
    int64_t g = (int64_t)(H / c->patch_size) * (W / c->patch_size);
    if (g > 65536) {
        vc_fail(VC_ERR_ARG, "input image size (%d*%d) gives %lld patches, more than 65536", H, W, (long long)g);
        return -1;
    }
    return (int)(1 + g);
}

/* ---- position embeddings for another grid: bicubic, align_corners=False, as torch's
 * F.interpolate(mode="bicubic") (A = -0.75, edge-clamped taps). ---- */

static void cubic_weights(float t, float w[4]) {
    const float A = -0.75f;
    float x;
    x = t + 1.f; w[0] = ((A * x - 5.f * A) * x + 8.f * A) * x - 4.f * A;
    x = t;       w[1] = ((A + 2.f) * x - (A + 3.f)) * x * x + 1.f;
    x = 1.f - t; w[2] = ((A + 2.f) * x - (A + 3.f)) * x * x + 1.f;
    x = 2.f - t; w[3] = ((A * x - 5.f * A) * x + 8.f * A) * x - 4.f * A;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* src: [S*S, C] patch position embeddings; dst: [gh*gw, C]. */
static void interpolate_pos(float *dst, const float *src, int S, int gh, int gw, int C) {
    const float sy = (float)S / (float)gh, sx = (float)S / (float)gw;
    for (int oy = 0; oy < gh; oy++) {
        float ry = ((float)oy + 0.5f) * sy - 0.5f;
        int iy = (int)floorf(ry);
        float wy[4];
        cubic_weights(ry - (float)iy, wy);
        for (int ox = 0; ox < gw; ox++) {
            float rx = ((float)ox + 0.5f) * sx - 0.5f;
            int ix = (int)floorf(rx);
            float wx[4];
            cubic_weights(rx - (float)ix, wx);
            float *o = dst + ((size_t)oy * gw + ox) * C;
            for (int ch = 0; ch < C; ch++) o[ch] = 0.f;
            for (int a = 0; a < 4; a++) {
                int yy = clampi(iy - 1 + a, 0, S - 1);
                for (int b = 0; b < 4; b++) {
                    int xx = clampi(ix - 1 + b, 0, S - 1);
                    const float *s = src + ((size_t)yy * S + xx) * C;
                    const float w = wy[a] * wx[b];
                    for (int ch = 0; ch < C; ch++) o[ch] += w * s[ch];
                }
            }
        }
    }
}

/* ---- activation memory ---- */

typedef struct {
    float *x, *h, *q, *k, *v, *ctx, *mlp, *patch_scratch, *attn_scratch, *pos, *cls_rows;
} vit_buffers;

static size_t round64(size_t floats) { return ((floats * sizeof(float) + 63) / 64) * 64; }

static void buffer_sizes(const vc_vit *m, int B, int T, int Hi, int Wi, size_t sz[11]) {
    const vc_vit_config *c = &m->cfg;
    const size_t BT = (size_t)B * T, C = c->hidden_size;
    const size_t P = c->patch_size;
    const size_t G = (size_t)(Hi / c->patch_size) * (Wi / c->patch_size);
    sz[0] = BT * C;                                  /* x: residual stream */
    sz[1] = BT * C;                                  /* h: normed */
    sz[2] = sz[3] = sz[4] = BT * C;                  /* q, k, v */
    sz[5] = BT * C;                                  /* ctx: attention output */
    sz[6] = BT * c->intermediate_size;               /* mlp */
    sz[7] = (size_t)B * G * c->num_channels * P * P; /* im2col */
    sz[8] = m->be->attention_scratch(B, T, c->num_heads);
    sz[9] = (size_t)T * C;                           /* interpolated position embeddings */
    sz[10] = (size_t)B * C;                          /* class-token rows */
}

static vc_status carve(vc_arena *a, const size_t sz[11], vit_buffers *buf) {
    float **ptrs[11] = {&buf->x, &buf->h, &buf->q, &buf->k, &buf->v, &buf->ctx, &buf->mlp,
                        &buf->patch_scratch, &buf->attn_scratch, &buf->pos, &buf->cls_rows};
    size_t total = 0;
    for (int i = 0; i < 11; i++) total += round64(sz[i] ? sz[i] : 1);
    vc_status st = vc_arena_reserve(a, total);
    if (st) return st;
    for (int i = 0; i < 11; i++)
        if (!(*ptrs[i] = vc_arena_floats(a, sz[i] ? sz[i] : 1))) return VC_ERR_INTERNAL;
    return VC_OK;
}

static arena_node *take_arena(vc_vit *m) {
    pthread_mutex_lock(&m->lock);
    arena_node *n = m->free_arenas;
    if (n) m->free_arenas = n->next;
    pthread_mutex_unlock(&m->lock);
    if (!n && (n = malloc(sizeof *n))) vc_arena_init(&n->arena, m->be);
    return n;
}

static void give_arena(vc_vit *m, arena_node *n) {
    pthread_mutex_lock(&m->lock);
    n->next = m->free_arenas;
    m->free_arenas = n;
    pthread_mutex_unlock(&m->lock);
}

static void apply_activation(const vc_backend *be, vc_activation act, float *x, size_t n) {
    switch (act) {
    case VC_ACT_GELU: be->gelu(x, n); break;
    case VC_ACT_GELU_TANH: be->gelu_tanh(x, n); break;
    case VC_ACT_SILU: be->silu(x, n); break;
    case VC_ACT_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.f ? x[i] : 0.f;
        break;
    }
}

static vc_status check_bound(const vc_vit *m) {
    for (int i = 0; i < m->nslots; i++)
        if (!*m->slots[i].field) return vc_fail(VC_ERR_ARG, "parameter %s was never loaded", m->slots[i].name);
    return VC_OK;
}

vc_status vc_vit_forward(vc_vit *m, const float *px, int B, int Hi, int Wi, int interpolate,
                         const vc_vit_outputs *out) {
    const vc_vit_config *c = &m->cfg;
    const vc_backend *be = m->be;
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    if (check_bound(m)) return VC_ERR_ARG;
    if (out->pooled && !c->has_pooler) return vc_fail(VC_ERR_ARG, "this model has no pooler");
    if (out->logits && c->num_labels == 0) return vc_fail(VC_ERR_ARG, "this model has no classifier");
    const int T = vc_vit_num_tokens(m, Hi, Wi, interpolate);
    if (T < 0) return VC_ERR_ARG;

    const int C = c->hidden_size, NH = c->num_heads, D = C / NH, I = c->intermediate_size;
    const int gh = Hi / c->patch_size, gw = Wi / c->patch_size;
    const size_t BT = (size_t)B * T;
    size_t sz[11];
    buffer_sizes(m, B, T, Hi, Wi, sz);
    arena_node *node = take_arena(m);
    if (!node) return vc_fail(VC_ERR_MEMORY, "out of memory for an activation arena");
    vit_buffers buf;
    vc_status st = carve(&node->arena, sz, &buf);
    if (st) {
        give_arena(m, node);
        return st;
    }

    /* Embeddings. Cropping to whole patches matches a stride-P convolution. */
    const float *pos = m->pos_embed;
    const int S = grid_side(c);
    if (gh != S || gw != S) {
        memcpy(buf.pos, m->pos_embed, sizeof(float) * C);
        interpolate_pos(buf.pos + C, m->pos_embed + C, S, gh, gw, C);
        pos = buf.pos;
    }
    /* The kernel reads whole patches only, so a remainder (H or W not a multiple of the
     * patch size) is ignored exactly as a stride-P convolution ignores it. */
    be->patch_embed(buf.x, px, m->patch_w, m->patch_b, B, c->num_channels, Hi, Wi, c->patch_size, C,
                    buf.patch_scratch);
    for (int b = 0; b < B; b++) {
        float *row0 = buf.x + (size_t)b * T * C;
        memcpy(row0, m->cls_token, sizeof(float) * C);
        be->add(row0, row0, pos, (size_t)T * C);
    }
    if (out->hidden_states) memcpy(out->hidden_states[0], buf.x, sizeof(float) * BT * C);

    for (int l = 0; l < c->num_layers; l++) {
        const vit_layer *y = &m->layers[l];
        be->layernorm(buf.h, buf.x, y->ln1_w, y->ln1_b, BT, C, c->layer_norm_eps);
        be->linear(buf.q, buf.h, y->q_w, y->q_b, (int)BT, C, C, 0);
        be->linear(buf.k, buf.h, y->k_w, y->k_b, (int)BT, C, C, 0);
        be->linear(buf.v, buf.h, y->v_w, y->v_b, (int)BT, C, C, 0);
        be->attention(buf.ctx, C, buf.q, buf.k, buf.v, C, B, T, NH, D, out->attentions ? out->attentions[l] : NULL,
                      buf.attn_scratch);
        be->linear(buf.x, buf.ctx, y->o_w, y->o_b, (int)BT, C, C, 1); /* residual fused */
        be->layernorm(buf.h, buf.x, y->ln2_w, y->ln2_b, BT, C, c->layer_norm_eps);
        be->linear(buf.mlp, buf.h, y->fc1_w, y->fc1_b, (int)BT, I, C, 0);
        apply_activation(be, c->act, buf.mlp, BT * I);
        be->linear(buf.x, buf.mlp, y->fc2_w, y->fc2_b, (int)BT, C, I, 1); /* residual fused */
        if (out->hidden_states) memcpy(out->hidden_states[l + 1], buf.x, sizeof(float) * BT * C);
    }

    float *final = out->last_hidden ? out->last_hidden : buf.h;
    be->layernorm(final, buf.x, m->ln_w, m->ln_b, BT, C, c->layer_norm_eps);
    for (int b = 0; b < B; b++) memcpy(buf.cls_rows + (size_t)b * C, final + (size_t)b * T * C, sizeof(float) * C);
    if (out->logits) be->linear(out->logits, buf.cls_rows, m->cls_w, m->cls_b, B, c->num_labels, C, 0);
    if (out->pooled) {
        be->linear(out->pooled, buf.cls_rows, m->pool_w, m->pool_b, B, m->cfg.pooler_size, C, 0);
        for (size_t i = 0; i < (size_t)B * m->cfg.pooler_size; i++) out->pooled[i] = tanhf(out->pooled[i]);
    }
    give_arena(m, node);
    return VC_OK;
}
