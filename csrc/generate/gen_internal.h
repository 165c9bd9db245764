/* Internals shared by the decoders: logits processors, ranking, model calls, score storage. */
#ifndef VC_GEN_INTERNAL_H
#define VC_GEN_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "generate/generate.h"

/* Per-row scratch for the processors: V bytes of marks, V floats, V sortable (value, index) keys. */
typedef struct {
    uint8_t *mark;
    float *tmp;
    uint64_t *keys;
    int V;
} gen_scratch;

vc_status gen_scratch_init(gen_scratch *w, int V);
void gen_scratch_free(gen_scratch *w);

/* Processors (transformers' _get_logits_processor order, sampling warpers excluded), in place
 * on one row. seq: the row's tokens so far (cur_len of them, prompt included). */
void gen_process(const vc_gen_config *c, int prompt_len, const int32_t *seq, int cur_len, float *s, int V,
                 gen_scratch *w);
/* Sampling warpers (temperature, top-k, top-p), in place. */
void gen_warp(const vc_gen_config *c, int min_keep, float *s, int V, gen_scratch *w);
/* Processors and, when cfg->do_sample, warpers: everything transformers applies to one row. */
void gen_process_all(const vc_gen_config *c, int min_keep, int prompt_len, const int32_t *seq, int cur_len,
                     float *s, int V, gen_scratch *w);

/* out = log_softmax(in) (may alias). */
void gen_log_softmax(const float *in, float *out, int V);
/* Index of the largest value, first one on ties, NaN ranking above numbers (torch.argmax). */
int gen_argmax(const float *x, int n);
/* Draws one index from softmax(x) with uniform u in [0, 1); -inf entries are never drawn. */
int gen_sample_softmax(const float *x, int n, double u);

/* "a ranks above b": torch.topk's order (NaN largest); ties broken by the lower index. */
static inline int gen_ranks_above(float a, int ia, float b, int ib) {
    int na = isnan(a), nb = isnan(b);
    if (na != nb) return na;
    if (!na && a != b) return a > b;
    return ia < ib;
}
/* The k best entries of x[0..n) in descending order, equal values ordered exactly as torch.topk
 * (sorted=True) orders them on CPU (gen_topk.c): idx[0..k). q: scratch of n pairs. */
typedef struct {
    float v;
    int32_t i;
} gen_pair;
void gen_topk(const float *x, int n, int k, int32_t *idx, gen_pair *q);

/* Token is one of the config's EOS ids. */
int gen_is_eos(const vc_gen_config *c, int32_t tok);

/* Calls the model and checks nothing is left half-done. */
vc_status gen_call(const vc_gen_model *m, vc_gen_step *st, float *logits);

/* Appends one step of scores ([rows * V], NaN-filled) to r; returns its block or NULL (error set). */
float *gen_scores_push(vc_gen_result *r, int rows, int V);

/* Overflow-checked calloc of n * size bytes; NULL with an error set. */
void *gen_calloc(size_t n, size_t size);

vc_status gen_greedy_or_sample(const vc_gen_model *m, const vc_gen_config *c, const int32_t *prompt, int N,
                               int P, vc_gen_result *out);
vc_status gen_beam_search(const vc_gen_model *m, const vc_gen_config *c, const int32_t *prompt, int N, int P,
                          vc_gen_result *out);

#endif
