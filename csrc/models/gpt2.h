/* GPT-2 decoder (transformers' GPT2LMHeadModel, with or without cross-attention, as the
 * decoder of a VisionEncoderDecoderModel): config, parameter table, full forward, and
 * decoding sessions that implement generate/generate.h's next-logits callback.
 *
 * Parameters are named as GPT2LMHeadModel names them ("transformer.h.0.attn.c_attn.weight",
 * "lm_head.weight"), plus VisionEncoderDecoderModel's "enc_to_dec_proj.{weight,bias}" when
 * the encoder's width differs from n_embd (it only feeds cross-attention, so it lives here).
 * Conv1D weights keep their stored [in, out] layout. The caller binds every slot to memory
 * it owns; the model never copies or frees parameters.
 *
 * Legend: C n_embd, H heads, D = C/H, I MLP width, V vocabulary, L layers, Te encoder tokens,
 * Ce encoder width, T tokens per row in a call.
 */
#ifndef VC_GPT2_H
#define VC_GPT2_H

#include <stdint.h>

#include "generate/generate.h"
#include "models/encoder_layer.h" /* vc_activation */
#include "core/tensor.h"
#include "ops/backend.h"
#include "vc.h"

typedef struct {
    int vocab_size, n_positions, n_embd, n_layer, n_head, n_inner;
    int add_cross_attention;
    int encoder_hidden_size;     /* Ce: width of the encoder states (cross-attention models) */
    int has_enc_proj;            /* enc_to_dec_proj: Linear(Ce -> C) applied to the encoder states */
    int tie_word_embeddings;     /* LM head = wte: no lm_head.weight slot */
    int scale_attn_weights;      /* scores / sqrt(D) */
    int scale_attn_by_inverse_layer_idx; /* and / (layer index + 1) */
    vc_activation act;
    float layer_norm_epsilon;
} vc_gpt2_config;

typedef struct vc_gpt2 vc_gpt2;
typedef struct vc_gpt2_session vc_gpt2_session;

vc_status vc_gpt2_create(const vc_gpt2_config *cfg, const vc_backend *be, vc_gpt2 **out);
void vc_gpt2_free(vc_gpt2 *m);
const vc_gpt2_config *vc_gpt2_get_config(const vc_gpt2 *m);
int vc_gpt2_num_params(const vc_gpt2 *m);
const char *vc_gpt2_param_name(const vc_gpt2 *m, int i, int *ndim, int64_t shape[4]);
vc_status vc_gpt2_bind(vc_gpt2 *m, int i, const vc_tensor *x);

/* A decoding session: the caches of one generation at a time, over n_inputs inputs.
 * enc: [n_inputs, Te, Ce] encoder states (cross-attention models; NULL with n_inputs = Te = 0
 * otherwise). Their cross-attention K/V are computed here, once per input, and shared by every
 * row (beam, return sequence) descending from that input. max_rows, max_len: expected rows and
 * tokens per row, preallocated so that steps do not allocate (the caches grow if exceeded).
 * Sessions of one model may run on different threads at once; a session is single-threaded. */
vc_status vc_gpt2_session_create(vc_gpt2 *m, const float *enc, int n_inputs, int Te, int max_rows, int max_len,
                                 vc_gpt2_session **out);
void vc_gpt2_session_free(vc_gpt2_session *s);
/* The vc_next_logits_fn of generate.h (ctx = the session). step->input_rows may be NULL: the
 * session then follows each row's input through parent_rows itself. */
vc_status vc_gpt2_next_logits(void *session, const vc_gen_step *step, float *logits);
/* Rows and tokens per row the session holds after its last call. */
int vc_gpt2_session_rows(const vc_gpt2_session *s);
int vc_gpt2_session_len(const vc_gpt2_session *s);

/* One pass over n rows of T tokens with no past (position ids 0..T-1), row i attending to
 * input i's encoder states: logits [n, T, V] for every position. */
vc_status vc_gpt2_forward(vc_gpt2 *m, const float *enc, int Te, const int32_t *ids, int n, int T, float *logits);

#endif
