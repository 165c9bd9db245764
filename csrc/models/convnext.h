/* ConvNeXt (timm's ConvNeXt, and transformers' ConvNextModel once its keys are renamed):
 * config, parameter table, forward with per-stage feature maps.
 *
 * Parameters are named as timm names them: stem.0/1, stages.i.downsample.0/1,
 * stages.i.blocks.j.{conv_dw,norm,mlp.fc1,mlp.fc2,gamma}, head.norm, head.fc. MLP weights may
 * be Linear [4C, C] or 1x1-conv [4C, C, 1, 1] (conv_mlp): the memory is the same.
 */
#ifndef VC_CONVNEXT_H
#define VC_CONVNEXT_H

#include <stdint.h>

#include "core/tensor.h"
#include "ops/backend.h"
#include "vc.h"

enum { VC_CONVNEXT_MAX_STAGES = 8 };

typedef struct {
    int num_stages;
    int depths[VC_CONVNEXT_MAX_STAGES];
    int dims[VC_CONVNEXT_MAX_STAGES];
    int num_channels;   /* input channels */
    int stem_patch;     /* stem conv kernel = stride (4) */
    int kernel_size;    /* depthwise kernel (7) */
    int mlp_ratio;      /* hidden = mlp_ratio * dim (4) */
    int layer_scale;    /* blocks carry gamma */
    int num_labels;     /* 0: no head */
    float eps;          /* LayerNorm2d / block norms (1e-6) */
    float head_eps;     /* head norm (timm 1e-6; transformers uses config.layer_norm_eps) */
} vc_convnext_config;

typedef struct vc_convnext vc_convnext;

typedef struct {
    float *stem_map;     /* [B, dims[0], H/P, W/P] after the stem norm, or NULL */
    float **stage_maps;  /* num_stages pointers to [B, dims[i], H_i, W_i], or NULL */
    float *pooled;       /* [B, dims[-1]] after the head norm, or NULL */
    float *logits;       /* [B, num_labels], or NULL */
} vc_convnext_outputs;

vc_status vc_convnext_create(const vc_convnext_config *cfg, const vc_backend *be, vc_convnext **out);
void vc_convnext_free(vc_convnext *m);
const vc_convnext_config *vc_convnext_get_config(const vc_convnext *m);
int vc_convnext_num_params(const vc_convnext *m);
const char *vc_convnext_param_name(const vc_convnext *m, int i, int *ndim, int64_t shape[4]);
vc_status vc_convnext_bind(vc_convnext *m, int i, const vc_tensor *x);
/* Spatial size of stage i's map for an H x W input (0 if too small). */
void vc_convnext_stage_size(const vc_convnext *m, int stage, int H, int W, int *Hs, int *Ws);
vc_status vc_convnext_forward(vc_convnext *m, const float *px, int B, int H, int W, const vc_convnext_outputs *out);

#endif
