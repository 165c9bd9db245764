/* Decoder entry point: defaults, argument validation, dispatch, and the small numeric helpers
 * the decoders share (argmax, log-softmax, sampling, counter RNG).
 *
 * ref: transformers GenerationMixin.generate / GenerationConfig.validate (5.x) for the checks. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "generate/gen_internal.h"

void vc_gen_config_init(vc_gen_config *c) {
    memset(c, 0, sizeof *c);
    c->max_length = 20;
    c->num_beams = 1;
    c->num_return_sequences = 1;
    c->temperature = 1.0f;
    c->top_k = 50;
    c->top_p = 1.0f;
    c->repetition_penalty = 1.0f;
    c->length_penalty = 1.0f;
    c->forced_bos_token_id = -1;
}

void vc_gen_result_free(vc_gen_result *r) {
    if (!r) return;
    free(r->sequences);
    free(r->sequences_scores);
    free(r->beam_indices);
    free(r->scores);
    memset(r, 0, sizeof *r);
}

void *gen_calloc(size_t n, size_t size) {
    size_t bytes;
    if (!vc_mul_ok(n, size, &bytes)) {
        vc_fail(VC_ERR_MEMORY, "generate: buffer size overflows");
        return NULL;
    }
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) vc_fail(VC_ERR_MEMORY, "generate: cannot allocate %zu bytes", bytes);
    return p;
}

float *gen_scores_push(vc_gen_result *r, int rows, int V) {
    size_t step_n = (size_t)rows * (size_t)V, total, bytes;
    if (!vc_mul_ok(step_n, (size_t)r->n_steps + 1, &total) || !vc_mul_ok(total, sizeof(float), &bytes)) {
        vc_fail(VC_ERR_MEMORY, "generate: scores size overflows");
        return NULL;
    }
    float *p = realloc(r->scores, bytes);
    if (!p) {
        vc_fail(VC_ERR_MEMORY, "generate: cannot allocate %zu bytes of scores", bytes);
        return NULL;
    }
    r->scores = p;
    float *blk = p + step_n * (size_t)r->n_steps;
    for (size_t i = 0; i < step_n; i++) blk[i] = NAN;
    r->n_steps++;
    r->score_rows = rows;
    r->vocab_size = V;
    return blk;
}

int gen_is_eos(const vc_gen_config *c, int32_t tok) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == tok) return 1;
    return 0;
}

vc_status gen_call(const vc_gen_model *m, vc_gen_step *st, float *logits) {
    vc_clear_error();
    vc_status s = m->next_logits(m->ctx, st, logits);
    if (s != VC_OK && !strcmp(vc_last_error(), "no error message")) vc_fail(s, "next_logits failed at step %d", st->step);
    return s;
}

/* ---- ranking ---------------------------------------------------------------------------- */

int gen_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (gen_ranks_above(x[i], i, x[best], best)) best = i;
    return best;
}

void gen_log_softmax(const float *in, float *out, int V) {
    float m = -INFINITY;
    for (int i = 0; i < V; i++) {
        if (isnan(in[i])) { /* torch propagates NaN through the max: the whole row is NaN */
            for (int j = 0; j < V; j++) out[j] = NAN;
            return;
        }
        if (in[i] > m) m = in[i];
    }
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += (double)expf(in[i] - m);
    float lse = (float)log(sum);
    for (int i = 0; i < V; i++) out[i] = (in[i] - m) - lse;
}

int gen_sample_softmax(const float *x, int n, double u) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > m) m = x[i];
    if (!(m > -INFINITY) || isinf(m)) return -1;
    double total = 0.0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i])) total += exp((double)x[i] - (double)m);
    if (!(total > 0.0) || !isfinite(total)) return -1;
    double target = u * total, cum = 0.0;
    int last = -1;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i])) continue;
        double w = exp((double)x[i] - (double)m);
        if (w <= 0.0) continue;
        cum += w;
        last = i;
        if (cum > target) return i;
    }
    return last;
}

/* ---- counter-based RNG (splitmix64 finaliser chained over the counters) ------------------ */

static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double vc_gen_uniform(uint64_t seed, uint64_t stream, uint64_t step, uint64_t j) {
    uint64_t h = mix64(seed);
    h = mix64(h ^ mix64(stream + 0x1234567ull));
    h = mix64(h ^ step);
    h = mix64(h ^ (j * 0xD6E8FEB86659FD93ull));
    return (double)(h >> 11) * 0x1.0p-53;
}

/* ---- validation and dispatch ------------------------------------------------------------ */

static vc_status check_ids(const int32_t *ids, int n, int V, const char *what, int below_v) {
    if (n < 0 || (n > 0 && !ids)) return vc_fail(VC_ERR_ARG, "%s: bad list (count %d)", what, n);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0) return vc_fail(VC_ERR_ARG, "%s must hold non-negative token ids, got %d", what, ids[i]);
        if (below_v && ids[i] >= V)
            return vc_fail(VC_ERR_ARG, "%s holds token %d, outside the vocabulary (size %d)", what, ids[i], V);
    }
    return VC_OK;
}

vc_status vc_gen_check(const vc_gen_config *c, int V, const int32_t *prompt, int N, int P) {
    if (!c) return vc_fail(VC_ERR_ARG, "generate: NULL config");
    if (N < 1 || P < 1 || !prompt)
        return vc_fail(VC_ERR_ARG, "prompt_ids must have at least one row and one token, got (%d, %d)", N, P);
    for (size_t i = 0; i < (size_t)N * (size_t)P; i++)
        if (prompt[i] < 0) return vc_fail(VC_ERR_ARG, "prompt_ids must be non-negative, got %d", prompt[i]);
    if (c->num_beams < 1) return vc_fail(VC_ERR_ARG, "num_beams must be >= 1, got %d", c->num_beams);
    if (c->num_return_sequences < 1)
        return vc_fail(VC_ERR_ARG, "num_return_sequences must be >= 1, got %d", c->num_return_sequences);
    if (c->num_beams == 1 && !c->do_sample && c->num_return_sequences > 1)
        return vc_fail(VC_ERR_ARG,
                       "num_return_sequences must be 1 for greedy decoding (do_sample=False, num_beams=1), got %d",
                       c->num_return_sequences);
    if (c->num_beams > 1 && c->num_return_sequences > c->num_beams)
        return vc_fail(VC_ERR_ARG, "num_return_sequences (%d) has to be smaller or equal to num_beams (%d)",
                       c->num_return_sequences, c->num_beams);
    if (c->max_length <= P)
        return vc_fail(VC_ERR_ARG,
                       "max_length (%d) must be greater than the prompt length (%d): set max_length or max_new_tokens",
                       c->max_length, P);
    if (c->max_length > (1 << 24)) return vc_fail(VC_ERR_ARG, "max_length %d is too large", c->max_length);
    if (c->min_length < 0) return vc_fail(VC_ERR_ARG, "min_length must be >= 0, got %d", c->min_length);
    if (c->min_new_tokens < 0) return vc_fail(VC_ERR_ARG, "min_new_tokens must be >= 0, got %d", c->min_new_tokens);
    if (c->do_sample) {
        if (!(c->temperature > 0.0f) || !isfinite(c->temperature))
            return vc_fail(VC_ERR_ARG, "temperature must be a strictly positive float for sampling, got %g",
                           (double)c->temperature);
        if (c->top_k < 0) return vc_fail(VC_ERR_ARG, "top_k must be >= 0 (0 disables it), got %d", c->top_k);
        if (!(c->top_p > 0.0f && c->top_p <= 1.0f))
            return vc_fail(VC_ERR_ARG, "top_p must be in (0, 1], got %g", (double)c->top_p);
        if (c->min_tokens_to_keep < 0)
            return vc_fail(VC_ERR_ARG, "min_tokens_to_keep must be >= 0, got %d", c->min_tokens_to_keep);
    }
    if (!(c->repetition_penalty > 0.0f) || !isfinite(c->repetition_penalty))
        return vc_fail(VC_ERR_ARG, "repetition_penalty must be a strictly positive float, got %g",
                       (double)c->repetition_penalty);
    if (c->no_repeat_ngram_size < 0)
        return vc_fail(VC_ERR_ARG, "no_repeat_ngram_size must be >= 0, got %d", c->no_repeat_ngram_size);
    if (!isfinite(c->length_penalty))
        return vc_fail(VC_ERR_ARG, "length_penalty must be finite, got %g", (double)c->length_penalty);
    if (c->early_stopping < VC_EARLY_STOP_FALSE || c->early_stopping > VC_EARLY_STOP_NEVER)
        return vc_fail(VC_ERR_ARG, "early_stopping must be True, False or \"never\"");
    int vocab_known = V > 0;
    if (!vocab_known) V = INT32_MAX;
    vc_status s;
    if ((s = check_ids(c->eos_ids, c->n_eos, V, "eos_token_id", 0))) return s;
    if ((s = check_ids(c->suppress_tokens, c->n_suppress, V, "suppress_tokens", 0))) return s;
    if ((s = check_ids(c->begin_suppress_tokens, c->n_begin_suppress, V, "begin_suppress_tokens", 0))) return s;
    if ((s = check_ids(c->forced_eos_ids, c->n_forced_eos, V, "forced_eos_token_id", vocab_known))) return s;
    if (c->forced_bos_token_id < -1 || c->forced_bos_token_id >= V)
        return vc_fail(VC_ERR_ARG, "forced_bos_token_id %d is outside the vocabulary (size %d)",
                       c->forced_bos_token_id, V);
    if (c->n_bad_words < 0 || (c->n_bad_words > 0 && (!c->bad_words || !c->bad_word_lens)))
        return vc_fail(VC_ERR_ARG, "bad_words_ids: bad list");
    int total = 0;
    for (int i = 0; i < c->n_bad_words; i++) {
        if (c->bad_word_lens[i] < 1) return vc_fail(VC_ERR_ARG, "bad_words_ids must not hold an empty list");
        total += c->bad_word_lens[i];
    }
    if ((s = check_ids(c->bad_words, total, V, "bad_words_ids", vocab_known))) return s;
    int rows = (c->num_beams > c->num_return_sequences ? c->num_beams : c->num_return_sequences);
    size_t tot;
    if (!vc_mul_ok((size_t)N, (size_t)rows, &tot) || tot > (size_t)INT32_MAX / 2 ||
        (vocab_known && !vc_mul_ok(tot, (size_t)V, &tot)))
        return vc_fail(VC_ERR_ARG, "generate: %d prompts x %d rows x %d vocabulary is too large", N, rows, V);
    return VC_OK;
}

vc_status vc_generate(const vc_gen_model *model, const vc_gen_config *cfg, const int32_t *prompt, int n_prompts,
                      int prompt_len, vc_gen_result *out) {
    if (!cfg || !out) return vc_fail(VC_ERR_ARG, "generate: NULL config or result");
    memset(out, 0, sizeof *out);
    if (!model || !model->next_logits) return vc_fail(VC_ERR_ARG, "generate: model has no next_logits callback");
    if (model->vocab_size < 1)
        return vc_fail(VC_ERR_ARG, "generate: vocab_size must be >= 1, got %d", model->vocab_size);
    vc_status s = vc_gen_check(cfg, model->vocab_size, prompt, n_prompts, prompt_len);
    if (s) return s;
    vc_gen_config c = *cfg;
    if (!c.has_pad && c.n_eos > 0) { /* transformers: pad_token_id defaults to eos_token_id[0] */
        c.has_pad = 1;
        c.pad_token_id = c.eos_ids[0];
    }
    s = c.num_beams > 1 ? gen_beam_search(model, &c, prompt, n_prompts, prompt_len, out)
                        : gen_greedy_or_sample(model, &c, prompt, n_prompts, prompt_len, out);
    if (s) vc_gen_result_free(out);
    return s;
}
