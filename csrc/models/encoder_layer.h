/* The pre-norm transformer encoder layer shared by ViT and MobileViT:
 *   x += Wo attn(LN1(x)) + bo;   x += W2 act(W1 LN2(x) + b1) + b2
 * with transformers' ViTLayer tensor names under a prefix. */
#ifndef VC_ENCODER_LAYER_H
#define VC_ENCODER_LAYER_H

#include "models/params.h"
#include "ops/backend.h"

typedef enum { VC_ACT_GELU = 0, VC_ACT_GELU_TANH, VC_ACT_RELU, VC_ACT_SILU } vc_activation;

typedef struct {
    const float *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    const float *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} vc_encoder_layer;

/* Scratch for one call over B sequences of T tokens of width C, MLP width inter. */
typedef struct {
    float *h, *q, *k, *v, *ctx, *mlp, *attn_scratch;
} vc_encoder_scratch;

/* Adds the layer's slots, names formatted from `prefix` (a printf format with one %d for the
 * layer index), e.g. "encoder.layer.%d." or "encoder.layer.2.transformer.layer.%d.". */
vc_status vc_encoder_layer_slots(vc_param_table *t, vc_encoder_layer *y, const char *prefix, int index, int C, int inter,
                                 int qkv_bias);
/* Float counts for vc_encoder_scratch's buffers, in field order (7 entries). */
void vc_encoder_scratch_sizes(const vc_backend *be, int B, int T, int C, int inter, int H, size_t sizes[7]);
void vc_apply_activation(const vc_backend *be, vc_activation act, float *x, size_t n);
/* x: [B*T, C] updated in place. probs: [B, H, T, T] or NULL. */
void vc_encoder_layer_forward(const vc_backend *be, const vc_encoder_layer *y, float *x, int B, int T, int C, int H,
                              int inter, vc_activation act, float eps, const vc_encoder_scratch *s, float *probs);

#endif
