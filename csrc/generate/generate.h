/* Token decoders (greedy, sampling, beam search, beam sampling) over a "next-token logits"
 * callback, token-for-token equal to transformers' GenerationMixin.generate() (5.x).
 *
 * The decoders know nothing about the model: they hand it tokens and cache-reorder
 * instructions and get next-token logits back. See vc_gen_step for the contract.
 */
#ifndef VC_GENERATE_H
#define VC_GENERATE_H

#include <stdint.h>

#include "vc.h"

/* ---------------------------------------------------------------------------------------------
 * The model callback contract.
 *
 * A generation is a sequence of calls next_logits(ctx, step, logits), made from one thread,
 * one at a time. Each call describes a set of ROWS (token sequences); the model appends
 * step->tokens to them and writes the next-token logits of every row to
 * logits[n_rows * vocab_size] (row-major, float32, unnormalised).
 *
 *  - Call 0 (step->step == 0, "prefill"): one row per prompt, in input order (n_rows = number
 *    of prompts, input_rows[i] = i). n_tokens = prompt length P and tokens[i*P .. i*P+P-1] is
 *    prompt i (for an encoder-decoder captioner: the decoder_start token(s)); prompts have equal
 *    length, no padding / attention mask. parent_rows is NULL. The model starts fresh caches for
 *    these rows (forgetting any earlier generation). Beam search and num_return_sequences > 1
 *    expand these rows at call 1 through parent_rows (e.g. parent_rows[b*K + k] = b).
 *  - Calls t >= 1: n_tokens == 1, tokens[i] is the token appended to row i. Row i continues the
 *    cache of row parent_rows[i] OF THE PREVIOUS CALL (0 <= parent_rows[i] < prev_n_rows):
 *    n_rows may differ from prev_n_rows, a parent may be used by several rows (beam search,
 *    num_return_sequences: the model copies or shares the cache), and a previous row that no
 *    parent_rows entry names is FINISHED: the model may free its cache at once. parent_rows is
 *    NULL exactly when the rows are the previous ones unchanged (identity, same n_rows).
 *  - input_rows[i] (never NULL) is the prompt row that row i descends from: an encoder-decoder
 *    model indexes its per-input encoder states (cross-attention K/V) with it, no copy needed.
 *  - past_len is the number of tokens each row already holds before this call (0 at prefill,
 *    then P, P+1, ...): every row of a call has the same length, so position ids are
 *    past_len .. past_len + n_tokens - 1.
 *  - Row layout: rows are grouped by input row, in input order. Beam search: the num_beams
 *    live beams of each unfinished input, best first (row = k-th beam of that input).
 *    Greedy / sampling: the unfinished (input, return-sequence) pairs, input-major.
 *    Finished rows (EOS) and finished beam groups are dropped from later calls, unless
 *    vc_gen_config.keep_finished is set: then every row stays, finished greedy/sampling rows
 *    are fed pad_token_id and finished beam groups keep running, exactly as transformers does
 *    (only needed to reproduce its `scores` for finished rows).
 *  - Return VC_OK, or a failure status (with vc_fail) which aborts the generation and is
 *    returned by vc_generate. The callback must not call back into the decoder.
 */
typedef struct {
    int step;                  /* 0 for the prefill call, then 1, 2, ... */
    int n_rows;                /* rows in this call (>= 1) */
    int n_tokens;              /* tokens per row in this call: P at step 0, then 1 */
    int past_len;              /* tokens each row held before this call */
    int prev_n_rows;           /* rows of the previous call (0 at step 0) */
    const int32_t *tokens;     /* [n_rows * n_tokens] */
    const int32_t *parent_rows; /* [n_rows] rows of the previous call, or NULL (see above) */
    const int32_t *input_rows; /* [n_rows] prompt row of each row */
} vc_gen_step;

typedef vc_status (*vc_next_logits_fn)(void *ctx, const vc_gen_step *step, float *logits);

/* What a model hands to the decoders. A C model wraps this in a PyCapsule named
 * "visionc.gen_model" (pointer to a vc_gen_model that lives as long as the capsule); the
 * Python binding then runs the whole loop with the GIL released. */
typedef struct {
    vc_next_logits_fn next_logits;
    void *ctx;
    int vocab_size; /* V: width of a logits row */
} vc_gen_model;

#define VC_GEN_CAPSULE "visionc.gen_model"

/* ---------------------------------------------------------------------------------------------
 * Configuration: lengths are resolved already (absolute, prompt included), as transformers'
 * generate() resolves max_new_tokens / min_new_tokens / the default max_length. Zero-initialise
 * then vc_gen_config_init() for transformers' defaults. */
typedef enum { VC_EARLY_STOP_FALSE = 0, VC_EARLY_STOP_TRUE = 1, VC_EARLY_STOP_NEVER = 2 } vc_early_stopping;

typedef struct {
    int max_length;          /* > prompt length */
    int min_length;          /* EOS banned while cur_len < min_length (0: off) */
    int min_new_tokens;      /* EOS banned while cur_len - P < min_new_tokens (0: off) */
    int do_sample;
    int num_beams;           /* >= 1 */
    int num_return_sequences; /* >= 1; <= num_beams with beams; 1 for greedy */
    float temperature;       /* sampling: > 0 */
    int top_k;               /* sampling: >= 0, 0 = off */
    float top_p;             /* sampling: in (0, 1], 1 = off */
    int min_tokens_to_keep;  /* top-k/top-p floor; 0 = transformers' (1, or n_eos + 1 in beams) */
    float repetition_penalty; /* > 0, 1 = off */
    int no_repeat_ngram_size; /* >= 0, 0 = off */
    float length_penalty;
    vc_early_stopping early_stopping;
    const int32_t *eos_ids; int n_eos;            /* stop tokens (none: rows run to max_length) */
    int has_pad; int32_t pad_token_id;            /* fills finished rows (see vc_generate) */
    const int32_t *bad_words; const int32_t *bad_word_lens; int n_bad_words; /* concatenated */
    const int32_t *suppress_tokens; int n_suppress;
    const int32_t *begin_suppress_tokens; int n_begin_suppress;
    int forced_bos_token_id;                      /* -1: off */
    const int32_t *forced_eos_ids; int n_forced_eos;
    int remove_invalid_values;
    int renormalize_logits;
    uint64_t seed;           /* sampling streams (see vc_gen_uniform) */
    int output_scores;       /* keep the processed scores of every step */
    int keep_finished;       /* see the contract above */
} vc_gen_config;

void vc_gen_config_init(vc_gen_config *c);

/* Output. Release with vc_gen_result_free (safe on a zeroed struct). */
typedef struct {
    int32_t *sequences;      /* [n_out * seq_len], n_out = n_prompts * num_return_sequences */
    int n_out, seq_len;
    float *sequences_scores; /* [n_out], beam search only (else NULL) */
    int32_t *beam_indices;   /* [n_out * (seq_len - P)], beam search only: flat row b*num_beams+k
                                of the beam each token continued, -1 past the end */
    float *scores;           /* [n_steps * score_rows * V] if output_scores, else NULL */
    int n_steps, score_rows, vocab_size; /* score_rows = n_prompts * max(num_beams, n_return) */
} vc_gen_result;

void vc_gen_result_free(vc_gen_result *r);

/* Decodes `n_prompts` prompts of `prompt_len` tokens each (row-major). Dispatch as in
 * transformers: num_beams > 1 -> beam search (beam sampling with do_sample), else sampling or
 * greedy. Finished rows are padded with pad_token_id (greedy/sampling; transformers' padding),
 * beam outputs with transformers' fill value: pad_token_id if set and non-zero, else eos_ids[0],
 * or -1 without EOS. Scores of rows that were no longer computed (finished, without
 * keep_finished) are NaN. */
vc_status vc_generate(const vc_gen_model *model, const vc_gen_config *cfg, const int32_t *prompt,
                      int n_prompts, int prompt_len, vc_gen_result *out);

/* The argument checks vc_generate runs first (ValueError-class VC_ERR_ARG naming the argument).
 * V <= 0: vocabulary size not known yet, the checks that need it are skipped. */
vc_status vc_gen_check(const vc_gen_config *cfg, int V, const int32_t *prompt, int n_prompts, int prompt_len);

/* The uniform draw in [0, 1) of sampling stream `stream`, at `step`, draw `j`: a pure function of
 * its arguments (counter-based), so that a row's samples depend on the seed and its
 * return-sequence index only, never on the batch or the row's position in it. */
double vc_gen_uniform(uint64_t seed, uint64_t stream, uint64_t step, uint64_t j);

#endif
