/* MobileViT training: a forward that keeps activations (BatchNorm on batch statistics, running
 * statistics updated as torch: momentum 0.1, unbiased variance), the cross-entropy loss, and a
 * backward that accumulates every parameter gradient (BatchNorm gamma/beta included) into the
 * bound gradient arrays.
 *
 * One training step at a time per model (the saved activations live in the model); a second
 * concurrent training call fails with VC_ERR_ARG. num_batches_tracked is the caller's (Python). */
#ifndef VC_MOBILEVIT_TRAIN_H
#define VC_MOBILEVIT_TRAIN_H

#include <stdint.h>

#include "models/mobilevit.h"
#include "models/train_opts.h"

/* Binds gradient slot i (parameter numbering) to a float32 array of the slot's shape; NULL
 * unbinds it (frozen). */
vc_status vc_mobilevit_bind_grad(vc_mobilevit *m, int i, const vc_tensor *x);

/* px [B, C, H, W]; labels [B] in [0, num_labels) or NULL (no loss: a backward then needs a
 * logits gradient; the running statistics are still updated, as a torch forward in train mode).
 * o->eval: BatchNorm on the running statistics, left as they are (torch's eval mode).
 * loss [1] NULL-able; logits [B, num_labels]. */
vc_status vc_mobilevit_train_forward(vc_mobilevit *m, const float *px, int B, int H, int W, const int64_t *labels,
                                     const vc_train_opts *o, float *loss, float *logits);
/* Gradients of the kept forward's objective (its loss, or sum(logits * a->dlogits)), added into
 * the bound arrays; a->dpx receives the input gradient. Uses the forward up. */
vc_status vc_mobilevit_backward(vc_mobilevit *m, const vc_backward_args *a);
/* Bytes of training memory held (saved activations + scratch) for the last batch shape. */
size_t vc_mobilevit_train_saved_bytes(const vc_mobilevit *m);
/* The bytes a training step on [B, C, H, W] would hold (what vc_mobilevit_train_saved_bytes
 * reports after it), computed by the same planner without allocating or running anything. */
vc_status vc_mobilevit_train_plan_bytes(const vc_mobilevit *m, int B, int H, int W, int checkpointing,
                                        size_t *bytes);

#endif
