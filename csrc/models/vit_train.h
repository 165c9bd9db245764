/* ViT training: a forward that keeps activations, the cross-entropy loss, and a backward that
 * accumulates parameter gradients into the bound gradient arrays.
 *
 * One training step at a time per model: the saved activations live in the model (one block,
 * sized per batch shape and reused). A second training call while one runs fails with
 * VC_ERR_ARG instead of corrupting them; inference forwards may run alongside. */
#ifndef VC_VIT_TRAIN_H
#define VC_VIT_TRAIN_H

#include <stdint.h>

#include "models/vit.h"

typedef struct {
    float hidden_dropout;  /* embeddings, attention output, MLP output (transformers' hidden_dropout_prob) */
    float label_smoothing; /* cross-entropy, as torch */
    uint64_t seed;         /* dropout masks of this step (regenerated in backward) */
    int checkpointing;     /* keep only each layer's input; recompute the layer in backward */
    int bf16;              /* mixed precision: the encoder layers' linear layers (QKV, output, MLP) run
                            * bf16 GEMMs with fp32 accumulation, forward and backward; weights (the
                            * master copy), activations, norms, softmax, GELU and gradients stay fp32 */
    float attention_dropout; /* on the attention probabilities (attention_probs_dropout_prob) */
} vc_vit_train_opts;

typedef struct vc_vit_train vc_vit_train;
void vc_vit_train_free(vc_vit_train *t);

/* Binds gradient slot i (same numbering as the parameters) to a float32 array of the slot's
 * shape that backward accumulates into; x NULL unbinds it (the tensor is frozen). */
vc_status vc_vit_bind_grad(vc_vit *m, int i, const vc_tensor *x);

/* px [B, C, H, W] at the config's image size; labels [B] in [0, num_labels) or NULL (no loss,
 * nothing kept for backward). loss: [1] (NULL-able); logits [B, num_labels]. */
vc_status vc_vit_train_forward(vc_vit *m, const float *px, int B, int H, int W, const int64_t *labels,
                               const vc_vit_train_opts *o, float *loss, float *logits);
/* Gradients of the kept forward's loss, added into the bound gradient arrays. Uses up the
 * kept forward (a second backward fails, as in torch). */
vc_status vc_vit_backward(vc_vit *m);
/* Bytes of activation memory the last training forward kept (saved tensors, not scratch). */
size_t vc_vit_train_saved_bytes(const vc_vit *m);

#endif
