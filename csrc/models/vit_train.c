/* ViT training pass. See vit_train.h.
 *
 * Legend: B batch, T = 1 + G tokens, C hidden, I MLP width, H heads, L labels, N layers,
 * Cin image channels, P patch size.
 *
 * Kept for backward (one block, carved by plan()): the pixels, every layer's input
 * xin[l] [B,T,C] (xin[N] is the last layer's output), each layer's vc_encoder_saved, and for
 * the head the class-token rows before/after the final norm and d loss / d logits. The final
 * norm runs on the class-token rows only: no other row reaches the logits.
 * With checkpointing only xin[] is kept; one vc_encoder_saved is shared and refilled by
 * re-running each layer's forward inside backward (dropout masks, the attention-probability
 * ones included, regenerate from the seed). */
#include "models/vit_train.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "models/encoder_layer_train.h"
#include "models/vit_internal.h"
#include "ops/mixed_precision.h"

#define GRAD(p) ((float *)(p)) /* gradient tables hold writable memory behind const fields */

struct vc_vit_train {
    pthread_mutex_t lock; /* one training call at a time */
    char *block;
    size_t bytes;
    int B, Hi, Wi, ckpt, threads; /* the shape and thread count `block` was planned for */
    float *px;           /* [B,Cin,Hi,Wi] copy of the input */
    float **xin;         /* [N+1] -> [B,T,C] */
    vc_encoder_saved *saved; /* [N], or [1] with checkpointing */
    vc_encoder_work work;
    float *cls_in, *cls_ln, *mean, *rstd, *dcls; /* [B,C] [B,C] [B] [B] [B,C] */
    float *dlogits;                              /* [B,L] */
    float *gx;                                   /* [B,T,C] gradient of the residual stream */
    float *patch;                                /* patch embedding (backward) scratch */
    vc_train_opts opts;
    int ready;    /* a forward is kept for one backward */
    int has_loss; /* ... and it had labels: dlogits holds the loss gradient */
};

void vc_vit_train_free(vc_vit_train *t) {
    if (!t) return;
    pthread_mutex_destroy(&t->lock);
    free(t->block);
    free(t->xin);
    free(t->saved);
    free(t);
}

size_t vc_vit_train_saved_bytes(const vc_vit *m) { return m->train ? m->train->bytes : 0; }

vc_status vc_vit_bind_grad(vc_vit *m, int i, const vc_tensor *x) {
    return vc_params_bind_grad(&m->grads, i, x);
}

static vc_encoder_dims layer_dims(const vc_vit *m, int B, int T, float p_hidden, float p_attn) {
    const vc_vit_config *c = &m->cfg;
    vc_encoder_dims d = {B, T, c->hidden_size, c->num_heads, c->intermediate_size, c->act, c->layer_norm_eps,
                         p_hidden, p_attn};
    return d;
}

/* Carves the block (measuring when b->base is NULL). */
static void plan(const vc_vit *m, vc_vit_train *t, vc_bump *b, int B, int T, int Hi, int Wi, int ckpt) {
    const vc_vit_config *c = &m->cfg;
    const size_t BT = (size_t)B * T, C = c->hidden_size, P = c->patch_size;
    const size_t G = (size_t)(Hi / c->patch_size) * (Wi / c->patch_size);
    const vc_encoder_dims d = layer_dims(m, B, T, 0.f, 0.f);
    t->px = vc_bump_floats(b, (size_t)B * c->num_channels * Hi * Wi);
    for (int l = 0; l <= c->num_layers; l++) t->xin[l] = vc_bump_floats(b, BT * C);
    for (int l = 0; l < (ckpt ? 1 : c->num_layers); l++) vc_encoder_saved_carve(b, &d, &t->saved[l]);
    t->cls_in = vc_bump_floats(b, (size_t)B * C);
    t->cls_ln = vc_bump_floats(b, (size_t)B * C);
    t->mean = vc_bump_floats(b, (size_t)B);
    t->rstd = vc_bump_floats(b, (size_t)B);
    t->dcls = vc_bump_floats(b, (size_t)B * C);
    t->dlogits = vc_bump_floats(b, (size_t)B * c->num_labels);
    t->gx = vc_bump_floats(b, BT * C);
    vc_encoder_work_carve(b, m->be, &d, &t->work);
    size_t pf = (size_t)B * G * c->num_channels * P * P;
    size_t pb = m->be->patch_embed_backward_scratch(B, c->num_channels, Hi, Wi, c->patch_size);
    t->patch = vc_bump_floats(b, pf > pb ? pf : pb);
}

/* The training state sized for this batch shape (kept when the shape repeats). */
static vc_status prepare(vc_vit *m, int B, int T, int Hi, int Wi, int ckpt) {
    const int N = m->cfg.num_layers;
    vc_vit_train *t = m->train;
    const int nt = vc_get_num_threads(); /* sizes the attention scratch; pinned for the step */
    if (t && t->block && t->B == B && t->Hi == Hi && t->Wi == Wi && t->ckpt == ckpt && t->threads == nt) return VC_OK;
    free(t->block);
    t->block = NULL;
    t->bytes = 0;
    t->ready = 0;
    vc_bump b = {NULL, 0};
    plan(m, t, &b, B, T, Hi, Wi, ckpt);
    if (!(t->block = aligned_alloc(64, b.off))) return vc_fail(VC_ERR_MEMORY, "out of memory for training "
                                                                              "activations (%zu bytes)", b.off);
    t->bytes = b.off;
    b = (vc_bump){t->block, 0};
    plan(m, t, &b, B, T, Hi, Wi, ckpt);
    t->B = B, t->Hi = Hi, t->Wi = Wi, t->ckpt = ckpt, t->threads = nt;
    (void)N;
    return VC_OK;
}

static vc_status ensure_state(vc_vit *m) {
    if (m->train) return VC_OK;
    vc_vit_train *t = calloc(1, sizeof *t);
    if (!t) return vc_fail(VC_ERR_MEMORY, "out of memory");
    t->xin = calloc((size_t)m->cfg.num_layers + 1, sizeof *t->xin);
    t->saved = calloc((size_t)m->cfg.num_layers, sizeof *t->saved);
    if (!t->xin || !t->saved || pthread_mutex_init(&t->lock, NULL)) {
        free(t->xin);
        free(t->saved);
        free(t);
        return vc_fail(VC_ERR_MEMORY, "out of memory");
    }
    m->train = t;
    return VC_OK;
}

static uint64_t layer_seed(uint64_t seed, int l) { return seed + (uint64_t)(l + 1) * 0x632be59bd9b4e019ULL; }
static uint64_t embed_seed(uint64_t seed) { return seed ^ 0xe3b0c44298fc1c14ULL; }

static vc_status forward_locked(vc_vit *m, vc_vit_train *t, const float *px, int B, int Hi, int Wi,
                                const int64_t *labels, const vc_train_opts *o, float *loss, float *logits) {
    const vc_vit_config *c = &m->cfg;
    const vc_backend *be = m->be;
    const int T = vc_vit_num_tokens(m, Hi, Wi, 0);
    if (T < 0) return VC_ERR_ARG;
    if (c->num_labels <= 0) return vc_fail(VC_ERR_ARG, "training needs a classifier (num_labels > 0)");
    if (!(o->hidden_dropout >= 0.f && o->hidden_dropout < 1.f))
        return vc_fail(VC_ERR_ARG, "hidden dropout must be in [0, 1), got %g", (double)o->hidden_dropout);
    if (!(o->attention_dropout >= 0.f && o->attention_dropout < 1.f))
        return vc_fail(VC_ERR_ARG, "attention dropout must be in [0, 1), got %g", (double)o->attention_dropout);
    if (o->classifier_dropout != 0.f || o->drop_path_rate != 0.f)
        return vc_fail(VC_ERR_ARG, "ViT has no classifier dropout or drop path (leave them at 0)");
    vc_backend mixed;
    const vc_backend *lbe; /* the encoder layers' kernels (bf16 GEMMs in mixed precision) */
    vc_status st = vc_step_kernels(be, o->bf16, &mixed, &lbe);
    if (st) return st;
    t->ready = 0;
    st = prepare(m, B, T, Hi, Wi, o->checkpointing != 0);
    if (st) return st;
    t->opts = *o;
    const int C = c->hidden_size, N = c->num_layers, L = c->num_labels;
    const size_t BT = (size_t)B * T;
    const vc_vit_weights *w = &m->w;

    /* Embeddings: x0 = drop([cls; patches W + b] + pos). */
    memcpy(t->px, px, sizeof(float) * (size_t)B * c->num_channels * Hi * Wi);
    float *x0 = t->xin[0];
    be->patch_embed(x0, t->px, w->patch_w, w->patch_b, B, c->num_channels, Hi, Wi, c->patch_size, C, t->patch);
    for (int b = 0; b < B; b++) {
        float *row0 = x0 + (size_t)b * T * C;
        memcpy(row0, w->cls_token, sizeof(float) * C);
        be->add(row0, row0, w->pos_embed, (size_t)T * C);
    }
    be->dropout(x0, x0, BT * C, o->hidden_dropout, embed_seed(o->seed));

    const vc_encoder_dims d = layer_dims(m, B, T, o->hidden_dropout, o->attention_dropout);
    for (int l = 0; l < N; l++)
        vc_encoder_layer_train_forward(lbe, &w->layers[l], &d, t->xin[l + 1], t->xin[l],
                                       &t->saved[o->checkpointing ? 0 : l], &t->work, layer_seed(o->seed, l));

    /* Head on the class-token rows. */
    for (int b = 0; b < B; b++) memcpy(t->cls_in + (size_t)b * C, t->xin[N] + (size_t)b * T * C, sizeof(float) * C);
    be->layernorm_train(t->cls_ln, t->mean, t->rstd, t->cls_in, w->ln_w, w->ln_b, (size_t)B, C, c->layer_norm_eps);
    be->linear(logits, t->cls_ln, w->cls_w, w->cls_b, B, L, C, 0);
    if (labels) {
        float l_val = 0.f;
        st = be->cross_entropy(&l_val, t->dlogits, logits, labels, B, L, o->label_smoothing, -100);
        if (st) return st;
        if (loss) *loss = l_val;
    }
    t->has_loss = labels != NULL;
    t->ready = 1; /* without labels, a backward seeds d logits itself (vc_backward_args) */
    return VC_OK;
}

vc_status vc_vit_train_forward(vc_vit *m, const float *px, int B, int Hi, int Wi, const int64_t *labels,
                               const vc_train_opts *o, float *loss, float *logits) {
    if (B <= 0) return vc_fail(VC_ERR_ARG, "pixel_values: batch is empty");
    if (vc_params_check_bound(&m->params)) return VC_ERR_ARG;
    vc_status st = ensure_state(m);
    if (st) return st;
    if (pthread_mutex_trylock(&m->train->lock))
        return vc_fail(VC_ERR_ARG, "another training step is running on this model (training is not concurrent)");
    int saved;
    vc_threads_pin(0, &saved); /* one count for the plan's per-thread scratch and the kernels */
    st = forward_locked(m, m->train, px, B, Hi, Wi, labels, o, loss, logits);
    vc_threads_unpin(saved);
    pthread_mutex_unlock(&m->train->lock);
    return st;
}

/* The lowest block a gradient must reach: -1 for the embeddings, N when only the head trains. */
static int lowest_trainable(const vc_vit *m) {
    const vc_vit_weights *g = &m->g;
    if (g->cls_token || g->pos_embed || g->patch_w || g->patch_b) return -1;
    for (int l = 0; l < m->cfg.num_layers; l++)
        if (vc_encoder_layer_trainable(&g->layers[l])) return l;
    return m->cfg.num_layers;
}

/* dpx (NULL-able): d objective / d pixels, which takes the gradient through every layer. */
static void backward_locked(vc_vit *m, vc_vit_train *t, float *dpx) {
    const vc_vit_config *c = &m->cfg;
    const vc_backend *be = m->be;
    const vc_vit_weights *w = &m->w, *g = &m->g;
    const vc_train_opts *o = &t->opts;
    const int B = t->B, T = vc_vit_num_tokens(m, t->Hi, t->Wi, 0), C = c->hidden_size, N = c->num_layers;
    const size_t BT = (size_t)B * T;
    const int lowest = dpx ? -1 : lowest_trainable(m);

    /* Head: logits = LN(cls_in) W^T + b. */
    be->linear_backward(lowest < N ? t->dcls : NULL, GRAD(g->cls_w), GRAD(g->cls_b), t->dlogits, t->cls_ln, w->cls_w,
                        B, c->num_labels, C);
    if (lowest >= N && !g->ln_w && !g->ln_b) return;
    be->layernorm_backward(lowest < N ? t->dcls : NULL, GRAD(g->ln_w), GRAD(g->ln_b), t->dcls, t->cls_in, t->mean,
                           t->rstd, w->ln_w, (size_t)B, C);
    if (lowest >= N) return;
    memset(t->gx, 0, sizeof(float) * BT * C);
    for (int b = 0; b < B; b++) memcpy(t->gx + (size_t)b * T * C, t->dcls + (size_t)b * C, sizeof(float) * C);

    const vc_encoder_dims d = layer_dims(m, B, T, o->hidden_dropout, o->attention_dropout);
    vc_backend mixed;
    const vc_backend *lbe;
    vc_step_kernels(be, o->bf16, &mixed, &lbe); /* checked by the kept forward */
    for (int l = N - 1; l >= 0 && l >= lowest; l--) {
        vc_encoder_saved *s = &t->saved[o->checkpointing ? 0 : l];
        /* Recompute: the output goes to dctx, free until the backward below needs it. */
        if (o->checkpointing)
            vc_encoder_layer_train_forward(lbe, &w->layers[l], &d, t->work.dctx, t->xin[l], s, &t->work,
                                           layer_seed(o->seed, l));
        vc_encoder_layer_backward(lbe, &w->layers[l], &g->layers[l], &d, t->gx, t->xin[l], s, &t->work,
                                  layer_seed(o->seed, l), l > lowest);
    }
    if (lowest >= 0) return;

    /* Embeddings: x0 = drop(concat(cls, patches) + pos). */
    be->dropout(t->gx, t->gx, BT * C, o->hidden_dropout, embed_seed(o->seed));
    for (int b = 0; b < B; b++) {
        const float *gb = t->gx + (size_t)b * T * C;
        if (g->pos_embed) be->add_into(GRAD(g->pos_embed), gb, (size_t)T * C);
        if (g->cls_token) be->add_into(GRAD(g->cls_token), gb, (size_t)C);
    }
    if (g->patch_w || g->patch_b || dpx)
        be->patch_embed_backward(dpx, GRAD(g->patch_w), GRAD(g->patch_b), t->gx, t->px, w->patch_w, B,
                                 c->num_channels, t->Hi, t->Wi, c->patch_size, C, t->patch);
}

vc_status vc_vit_backward(vc_vit *m, const vc_backward_args *a) {
    vc_vit_train *t = m->train;
    if (!t) return vc_fail(VC_ERR_ARG, "backward() needs a training forward first");
    if (pthread_mutex_trylock(&t->lock))
        return vc_fail(VC_ERR_ARG, "another training step is running on this model (training is not concurrent)");
    vc_status st = vc_backward_begin(a, t->ready, t->has_loss, t->B, t->Hi, t->Wi, m->cfg.num_labels, t->dlogits);
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
