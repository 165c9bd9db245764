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
#include "models/train_opts.h"

typedef struct vc_vit_train vc_vit_train;
void vc_vit_train_free(vc_vit_train *t);

/* Binds gradient slot i (same numbering as the parameters) to a float32 array of the slot's
 * shape that backward accumulates into; x NULL unbinds it (the tensor is frozen). */
vc_status vc_vit_bind_grad(vc_vit *m, int i, const vc_tensor *x);

/* px [B, C, H, W] at the config's image size; labels [B] in [0, num_labels) or NULL (no loss:
 * a backward then needs a logits gradient). loss: [1] (NULL-able); logits [B, num_labels]. */
vc_status vc_vit_train_forward(vc_vit *m, const float *px, int B, int H, int W, const int64_t *labels,
                               const vc_train_opts *o, float *loss, float *logits);
/* Gradients of the kept forward's objective (its loss, or sum(logits * a->dlogits)), added into
 * the bound gradient arrays; a->dpx receives the input gradient. Uses up the kept forward (a
 * second backward fails, as in torch). */
vc_status vc_vit_backward(vc_vit *m, const vc_backward_args *a);
/* Bytes of activation memory the last training forward kept (saved tensors, not scratch). */
size_t vc_vit_train_saved_bytes(const vc_vit *m);

#endif
