/* MobileViT training pass. See mobilevit_train.h; the topology is mobilevit.c's.
 *
 * Legend: B batch, C block channels, d transformer width, h x w map (he x we: rounded up to
 * even), S = 4B sequences of N = he*we/4 tokens, E expanded channels, L labels.
 * Every conv keeps z = conv(in), y = BN(z) (batch statistics) and a = silu(y); a conv's input
 * is the previous conv's a (or a residual sum), so nothing is kept twice. A MobileViT block
 * body also keeps the resized map, every transformer layer's input tokens and saves, the final
 * layer norm, the folded map and the concatenation.
 *
 * Units, the checkpointing granularity, in forward order: the stem, each inverted-residual
 * (MV2) block (the MobileViT blocks' downsampling layers included), each MobileViT block body
 * (conv_kxk .. fusion) and conv_1x1_exp. A unit's output, the next unit's input, is always kept
 * ("kept" area). Its internal saves go to the "unit" area: without checkpointing every unit has
 * its own; with checkpointing all units share one area sized for the largest, and backward
 * re-runs each unit's forward into it just before that unit's backward. The re-run is the same
 * arithmetic on the same input, so it is bit-identical: BatchNorm recomputes the same batch
 * statistics (running statistics are left alone: updated once per step, as torch without
 * checkpointing) and dropout masks regenerate from the seed.
 * Backward walks the units in reverse through four max-size gradient buffers (ga..gd); ga
 * carries d(unit output) from unit to unit. */
#include "models/mobilevit_train.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "models/encoder_layer_train.h"
#include "models/mobilevit_internal.h"
#include "models/train_mem.h"
#include "ops/mixed_precision.h"

#define GRAD(p) ((float *)(p)) /* gradient tables hold writable memory behind const fields */

typedef struct {
    float *z, *y, *a, *mean, *rstd; /* y == z without a norm; a == y without an activation */
    int hin, win, h, w;
} mv_cs;

typedef struct {
    mv_cs e, d, r;
    float *out; /* r.a, or r.a + x for a residual */
} mv_is;

typedef struct {
    mv_is down;
    mv_cs kxk, c1, proj, fus;
    int h, w, he, we, resized, N, S;
    float *rs;                 /* [B,d,he,we] c1 output resized (resized only) */
    float **tok;               /* [depth + 1] -> [S*N, d]: each transformer layer's input, then the output */
    vc_encoder_saved *sv;      /* [depth] */
    vc_encoder_work work;
    float *ln, *ln_mean, *ln_rstd; /* [S*N,d] [S*N] [S*N] */
    float *fold, *unres, *pin;     /* [B,d,he,we]; [B,d,h,w] (resized only); conv_projection's input */
    float *cat;                    /* [B,2C,h,w] */
} mv_bs;

struct vc_mobilevit_train {
    pthread_mutex_t lock;
    char *block;
    size_t bytes;
    int B, H, W, ckpt, threads; /* the shape and thread count `block` was planned for */
    float *px;
    mv_cs stem, exp;
    mv_is ir0, ir1[3];
    mv_bs blk[3];
    float **tok_ptrs;         /* storage of the blocks' tok arrays */
    vc_encoder_saved *sv_all; /* storage of the blocks' sv arrays */
    float *pool, *drop, *dpool, *dlogits;
    float *ga, *gb, *gc, *gd, *scratch;
    vc_train_opts opts;
    vc_backend mixed;      /* the step's kernel table in bf16 mixed precision */
    const vc_backend *be;  /* the step's conv and transformer kernels: m->be, or &mixed */
    int ready;    /* a forward is kept for one backward */
    int has_loss; /* ... and it had labels: dlogits holds the loss gradient */
};

void vc_mobilevit_train_free(vc_mobilevit_train *t) {
    if (!t) return;
    pthread_mutex_destroy(&t->lock);
    free(t->block);
    free(t->tok_ptrs);
    free(t->sv_all);
    free(t);
}

size_t vc_mobilevit_train_saved_bytes(const vc_mobilevit *m) { return m->train ? m->train->bytes : 0; }

vc_status vc_mobilevit_bind_grad(vc_mobilevit *m, int i, const vc_tensor *x) {
    return vc_params_bind_grad(&m->grads, i, x);
}

/* ---- planning: the same carving code measures, then hands out pointers ---- */

typedef struct {
    vc_bump keep;     /* lives through the step: unit outputs, the head, gradient buffers, scratch */
    vc_bump unit;     /* units' internal saves (with checkpointing: restarted at every unit) */
    size_t unit_max;  /* checkpointing: the largest unit's saves, the size of the shared area */
    int ckpt;
    const vc_backend *be;
    int B;
    size_t maxmap, scr; /* largest activation (sizes the gradient buffers); conv scratch */
} mv_pc;

static size_t maxz(size_t a, size_t b) { return a > b ? a : b; }

/* Where a unit's internal saves go. */
static vc_bump *saves(mv_pc *p) { return p->ckpt ? &p->unit : &p->keep; }

/* Starts the next unit: with checkpointing its saves reuse the shared area from the start. */
static void unit_start(mv_pc *p) {
    if (!p->ckpt) return;
    p->unit_max = maxz(p->unit_max, p->unit.off);
    p->unit.off = 0;
}

static float *take(mv_pc *p, vc_bump *b, size_t n) {
    p->maxmap = maxz(p->maxmap, n);
    return vc_bump_floats(b, n);
}

static int out_size(const mv_conv *cv, int in) { return (in + 2 * (cv->k / 2) - cv->k) / cv->stride + 1; }

/* The conv's last tensor (a, or y without an activation) goes to `out`; the rest to the saves. */
static void plan_conv(mv_pc *p, const mv_conv *cv, mv_cs *s, int hin, int win, vc_bump *out) {
    const int pad = cv->k / 2;
    vc_bump *sv = saves(p);
    s->hin = hin, s->win = win, s->h = out_size(cv, hin), s->w = out_size(cv, win);
    const size_t n = (size_t)p->B * cv->cout * s->h * s->w;
    s->z = take(p, cv->bn || cv->act ? sv : out, n);
    s->y = s->z, s->mean = s->rstd = NULL;
    if (cv->bn) {
        s->y = take(p, cv->act ? sv : out, n);
        s->mean = vc_bump_floats(sv, (size_t)cv->cout);
        s->rstd = vc_bump_floats(sv, (size_t)cv->cout);
    }
    s->a = cv->act ? take(p, out, n) : s->y;
    p->scr = maxz(p->scr, p->be->conv2d_scratch(p->B, cv->cin, hin, win, cv->cout, cv->k, cv->k, cv->stride,
                                                cv->stride, pad, pad, 1, 1, cv->groups));
    p->scr = maxz(p->scr, p->be->conv2d_backward_scratch(p->B, cv->cin, hin, win, cv->cout, cv->k, cv->k, cv->stride,
                                                         cv->stride, pad, pad, 1, 1, cv->groups));
}

/* One MV2 unit; its output (out) is kept. */
static void plan_ir(mv_pc *p, const mv_ir *ir, mv_is *s, int h, int w) {
    unit_start(p);
    plan_conv(p, &ir->expand, &s->e, h, w, saves(p));
    plan_conv(p, &ir->dw, &s->d, s->e.h, s->e.w, saves(p));
    plan_conv(p, &ir->reduce, &s->r, s->d.h, s->d.w, ir->residual ? saves(p) : &p->keep);
    s->out = ir->residual ? take(p, &p->keep, (size_t)p->B * ir->reduce.cout * s->r.h * s->r.w) : s->r.a;
}

static vc_encoder_dims enc_dims(const vc_mobilevit *m, const mv_block *k, const mv_bs *s, float p_hidden,
                                float p_attn) {
    const vc_mobilevit_config *c = &m->cfg;
    vc_encoder_dims d = {s->S, s->N, k->d, c->num_heads, k->mlp, c->act, c->layer_norm_eps, p_hidden, p_attn};
    return d;
}

/* A MobileViT block: the downsampling MV2 unit, then the body unit (its fusion output kept). */
static void plan_block(mv_pc *p, const vc_mobilevit *m, const mv_block *k, mv_bs *s, int h, int w) {
    const size_t B = (size_t)p->B, d = (size_t)k->d;
    plan_ir(p, &k->down, &s->down, h, w);
    unit_start(p);
    vc_bump *sv = saves(p);
    h = s->down.r.h, w = s->down.r.w;
    plan_conv(p, &k->kxk, &s->kxk, h, w, sv);
    plan_conv(p, &k->c1x1, &s->c1, h, w, sv);
    s->h = h, s->w = w, s->he = (h + 1) / 2 * 2, s->we = (w + 1) / 2 * 2;
    s->resized = s->he != h || s->we != w;
    s->S = 4 * p->B, s->N = (s->he / 2) * (s->we / 2);
    const size_t big = B * d * s->he * s->we, small = B * d * h * w, rows = (size_t)s->S * s->N;
    s->rs = s->resized ? take(p, sv, big) : NULL;
    for (int j = 0; j <= k->depth; j++) s->tok[j] = take(p, sv, big);
    const vc_encoder_dims ed = enc_dims(m, k, s, 0.f, 0.f);
    for (int j = 0; j < k->depth; j++) vc_encoder_saved_carve(sv, &ed, &s->sv[j]);
    vc_encoder_work_carve(sv, p->be, &ed, &s->work);
    p->maxmap = maxz(p->maxmap, rows * (size_t)k->mlp);
    s->ln = take(p, sv, big);
    s->ln_mean = vc_bump_floats(sv, rows);
    s->ln_rstd = vc_bump_floats(sv, rows);
    s->fold = take(p, sv, big);
    s->unres = s->resized ? take(p, sv, small) : NULL;
    s->pin = s->resized ? s->unres : s->fold;
    plan_conv(p, &k->proj, &s->proj, h, w, sv);
    s->cat = take(p, sv, B * 2 * k->C * h * w);
    plan_conv(p, &k->fusion, &s->fus, h, w, &p->keep);
}

/* Carves the training block at base (NULL: measures). Layout: the kept area (*kept bytes, an
 * output when measuring, an input otherwise), then the shared unit area with checkpointing.
 * Returns the bytes needed. */
static size_t plan(const vc_mobilevit *m, vc_mobilevit_train *t, char *base, size_t *kept, int B, int H, int W,
                   int ckpt) {
    const vc_mobilevit_config *c = &m->cfg;
    const mv_net *n = &m->w;
    mv_pc p = {{base, 0}, {base ? base + *kept : NULL, 0}, 0, ckpt, m->be, B, 0, 0};
    t->px = take(&p, &p.keep, (size_t)B * c->num_channels * H * W);
    unit_start(&p);
    plan_conv(&p, &n->stem, &t->stem, H, W, &p.keep);
    plan_ir(&p, &n->ir0[0], &t->ir0, t->stem.h, t->stem.w);
    int h = t->ir0.r.h, w = t->ir0.r.w;
    for (int j = 0; j < 3; j++) {
        plan_ir(&p, &n->ir1[j], &t->ir1[j], h, w);
        h = t->ir1[j].r.h, w = t->ir1[j].r.w;
    }
    for (int k = 0; k < 3; k++) {
        plan_block(&p, m, &n->blocks[k], &t->blk[k], h, w);
        h = t->blk[k].h, w = t->blk[k].w;
    }
    unit_start(&p);
    plan_conv(&p, &n->exp, &t->exp, h, w, saves(&p)); /* only the pooling reads it, in forward */
    unit_start(&p);
    const size_t CL = (size_t)c->neck[6];
    vc_bump *b = &p.keep;
    t->pool = vc_bump_floats(b, (size_t)B * CL);
    t->drop = vc_bump_floats(b, (size_t)B * CL);
    t->dpool = vc_bump_floats(b, (size_t)B * CL);
    t->dlogits = vc_bump_floats(b, (size_t)B * c->num_labels);
    t->ga = vc_bump_floats(b, p.maxmap);
    t->gb = vc_bump_floats(b, p.maxmap);
    t->gc = vc_bump_floats(b, p.maxmap);
    t->gd = vc_bump_floats(b, p.maxmap);
    t->scratch = vc_bump_floats(b, p.scr);
    *kept = p.keep.off;
    return p.keep.off + p.unit_max;
}

/* A training state with no block yet (the blocks' tok / sv arrays allocated). */
static vc_mobilevit_train *new_state(const vc_mobilevit *m) {
    const vc_mobilevit_config *c = &m->cfg;
    const int nl = c->depth[0] + c->depth[1] + c->depth[2];
    vc_mobilevit_train *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->tok_ptrs = calloc((size_t)nl + 3, sizeof *t->tok_ptrs);
    t->sv_all = calloc((size_t)nl + 3, sizeof *t->sv_all);
    if (!t->tok_ptrs || !t->sv_all || pthread_mutex_init(&t->lock, NULL)) {
        free(t->tok_ptrs), free(t->sv_all), free(t);
        return NULL;
    }
    for (int k = 0, off = 0; k < 3; k++) {
        t->blk[k].tok = t->tok_ptrs + off + k;
        t->blk[k].sv = t->sv_all + off + k;
        off += c->depth[k];
    }
    return t;
}

static vc_status ensure_state(vc_mobilevit *m) {
    if (m->train) return VC_OK;
    if (!(m->train = new_state(m))) return vc_fail(VC_ERR_MEMORY, "out of memory");
    return VC_OK;
}

/* The input shapes a training step accepts (torch refuses what it cannot normalise: batch
 * statistics, batch_stats, need two values per channel; running statistics do not). */
static vc_status check_shape(const vc_mobilevit *m, int B, int H, int W, int batch_stats) {
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    int hl, wl;
    vc_mobilevit_stage_size(m, 4, H, W, &hl, &wl);
    if (hl < 1 || wl < 1) return vc_fail(VC_ERR_ARG, "input %dx%d is too small for MobileViT (at least 32x32)", H, W);
    if ((size_t)H * W > ((size_t)1 << 26)) return vc_fail(VC_ERR_ARG, "input %dx%d is too large", H, W);
    if (batch_stats && (size_t)B * hl * wl < 2)
        return vc_fail(VC_ERR_ARG, "training BatchNorm needs more than one value per channel: batch %d of %dx%d "
                                   "images gives a %dx%d last map", B, H, W, hl, wl);
    return VC_OK;
}

vc_status vc_mobilevit_train_plan_bytes(const vc_mobilevit *m, int B, int H, int W, int checkpointing,
                                        size_t *bytes) {
    vc_status st = check_shape(m, B, H, W, 1);
    if (st) return st;
    vc_mobilevit_train *t = new_state(m); /* plan() writes (NULL) pointers into a state: not the live one */
    if (!t) return vc_fail(VC_ERR_MEMORY, "out of memory");
    size_t kept = 0;
    *bytes = plan(m, t, NULL, &kept, B, H, W, checkpointing != 0);
    vc_mobilevit_train_free(t);
    return VC_OK;
}

static vc_status prepare(vc_mobilevit *m, int B, int H, int W, int ckpt) {
    vc_mobilevit_train *t = m->train;
    const int nt = vc_get_num_threads(); /* sizes the per-thread conv/attention scratch; pinned for the step */
    if (t->block && t->B == B && t->H == H && t->W == W && t->ckpt == ckpt && t->threads == nt) return VC_OK;
    free(t->block);
    t->block = NULL;
    t->bytes = 0;
    size_t kept = 0;
    const size_t bytes = plan(m, t, NULL, &kept, B, H, W, ckpt);
    if (!(t->block = aligned_alloc(64, bytes)))
        return vc_fail(VC_ERR_MEMORY, "out of memory for training activations (%zu bytes)", bytes);
    t->bytes = bytes;
    plan(m, t, t->block, &kept, B, H, W, ckpt);
    t->B = B, t->H = H, t->W = W, t->ckpt = ckpt, t->threads = nt;
    return VC_OK;
}

/* ---- forward ---- */

static uint64_t layer_seed(uint64_t seed, int blk, int j) {
    return seed + (uint64_t)(blk * 64 + j + 1) * 0x632be59bd9b4e019ULL;
}
static uint64_t head_seed(uint64_t seed) { return seed ^ 0xe3b0c44298fc1c14ULL; }

/* a = act(BN(conv(in))), BN on batch statistics. update_stats: the step's first forward of this
 * conv updates the running statistics; a checkpointing re-run does not. In eval mode (opts.eval)
 * BN normalises with the running statistics instead (saved as mean / rstd for the backward, which
 * then treats them as constants) and never updates them. */
static vc_status conv_fwd(const vc_mobilevit *m, const vc_mobilevit_train *t, const mv_conv *cv, const mv_cs *s,
                          const float *in, int update_stats) {
    const vc_backend *be = t->be;
    const int B = t->B, pad = cv->k / 2;
    const size_t HW = (size_t)s->h * s->w, n = (size_t)B * cv->cout * HW;
    be->conv2d(s->z, in, cv->w, NULL, B, cv->cin, s->hin, s->win, cv->cout, cv->k, cv->k, cv->stride, cv->stride, pad,
               pad, 1, 1, cv->groups, t->scratch);
    if (cv->bn) {
        const int batch_stats = !t->opts.eval, running = update_stats || !batch_stats; /* eval reads them */
        vc_status st = be->batchnorm_forward(s->y, s->mean, s->rstd, running ? (float *)cv->rmean : NULL,
                                             running ? (float *)cv->rvar : NULL, s->z, cv->gamma, cv->beta, B,
                                             cv->cout, HW, VC_MOBILEVIT_BN_MOMENTUM, VC_MOBILEVIT_BN_EPS, batch_stats);
        if (st) return st;
    }
    if (cv->act) {
        memcpy(s->a, s->y, sizeof(float) * n);
        be->silu(s->a, n);
    }
    return VC_OK;
}

static vc_status ir_fwd(const vc_mobilevit *m, const vc_mobilevit_train *t, const mv_ir *ir, const mv_is *s,
                        const float *x, int update_stats) {
    vc_status st = conv_fwd(m, t, &ir->expand, &s->e, x, update_stats);
    if (!st) st = conv_fwd(m, t, &ir->dw, &s->d, s->e.a, update_stats);
    if (!st) st = conv_fwd(m, t, &ir->reduce, &s->r, s->d.a, update_stats);
    if (!st && ir->residual) m->be->add(s->out, x, s->r.a, (size_t)t->B * ir->reduce.cout * s->r.h * s->r.w);
    return st;
}

/* The body of MobileViT block b (conv_kxk .. fusion) on its downsampling unit's output. */
static vc_status body_fwd(const vc_mobilevit *m, vc_mobilevit_train *t, int b, int update_stats) {
    const vc_backend *be = t->be;
    const mv_block *k = &m->w.blocks[b];
    mv_bs *s = &t->blk[b];
    const int B = t->B, d = k->d;
    const size_t rows = (size_t)s->S * s->N;
    vc_status st = conv_fwd(m, t, &k->kxk, &s->kxk, s->down.out, update_stats);
    if (!st) st = conv_fwd(m, t, &k->c1x1, &s->c1, s->kxk.a, update_stats);
    if (st) return st;
    const float *src = s->c1.a;
    if (s->resized) { /* transformers: bilinear to a multiple of the patch size, and back after folding */
        be->resize_bilinear(s->rs, s->c1.a, B, d, s->h, s->w, s->he, s->we);
        src = s->rs;
    }
    be->patch_unfold(s->tok[0], src, B, d, s->he, s->we, 2, 2);
    const vc_encoder_dims ed = enc_dims(m, k, s, t->opts.hidden_dropout, t->opts.attention_dropout);
    for (int j = 0; j < k->depth; j++)
        vc_encoder_layer_train_forward(be, &k->layers[j], &ed, s->tok[j + 1], s->tok[j], &s->sv[j], &s->work,
                                       layer_seed(t->opts.seed, b, j));
    be->layernorm_train(s->ln, s->ln_mean, s->ln_rstd, s->tok[k->depth], k->ln_w, k->ln_b, rows, d,
                        m->cfg.layer_norm_eps);
    be->patch_fold(s->fold, s->ln, B, d, s->he, s->we, 2, 2);
    if (s->resized) be->resize_bilinear(s->unres, s->fold, B, d, s->he, s->we, s->h, s->w);
    st = conv_fwd(m, t, &k->proj, &s->proj, s->pin, update_stats);
    if (st) return st;
    be->concat_channels(s->cat, s->down.out, k->C, s->proj.a, k->C, B, (size_t)s->h * s->w);
    return conv_fwd(m, t, &k->fusion, &s->fus, s->cat, update_stats);
}

static vc_status forward_locked(vc_mobilevit *m, vc_mobilevit_train *t, const float *px, int B, int H, int W,
                                const int64_t *labels, const vc_train_opts *o, float *loss, float *logits) {
    const vc_mobilevit_config *c = &m->cfg;
    const vc_backend *be = m->be;
    const mv_net *n = &m->w;
    if (c->num_labels <= 0) return vc_fail(VC_ERR_ARG, "training needs a classifier head (num_labels > 0)");
    if (!(o->hidden_dropout >= 0.f && o->hidden_dropout < 1.f) ||
        !(o->classifier_dropout >= 0.f && o->classifier_dropout < 1.f) ||
        !(o->attention_dropout >= 0.f && o->attention_dropout < 1.f))
        return vc_fail(VC_ERR_ARG, "dropout probabilities must be in [0, 1), got %g (hidden), %g (classifier) and "
                                   "%g (attention)", (double)o->hidden_dropout, (double)o->classifier_dropout,
                       (double)o->attention_dropout);
    if (o->drop_path_rate != 0.f) return vc_fail(VC_ERR_ARG, "MobileViT has no drop path (leave it at 0)");
    vc_status st = check_shape(m, B, H, W, !o->eval);
    if (!st) st = vc_step_kernels(m->be, o->bf16, &t->mixed, &t->be); /* convs and transformer layers */
    if (st) return st;
    t->ready = 0;
    st = prepare(m, B, H, W, o->checkpointing != 0);
    if (st) return st;
    t->opts = *o;
    memcpy(t->px, px, sizeof(float) * (size_t)B * c->num_channels * H * W);
    st = conv_fwd(m, t, &n->stem, &t->stem, t->px, 1);
    if (!st) st = ir_fwd(m, t, &n->ir0[0], &t->ir0, t->stem.a, 1);
    const float *x = t->ir0.out;
    for (int j = 0; j < 3 && !st; j++) {
        st = ir_fwd(m, t, &n->ir1[j], &t->ir1[j], x, 1);
        x = t->ir1[j].out;
    }
    for (int k = 0; k < 3 && !st; k++) {
        st = ir_fwd(m, t, &n->blocks[k].down, &t->blk[k].down, x, 1);
        if (!st) st = body_fwd(m, t, k, 1);
        x = t->blk[k].fus.a;
    }
    if (!st) st = conv_fwd(m, t, &n->exp, &t->exp, x, 1);
    if (st) return st;
    const int CL = c->neck[6];
    be->global_avg_pool(t->pool, t->exp.a, B, CL, (size_t)t->exp.h * t->exp.w);
    be->dropout(t->drop, t->pool, (size_t)B * CL, o->classifier_dropout, head_seed(o->seed));
    be->linear(logits, t->drop, n->cls_w, n->cls_b, B, c->num_labels, CL, 0); /* fp32 classifier */
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

vc_status vc_mobilevit_train_forward(vc_mobilevit *m, const float *px, int B, int H, int W, const int64_t *labels,
                                     const vc_train_opts *o, float *loss, float *logits) {
    if (vc_params_check_bound(&m->params) || vc_params_check_bound(&m->buffers)) return VC_ERR_ARG;
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

/* ---- backward ---- */

/* dout: d a on entry (overwritten: d y, then d z). din (NULL-able) = d in (assign). */
static void conv_bwd(const vc_mobilevit *m, const vc_mobilevit_train *t, const mv_conv *cv, const mv_conv *g,
                     const mv_cs *s, const float *in, float *dout, float *din) {
    const vc_backend *be = t->be;
    const int B = t->B, pad = cv->k / 2;
    const size_t HW = (size_t)s->h * s->w;
    if (cv->act) be->silu_backward(dout, dout, s->y, (size_t)B * cv->cout * HW);
    if (cv->bn)
        be->batchnorm_backward(dout, GRAD(g->gamma), GRAD(g->beta), dout, s->z, s->mean, s->rstd, cv->gamma, B,
                               cv->cout, HW, !t->opts.eval);
    be->conv2d_backward(din, GRAD(g->w), NULL, dout, in, cv->w, B, cv->cin, s->hin, s->win, cv->cout, cv->k, cv->k,
                        cv->stride, cv->stride, pad, pad, 1, 1, cv->groups, t->scratch);
}

/* ga: d out on entry, d x on return (when need_dx). Uses gb, gc, gd. */
static void ir_bwd(const vc_mobilevit *m, vc_mobilevit_train *t, const mv_ir *ir, const mv_ir *g, const mv_is *s,
                   const float *x, int need_dx) {
    float *d1 = t->ga;
    if (ir->residual) { /* ga is also the residual's gradient: keep it */
        memcpy(t->gb, t->ga, sizeof(float) * (size_t)t->B * ir->reduce.cout * s->r.h * s->r.w);
        d1 = t->gb;
    }
    conv_bwd(m, t, &ir->reduce, &g->reduce, &s->r, s->d.a, d1, t->gc);
    conv_bwd(m, t, &ir->dw, &g->dw, &s->d, s->e.a, t->gc, t->gd);
    if (!ir->residual) {
        conv_bwd(m, t, &ir->expand, &g->expand, &s->e, x, t->gd, need_dx ? t->ga : NULL);
        return;
    }
    conv_bwd(m, t, &ir->expand, &g->expand, &s->e, x, t->gd, need_dx ? t->gb : NULL);
    if (need_dx) m->be->add_into(t->ga, t->gb, (size_t)t->B * ir->expand.cin * s->e.hin * s->e.win);
}

/* Backward of MobileViT block b's body: ga holds d(fusion output) on entry, d(down.out) (the
 * downsampling unit's output) on return. Uses gb, gc, gd. */
static void body_bwd(const vc_mobilevit *m, vc_mobilevit_train *t, int b) {
    const vc_backend *be = t->be;
    const mv_block *k = &m->w.blocks[b], *g = &m->g.blocks[b];
    mv_bs *s = &t->blk[b];
    const int B = t->B, d = k->d, C = k->C;
    const size_t hw = (size_t)s->h * s->w, rows = (size_t)s->S * s->N;
    conv_bwd(m, t, &k->fusion, &g->fusion, &s->fus, s->cat, t->ga, t->gb);
    be->concat_channels_backward(t->ga, t->gc, t->gb, C, C, B, hw); /* ga: d residual (the block's stream) */
    conv_bwd(m, t, &k->proj, &g->proj, &s->proj, s->pin, t->gc, t->gd);
    float *dfold = t->gd;
    if (s->resized) {
        be->resize_bilinear_backward(t->gb, t->gd, B, d, s->he, s->we, s->h, s->w);
        dfold = t->gb;
    }
    be->patch_fold_backward(t->gc, dfold, B, d, s->he, s->we, 2, 2);
    be->layernorm_backward(t->gc, GRAD(g->ln_w), GRAD(g->ln_b), t->gc, s->tok[k->depth], s->ln_mean, s->ln_rstd,
                           k->ln_w, rows, d);
    const vc_encoder_dims ed = enc_dims(m, k, s, t->opts.hidden_dropout, t->opts.attention_dropout);
    for (int j = k->depth - 1; j >= 0; j--)
        vc_encoder_layer_backward(be, &k->layers[j], &g->layers[j], &ed, t->gc, s->tok[j], &s->sv[j], &s->work,
                                  layer_seed(t->opts.seed, b, j), 1);
    be->patch_unfold_backward(t->gb, t->gc, B, d, s->he, s->we, 2, 2);
    float *dc1 = t->gb;
    if (s->resized) {
        be->resize_bilinear_backward(t->gc, t->gb, B, d, s->h, s->w, s->he, s->we);
        dc1 = t->gc;
    }
    conv_bwd(m, t, &k->c1x1, &g->c1x1, &s->c1, s->kxk.a, dc1, t->gd);
    conv_bwd(m, t, &k->kxk, &g->kxk, &s->kxk, s->down.out, t->gd, t->gb);
    be->add_into(t->ga, t->gb, (size_t)B * C * hw);
}

/* The first unit (forward order) with a bound gradient; MV_UNITS when none. */
static int lowest_trainable(const vc_mobilevit *m) {
    for (int u = 0; u < MV_UNITS; u++)
        for (int i = m->unit_first[u]; i < m->unit_first[u + 1]; i++)
            if (*m->grads.slots[i].field) return u;
    return MV_UNITS;
}

/* Each unit's backward runs right after its checkpointing re-run (ck), which refills the
 * shared saves. The forward succeeded on these inputs, so the re-runs cannot fail.
 * dpx (NULL-able): d objective / d pixels, which takes the gradient through every unit. */
static void backward_locked(vc_mobilevit *m, vc_mobilevit_train *t, float *dpx) {
    const vc_mobilevit_config *c = &m->cfg;
    const vc_backend *be = m->be;
    const mv_net *w = &m->w, *g = &m->g;
    const int B = t->B, CL = c->neck[6], lowest = dpx ? MV_U_STEM : lowest_trainable(m), ck = t->ckpt;
    if (lowest == MV_UNITS) return;
    be->linear_backward(lowest < MV_U_HEAD ? t->dpool : NULL, GRAD(g->cls_w), GRAD(g->cls_b), t->dlogits, t->drop,
                        w->cls_w, B, c->num_labels, CL);
    if (lowest == MV_U_HEAD) return;
    be->dropout(t->dpool, t->dpool, (size_t)B * CL, t->opts.classifier_dropout, head_seed(t->opts.seed));
    be->global_avg_pool_backward(t->ga, t->dpool, B, CL, (size_t)t->exp.h * t->exp.w);
    if (ck) conv_fwd(m, t, &w->exp, &t->exp, t->blk[2].fus.a, 0);
    conv_bwd(m, t, &w->exp, &g->exp, &t->exp, t->blk[2].fus.a, t->ga, lowest < MV_U_EXP ? t->gb : NULL);
    if (lowest == MV_U_EXP) return;
    float *tmp = t->ga; /* d(last block output) is in gb: make it ga */
    t->ga = t->gb, t->gb = tmp;
    for (int k = 2; k >= 0 && MV_U_BLK0 + k >= lowest; k--) {
        const mv_ir *down = &w->blocks[k].down;
        const float *x = k > 0 ? t->blk[k - 1].fus.a : t->ir1[2].out;
        if (ck) body_fwd(m, t, k, 0);
        body_bwd(m, t, k);
        if (ck) ir_fwd(m, t, down, &t->blk[k].down, x, 0);
        ir_bwd(m, t, down, &g->blocks[k].down, &t->blk[k].down, x, MV_U_BLK0 + k > lowest);
    }
    for (int j = 2; j >= 0 && MV_U_IR1 + j >= lowest; j--) {
        const float *x = j > 0 ? t->ir1[j - 1].out : t->ir0.out;
        if (ck) ir_fwd(m, t, &w->ir1[j], &t->ir1[j], x, 0);
        ir_bwd(m, t, &w->ir1[j], &g->ir1[j], &t->ir1[j], x, MV_U_IR1 + j > lowest);
    }
    if (lowest <= MV_U_IR0) {
        if (ck) ir_fwd(m, t, &w->ir0[0], &t->ir0, t->stem.a, 0);
        ir_bwd(m, t, &w->ir0[0], &g->ir0[0], &t->ir0, t->stem.a, lowest < MV_U_IR0);
    }
    if (lowest == MV_U_STEM) {
        if (ck) conv_fwd(m, t, &w->stem, &t->stem, t->px, 0);
        conv_bwd(m, t, &w->stem, &g->stem, &t->stem, t->px, t->ga, dpx);
    }
}

vc_status vc_mobilevit_backward(vc_mobilevit *m, const vc_backward_args *a) {
    vc_mobilevit_train *t = m->train;
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
