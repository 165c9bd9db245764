/* The MobileViT structs, shared by the inference pass (mobilevit.c) and the training pass
 * (mobilevit_train.c). Internal to csrc/models.
 *
 * The network topology is built twice with one function: once over the parameter table (the
 * weights) and once over the gradient table (same slot numbering), so `w` and `g` are mirror
 * images whose pointers lead to weights and to gradient arrays. BatchNorm running statistics
 * are buffers (a third table, filled on the weight pass only): training writes them. */
#ifndef VC_MOBILEVIT_INTERNAL_H
#define VC_MOBILEVIT_INTERNAL_H

#include "core/arena_pool.h"
#include "models/mobilevit.h"
#include "models/params.h"

#define VC_MOBILEVIT_BN_EPS 1e-5f      /* MobileViTConvLayer's nn.BatchNorm2d(eps=1e-5, momentum=0.1) */
#define VC_MOBILEVIT_BN_MOMENTUM 0.1f

typedef struct {
    const float *w;               /* convolution.weight (no conv bias in MobileViT) */
    const float *gamma, *beta;    /* normalization.weight / .bias; NULL: no norm (conv_1x1) */
    const float *rmean, *rvar;    /* normalization.running_mean / _var (buffers, weight pass only) */
    int cin, cout, k, stride, groups, bn, act;
} mv_conv;

typedef struct {
    mv_conv expand, dw, reduce;
    int residual;
} mv_ir;

typedef struct {
    int C, d, depth, mlp;
    mv_ir down;
    mv_conv kxk, c1x1, proj, fusion;
    vc_encoder_layer *layers;
    const float *ln_w, *ln_b;
} mv_block;

/* Units, in forward order, for freezing: slot ranges tell which ones have a bound gradient. */
enum { MV_U_STEM = 0, MV_U_IR0, MV_U_IR1, MV_U_BLK0 = MV_U_IR1 + 3, MV_U_EXP = MV_U_BLK0 + 3, MV_U_HEAD, MV_UNITS };

typedef struct {
    mv_conv stem, exp;
    mv_ir ir0[1], ir1[3];
    mv_block blocks[3];
    const float *cls_w, *cls_b;
} mv_net;

typedef struct vc_mobilevit_train vc_mobilevit_train;

struct vc_mobilevit {
    vc_mobilevit_config cfg;
    const vc_backend *be;
    mv_net w, g;                        /* weights; gradients (NULL = frozen) */
    vc_encoder_layer *all_layers, *all_grads;
    vc_param_table params, grads, buffers;
    int unit_first[MV_UNITS + 1];       /* first parameter slot of each unit */
    vc_arena_pool arenas;
    vc_mobilevit_train *train;          /* made by the first training forward */
};

void vc_mobilevit_train_free(vc_mobilevit_train *t);

#endif
