/* The ConvNeXt struct, shared by the inference pass (convnext.c) and the training pass
 * (convnext_train.c). Internal to csrc/models. */
#ifndef VC_CONVNEXT_INTERNAL_H
#define VC_CONVNEXT_INTERNAL_H

#include "core/arena_pool.h"
#include "models/convnext.h"
#include "models/params.h"

typedef struct {
    const float *dw_w, *dw_b, *norm_w, *norm_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *gamma;
} cnx_block;

typedef struct {
    const float *ds_norm_w, *ds_norm_b, *ds_w, *ds_b; /* stages > 0 */
    cnx_block *blocks;
} cnx_stage;

/* Pointers to every checkpoint tensor (parameters), or to their gradients. */
typedef struct {
    const float *stem_w, *stem_b, *stem_norm_w, *stem_norm_b, *head_norm_w, *head_norm_b, *fc_w, *fc_b;
    cnx_stage stages[VC_CONVNEXT_MAX_STAGES];
} cnx_weights;

typedef struct vc_convnext_train vc_convnext_train;

struct vc_convnext {
    vc_convnext_config cfg;
    const vc_backend *be;
    cnx_weights w, g;          /* parameters; gradients (writable memory, NULL = frozen) */
    cnx_block *all_blocks, *all_grads;
    vc_param_table params, grads;
    vc_arena_pool arenas;
    vc_convnext_train *train;  /* training state, made by the first training forward */
};

#endif
