/* The CPU backend's table. */
#include <stdlib.h>

#include "backends/cpu/cpu.h"
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
    .linear_io = cpu_linear_io,
    .attention_kv = cpu_attention_kv,
    .attention_kv_scratch = cpu_attention_kv_scratch,
    .token_embed = cpu_token_embed,
};

const vc_backend *vc_backend_cpu(void) { return &cpu_backend; }
