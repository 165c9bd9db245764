/* ConvNeXt training: a forward that keeps activations, the cross-entropy loss, and a backward that
 * accumulates parameter gradients into the bound gradient arrays.
 *
 * One training step at a time per model: the saved activations live in the model (one block,
 * sized per batch shape and reused). A second training call while one runs fails with
 * VC_ERR_ARG instead of corrupting them; inference forwards may run alongside. */
#ifndef VC_CONVNEXT_TRAIN_H
#define VC_CONVNEXT_TRAIN_H

#include <stdint.h>

#include "models/convnext.h"

typedef struct {
    float drop_path_rate;  /* stochastic depth of the last block; linear from 0 over the blocks (timm/transformers) */
    float label_smoothing; /* cross-entropy, as torch */
    uint64_t seed;         /* dropout masks of this step (regenerated in backward) */
    int checkpointing;     /* keep only each layer's input; recompute the layer in backward */
    int bf16;              /* mixed precision: the GEMM-shaped convs (stem, downsamples, the blocks'
                            * pointwise fc1/fc2) run bf16 GEMMs with fp32 accumulation, forward and
                            * backward; weights (the master copy), activations, depthwise convs,
                            * norms, GELU, the classifier, the loss and all gradients stay fp32 */
} vc_convnext_train_opts;

typedef struct vc_convnext_train vc_convnext_train;
void vc_convnext_train_free(vc_convnext_train *t);

/* Binds gradient slot i (same numbering as the parameters) to a float32 array of the slot's
 * shape that backward accumulates into; x NULL unbinds it (the tensor is frozen). */
vc_status vc_convnext_bind_grad(vc_convnext *m, int i, const vc_tensor *x);

/* px [B, C, H, W] at the config's image size; labels [B] in [0, num_labels) or NULL (no loss,
 * nothing kept for backward). loss: [1] (NULL-able); logits [B, num_labels]. */
vc_status vc_convnext_train_forward(vc_convnext *m, const float *px, int B, int H, int W, const int64_t *labels,
                               const vc_convnext_train_opts *o, float *loss, float *logits);
/* Gradients of the kept forward's loss, added into the bound gradient arrays. Uses up the
 * kept forward (a second backward fails, as in torch). */
vc_status vc_convnext_backward(vc_convnext *m);
/* Bytes of activation memory the last training forward kept (saved tensors, not scratch). */
size_t vc_convnext_train_saved_bytes(const vc_convnext *m);

#endif
