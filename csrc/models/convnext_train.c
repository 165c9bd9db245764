/* ConvNeXt training pass. See convnext_train.h.
 *
 * Legend: B batch, C channels of a stage, E = mlp_ratio * C, HW its map, Cp the previous
 * stage's channels, L labels.
 * The network is a chain of maps: maps[0] = stem output; each unit (a stage's downsample, or a
 * block) reads maps[u] and writes maps[u + 1]; the head pools the last map.
 *   block:  out = x + drop_path(gamma * fc2(gelu(fc1(LN2d(dwconv(x))))))
 * Kept per block: dwconv output, norm stats and output, fc1 pre-activation, fc2 output (the
 * gamma gradient needs it); with checkpointing one shared set, refilled in backward.
 * Mixed precision (opts.bf16) swaps the conv kernels for their bf16-GEMM versions (vc_step_kernels);
 * the plan, the saved tensors and every other kernel are the same as in fp32. */
#include "models/convnext_train.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "models/convnext_internal.h"
#include "models/train_mem.h"
#include "ops/mixed_precision.h"

#define GRAD(p) ((float *)(p)) /* gradient tables hold writable memory behind const fields */

typedef struct {
    float *dw, *mean, *rstd, *ln, *fc1, *fc2; /* [B,C,HW] [B,HW] [B,HW] [B,C,HW] [B,E,HW] [B,C,HW] */
} cnx_saved;

typedef struct {
    int stage, block; /* block < 0: the stage's downsample */
    int C, Cin, h, w; /* output channels, input channels, OUTPUT map size */
    float dp;         /* drop-path rate */
    float *ds_ln, *ds_mean, *ds_rstd; /* downsample: normed input [B,Cin,hin*win], stats */
} cnx_unit;

struct vc_convnext_train {
    pthread_mutex_t lock;
    char *block;
    size_t bytes;
    int B, H, W, ckpt, threads; /* the shape and thread count `block` was planned for */
    int nunits;
    cnx_unit *units;  /* [num_stages - 1 + blocks] */
    float **maps;     /* [nunits + 1] */
    cnx_saved *saved; /* [nunits] (block units), or [1] with checkpointing */
    float *px, *stem_conv, *stem_mean, *stem_rstd;
    float *pool, *pool_ln, *pool_mean, *pool_rstd, *dpool, *dlogits;
    float *gx, *ga, *gb, *gc, *e1, *de, *scratch; /* work: maps x3 + gx, hidden x2, conv scratch */
    vc_train_opts opts;
    int ready;    /* a forward is kept for one backward */
    int has_loss; /* ... and it had labels: dlogits holds the loss gradient */
};

void vc_convnext_train_free(vc_convnext_train *t) {
    if (!t) return;
    pthread_mutex_destroy(&t->lock);
    free(t->block);
    free(t->units);
    free(t->maps);
    free(t->saved);
    free(t);
}

size_t vc_convnext_train_saved_bytes(const vc_convnext *m) { return m->train ? m->train->bytes : 0; }

vc_status vc_convnext_bind_grad(vc_convnext *m, int i, const vc_tensor *x) {
    return vc_params_bind_grad(&m->grads, i, x);
}

static size_t maxz(size_t a, size_t b) { return a > b ? a : b; }

static size_t conv_scr(const vc_backend *be, int B, int Ci, int h, int w, int Co, int k, int s, int p, int g) {
    return maxz(be->conv2d_scratch(B, Ci, h, w, Co, k, k, s, s, p, p, 1, 1, g),
                be->conv2d_backward_scratch(B, Ci, h, w, Co, k, k, s, s, p, p, 1, 1, g));
}

static void plan(const vc_convnext *m, vc_convnext_train *t, vc_bump *b, int B, int H, int W, int ckpt) {
    const vc_convnext_config *c = &m->cfg;
    const vc_backend *be = m->be;
    const int P = c->stem_patch, K = c->kernel_size;
    int h = H / P, w = W / P;
    size_t max_map = (size_t)B * c->dims[0] * h * w, max_hidden = 0;
    size_t scr = conv_scr(be, B, c->num_channels, H, W, c->dims[0], P, P, 0, 1);
    t->px = vc_bump_floats(b, (size_t)B * c->num_channels * H * W);
    t->stem_conv = vc_bump_floats(b, max_map);
    t->stem_mean = vc_bump_floats(b, (size_t)B * h * w);
    t->stem_rstd = vc_bump_floats(b, (size_t)B * h * w);
    t->maps[0] = vc_bump_floats(b, max_map);
    for (int u = 0; u < t->nunits; u++) {
        cnx_unit *x = &t->units[u];
        const size_t in_hw = (size_t)h * w;
        if (x->block < 0) {
            x->ds_ln = vc_bump_floats(b, (size_t)B * x->Cin * in_hw);
            x->ds_mean = vc_bump_floats(b, (size_t)B * in_hw);
            x->ds_rstd = vc_bump_floats(b, (size_t)B * in_hw);
            scr = maxz(scr, conv_scr(be, B, x->Cin, h, w, x->C, 2, 2, 0, 1));
            h /= 2, w /= 2;
        } else {
            const size_t map = (size_t)B * x->C * h * w, hid = map * c->mlp_ratio;
            max_map = maxz(max_map, map);
            max_hidden = maxz(max_hidden, hid);
            scr = maxz(scr, conv_scr(be, B, x->C, h, w, x->C, K, 1, K / 2, x->C));
            scr = maxz(scr, conv_scr(be, B, x->C, h, w, x->C * c->mlp_ratio, 1, 1, 0, 1));
            scr = maxz(scr, conv_scr(be, B, x->C * c->mlp_ratio, h, w, x->C, 1, 1, 0, 1));
        }
        x->h = h, x->w = w;
        t->maps[u + 1] = vc_bump_floats(b, (size_t)B * x->C * h * w);
    }
    /* Block saves: per block, or one set at the largest block size when checkpointing. */
    int si = 0;
    for (int u = 0; u < t->nunits; u++) {
        const cnx_unit *x = &t->units[u];
        if (x->block < 0 || (ckpt && si > 0)) continue;
        const size_t map = ckpt ? max_map : (size_t)B * x->C * x->h * x->w;
        const size_t rows = ckpt ? max_map : (size_t)B * x->h * x->w; /* stats [B, HW] */
        cnx_saved *s = &t->saved[si++];
        s->dw = vc_bump_floats(b, map);
        s->mean = vc_bump_floats(b, rows);
        s->rstd = vc_bump_floats(b, rows);
        s->ln = vc_bump_floats(b, map);
        s->fc1 = vc_bump_floats(b, map * c->mlp_ratio);
        s->fc2 = vc_bump_floats(b, map);
    }
    const int CL = c->dims[c->num_stages - 1];
    t->pool = vc_bump_floats(b, (size_t)B * CL);
    t->pool_ln = vc_bump_floats(b, (size_t)B * CL);
    t->pool_mean = vc_bump_floats(b, (size_t)B);
    t->pool_rstd = vc_bump_floats(b, (size_t)B);
    t->dpool = vc_bump_floats(b, (size_t)B * CL);
    t->dlogits = vc_bump_floats(b, (size_t)B * c->num_labels);
    t->gx = vc_bump_floats(b, max_map);
    t->ga = vc_bump_floats(b, max_map);
    t->gb = vc_bump_floats(b, max_map);
    t->gc = vc_bump_floats(b, max_map);
    t->e1 = vc_bump_floats(b, max_hidden);
    t->de = vc_bump_floats(b, max_hidden);
    t->scratch = vc_bump_floats(b, scr);
}

static vc_status ensure_state(vc_convnext *m) {
    if (m->train) return VC_OK;
    const vc_convnext_config *c = &m->cfg;
    int n = c->num_stages - 1, nb = 0;
    for (int i = 0; i < c->num_stages; i++) nb += c->depths[i];
    n += nb;
    vc_convnext_train *t = calloc(1, sizeof *t);
    if (!t) return vc_fail(VC_ERR_MEMORY, "out of memory");
    t->units = calloc((size_t)n + 1, sizeof *t->units);
    t->maps = calloc((size_t)n + 1, sizeof *t->maps);
    t->saved = calloc((size_t)nb + 1, sizeof *t->saved);
    if (!t->units || !t->maps || !t->saved || pthread_mutex_init(&t->lock, NULL)) {
        free(t->units), free(t->maps), free(t->saved), free(t);
        return vc_fail(VC_ERR_MEMORY, "out of memory");
    }
    int u = 0, k = 0;
    for (int i = 0; i < c->num_stages; i++) {
        if (i > 0) t->units[u++] = (cnx_unit){i, -1, c->dims[i], c->dims[i - 1], 0, 0, 0.f, NULL, NULL, NULL};
        for (int j = 0; j < c->depths[i]; j++, k++)
            t->units[u++] = (cnx_unit){i, j, c->dims[i], c->dims[i], 0, 0, 0.f, NULL, NULL, NULL};
    }
    t->nunits = n;
    m->train = t;
    return VC_OK;
}

static vc_status prepare(vc_convnext *m, int B, int H, int W, int ckpt) {
    vc_convnext_train *t = m->train;
    const int nt = vc_get_num_threads(); /* sizes the per-thread conv/attention scratch; pinned for the step */
    if (t->block && t->B == B && t->H == H && t->W == W && t->ckpt == ckpt && t->threads == nt) return VC_OK;
    free(t->block);
    t->block = NULL;
    t->bytes = 0;
    vc_bump b = {NULL, 0};
    plan(m, t, &b, B, H, W, ckpt);
    if (!(t->block = aligned_alloc(64, b.off)))
        return vc_fail(VC_ERR_MEMORY, "out of memory for training activations (%zu bytes)", b.off);
    t->bytes = b.off;
    b = (vc_bump){t->block, 0};
    plan(m, t, &b, B, H, W, ckpt);
    t->B = B, t->H = H, t->W = W, t->ckpt = ckpt, t->threads = nt;
    return VC_OK;
}

static uint64_t unit_seed(uint64_t seed, int u) { return seed + (uint64_t)(u + 1) * 0x632be59bd9b4e019ULL; }

/* One block forward: out = x + drop_path(gamma * fc2(gelu(fc1(LN(dw(x)))))). */
static void block_forward(const vc_convnext *m, const vc_backend *be, const vc_convnext_train *t, const cnx_unit *x,
                          const cnx_block *k, const float *in, float *out, const cnx_saved *s, uint64_t seed) {
    const vc_convnext_config *c = &m->cfg;
    const int B = t->B, C = x->C, E = c->mlp_ratio * C, h = x->h, w = x->w, K = c->kernel_size;
    const size_t HW = (size_t)h * w, n = (size_t)B * C * HW;
    be->conv2d(s->dw, in, k->dw_w, k->dw_b, B, C, h, w, C, K, K, 1, 1, K / 2, K / 2, 1, 1, C, t->scratch);
    be->layernorm_channels_train(s->ln, s->mean, s->rstd, s->dw, k->norm_w, k->norm_b, B, C, HW, c->eps);
    be->conv2d(s->fc1, s->ln, k->fc1_w, k->fc1_b, B, C, h, w, E, 1, 1, 1, 1, 0, 0, 1, 1, 1, t->scratch);
    memcpy(t->e1, s->fc1, sizeof(float) * n * c->mlp_ratio);
    be->gelu(t->e1, n * c->mlp_ratio);
    be->conv2d(s->fc2, t->e1, k->fc2_w, k->fc2_b, B, E, h, w, C, 1, 1, 1, 1, 0, 0, 1, 1, 1, t->scratch);
    if (x->dp > 0.f) {
        be->scale_channels_add(out, s->fc2, k->gamma, NULL, B, C, HW);
        be->drop_path(out, out, B, (size_t)C * HW, x->dp, seed);
        be->add_into(out, in, n);
    } else {
        be->scale_channels_add(out, s->fc2, k->gamma, in, B, C, HW);
    }
}

/* gx: d out on entry, d in on return (when need_dx). */
static void block_backward(const vc_convnext *m, const vc_backend *be, vc_convnext_train *t, const cnx_unit *x,
                           const cnx_block *k, const cnx_block *g, const float *in, const cnx_saved *s, uint64_t seed,
                           int need_dx) {
    const vc_convnext_config *c = &m->cfg;
    const int B = t->B, C = x->C, E = c->mlp_ratio * C, h = x->h, w = x->w, K = c->kernel_size;
    const size_t HW = (size_t)h * w, n = (size_t)B * C * HW;
    const float *dt = t->gx;
    if (x->dp > 0.f) {
        be->drop_path(t->gb, t->gx, B, (size_t)C * HW, x->dp, seed);
        dt = t->gb;
    }
    be->scale_channels_add_backward(t->ga, GRAD(g->gamma), NULL, dt, s->fc2, k->gamma, B, C, HW);
    memcpy(t->e1, s->fc1, sizeof(float) * n * c->mlp_ratio); /* recompute gelu(fc1) */
    be->gelu(t->e1, n * c->mlp_ratio);
    be->conv2d_backward(t->de, GRAD(g->fc2_w), GRAD(g->fc2_b), t->ga, t->e1, k->fc2_w, B, E, h, w, C, 1, 1, 1, 1, 0,
                        0, 1, 1, 1, t->scratch);
    be->gelu_backward(t->de, t->de, s->fc1, n * c->mlp_ratio);
    be->conv2d_backward(t->gb, GRAD(g->fc1_w), GRAD(g->fc1_b), t->de, s->ln, k->fc1_w, B, C, h, w, E, 1, 1, 1, 1, 0,
                        0, 1, 1, 1, t->scratch);
    be->layernorm_channels_backward(t->gb, GRAD(g->norm_w), GRAD(g->norm_b), t->gb, s->dw, s->mean, s->rstd,
                                    k->norm_w, B, C, HW);
    be->conv2d_backward(need_dx ? t->ga : NULL, GRAD(g->dw_w), GRAD(g->dw_b), t->gb, in, k->dw_w, B, C, h, w, C, K, K,
                        1, 1, K / 2, K / 2, 1, 1, C, t->scratch);
    if (need_dx) be->add_into(t->gx, t->ga, n);
}

static int block_trainable(const cnx_block *g) {
    return g->dw_w || g->dw_b || g->norm_w || g->norm_b || g->fc1_w || g->fc1_b || g->fc2_w || g->fc2_b || g->gamma;
}

static int unit_trainable(const vc_convnext *m, const cnx_unit *x) {
    const cnx_stage *s = &m->g.stages[x->stage];
    if (x->block < 0) return s->ds_norm_w || s->ds_norm_b || s->ds_w || s->ds_b;
    return block_trainable(&s->blocks[x->block]);
}

static vc_status forward_locked(vc_convnext *m, vc_convnext_train *t, const float *px, int B, int H, int W,
                                const int64_t *labels, const vc_train_opts *o, float *loss, float *logits) {
    const vc_convnext_config *c = &m->cfg;
    vc_backend mixed;
    const vc_backend *be;
    vc_status st = vc_step_kernels(m->be, o->bf16, &mixed, &be);
    if (st) return st;
    if (c->num_labels <= 0) return vc_fail(VC_ERR_ARG, "training needs a classifier head (num_labels > 0)");
    if (!(o->drop_path_rate >= 0.f && o->drop_path_rate < 1.f))
        return vc_fail(VC_ERR_ARG, "drop_path_rate must be in [0, 1), got %g", (double)o->drop_path_rate);
    if (o->hidden_dropout != 0.f || o->attention_dropout != 0.f || o->classifier_dropout != 0.f)
        return vc_fail(VC_ERR_ARG, "ConvNeXt has no hidden, attention or classifier dropout (leave them at 0)");
    int hl, wl;
    vc_convnext_stage_size(m, c->num_stages - 1, H, W, &hl, &wl);
    if (hl < 1 || wl < 1) return vc_fail(VC_ERR_ARG, "input %dx%d is too small for this ConvNeXt", H, W);
    t->ready = 0;
    st = prepare(m, B, H, W, o->checkpointing != 0);
    if (st) return st;
    t->opts = *o;
    /* Drop-path rates: linear from 0 to drop_path_rate over all blocks (timm, transformers). */
    int nb = 0, k = 0;
    for (int i = 0; i < c->num_stages; i++) nb += c->depths[i];
    for (int u = 0; u < t->nunits; u++)
        if (t->units[u].block >= 0) {
            t->units[u].dp = nb > 1 ? o->drop_path_rate * (float)k / (float)(nb - 1) : 0.f;
            k++;
        }

    const int P = c->stem_patch, C0 = c->dims[0];
    const size_t HW0 = (size_t)(H / P) * (W / P);
    memcpy(t->px, px, sizeof(float) * (size_t)B * c->num_channels * H * W);
    be->conv2d(t->stem_conv, t->px, m->w.stem_w, m->w.stem_b, B, c->num_channels, H, W, C0, P, P, P, P, 0, 0, 1, 1, 1,
               t->scratch);
    be->layernorm_channels_train(t->maps[0], t->stem_mean, t->stem_rstd, t->stem_conv, m->w.stem_norm_w,
                                 m->w.stem_norm_b, B, C0, HW0, c->eps);
    int h = H / P, w = W / P;
    for (int u = 0; u < t->nunits; u++) {
        const cnx_unit *x = &t->units[u];
        const cnx_stage *s = &m->w.stages[x->stage];
        if (x->block < 0) {
            be->layernorm_channels_train(x->ds_ln, x->ds_mean, x->ds_rstd, t->maps[u], s->ds_norm_w, s->ds_norm_b, B,
                                         x->Cin, (size_t)h * w, c->eps);
            be->conv2d(t->maps[u + 1], x->ds_ln, s->ds_w, s->ds_b, B, x->Cin, h, w, x->C, 2, 2, 2, 2, 0, 0, 1, 1, 1,
                       t->scratch);
        } else {
            block_forward(m, be, t, x, &s->blocks[x->block], t->maps[u], t->maps[u + 1],
                          &t->saved[o->checkpointing ? 0 : u - x->stage],
                          unit_seed(o->seed, u));
        }
        h = x->h, w = x->w;
    }
    const int CL = c->dims[c->num_stages - 1];
    be->global_avg_pool(t->pool, t->maps[t->nunits], B, CL, (size_t)h * w);
    be->layernorm_train(t->pool_ln, t->pool_mean, t->pool_rstd, t->pool, m->w.head_norm_w, m->w.head_norm_b,
                        (size_t)B, CL, c->head_eps);
    m->be->linear(logits, t->pool_ln, m->w.fc_w, m->w.fc_b, B, c->num_labels, CL, 0); /* fp32 classifier */
    if (labels) {
        float lv = 0.f;
        st = be->cross_entropy(&lv, t->dlogits, logits, labels, B, c->num_labels, o->label_smoothing, -100);
        if (st) return st;
        if (loss) *loss = lv;
    }
    t->has_loss = labels != NULL;
    t->ready = 1; /* without labels, a backward seeds d logits itself (vc_backward_args) */
    return VC_OK;
}

vc_status vc_convnext_train_forward(vc_convnext *m, const float *px, int B, int H, int W, const int64_t *labels,
                                    const vc_train_opts *o, float *loss, float *logits) {
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    if (vc_params_check_bound(&m->params)) return VC_ERR_ARG;
    vc_status st = ensure_state(m);
    if (st) return st;
    if (pthread_mutex_trylock(&m->train->lock))
        return vc_fail(VC_ERR_ARG, "another training step is running on this model (training is not concurrent)");
    int saved;
    vc_threads_pin(0, &saved); /* one count for the plan's per-thread scratch and the kernels */
    st = forward_locked(m, m->train, px, B, H, W, labels, o, loss, logits);
    vc_threads_unpin(saved);
    pthread_mutex_unlock(&m->train->lock);
    return st;
}

/* dpx (NULL-able): d objective / d pixels, which takes the gradient through every unit. */
static void backward_locked(vc_convnext *m, vc_convnext_train *t, float *dpx) {
    const vc_convnext_config *c = &m->cfg;
    vc_backend mixed;
    const vc_backend *be;
    vc_step_kernels(m->be, t->opts.bf16, &mixed, &be); /* the kept forward's precision, checked there */
    const cnx_weights *w = &m->w, *g = &m->g;
    const int B = t->B, CL = c->dims[c->num_stages - 1], P = c->stem_patch;
    const int stem_tr = g->stem_w || g->stem_b || g->stem_norm_w || g->stem_norm_b;
    int lowest = stem_tr || dpx ? -1 : t->nunits; /* lowest unit a gradient must reach */
    for (int u = 0; u < t->nunits && lowest == t->nunits; u++)
        if (unit_trainable(m, &t->units[u])) lowest = u;
    const int deep = lowest < t->nunits;

    m->be->linear_backward(deep || g->head_norm_w || g->head_norm_b ? t->dpool : NULL, GRAD(g->fc_w), GRAD(g->fc_b),
                        t->dlogits, t->pool_ln, w->fc_w, B, c->num_labels, CL);
    if (!deep && !g->head_norm_w && !g->head_norm_b) return;
    be->layernorm_backward(deep ? t->dpool : NULL, GRAD(g->head_norm_w), GRAD(g->head_norm_b), t->dpool, t->pool,
                           t->pool_mean, t->pool_rstd, w->head_norm_w, (size_t)B, CL);
    if (!deep) return;
    const cnx_unit *last = &t->units[t->nunits - 1];
    be->global_avg_pool_backward(t->gx, t->dpool, B, CL, (size_t)last->h * last->w);

    for (int u = t->nunits - 1; u >= 0 && u >= lowest; u--) {
        const cnx_unit *x = &t->units[u];
        const int hin = u > 0 ? t->units[u - 1].h : (t->H / P), win = u > 0 ? t->units[u - 1].w : (t->W / P);
        if (x->block < 0) {
            const cnx_stage *s = &w->stages[x->stage], *gs = &g->stages[x->stage];
            const int need = u > lowest;
            be->conv2d_backward(t->ga, GRAD(gs->ds_w), GRAD(gs->ds_b), t->gx, x->ds_ln, s->ds_w, B, x->Cin, hin, win,
                                x->C, 2, 2, 2, 2, 0, 0, 1, 1, 1, t->scratch);
            be->layernorm_channels_backward(need ? t->gx : NULL, GRAD(gs->ds_norm_w), GRAD(gs->ds_norm_b), t->ga,
                                            t->maps[u], x->ds_mean, x->ds_rstd, s->ds_norm_w, B, x->Cin,
                                            (size_t)hin * win);
            continue;
        }
        const int si = t->ckpt ? 0 : u - x->stage;
        const cnx_block *k = &w->stages[x->stage].blocks[x->block];
        if (t->ckpt) /* recompute into the shared saves; the output goes to gc (unused here) */
            block_forward(m, be, t, x, k, t->maps[u], t->gc, &t->saved[0], unit_seed(t->opts.seed, u));
        block_backward(m, be, t, x, k, &g->stages[x->stage].blocks[x->block], t->maps[u], &t->saved[si],
                       unit_seed(t->opts.seed, u), u > lowest);
    }
    if (lowest >= 0) return;
    const size_t HW0 = (size_t)(t->H / P) * (t->W / P);
    be->layernorm_channels_backward(t->ga, GRAD(g->stem_norm_w), GRAD(g->stem_norm_b), t->gx, t->stem_conv,
                                    t->stem_mean, t->stem_rstd, w->stem_norm_w, B, c->dims[0], HW0);
    be->conv2d_backward(dpx, GRAD(g->stem_w), GRAD(g->stem_b), t->ga, t->px, w->stem_w, B, c->num_channels, t->H,
                        t->W, c->dims[0], P, P, P, P, 0, 0, 1, 1, 1, t->scratch);
}

vc_status vc_convnext_backward(vc_convnext *m, const vc_backward_args *a) {
    vc_convnext_train *t = m->train;
    if (!t) return vc_fail(VC_ERR_ARG, "backward() needs a training forward first");
    if (pthread_mutex_trylock(&t->lock))
        return vc_fail(VC_ERR_ARG, "another training step is running on this model (training is not concurrent)");
    vc_status st = vc_backward_begin(a, t->ready, t->has_loss, t->B, t->H, t->W, m->cfg.num_labels, t->dlogits);
    if (!st) {
        int saved;
        vc_threads_pin(t->threads, &saved); /* at most the threads the forward sized scratch for */
        backward_locked(m, t, a->dpx);
        vc_threads_unpin(saved);
        t->ready = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return st;
}
