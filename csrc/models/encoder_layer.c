#include "models/encoder_layer.h"

#include <stdio.h>

vc_status vc_encoder_layer_slots(vc_param_table *t, vc_encoder_layer *y, const char *prefix, int index, int C, int I,
                                 int qkv_bias) {
    struct {
        const float **field;
        const char *name;
        int rows, cols; /* cols 0: a vector */
        int optional_bias;
    } spec[] = {
        {&y->ln1_w, "layernorm_before.weight", C, 0, 0},
        {&y->ln1_b, "layernorm_before.bias", C, 0, 0},
        {&y->q_w, "attention.attention.query.weight", C, C, 0},
        {&y->q_b, "attention.attention.query.bias", C, 0, 1},
        {&y->k_w, "attention.attention.key.weight", C, C, 0},
        {&y->k_b, "attention.attention.key.bias", C, 0, 1},
        {&y->v_w, "attention.attention.value.weight", C, C, 0},
        {&y->v_b, "attention.attention.value.bias", C, 0, 1},
        {&y->o_w, "attention.output.dense.weight", C, C, 0},
        {&y->o_b, "attention.output.dense.bias", C, 0, 0},
        {&y->ln2_w, "layernorm_after.weight", C, 0, 0},
        {&y->ln2_b, "layernorm_after.bias", C, 0, 0},
        {&y->fc1_w, "intermediate.dense.weight", I, C, 0},
        {&y->fc1_b, "intermediate.dense.bias", I, 0, 0},
        {&y->fc2_w, "output.dense.weight", C, I, 0},
        {&y->fc2_b, "output.dense.bias", C, 0, 0},
    };
    char fmt[VC_PARAM_NAME_MAX];
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
        if (spec[i].optional_bias && !qkv_bias) {
            *spec[i].field = NULL;
            continue;
        }
        snprintf(fmt, sizeof fmt, "%s%s", prefix, spec[i].name);
        vc_status st = spec[i].cols ? vc_params_add(t, spec[i].field, 2, VC_SHAPE2(spec[i].rows, spec[i].cols), fmt,
                                                    index, 0)
                                    : vc_params_add(t, spec[i].field, 1, VC_SHAPE1(spec[i].rows), fmt, index, 0);
        if (st) return st;
    }
    return VC_OK;
}

void vc_encoder_scratch_sizes(const vc_backend *be, int B, int T, int C, int I, int H, size_t sizes[7]) {
    const size_t BT = (size_t)B * T;
    sizes[0] = sizes[1] = sizes[2] = sizes[3] = sizes[4] = BT * C; /* h, q, k, v, ctx */
    sizes[5] = BT * I;                                             /* mlp */
    sizes[6] = be->attention_scratch(B, T, H);
}

void vc_apply_activation(const vc_backend *be, vc_activation act, float *x, size_t n) {
    switch (act) {
    case VC_ACT_GELU: be->gelu(x, n); break;
    case VC_ACT_GELU_TANH: be->gelu_tanh(x, n); break;
    case VC_ACT_SILU: be->silu(x, n); break;
    case VC_ACT_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.f ? x[i] : 0.f;
        break;
    }
}

void vc_encoder_layer_forward(const vc_backend *be, const vc_encoder_layer *y, float *x, int B, int T, int C, int H,
                              int I, vc_activation act, float eps, const vc_encoder_scratch *s, float *probs) {
    const size_t BT = (size_t)B * T;
    be->layernorm(s->h, x, y->ln1_w, y->ln1_b, BT, C, eps);
    be->linear(s->q, s->h, y->q_w, y->q_b, (int)BT, C, C, 0);
    be->linear(s->k, s->h, y->k_w, y->k_b, (int)BT, C, C, 0);
    be->linear(s->v, s->h, y->v_w, y->v_b, (int)BT, C, C, 0);
    be->attention(s->ctx, C, s->q, s->k, s->v, C, B, T, H, C / H, probs, s->attn_scratch);
    be->linear(x, s->ctx, y->o_w, y->o_b, (int)BT, C, C, 1); /* residual fused */
    be->layernorm(s->h, x, y->ln2_w, y->ln2_b, BT, C, eps);
    be->linear(s->mlp, s->h, y->fc1_w, y->fc1_b, (int)BT, I, C, 0);
    vc_apply_activation(be, act, s->mlp, BT * I);
    be->linear(x, s->mlp, y->fc2_w, y->fc2_b, (int)BT, C, I, 1); /* residual fused */
}
