/* Beam search (and beam sampling), transformers 5.x semantics: the driver.
 *
 * ref: transformers GenerationMixin._beam_search and _beam_search_has_unfinished_sequences
 * (generation/utils.py); the per-prompt step is in gen_beam_step.c.
 *
 * Per prompt b: K running beams and K finished slots (scores -1e9 until filled). Each step:
 * log_softmax, processors, + running score; the best BK = max(2, 1 + n_eos) * K continuations
 * over K * V (torch.topk; sampled without replacement for beam sampling, from the seed's stream
 * 0, so a prompt's result does not depend on its batch); those hitting EOS or max_length leave
 * the running set (-1e9) and, when among the first K, compete for the finished slots with
 * score / (generated length ** length_penalty). Float32 arithmetic as torch's.
 * Equal scores (the -1e9 / -inf sentinels, e.g. with forced_eos_token_id) are ranked exactly as
 * torch.topk ranks them on CPU (gen_topk.c re-creates its libstdc++ selection order).
 *
 * A prompt is done once its heuristic says no running beam can improve the finished ones (or,
 * early_stopping=True, all K slots are filled): transformers' later steps cannot change its
 * output any more, so its rows leave the model calls (unless keep_finished, which runs them on
 * and uses transformers' global stop rule, for identical `scores`). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate/gen_beam.h"

static void init_beams(const vc_gen_config *c, beam_state *s, const int32_t *prompt) {
    const int K = s->K, L = s->L, G = s->G, P = s->P;
    int32_t fill = c->n_eos == 0 ? -1 : (c->pad_token_id != 0 ? c->pad_token_id : c->eos_ids[0]);
    for (int b = 0; b < s->N; b++) {
        s->heur[b] = 1;
        for (int k = 0; k < K; k++) {
            size_t r = (size_t)b * K + k;
            for (int i = 0; i < L; i++) s->run_seq[r * L + i] = i < P ? prompt[(size_t)b * P + i] : fill;
            for (int i = 0; i < G; i++) s->run_bidx[r * G + i] = -1;
            s->run_score[r] = k ? NEG_BIG : 0.0f;
            s->fin_score[r] = NEG_BIG;
        }
    }
    memcpy(s->fin_seq, s->run_seq, (size_t)s->N * K * L * 4);
    memcpy(s->fin_bidx, s->run_bidx, (size_t)s->N * K * G * 4);
}

/* The returned hypotheses: the best num_return_sequences finished slots of each prompt, cropped
 * to the longest generated length among them. */
static vc_status write_output(const vc_gen_config *c, beam_state *s, vc_gen_result *out) {
    const int K = s->K, R = c->num_return_sequences, L = s->L, G = s->G, P = s->P;
    int gen = 0;
    for (int b = 0; b < s->N; b++)
        for (int r = 0; r < R; r++) {
            int n = 0;
            for (int i = 0; i < G; i++) n += s->fin_bidx[((size_t)b * K + r) * G + i] != -1;
            if (n > gen) gen = n;
        }
    int n_out = s->N * R, len = P + gen;
    out->n_out = n_out;
    out->seq_len = len;
    out->sequences = gen_calloc((size_t)n_out * len, 4);
    out->beam_indices = gen_calloc((size_t)n_out * gen, 4);
    out->sequences_scores = gen_calloc((size_t)n_out, 4);
    if (!out->sequences || !out->beam_indices || !out->sequences_scores) return VC_ERR_MEMORY;
    for (int b = 0; b < s->N; b++)
        for (int r = 0; r < R; r++) {
            size_t src = (size_t)b * K + r, dst = (size_t)b * R + r;
            memcpy(out->sequences + dst * len, s->fin_seq + src * L, (size_t)len * 4);
            memcpy(out->beam_indices + dst * gen, s->fin_bidx + src * G, (size_t)gen * 4);
            out->sequences_scores[dst] = s->fin_score[src];
        }
    return VC_OK;
}

vc_status gen_beam_search(const vc_gen_model *m, const vc_gen_config *c, const int32_t *prompt, int N, int P,
                          vc_gen_result *out) {
    beam_state s;
    memset(&s, 0, sizeof s);
    s.N = N, s.K = c->num_beams, s.V = m->vocab_size, s.L = c->max_length, s.G = c->max_length - P, s.P = P;
    s.BK = (c->n_eos + 1 > 2 ? c->n_eos + 1 : 2) * s.K;
    const int K = s.K, V = s.V;
    vc_status st = bs_alloc(&s);
    if (st) goto done;
    init_beams(c, &s, prompt);
    for (int b = 0; b < N; b++) s.inrow[b] = b, s.pos[b] = b;

    vc_gen_step call = {0, N, P, 0, 0, prompt, NULL, s.inrow};
    if ((st = gen_call(m, &call, s.logits))) goto done;
    int cur = P, n_rows = N;
    for (int step = 0;; step++) {
        float *sc = NULL;
        if (c->output_scores && !(sc = gen_scores_push(out, N * K, V))) {
            st = VC_ERR_MEMORY;
            goto done;
        }
        int all_hit = 1;
        for (int b = 0; b < N; b++) {
            if (s.done[b] && !c->keep_finished) continue;
            const float *lg = step == 0 ? s.logits + (size_t)b * V : s.logits + (size_t)s.pos[b] * K * V;
            all_hit &= bs_item_step(c, &s, b, step, cur, lg, step == 0 ? 0 : 1, sc);
        }
        cur++;
        int any_open = 0, any_heur = 0, all_full = c->early_stopping == VC_EARLY_STOP_TRUE;
        for (int b = 0; b < N; b++) {
            if (!s.done[b] || c->keep_finished) bs_item_heuristic(c, &s, b, cur);
            any_open |= !s.done[b];
            any_heur |= s.heur[b];
            for (int k = 0; k < K; k++) all_full &= s.fin_flag[b * K + k];
        }
        int go_on = c->keep_finished ? any_heur && !all_full && !all_hit : any_open && !all_hit;
        if (!go_on) break;

        int n = 0, identity = 1, items = 0;
        for (int b = 0; b < N; b++) {
            if (s.done[b] && !c->keep_finished) {
                s.pos[b] = -1;
                continue;
            }
            for (int k = 0; k < K; k++, n++) {
                s.tokens[n] = s.run_seq[((size_t)b * K + k) * s.L + cur - 1];
                s.parent[n] = step == 0 ? b : s.pos[b] * K + s.parent_beam[b * K + k];
                s.inrow[n] = b;
                identity &= s.parent[n] == n;
            }
            s.pos[b] = items++;
        }
        identity &= n == n_rows;
        vc_gen_step nx = {step + 1, n, 1, cur - 1, n_rows, s.tokens, identity ? NULL : s.parent, s.inrow};
        if ((st = gen_call(m, &nx, s.logits))) goto done;
        n_rows = n;
    }
    st = write_output(c, &s, out);
done:
    bs_free(&s);
    return st;
}
