/* Training pass of the pre-norm encoder layer (models/encoder_layer.h), shared by ViT and
 * (later) MobileViT: a forward that saves what the backward needs, and the backward.
 *
 * Legend: BT = B*T rows, C width, I MLP width, H heads, D = C/H.
 *   mid = x + drop(Wo attn(LN1(x)) + bo);   out = mid + drop(W2 act(W1 LN2(mid) + b1) + b2)
 *   attn(q, k, v) = drop_a(softmax(q k^T / sqrt(D))) v
 * drop: hidden dropout (p_hidden); drop_a: attention-probability dropout (p_attn). Both are
 * regenerated from the seed in backward, so no mask is kept. */
#ifndef VC_ENCODER_LAYER_TRAIN_H
#define VC_ENCODER_LAYER_TRAIN_H

#include <stdint.h>

#include "models/encoder_layer.h"
#include "models/train_mem.h"

/* Activations the backward reads (the layer input x is kept by the caller). */
typedef struct {
    float *ln1, *mean1, *rstd1; /* [BT,C], [BT], [BT] */
    float *q, *k, *v, *ctx;     /* [BT,C] */
    float *probs;               /* [B,H,T,T] softmax output (before attention dropout) */
    float *mid;                 /* [BT,C] residual stream after attention */
    float *ln2, *mean2, *rstd2; /* [BT,C], [BT], [BT] */
    float *fc1;                 /* [BT,I] pre-activation (the activation is recomputed) */
} vc_encoder_saved;

/* Working buffers of one layer's forward/backward (shared by all layers). */
typedef struct {
    float *dh, *tmp, *dq, *dk, *dv, *dctx; /* [BT,C] */
    float *dact, *act;                     /* [BT,I] */
    float *attn;                           /* attention forward/backward scratch */
} vc_encoder_work;

typedef struct {
    int B, T, C, H, I;
    vc_activation act;
    float eps, p_hidden, p_attn;
} vc_encoder_dims;

void vc_encoder_saved_carve(vc_bump *b, const vc_encoder_dims *d, vc_encoder_saved *s);
void vc_encoder_work_carve(vc_bump *b, const vc_backend *be, const vc_encoder_dims *d, vc_encoder_work *w);

/* out[BT,C] = layer(x[BT,C]); out must not alias x. Fills s. */
void vc_encoder_layer_train_forward(const vc_backend *be, const vc_encoder_layer *y, const vc_encoder_dims *d,
                                    float *out, const float *x, vc_encoder_saved *s, vc_encoder_work *w,
                                    uint64_t seed);
/* gx[BT,C]: d loss / d out on entry; d loss / d x on return (when need_dx; else left partial).
 * g: gradient pointers in the layer's layout, NULL for frozen tensors (+=). */
void vc_encoder_layer_backward(const vc_backend *be, const vc_encoder_layer *y, const vc_encoder_layer *g,
                               const vc_encoder_dims *d, float *gx, const float *x, const vc_encoder_saved *s,
                               vc_encoder_work *w, uint64_t seed, int need_dx);
/* 1 when any of the layer's gradients is bound. */
int vc_encoder_layer_trainable(const vc_encoder_layer *g);

#endif
