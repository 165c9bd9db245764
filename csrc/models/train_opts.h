/* Options of one training step, one struct for every family so that one binding serves them
 * all. A family reads the fields it has; a regulariser it does not have must be left at 0
 * (the family's training forward rejects it otherwise). */
#ifndef VC_TRAIN_OPTS_H
#define VC_TRAIN_OPTS_H

#include <stdint.h>

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
} vc_train_opts;

#endif
