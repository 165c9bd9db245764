/* The ViT struct, shared by the inference pass (vit.c) and the training pass (vit_train.c).
 * Internal to csrc/models. */
#ifndef VC_VIT_INTERNAL_H
#define VC_VIT_INTERNAL_H

#include "core/arena_pool.h"
#include "models/encoder_layer.h"
#include "models/params.h"
#include "models/vit.h"

/* Pointers to every tensor of the checkpoint (parameters), or to their gradients. */
typedef struct {
    const float *cls_token, *pos_embed, *patch_w, *patch_b, *ln_w, *ln_b;
    const float *pool_w, *pool_b, *cls_w, *cls_b;
    vc_encoder_layer *layers; /* [num_layers] */
} vc_vit_weights;

typedef struct vc_vit_train vc_vit_train;

struct vc_vit {
    vc_vit_config cfg;
    const vc_backend *be;
    vc_vit_weights w;       /* parameters */
    vc_vit_weights g;       /* gradients (writable memory; NULL = not trained), same slots */
    vc_param_table params, grads;
    vc_arena_pool arenas;   /* inference activations, one arena per concurrent call */
    vc_vit_train *train;    /* training state, made by the first training forward */
};

#endif
