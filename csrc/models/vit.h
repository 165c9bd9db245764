/* Vision Transformer (ViTModel / ViTForImageClassification, and timm's ViT layout once
 * its keys are renamed): config, parameter table and forward pass.
 *
 * Parameters are named as transformers' ViTModel names them (no "vit." prefix); the
 * classifier is "classifier.*". The caller binds each slot to memory it owns (a mmap'd
 * checkpoint, a NumPy array); the model never copies or frees parameters.
 */
#ifndef VC_VIT_H
#define VC_VIT_H

#include <stdint.h>

#include "models/encoder_layer.h"
#include "core/tensor.h"
#include "ops/backend.h"
#include "vc.h"

typedef struct {
    int hidden_size, num_layers, num_heads, intermediate_size;
    int patch_size, image_size, num_channels;
    int qkv_bias;        /* query/key/value carry biases */
    int has_pooler;      /* pooler.dense + tanh on the class token */
    int pooler_size;     /* pooler output features (defaults to hidden_size) */
    int num_labels;      /* 0: no classifier */
    vc_activation act;
    float layer_norm_eps;
} vc_vit_config;

typedef struct vc_vit vc_vit;

/* Outputs the caller wants, each NULL when not wanted; all float32 row-major. */
typedef struct {
    float *last_hidden;     /* [B, T, C] after the final layer norm */
    float *pooled;          /* [B, pooler_size] (needs has_pooler) */
    float *logits;          /* [B, num_labels] (needs num_labels > 0) */
    float **hidden_states;  /* num_layers+1 pointers to [B, T, C]: embeddings, then each layer */
    float **attentions;     /* num_layers pointers to [B, heads, T, T] */
} vc_vit_outputs;

vc_status vc_vit_create(const vc_vit_config *cfg, const vc_backend *be, vc_vit **out);
void vc_vit_free(vc_vit *m);
const vc_vit_config *vc_vit_get_config(const vc_vit *m);

int vc_vit_num_params(const vc_vit *m);
/* Name and shape of slot i; ndim <= 4. */
const char *vc_vit_param_name(const vc_vit *m, int i, int *ndim, int64_t shape[4]);
/* Binds slot i to a float32 tensor of the slot's shape (the model keeps the pointer only). */
vc_status vc_vit_bind(vc_vit *m, int i, const vc_tensor *x);

/* Token count for an input of H x W pixels, or -1 (error set) if H, W are not usable. */
int vc_vit_num_tokens(const vc_vit *m, int H, int W, int interpolate_pos_encoding);

/* px: [B, num_channels, H, W]. Safe to call from several threads at once. */
vc_status vc_vit_forward(vc_vit *m, const float *px, int B, int H, int W, int interpolate_pos_encoding,
                         const vc_vit_outputs *out);

#endif
