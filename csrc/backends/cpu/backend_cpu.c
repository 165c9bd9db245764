/* The CPU backend's table. */
#include <stdlib.h>

#include "backends/cpu/bf16.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "ops/backend.h"

static void *cpu_alloc(size_t bytes) {
    /* 64-byte alignment: one cache line, one AVX-512 register. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    return aligned_alloc(64, rounded ? rounded : 64);
}

static void cpu_free(void *p) { free(p); }

static const vc_backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .linear = cpu_linear,
    .layernorm = cpu_layernorm,
    .gelu = cpu_gelu,
    .gelu_tanh = cpu_gelu_tanh,
    .silu = cpu_silu,
    .add = cpu_add,
    .softmax_rows = cpu_softmax_rows,
    .attention = cpu_attention,
    .attention_scratch = cpu_attention_scratch,
    .patch_embed = cpu_patch_embed,
    .conv2d = cpu_conv2d,
    .conv2d_scratch = cpu_conv2d_scratch,
    .layernorm_channels = cpu_layernorm_channels,
    .global_avg_pool = cpu_global_avg_pool,
    .scale_channels_add = cpu_scale_channels_add,
    .resize_bilinear = cpu_resize_bilinear,
    .concat_channels = cpu_concat_channels,
    .patch_unfold = cpu_patch_unfold,
    .patch_fold = cpu_patch_fold,
    /* training */
    .linear_backward = cpu_linear_backward,
    .linear_kn_backward = cpu_linear_kn_backward,
    .layernorm_train = cpu_layernorm_train,
    .layernorm_backward = cpu_layernorm_backward,
    .layernorm_channels_train = cpu_layernorm_channels_train,
    .layernorm_channels_backward = cpu_layernorm_channels_backward,
    .gelu_backward = cpu_gelu_backward,
    .gelu_tanh_backward = cpu_gelu_tanh_backward,
    .silu_backward = cpu_silu_backward,
    .relu_backward = cpu_relu_backward,
    .softmax_backward = cpu_softmax_backward,
    .attention_backward = cpu_attention_backward,
    .attention_backward_scratch = cpu_attention_backward_scratch,
    .conv2d_backward = cpu_conv2d_backward,
    .conv2d_backward_scratch = cpu_conv2d_backward_scratch,
    .patch_embed_backward = cpu_patch_embed_backward,
    .patch_embed_backward_scratch = cpu_patch_embed_backward_scratch,
    .global_avg_pool_backward = cpu_global_avg_pool_backward,
    .scale_channels_add_backward = cpu_scale_channels_add_backward,
    .resize_bilinear_backward = cpu_resize_bilinear_backward,
    .concat_channels_backward = cpu_concat_channels_backward,
    .patch_unfold_backward = cpu_patch_fold,   /* a permutation: its inverse is its adjoint */
    .patch_fold_backward = cpu_patch_unfold,
    .cross_entropy = cpu_cross_entropy,
    .dropout = cpu_dropout,
    .drop_path = cpu_drop_path,
    .batchnorm_forward = cpu_batchnorm_forward,
    .batchnorm_backward = cpu_batchnorm_backward,
    .add_into = cpu_add_into,
    .scale = cpu_scale,
    .attention_dropout = cpu_attention_dropout,
    .attention_dropout_backward = cpu_attention_dropout_backward,
    /* bf16 compute */
    .gemm_bf16 = cpu_gemm_bf16,
    .linear_bf16 = cpu_linear_bf16,
    .linear_backward_bf16 = cpu_linear_backward_bf16,
    .conv2d_bf16 = cpu_conv2d_bf16,
    .conv2d_backward_bf16 = cpu_conv2d_backward_bf16,
    .linear_io = cpu_linear_io,
    .attention_kv = cpu_attention_kv,
    .attention_kv_scratch = cpu_attention_kv_scratch,
    .token_embed = cpu_token_embed,
};

const vc_backend *vc_backend_cpu(void) { return &cpu_backend; }
