/* Options of one training step, one struct for every family so that one binding serves them
 * all. A family reads the fields it has; a regulariser it does not have must be left at 0
 * (the family's training forward rejects it otherwise). */
#ifndef VC_TRAIN_OPTS_H
#define VC_TRAIN_OPTS_H

#include <stdint.h>

#include "vc.h"

typedef struct {
    float hidden_dropout;     /* ViT: embeddings, attention output, MLP output; MobileViT: the
                               * transformer's attention and MLP outputs (hidden_dropout_prob) */
    float attention_dropout;  /* ViT, MobileViT: on the attention probabilities (attention_probs_dropout_prob) */
    float classifier_dropout; /* MobileViT: on the pooled features before the classifier */
    float drop_path_rate;     /* ConvNeXt: stochastic depth of the last block, linear from 0 over the blocks */
    float label_smoothing;    /* cross-entropy, as torch */
    uint64_t seed;            /* dropout masks of this step (regenerated in backward) */
    int checkpointing;        /* keep only each block's input; recompute the block in backward */
    int bf16;                 /* mixed precision (ops/mixed_precision.h): the GEMM-shaped layers run bf16
                               * GEMMs with fp32 accumulation; weights, norms and gradients stay fp32 */
    int eval;                 /* an eval-mode forward kept for a backward (input gradients, saliency):
                               * the regularisers are 0 (the binding checks) and BatchNorm normalises
                               * with its running statistics and leaves them alone, as torch's eval() */
} vc_train_opts;

/* What one backward is asked for; one struct for every family, as vc_train_opts for the forward.
 * The objective is sum(logits * dlogits) when dlogits is given, else the kept forward's loss. */
typedef struct {
    const float *dlogits; /* [B, L] d objective / d logits to start from; NULL: the kept loss's gradient */
    float *dpx;           /* [B, C, H, W] receives d objective / d pixel_values (assigned); NULL: not wanted */
    int B, H, W;          /* the shape the caller sized dlogits (B) and dpx (B, H, W) for; -1: unchecked */
} vc_backward_args;

/* The checks every family's backward makes, under its training lock, before it runs: a forward
 * is kept (kept), the caller's arrays fit it (its input was [B, C, H, W]; L labels) and it has an
 * objective: a->dlogits, copied here into dlogits[B, L] (the family's loss-gradient buffer), or
 * the loss of a forward with labels (has_loss), whose gradient dlogits already holds.
 * VC_ERR_ARG with a message otherwise (nothing written). */
vc_status vc_backward_begin(const vc_backward_args *a, int kept, int has_loss, int B, int H, int W, int L,
                            float *dlogits);

#endif
