/* MobileViT (transformers' MobileViTModel / MobileViTForImageClassification, output stride 32):
 * config, parameter table, forward with per-stage feature maps.
 *
 * BatchNorm is kept as in the checkpoint (not folded) so that one model serves inference and
 * training: a conv with a norm has "<prefix>.convolution.weight" and the parameters
 * "<prefix>.normalization.weight" / ".bias"; its running statistics are buffers
 * ("<prefix>.normalization.running_mean" / "running_var", float32, bound writable: training
 * updates them). Inference normalises with the running statistics. conv_1x1 in the MobileViT
 * blocks has neither norm nor bias. Names are transformers' without "mobilevit.".
 */
#ifndef VC_MOBILEVIT_H
#define VC_MOBILEVIT_H

#include <stdint.h>

#include "models/encoder_layer.h"
#include "core/tensor.h"
#include "ops/backend.h"
#include "vc.h"

enum { VC_MOBILEVIT_STAGES = 5 };

typedef struct {
    int num_channels;
    int neck[7];          /* neck_hidden_sizes: stem, layer 0..4 outputs, final expansion */
    int hidden[3];        /* transformer widths of layers 2, 3, 4 */
    int depth[3];         /* transformer layers in layers 2, 3, 4 (2, 4, 3) */
    int num_heads;
    int patch;            /* 2: patch_size */
    int kernel;           /* conv_kernel_size (3) */
    float expand_ratio;   /* inverted residual expansion (4.0; 2.0 for xx-small) */
    float mlp_ratio;      /* transformer MLP width = int(hidden * mlp_ratio) */
    float layer_norm_eps;
    int qkv_bias;
    vc_activation act;    /* silu */
    int num_labels;
} vc_mobilevit_config;

typedef struct vc_mobilevit vc_mobilevit;

typedef struct {
    float **stage_maps;  /* 5 pointers (layers 0..4) to [B, neck[i+1], H_i, W_i], each may be NULL */
    float *last_hidden;  /* [B, neck[6], H/32, W/32] after conv_1x1_exp */
    float *pooled;       /* [B, neck[6]] */
    float *logits;       /* [B, num_labels] */
} vc_mobilevit_outputs;

vc_status vc_mobilevit_create(const vc_mobilevit_config *cfg, const vc_backend *be, vc_mobilevit **out);
void vc_mobilevit_free(vc_mobilevit *m);
const vc_mobilevit_config *vc_mobilevit_get_config(const vc_mobilevit *m);
int vc_mobilevit_num_params(const vc_mobilevit *m);
const char *vc_mobilevit_param_name(const vc_mobilevit *m, int i, int *ndim, int64_t shape[4]);
vc_status vc_mobilevit_bind(vc_mobilevit *m, int i, const vc_tensor *x);
/* BatchNorm running statistics: slots like the parameters', bound to writable float32 arrays. */
int vc_mobilevit_num_buffers(const vc_mobilevit *m);
const char *vc_mobilevit_buffer_name(const vc_mobilevit *m, int i, int *ndim, int64_t shape[4]);
vc_status vc_mobilevit_bind_buffer(vc_mobilevit *m, int i, const vc_tensor *x);
/* Spatial size after the stem (stage -1) or after layer `stage` (0..4). */
void vc_mobilevit_stage_size(const vc_mobilevit *m, int stage, int H, int W, int *Hs, int *Ws);
vc_status vc_mobilevit_forward(vc_mobilevit *m, const float *px, int B, int H, int W, const vc_mobilevit_outputs *out);

#endif
