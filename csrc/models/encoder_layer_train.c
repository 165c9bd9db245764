/* Training forward/backward of the pre-norm encoder layer. See encoder_layer_train.h.
 * Gradient tables reuse vc_encoder_layer (const float * fields, the parameter layout); the
 * memory they point to is writable gradient storage, hence the casts in GRAD(). */
#include "models/encoder_layer_train.h"

#include <string.h>

#define GRAD(p) ((float *)(p))

enum { SITE_ATTN_OUT = 0, SITE_MLP_OUT = 1, SITE_ATTN_PROBS = 2 };

void vc_encoder_saved_carve(vc_bump *b, const vc_encoder_dims *d, vc_encoder_saved *s) {
    const size_t BT = (size_t)d->B * d->T, C = d->C;
    s->ln1 = vc_bump_floats(b, BT * C);
    s->mean1 = vc_bump_floats(b, BT);
    s->rstd1 = vc_bump_floats(b, BT);
    s->q = vc_bump_floats(b, BT * C);
    s->k = vc_bump_floats(b, BT * C);
    s->v = vc_bump_floats(b, BT * C);
    s->ctx = vc_bump_floats(b, BT * C);
    s->probs = vc_bump_floats(b, (size_t)d->B * d->H * d->T * d->T);
    s->mid = vc_bump_floats(b, BT * C);
    s->ln2 = vc_bump_floats(b, BT * C);
    s->mean2 = vc_bump_floats(b, BT);
    s->rstd2 = vc_bump_floats(b, BT);
    s->fc1 = vc_bump_floats(b, BT * d->I);
}

void vc_encoder_work_carve(vc_bump *b, const vc_backend *be, const vc_encoder_dims *d, vc_encoder_work *w) {
    const size_t BT = (size_t)d->B * d->T, C = d->C;
    float **bt_c[] = {&w->dh, &w->tmp, &w->dq, &w->dk, &w->dv, &w->dctx};
    for (size_t i = 0; i < sizeof bt_c / sizeof bt_c[0]; i++) *bt_c[i] = vc_bump_floats(b, BT * C);
    w->dact = vc_bump_floats(b, BT * d->I);
    w->act = vc_bump_floats(b, BT * d->I);
    size_t fa = be->attention_scratch(d->B, d->T, d->H), ba = be->attention_backward_scratch(d->B, d->T, d->H);
    w->attn = vc_bump_floats(b, fa > ba ? fa : ba);
}

int vc_encoder_layer_trainable(const vc_encoder_layer *g) {
    const float *p[] = {g->ln1_w, g->ln1_b, g->q_w, g->q_b, g->k_w, g->k_b, g->v_w, g->v_b,
                        g->o_w, g->o_b, g->ln2_w, g->ln2_b, g->fc1_w, g->fc1_b, g->fc2_w, g->fc2_b};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (p[i]) return 1;
    return 0;
}

static void activation_backward(const vc_backend *be, vc_activation act, float *dx, const float *x, size_t n) {
    switch (act) {
    case VC_ACT_GELU: be->gelu_backward(dx, dx, x, n); break;
    case VC_ACT_GELU_TANH: be->gelu_tanh_backward(dx, dx, x, n); break;
    case VC_ACT_SILU: be->silu_backward(dx, dx, x, n); break;
    case VC_ACT_RELU: be->relu_backward(dx, dx, x, n); break;
    }
}

/* dst = base + drop(W in + b): the residual is fused into the GEMM when nothing is dropped. */
static void residual_linear(const vc_backend *be, float *dst, const float *base, const float *in, const float *wt,
                            const float *bias, int M, int N, int K, float p, uint64_t seed, float *tmp) {
    if (p > 0.f) {
        be->linear(tmp, in, wt, bias, M, N, K, 0);
        be->dropout(tmp, tmp, (size_t)M * N, p, seed);
        be->add(dst, base, tmp, (size_t)M * N);
    } else {
        memcpy(dst, base, sizeof(float) * (size_t)M * N);
        be->linear(dst, in, wt, bias, M, N, K, 1);
    }
}

void vc_encoder_layer_train_forward(const vc_backend *be, const vc_encoder_layer *y, const vc_encoder_dims *d,
                                    float *out, const float *x, vc_encoder_saved *s, vc_encoder_work *w,
                                    uint64_t seed) {
    const int BT = d->B * d->T, C = d->C, I = d->I;
    be->layernorm_train(s->ln1, s->mean1, s->rstd1, x, y->ln1_w, y->ln1_b, (size_t)BT, C, d->eps);
    be->linear(s->q, s->ln1, y->q_w, y->q_b, BT, C, C, 0);
    be->linear(s->k, s->ln1, y->k_w, y->k_b, BT, C, C, 0);
    be->linear(s->v, s->ln1, y->v_w, y->v_b, BT, C, C, 0);
    if (d->p_attn > 0.f)
        be->attention_dropout(s->ctx, C, s->q, s->k, s->v, C, d->B, d->T, d->H, C / d->H, s->probs, d->p_attn,
                              vc_site_seed(seed, 0, SITE_ATTN_PROBS), w->attn);
    else
        be->attention(s->ctx, C, s->q, s->k, s->v, C, d->B, d->T, d->H, C / d->H, s->probs, w->attn);
    residual_linear(be, s->mid, x, s->ctx, y->o_w, y->o_b, BT, C, C, d->p_hidden, vc_site_seed(seed, 0, SITE_ATTN_OUT),
                    w->tmp);
    be->layernorm_train(s->ln2, s->mean2, s->rstd2, s->mid, y->ln2_w, y->ln2_b, (size_t)BT, C, d->eps);
    be->linear(s->fc1, s->ln2, y->fc1_w, y->fc1_b, BT, I, C, 0);
    memcpy(w->act, s->fc1, sizeof(float) * (size_t)BT * I);
    vc_apply_activation(be, d->act, w->act, (size_t)BT * I);
    residual_linear(be, out, s->mid, w->act, y->fc2_w, y->fc2_b, BT, C, I, d->p_hidden,
                    vc_site_seed(seed, 0, SITE_MLP_OUT), w->tmp);
}

void vc_encoder_layer_backward(const vc_backend *be, const vc_encoder_layer *y, const vc_encoder_layer *g,
                               const vc_encoder_dims *d, float *gx, const float *x, const vc_encoder_saved *s,
                               vc_encoder_work *w, uint64_t seed, int need_dx) {
    const int BT = d->B * d->T, C = d->C, I = d->I, H = d->H;
    const size_t nC = (size_t)BT * C, nI = (size_t)BT * I;
    const float p = d->p_hidden;

    /* MLP branch: out = mid + drop(fc2(act(fc1(LN2(mid))))); gx holds d out. */
    const float *dproj = gx;
    if (p > 0.f) {
        be->dropout(w->tmp, gx, nC, p, vc_site_seed(seed, 0, SITE_MLP_OUT));
        dproj = w->tmp;
    }
    memcpy(w->act, s->fc1, sizeof(float) * nI); /* recompute act(fc1) rather than keep it */
    vc_apply_activation(be, d->act, w->act, nI);
    be->linear_backward(w->dact, GRAD(g->fc2_w), GRAD(g->fc2_b), dproj, w->act, y->fc2_w, BT, C, I);
    activation_backward(be, d->act, w->dact, s->fc1, nI);
    be->linear_backward(w->dh, GRAD(g->fc1_w), GRAD(g->fc1_b), w->dact, s->ln2, y->fc1_w, BT, I, C);
    be->layernorm_backward(w->dh, GRAD(g->ln2_w), GRAD(g->ln2_b), w->dh, s->mid, s->mean2, s->rstd2, y->ln2_w,
                           (size_t)BT, C);
    be->add_into(gx, w->dh, nC); /* gx = d mid */

    /* Attention branch: mid = x + drop(o(attn(q, k, v))). */
    dproj = gx;
    if (p > 0.f) {
        be->dropout(w->tmp, gx, nC, p, vc_site_seed(seed, 0, SITE_ATTN_OUT));
        dproj = w->tmp;
    }
    be->linear_backward(w->dctx, GRAD(g->o_w), GRAD(g->o_b), dproj, s->ctx, y->o_w, BT, C, C);
    if (d->p_attn > 0.f)
        be->attention_dropout_backward(w->dq, w->dk, w->dv, C, w->dctx, C, s->q, s->k, s->v, s->probs, d->B, d->T, H,
                                       C / H, d->p_attn, vc_site_seed(seed, 0, SITE_ATTN_PROBS), w->attn);
    else
        be->attention_backward(w->dq, w->dk, w->dv, C, w->dctx, C, s->q, s->k, s->v, s->probs, d->B, d->T, H, C / H,
                               w->attn);
    be->linear_backward(w->dh, GRAD(g->q_w), GRAD(g->q_b), w->dq, s->ln1, y->q_w, BT, C, C);
    be->linear_backward(w->tmp, GRAD(g->k_w), GRAD(g->k_b), w->dk, s->ln1, y->k_w, BT, C, C);
    be->add_into(w->dh, w->tmp, nC);
    be->linear_backward(w->tmp, GRAD(g->v_w), GRAD(g->v_b), w->dv, s->ln1, y->v_w, BT, C, C);
    be->add_into(w->dh, w->tmp, nC);
    be->layernorm_backward(need_dx ? w->dh : NULL, GRAD(g->ln1_w), GRAD(g->ln1_b), w->dh, x, s->mean1, s->rstd1,
                           y->ln1_w, (size_t)BT, C);
    if (need_dx) be->add_into(gx, w->dh, nC); /* gx = d x */
}
