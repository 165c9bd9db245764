/* bf16 mixed precision for a training step, shared by the model families.
 *
 * A step in bf16 runs on a copy of the backend table (on the caller's stack: nothing shared is
 * modified) whose GEMM-shaped layers, linear and conv, use the bf16 kernels: operands rounded
 * to bf16, fp32 accumulation, fp32 results. Everything else in the copy is the fp32 kernel, so
 * weights (the master copy), activations, norms, softmax, activations and gradients stay fp32.
 * Families call their classifier through the model's own table: it is one small [B, C] x
 * [C, L] product that feeds the loss directly, with nothing to gain from bf16. */
#ifndef VC_MIXED_PRECISION_H
#define VC_MIXED_PRECISION_H

#include "ops/backend.h"
#include "vc.h"

/* *out: be itself (bf16 == 0) or `copy` filled with the bf16 layer kernels. Fails (VC_ERR_ARG)
 * when the backend has no bf16 kernels. */
static inline vc_status vc_step_kernels(const vc_backend *be, int bf16, vc_backend *copy, const vc_backend **out) {
    *out = be;
    if (!bf16) return VC_OK;
    if (!be->linear_bf16 || !be->linear_backward_bf16 || !be->conv2d_bf16 || !be->conv2d_backward_bf16)
        return vc_fail(VC_ERR_ARG, "the %s backend has no bf16 kernels (use fp32 precision)", be->name);
    *copy = *be;
    copy->linear = be->linear_bf16;
    copy->linear_backward = be->linear_backward_bf16;
    copy->conv2d = be->conv2d_bf16;
    copy->conv2d_backward = be->conv2d_backward_bf16;
    *out = copy;
    return VC_OK;
}

#endif
