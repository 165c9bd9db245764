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
#include <stdlib.h>
#include <string.h>

#include "core/arena_pool.h"
#include "models/params.h"
#include "models/vit_internal.h"
#include "models/vit_train.h"




/* Slot shorthand for add_slots: layer index l fills the %d in the name; the first failure sticks. */
#define SLOT(field, shape, name) \
    if (!st) st = vc_params_add(t, &(field), sizeof(shape) / sizeof(int64_t), shape, name, l, 0)

static int grid_side(const vc_vit_config *c) { return c->image_size / c->patch_size; }

/* The slots in checkpoint order, pointing into w; run once for the parameters and once for
 * their gradients so that both tables share one slot numbering. */
static vc_status add_slots(vc_vit *m, vc_param_table *t, vc_vit_weights *w) {
    const vc_vit_config *c = &m->cfg;
    vc_status st = VC_OK;
    const int64_t C = c->hidden_size, I = c->intermediate_size, P = c->patch_size;
    const int64_t T = 1 + (int64_t)grid_side(c) * grid_side(c);
    int l = 0;
    SLOT(w->cls_token, VC_SHAPE3(1, 1, C), "embeddings.cls_token");
    SLOT(w->pos_embed, VC_SHAPE3(1, T, C), "embeddings.position_embeddings");
    SLOT(w->patch_w, VC_SHAPE4(C, c->num_channels, P, P), "embeddings.patch_embeddings.projection.weight");
    SLOT(w->patch_b, VC_SHAPE1(C), "embeddings.patch_embeddings.projection.bias");
    for (l = 0; l < c->num_layers && !st; l++)
        st = vc_encoder_layer_slots(t, &w->layers[l], "encoder.layer.%d.", l, (int)C, (int)I, c->qkv_bias);
    SLOT(w->ln_w, VC_SHAPE1(C), "layernorm.weight");
    SLOT(w->ln_b, VC_SHAPE1(C), "layernorm.bias");
    if (c->has_pooler) {
        SLOT(w->pool_w, VC_SHAPE2(m->cfg.pooler_size, C), "pooler.dense.weight");
        SLOT(w->pool_b, VC_SHAPE1(m->cfg.pooler_size), "pooler.dense.bias");
    }
    if (c->num_labels > 0) {
        SLOT(w->cls_w, VC_SHAPE2(c->num_labels, C), "classifier.weight");
        SLOT(w->cls_b, VC_SHAPE1(c->num_labels), "classifier.bias");
    }
    return st;
}

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
    m->w.layers = calloc((size_t)c->num_layers, sizeof *m->w.layers);
    m->g.layers = calloc((size_t)c->num_layers, sizeof *m->g.layers);
    if (!m->w.layers || !m->g.layers || vc_params_init(&m->params, 8 + 16 * c->num_layers) ||
        vc_params_init(&m->grads, 8 + 16 * c->num_layers) || vc_arena_pool_init(&m->arenas, be)) {
        free(m->w.layers);
        free(m->g.layers);
        vc_params_free(&m->params);
        vc_params_free(&m->grads);
        free(m);
        return vc_fail(VC_ERR_MEMORY, "out of memory creating ViT");
    }

    if (add_slots(m, &m->params, &m->w) || add_slots(m, &m->grads, &m->g)) {
        vc_vit_free(m);
        return vc_fail(VC_ERR_INTERNAL, "ViT parameter table overflow");
    }
    *out = m;
    return VC_OK;
}

void vc_vit_free(vc_vit *m) {
    if (!m) return;
    vc_vit_train_free(m->train);
    vc_arena_pool_destroy(&m->arenas);
    vc_params_free(&m->params);
    vc_params_free(&m->grads);
    free(m->w.layers);
    free(m->g.layers);
    free(m);
}

const vc_vit_config *vc_vit_get_config(const vc_vit *m) { return &m->cfg; }

int vc_vit_num_params(const vc_vit *m) { return m->params.n; }

const char *vc_vit_param_name(const vc_vit *m, int i, int *ndim, int64_t shape[4]) {
    return vc_params_name(&m->params, i, ndim, shape);
}

vc_status vc_vit_bind(vc_vit *m, int i, const vc_tensor *x) { return vc_params_bind(&m->params, i, x); }

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

/* Activation buffers: the residual stream x, the encoder layer's scratch, the im2col
 * scratch, interpolated position embeddings and the class-token rows. */
enum { NBUF = 11 };

static vc_status carve(vc_vit *m, vc_arena *a, int B, int T, int Hi, int Wi, float **x, vc_encoder_scratch *s,
                       float **patch_scratch, float **pos, float **cls_rows) {
    const vc_vit_config *c = &m->cfg;
    const size_t C = c->hidden_size, P = c->patch_size;
    const size_t G = (size_t)(Hi / c->patch_size) * (Wi / c->patch_size);
    size_t sz[NBUF];
    sz[0] = (size_t)B * T * C;
    vc_encoder_scratch_sizes(m->be, B, T, (int)C, c->intermediate_size, c->num_heads, sz + 1);
    sz[8] = (size_t)B * G * c->num_channels * P * P;
    sz[9] = (size_t)T * C;
    sz[10] = (size_t)B * C;
    float **const ptrs[NBUF] = {x, &s->h, &s->q, &s->k, &s->v, &s->ctx, &s->mlp, &s->attn_scratch,
                                patch_scratch, pos, cls_rows};
    return vc_arena_carve(a, NBUF, sz, ptrs);
}

static vc_status vit_forward_batch(vc_vit *m, const float *px, int B, int Hi, int Wi, int interpolate,
                                   const vc_vit_outputs *out) {
    const vc_vit_config *c = &m->cfg;
    const vc_backend *be = m->be;
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    if (vc_params_check_bound(&m->params)) return VC_ERR_ARG;
    if (out->pooled && !c->has_pooler) return vc_fail(VC_ERR_ARG, "this model has no pooler");
    if (out->logits && c->num_labels == 0) return vc_fail(VC_ERR_ARG, "this model has no classifier");
    const int T = vc_vit_num_tokens(m, Hi, Wi, interpolate);
    if (T < 0) return VC_ERR_ARG;

    const int C = c->hidden_size, NH = c->num_heads, I = c->intermediate_size;
    const int gh = Hi / c->patch_size, gw = Wi / c->patch_size;
    const size_t BT = (size_t)B * T;
    vc_arena *arena = vc_arena_pool_take(&m->arenas);
    if (!arena) return VC_ERR_MEMORY;
    struct {
        float *x, *patch_scratch, *pos, *cls_rows;
    } buf;
    vc_encoder_scratch scratch;
    vc_status st = carve(m, arena, B, T, Hi, Wi, &buf.x, &scratch, &buf.patch_scratch, &buf.pos, &buf.cls_rows);
    if (st) {
        vc_arena_pool_give(&m->arenas, arena);
        return st;
    }

    /* Embeddings. Cropping to whole patches matches a stride-P convolution. */
    const float *pos = m->w.pos_embed;
    const int S = grid_side(c);
    if (gh != S || gw != S) {
        memcpy(buf.pos, m->w.pos_embed, sizeof(float) * C);
        interpolate_pos(buf.pos + C, m->w.pos_embed + C, S, gh, gw, C);
        pos = buf.pos;
    }
    /* The kernel reads whole patches only, so a remainder (H or W not a multiple of the
     * patch size) is ignored exactly as a stride-P convolution ignores it. */
    be->patch_embed(buf.x, px, m->w.patch_w, m->w.patch_b, B, c->num_channels, Hi, Wi, c->patch_size, C,
                    buf.patch_scratch);
    for (int b = 0; b < B; b++) {
        float *row0 = buf.x + (size_t)b * T * C;
        memcpy(row0, m->w.cls_token, sizeof(float) * C);
        be->add(row0, row0, pos, (size_t)T * C);
    }
    if (out->hidden_states) memcpy(out->hidden_states[0], buf.x, sizeof(float) * BT * C);

    for (int l = 0; l < c->num_layers; l++) {
        vc_encoder_layer_forward(be, &m->w.layers[l], buf.x, B, T, C, NH, I, c->act, c->layer_norm_eps, &scratch,
                                 out->attentions ? out->attentions[l] : NULL);
        if (out->hidden_states) memcpy(out->hidden_states[l + 1], buf.x, sizeof(float) * BT * C);
    }

    float *final = out->last_hidden ? out->last_hidden : scratch.h;
    be->layernorm(final, buf.x, m->w.ln_w, m->w.ln_b, BT, C, c->layer_norm_eps);
    for (int b = 0; b < B; b++) memcpy(buf.cls_rows + (size_t)b * C, final + (size_t)b * T * C, sizeof(float) * C);
    if (out->logits) be->linear(out->logits, buf.cls_rows, m->w.cls_w, m->w.cls_b, B, c->num_labels, C, 0);
    if (out->pooled) {
        be->linear(out->pooled, buf.cls_rows, m->w.pool_w, m->w.pool_b, B, m->cfg.pooler_size, C, 0);
        for (size_t i = 0; i < (size_t)B * m->cfg.pooler_size; i++) out->pooled[i] = tanhf(out->pooled[i]);
    }
    vc_arena_pool_give(&m->arenas, arena);
    return VC_OK;
}

/* Images [lo, hi) of a batch: every input and output pointer offset to image lo. */
typedef struct {
    vc_vit *m;
    const float *px;
    int Hi, Wi, interpolate, T;
    const vc_vit_outputs *out;
} vit_chunk_job;

static vc_status vit_chunk(void *ctx, int lo, int hi) {
    const vit_chunk_job *j = ctx;
    const vc_vit_config *c = &j->m->cfg;
    const size_t C = c->hidden_size, T = j->T, H = c->num_heads;
    float *hidden[1025], *attn[1024];
    vc_vit_outputs o = {0};
    if (j->out->last_hidden) o.last_hidden = j->out->last_hidden + (size_t)lo * T * C;
    if (j->out->pooled) o.pooled = j->out->pooled + (size_t)lo * j->m->cfg.pooler_size;
    if (j->out->logits) o.logits = j->out->logits + (size_t)lo * c->num_labels;
    if (j->out->hidden_states) {
        for (int l = 0; l <= c->num_layers; l++) hidden[l] = j->out->hidden_states[l] + (size_t)lo * T * C;
        o.hidden_states = hidden;
    }
    if (j->out->attentions) {
        for (int l = 0; l < c->num_layers; l++) attn[l] = j->out->attentions[l] + (size_t)lo * H * T * T;
        o.attentions = attn;
    }
    const float *px = j->px + (size_t)lo * c->num_channels * j->Hi * j->Wi;
    return vit_forward_batch(j->m, px, hi - lo, j->Hi, j->Wi, j->interpolate, &o);
}

vc_status vc_vit_forward(vc_vit *m, const float *px, int B, int Hi, int Wi, int interpolate,
                         const vc_vit_outputs *out) {
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    const int T = vc_vit_num_tokens(m, Hi, Wi, interpolate);
    if (T < 0) return VC_ERR_ARG;
    vit_chunk_job job = {m, px, Hi, Wi, interpolate, T, out};
    return vc_parallel_chunks(B, vit_chunk, &job);
}
