/* Greedy decoding and multinomial sampling.
 *
 * ref: transformers GenerationMixin._sample (generation/utils.py, 5.x): processors (+ warpers
 * when sampling) on the raw logits, argmax or a draw from softmax, EOS-finished rows padded with
 * pad_token_id, stop at max_length or when every row has finished.
 *
 * Rows: t = b * R + r for prompt b and return sequence r (R = num_return_sequences; transformers'
 * repeat_interleave layout). Sampling row t draws from stream r of cfg->seed only, so a prompt
 * gets the same tokens alone or anywhere in a batch. Finished rows leave the model calls unless
 * cfg->keep_finished (then they are fed pad_token_id, as transformers does). */
#include <stdlib.h>
#include <string.h>

#include "generate/gen_internal.h"

typedef struct {
    int32_t *seq;     /* [T * L] tokens of every row */
    uint8_t *done;    /* [T] row has produced EOS */
    uint8_t *incall;  /* [T] row is in the current call */
    int32_t *rows;    /* rows (t) of the current call, in call order */
    int32_t *next;    /* rows of the next call */
    int32_t *parent;  /* [T] parent_rows of the next call */
    int32_t *inrow;   /* [T] input_rows */
    int32_t *tokens;  /* [T] tokens of the next call */
    float *logits;    /* [max(T, N) * V] */
    float *buf;       /* [V] one row being processed */
    gen_scratch w;
} greedy_state;

static void state_free(greedy_state *g) {
    free(g->seq);
    free(g->done);
    free(g->incall);
    free(g->rows);
    free(g->next);
    free(g->parent);
    free(g->inrow);
    free(g->tokens);
    free(g->logits);
    free(g->buf);
    gen_scratch_free(&g->w);
}

static vc_status state_alloc(greedy_state *g, int T, int N, int L, int V) {
    memset(g, 0, sizeof *g);
    int maxrows = T > N ? T : N;
    g->seq = gen_calloc((size_t)T * (size_t)L, sizeof(int32_t));
    g->done = gen_calloc((size_t)T, 1);
    g->incall = gen_calloc((size_t)T, 1);
    g->rows = gen_calloc((size_t)T, sizeof(int32_t));
    g->next = gen_calloc((size_t)T, sizeof(int32_t));
    g->parent = gen_calloc((size_t)T, sizeof(int32_t));
    g->inrow = gen_calloc((size_t)maxrows, sizeof(int32_t));
    g->tokens = gen_calloc((size_t)T, sizeof(int32_t));
    g->logits = gen_calloc((size_t)maxrows * (size_t)V, sizeof(float));
    g->buf = gen_calloc((size_t)V, sizeof(float));
    if (!g->seq || !g->done || !g->incall || !g->rows || !g->next || !g->parent || !g->inrow || !g->tokens || !g->logits ||
        !g->buf || gen_scratch_init(&g->w, V)) {
        state_free(g);
        return VC_ERR_MEMORY;
    }
    return VC_OK;
}

vc_status gen_greedy_or_sample(const vc_gen_model *m, const vc_gen_config *c, const int32_t *prompt, int N, int P,
                               vc_gen_result *out) {
    const int V = m->vocab_size, R = c->num_return_sequences, T = N * R, L = c->max_length;
    const int min_keep = c->min_tokens_to_keep > 0 ? c->min_tokens_to_keep : 1;
    greedy_state g;
    vc_status s = state_alloc(&g, T, N, L, V);
    if (s) return s;
    for (int t = 0; t < T; t++) memcpy(g.seq + (size_t)t * L, prompt + (size_t)(t / R) * P, (size_t)P * sizeof *prompt);
    for (int b = 0; b < N; b++) g.inrow[b] = b;

    vc_gen_step st = {0, N, P, 0, 0, prompt, NULL, g.inrow};
    if ((s = gen_call(m, &st, g.logits))) goto done;
    int n_rows = T, cur = P;
    for (int t = 0; t < T; t++) g.rows[t] = t;

    for (int step = 0;; step++) {
        float *sc = NULL;
        if (c->output_scores && !(sc = gen_scores_push(out, T, V))) {
            s = VC_ERR_MEMORY;
            goto done;
        }
        for (int i = 0; i < n_rows; i++) {
            int t = g.rows[i], lrow = step == 0 ? t / R : i;
            int32_t *row = g.seq + (size_t)t * L;
            memcpy(g.buf, g.logits + (size_t)lrow * V, (size_t)V * sizeof(float));
            gen_process_all(c, min_keep, P, row, cur, g.buf, V, &g.w);
            if (sc) memcpy(sc + (size_t)t * V, g.buf, (size_t)V * sizeof(float));
            int tok = c->do_sample ? gen_sample_softmax(g.buf, V, vc_gen_uniform(c->seed, (uint64_t)(t % R), step, 0))
                                   : gen_argmax(g.buf, V);
            if (tok < 0) {
                s = vc_fail(VC_ERR_ARG, "sampling: every token of row %d was filtered out (scores all -inf or NaN) "
                                        "at step %d", t, step);
                goto done;
            }
            if (g.done[t]) tok = c->pad_token_id;
            else if (c->n_eos > 0 && gen_is_eos(c, tok)) g.done[t] = 1;
            row[cur] = tok;
        }
        if (n_rows < T) { /* rows that left the calls are padded */
            memset(g.incall, 0, (size_t)T);
            for (int i = 0; i < n_rows; i++) g.incall[g.rows[i]] = 1;
            for (int t = 0; t < T; t++)
                if (!g.incall[t]) g.seq[(size_t)t * L + cur] = c->pad_token_id;
        }
        cur++;
        int n_next = 0, identity = 1, n_open = 0;
        for (int i = 0; i < n_rows; i++) {
            int t = g.rows[i];
            n_open += !g.done[t];
            if (g.done[t] && !c->keep_finished) continue;
            g.parent[n_next] = step == 0 ? t / R : i;
            g.next[n_next] = t;
            g.inrow[n_next] = t / R;
            g.tokens[n_next] = g.seq[(size_t)t * L + cur - 1];
            if (g.parent[n_next] != n_next) identity = 0;
            n_next++;
        }
        if (cur >= L || n_open == 0) break;
        int prev = step == 0 ? N : n_rows;
        if (n_next != prev) identity = 0;
        vc_gen_step nx = {step + 1, n_next, 1, cur - 1, prev, g.tokens, identity ? NULL : g.parent, g.inrow};
        if ((s = gen_call(m, &nx, g.logits))) goto done;
        int32_t *tmp = g.rows;
        g.rows = g.next;
        g.next = tmp;
        n_rows = n_next;
    }

    out->n_out = T;
    out->seq_len = cur;
    if (!(out->sequences = gen_calloc((size_t)T * (size_t)cur, sizeof(int32_t)))) {
        s = VC_ERR_MEMORY;
        goto done;
    }
    for (int t = 0; t < T; t++)
        memcpy(out->sequences + (size_t)t * cur, g.seq + (size_t)t * L, (size_t)cur * sizeof(int32_t));
done:
    state_free(&g);
    return s;
}
