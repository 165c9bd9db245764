/* ConvNeXt forward (NCHW throughout).
 *
 * Legend: B batch, C channels of the current stage, H x W its map, E = mlp_ratio * C.
 *   stem:   x = LN2d(conv_PxP/P(px))
 *   stage:  [LN2d, conv 2x2/2] (stages > 0), then blocks
 *   block:  x += gamma * fc2(gelu(fc1(LN2d(dwconv_kxk(x)))))     (fc1/fc2 are 1x1 convs)
 *   head:   logits = fc(LN(mean_HW(x)))
 * ref: timm/models/convnext.py ConvNeXtBlock (conv_mlp path), transformers ConvNextLayer.
 */
#include "models/convnext.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena_pool.h"
#include "models/convnext_internal.h"
#include "models/convnext_train.h"
#include "models/params.h"

/* Slot shorthand for add_slots; the first failure sticks. */
#define SLOT(field, shape, name, i, j) \
    if (!st) st = vc_params_add(t, &(field), sizeof(shape) / sizeof(int64_t), shape, name, i, j)

/* The slots in checkpoint order, pointing into w (blocks: storage for every block); run once
 * for the parameters and once for the gradients so that both share one slot numbering. */
static vc_status add_slots(vc_convnext *m, vc_param_table *t, cnx_weights *w, cnx_block *blocks) {
    const vc_convnext_config *c = &m->cfg;
    vc_status st = VC_OK;
    const int64_t C0 = c->dims[0], P = c->stem_patch, K = c->kernel_size;
    SLOT(w->stem_w, VC_SHAPE4(C0, c->num_channels, P, P), "stem.0.weight", 0, 0);
    SLOT(w->stem_b, VC_SHAPE1(C0), "stem.0.bias", 0, 0);
    SLOT(w->stem_norm_w, VC_SHAPE1(C0), "stem.1.weight", 0, 0);
    SLOT(w->stem_norm_b, VC_SHAPE1(C0), "stem.1.bias", 0, 0);
    cnx_block *next = blocks;
    for (int i = 0; i < c->num_stages; i++) {
        cnx_stage *s = &w->stages[i];
        const int64_t C = c->dims[i], E = (int64_t)c->mlp_ratio * C;
        if (i > 0) {
            const int64_t Cp = c->dims[i - 1];
            SLOT(s->ds_norm_w, VC_SHAPE1(Cp), "stages.%d.downsample.0.weight", i, 0);
            SLOT(s->ds_norm_b, VC_SHAPE1(Cp), "stages.%d.downsample.0.bias", i, 0);
            SLOT(s->ds_w, VC_SHAPE4(C, Cp, 2, 2), "stages.%d.downsample.1.weight", i, 0);
            SLOT(s->ds_b, VC_SHAPE1(C), "stages.%d.downsample.1.bias", i, 0);
        }
        s->blocks = next;
        for (int j = 0; j < c->depths[i]; j++, next++) {
            if (c->layer_scale) SLOT(next->gamma, VC_SHAPE1(C), "stages.%d.blocks.%d.gamma", i, j);
            SLOT(next->dw_w, VC_SHAPE4(C, 1, K, K), "stages.%d.blocks.%d.conv_dw.weight", i, j);
            SLOT(next->dw_b, VC_SHAPE1(C), "stages.%d.blocks.%d.conv_dw.bias", i, j);
            SLOT(next->norm_w, VC_SHAPE1(C), "stages.%d.blocks.%d.norm.weight", i, j);
            SLOT(next->norm_b, VC_SHAPE1(C), "stages.%d.blocks.%d.norm.bias", i, j);
            SLOT(next->fc1_w, VC_SHAPE2(E, C), "stages.%d.blocks.%d.mlp.fc1.weight", i, j);
            SLOT(next->fc1_b, VC_SHAPE1(E), "stages.%d.blocks.%d.mlp.fc1.bias", i, j);
            SLOT(next->fc2_w, VC_SHAPE2(C, E), "stages.%d.blocks.%d.mlp.fc2.weight", i, j);
            SLOT(next->fc2_b, VC_SHAPE1(C), "stages.%d.blocks.%d.mlp.fc2.bias", i, j);
        }
    }
    const int64_t CL = c->dims[c->num_stages - 1];
    SLOT(w->head_norm_w, VC_SHAPE1(CL), "head.norm.weight", 0, 0);
    SLOT(w->head_norm_b, VC_SHAPE1(CL), "head.norm.bias", 0, 0);
    if (c->num_labels > 0) {
        SLOT(w->fc_w, VC_SHAPE2(c->num_labels, CL), "head.fc.weight", 0, 0);
        SLOT(w->fc_b, VC_SHAPE1(c->num_labels), "head.fc.bias", 0, 0);
    }
    return st;
}

vc_status vc_convnext_create(const vc_convnext_config *c, const vc_backend *be, vc_convnext **out) {
    *out = NULL;
    if (c->num_stages < 1 || c->num_stages > VC_CONVNEXT_MAX_STAGES)
        return vc_fail(VC_ERR_ARG, "ConvNeXt config: %d stages (1..%d supported)", c->num_stages,
                       VC_CONVNEXT_MAX_STAGES);
    int nblocks = 0;
    for (int i = 0; i < c->num_stages; i++) {
        if (c->depths[i] < 0 || c->depths[i] > 1024 || c->dims[i] <= 0 || c->dims[i] > (1 << 16))
            return vc_fail(VC_ERR_ARG, "ConvNeXt config: stage %d has depth %d and width %d", i, c->depths[i],
                           c->dims[i]);
        nblocks += c->depths[i];
    }
    if (c->num_channels <= 0 || c->stem_patch <= 0 || c->kernel_size <= 0 || c->kernel_size % 2 == 0 ||
        c->mlp_ratio <= 0 || c->num_labels < 0 || !(c->eps > 0) || !(c->head_eps > 0))
        return vc_fail(VC_ERR_ARG, "ConvNeXt config: invalid num_channels, patch, kernel size (odd), mlp ratio, "
                                   "labels or eps");
    vc_convnext *m = calloc(1, sizeof *m);
    if (!m) return vc_fail(VC_ERR_MEMORY, "out of memory creating ConvNeXt");
    m->cfg = *c;
    m->be = be;
    m->all_blocks = calloc(nblocks ? (size_t)nblocks : 1, sizeof *m->all_blocks);
    m->all_grads = calloc(nblocks ? (size_t)nblocks : 1, sizeof *m->all_grads);
    if (!m->all_blocks || !m->all_grads || vc_params_init(&m->params, 16 + 4 * c->num_stages + 9 * nblocks) ||
        vc_params_init(&m->grads, 16 + 4 * c->num_stages + 9 * nblocks) || vc_arena_pool_init(&m->arenas, be)) {
        free(m->all_blocks);
        free(m->all_grads);
        vc_params_free(&m->params);
        vc_params_free(&m->grads);
        free(m);
        return vc_fail(VC_ERR_MEMORY, "out of memory creating ConvNeXt");
    }
    if (add_slots(m, &m->params, &m->w, m->all_blocks) || add_slots(m, &m->grads, &m->g, m->all_grads)) {
        vc_convnext_free(m);
        return vc_fail(VC_ERR_INTERNAL, "ConvNeXt parameter table overflow");
    }
    *out = m;
    return VC_OK;
}

void vc_convnext_free(vc_convnext *m) {
    if (!m) return;
    vc_convnext_train_free(m->train);
    vc_arena_pool_destroy(&m->arenas);
    vc_params_free(&m->params);
    vc_params_free(&m->grads);
    free(m->all_blocks);
    free(m->all_grads);
    free(m);
}

const vc_convnext_config *vc_convnext_get_config(const vc_convnext *m) { return &m->cfg; }
int vc_convnext_num_params(const vc_convnext *m) { return m->params.n; }
const char *vc_convnext_param_name(const vc_convnext *m, int i, int *ndim, int64_t shape[4]) {
    return vc_params_name(&m->params, i, ndim, shape);
}
vc_status vc_convnext_bind(vc_convnext *m, int i, const vc_tensor *x) { return vc_params_bind(&m->params, i, x); }

void vc_convnext_stage_size(const vc_convnext *m, int stage, int H, int W, int *Hs, int *Ws) {
    int h = H / m->cfg.stem_patch, w = W / m->cfg.stem_patch;
    for (int i = 1; i <= stage; i++) h /= 2, w /= 2;
    *Hs = h;
    *Ws = w;
}

static vc_status convnext_forward_batch(vc_convnext *m, const float *px, int B, int H, int W,
                                        const vc_convnext_outputs *out) {
    const vc_convnext_config *c = &m->cfg;
    const vc_backend *be = m->be;
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    if (vc_params_check_bound(&m->params)) return VC_ERR_ARG;
    if (out->logits && c->num_labels == 0) return vc_fail(VC_ERR_ARG, "this model has no classifier head");
    int hl, wl;
    vc_convnext_stage_size(m, c->num_stages - 1, H, W, &hl, &wl);
    if (hl < 1 || wl < 1)
        return vc_fail(VC_ERR_ARG, "input %dx%d is too small: the last stage's map would be empty (need at least %d "
                                   "pixels a side)", H, W, c->stem_patch << (c->num_stages - 1));
    if ((size_t)H * W > ((size_t)1 << 28)) return vc_fail(VC_ERR_ARG, "input %dx%d is too large", H, W);

    /* Buffers, sized for the largest stage: x (stream), t (block branch), e (MLP hidden),
     * conv scratch, pooled. The stem output is the largest map: stage 0 at H/P x W/P. */
    const int h0 = H / c->stem_patch, w0 = W / c->stem_patch;
    size_t max_map = 0, max_hidden = 0, max_scratch = 0;
    max_scratch = be->conv2d_scratch(B, c->num_channels, H, W, c->dims[0], c->stem_patch, c->stem_patch,
                                     c->stem_patch, c->stem_patch, 0, 0, 1, 1, 1);
    for (int i = 0; i < c->num_stages; i++) {
        int hs, ws;
        vc_convnext_stage_size(m, i, H, W, &hs, &ws);
        size_t map = (size_t)B * c->dims[i] * hs * ws;
        if (map > max_map) max_map = map;
        if (map * c->mlp_ratio > max_hidden) max_hidden = map * c->mlp_ratio;
        const int pad = c->kernel_size / 2;
        size_t s = be->conv2d_scratch(B, c->dims[i], hs, ws, c->dims[i], c->kernel_size, c->kernel_size, 1, 1, pad,
                                      pad, 1, 1, c->dims[i]);
        if (s > max_scratch) max_scratch = s;
        if (i > 0) {
            int hp, wp;
            vc_convnext_stage_size(m, i - 1, H, W, &hp, &wp);
            s = be->conv2d_scratch(B, c->dims[i - 1], hp, wp, c->dims[i], 2, 2, 2, 2, 0, 0, 1, 1, 1);
            if (s > max_scratch) max_scratch = s;
            size_t prev = (size_t)B * c->dims[i - 1] * hp * wp;
            if (prev > max_map) max_map = prev;
        }
    }
    float *x, *t, *e, *scratch, *pooled;
    const size_t sizes[5] = {max_map, max_map, max_hidden, max_scratch, (size_t)B * c->dims[c->num_stages - 1]};
    float **const ptrs[5] = {&x, &t, &e, &scratch, &pooled};
    vc_arena *arena = vc_arena_pool_take(&m->arenas);
    if (!arena) return VC_ERR_MEMORY;
    vc_status st = vc_arena_carve(arena, 5, sizes, ptrs);
    if (st) {
        vc_arena_pool_give(&m->arenas, arena);
        return st;
    }

    be->conv2d(x, px, m->w.stem_w, m->w.stem_b, B, c->num_channels, H, W, c->dims[0], c->stem_patch, c->stem_patch,
               c->stem_patch, c->stem_patch, 0, 0, 1, 1, 1, scratch);
    int h = h0, w = w0;
    be->layernorm_channels(x, x, m->w.stem_norm_w, m->w.stem_norm_b, B, c->dims[0], (size_t)h * w, c->eps);
    if (out->stem_map) memcpy(out->stem_map, x, sizeof(float) * B * c->dims[0] * h * w);
    for (int i = 0; i < c->num_stages; i++) {
        const cnx_stage *s = &m->w.stages[i];
        const int C = c->dims[i], E = c->mlp_ratio * C;
        if (i > 0) {
            const int Cp = c->dims[i - 1];
            be->layernorm_channels(t, x, s->ds_norm_w, s->ds_norm_b, B, Cp, (size_t)h * w, c->eps);
            be->conv2d(x, t, s->ds_w, s->ds_b, B, Cp, h, w, C, 2, 2, 2, 2, 0, 0, 1, 1, 1, scratch);
            h /= 2, w /= 2;
        }
        const size_t HW = (size_t)h * w;
        const int pad = c->kernel_size / 2;
        for (int j = 0; j < c->depths[i]; j++) {
            const cnx_block *k = &s->blocks[j];
            be->conv2d(t, x, k->dw_w, k->dw_b, B, C, h, w, C, c->kernel_size, c->kernel_size, 1, 1, pad, pad, 1, 1, C,
                       scratch);
            be->layernorm_channels(t, t, k->norm_w, k->norm_b, B, C, HW, c->eps);
            be->conv2d(e, t, k->fc1_w, k->fc1_b, B, C, h, w, E, 1, 1, 1, 1, 0, 0, 1, 1, 1, scratch);
            be->gelu(e, (size_t)B * E * HW);
            be->conv2d(t, e, k->fc2_w, k->fc2_b, B, E, h, w, C, 1, 1, 1, 1, 0, 0, 1, 1, 1, scratch);
            be->scale_channels_add(x, t, k->gamma, x, B, C, HW);
        }
        if (out->stage_maps && out->stage_maps[i]) memcpy(out->stage_maps[i], x, sizeof(float) * B * C * HW);
    }
    const int CL = c->dims[c->num_stages - 1];
    if (out->pooled || out->logits) {
        be->global_avg_pool(pooled, x, B, CL, (size_t)h * w);
        be->layernorm(pooled, pooled, m->w.head_norm_w, m->w.head_norm_b, (size_t)B, CL, c->head_eps);
        if (out->pooled) memcpy(out->pooled, pooled, sizeof(float) * B * CL);
        if (out->logits) be->linear(out->logits, pooled, m->w.fc_w, m->w.fc_b, B, c->num_labels, CL, 0);
    }
    vc_arena_pool_give(&m->arenas, arena);
    return VC_OK;
}

/* Images [lo, hi) of a batch, every pointer offset to image lo (see vc_parallel_chunks). */
typedef struct {
    vc_convnext *m;
    const float *px;
    int H, W;
    const vc_convnext_outputs *out;
} cnx_chunk_job;

static vc_status convnext_chunk(void *ctx, int lo, int hi) {
    const cnx_chunk_job *j = ctx;
    const vc_convnext_config *c = &j->m->cfg;
    float *maps[VC_CONVNEXT_MAX_STAGES] = {0};
    vc_convnext_outputs o = {0};
    int hs, ws;
    if (j->out->stem_map) {
        vc_convnext_stage_size(j->m, 0, j->H, j->W, &hs, &ws);
        o.stem_map = j->out->stem_map + (size_t)lo * c->dims[0] * hs * ws;
    }
    if (j->out->stage_maps) {
        for (int i = 0; i < c->num_stages; i++) {
            if (!j->out->stage_maps[i]) continue;
            vc_convnext_stage_size(j->m, i, j->H, j->W, &hs, &ws);
            maps[i] = j->out->stage_maps[i] + (size_t)lo * c->dims[i] * hs * ws;
        }
        o.stage_maps = maps;
    }
    const int CL = c->dims[c->num_stages - 1];
    if (j->out->pooled) o.pooled = j->out->pooled + (size_t)lo * CL;
    if (j->out->logits) o.logits = j->out->logits + (size_t)lo * c->num_labels;
    return convnext_forward_batch(j->m, j->px + (size_t)lo * c->num_channels * j->H * j->W, hi - lo, j->H, j->W, &o);
}

vc_status vc_convnext_forward(vc_convnext *m, const float *px, int B, int H, int W, const vc_convnext_outputs *out) {
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    cnx_chunk_job job = {m, px, H, W, out};
    return vc_parallel_chunks(B, convnext_chunk, &job);
}
