/* Optimizer kernels for fine-tuning: fused in-place parameter updates (Adam, AdamW, SGD)
 * and gradient utilities (global norm, scaling, finiteness) on float32 arrays.
 *
 * Every update is one pass over each element, vectorised (AVX-512 / AVX2 bodies chosen at
 * run time, scalar otherwise) and split over the OpenMP threads in chunks of VC_CHUNK
 * elements across all tensors of a call, so many small tensors parallelise too.
 *
 * Arithmetic follows PyTorch's single-tensor CPU implementations operation by operation:
 * hyper-parameters and bias corrections are computed in double exactly as torch.optim does
 * in Python, cast to float, and each tensor op is reproduced with the same rounding (a fused
 * multiply-add where ATen's kernel uses one). The vector and scalar bodies compute the same
 * bits, so results do not depend on the instruction set, the thread count or the chunking.
 */
#ifndef VC_TRAIN_OPTIM_H
#define VC_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

/* One parameter tensor and its Adam state; all arrays hold n floats and must not overlap
 * (grad may be read-only). max_exp_avg_sq is used only with amsgrad. step is the step
 * count after this update (1 on the first). */
typedef struct {
    float *param;
    const float *grad;
    float *exp_avg, *exp_avg_sq, *max_exp_avg_sq;
    size_t n;
    int64_t step;
} vc_adam_tensor;

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int amsgrad;
    int decoupled; /* 1: AdamW (p *= 1 - lr*wd); 0: Adam (g += wd*p) */
} vc_adam_hparams;

/* One parameter tensor and its SGD momentum buffer (NULL when momentum is 0).
 * init_buf: the buffer has no history yet and is set to the gradient (torch's first step). */
typedef struct {
    float *param;
    const float *grad;
    float *momentum_buffer;
    size_t n;
    int init_buf;
} vc_sgd_tensor;

typedef struct {
    double lr, momentum, dampening, weight_decay;
    int nesterov;
} vc_sgd_hparams;

/* In-place updates of `count` tensors. VC_ERR_ARG for invalid hyper-parameters or a
 * missing buffer; VC_ERR_MEMORY when the work list cannot be allocated. */
vc_status vc_adam_update(const vc_adam_tensor *t, size_t count, const vc_adam_hparams *h);
vc_status vc_sgd_update(const vc_sgd_tensor *t, size_t count, const vc_sgd_hparams *h);

/* A read-only or writeable float span (for the gradient utilities). */
typedef struct {
    float *data;
    size_t n;
} vc_fspan;

/* The p-norm of all elements of all spans taken as one vector, accumulated in double:
 * p = 2 (the usual case, vectorised), p = INFINITY (max |x|), or any finite p > 0.
 * A NaN anywhere gives NaN; an infinity gives infinity. Deterministic for a given input
 * whatever the thread count. */
vc_status vc_grad_norm(const vc_fspan *x, size_t count, double p, double *out);

/* x *= s for every element of every span (float multiply, as torch's Tensor.mul_). */
vc_status vc_grad_scale(const vc_fspan *x, size_t count, float s);

/* 1 when every element of every span is finite, 0 when some is NaN or infinite. */
int vc_grad_all_finite(const vc_fspan *x, size_t count);

#endif
