/* One beam-search step of one prompt: candidates, next running beams, finished slots, and the
 * early-stop heuristic. See gen_beam.c for the algorithm and its references.
 *
 * ref: transformers GenerationMixin._get_top_k_continuations, _get_running_beams_for_next_iteration,
 * _update_finished_beams, _check_early_stop_heuristic (generation/utils.py, 5.x). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate/gen_beam.h"

void bs_free(beam_state *s) {
    void *p[] = {s->run_seq, s->run_bidx, s->fin_seq, s->fin_bidx, s->run_score, s->fin_score, s->fin_flag,
                 s->heur, s->done, s->parent_beam, s->pos, s->acc, s->pairs, s->cidx, s->nidx, s->midx, s->clp, s->trl,
                 s->merged, s->chit, s->chosen, s->cseq, s->cbidx, s->tseq, s->tbidx, s->tscore, s->tflag,
                 s->logits, s->tokens, s->parent, s->inrow};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++) free(p[i]);
    gen_scratch_free(&s->w);
}

vc_status bs_alloc(beam_state *s) {
    size_t NK = (size_t)s->N * s->K, KV = (size_t)s->K * s->V, BK = (size_t)s->BK, L = (size_t)s->L,
           G = (size_t)s->G, K = (size_t)s->K;
    int ok = (s->run_seq = gen_calloc(NK * L, 4)) && (s->run_bidx = gen_calloc(NK * G, 4)) &&
             (s->fin_seq = gen_calloc(NK * L, 4)) && (s->fin_bidx = gen_calloc(NK * G, 4)) &&
             (s->run_score = gen_calloc(NK, 4)) && (s->fin_score = gen_calloc(NK, 4)) &&
             (s->fin_flag = gen_calloc(NK, 1)) && (s->heur = gen_calloc((size_t)s->N, 1)) &&
             (s->done = gen_calloc((size_t)s->N, 1)) && (s->parent_beam = gen_calloc(NK, 4)) &&
             (s->pos = gen_calloc((size_t)s->N, 4)) && (s->acc = gen_calloc(KV, 4)) &&
             (s->pairs = gen_calloc(KV > K + BK ? KV : K + BK, sizeof(gen_pair))) &&
             (s->cidx = gen_calloc(BK, 4)) && (s->nidx = gen_calloc(K, 4)) && (s->midx = gen_calloc(K, 4)) &&
             (s->clp = gen_calloc(BK, 4)) && (s->trl = gen_calloc(BK, 4)) && (s->merged = gen_calloc(K + BK, 4)) &&
             (s->chit = gen_calloc(BK, 1)) && (s->chosen = gen_calloc(KV, 1)) &&
             (s->cseq = gen_calloc(BK * L, 4)) && (s->cbidx = gen_calloc(BK * G, 4)) &&
             (s->tseq = gen_calloc(K * L, 4)) && (s->tbidx = gen_calloc(K * G, 4)) &&
             (s->tscore = gen_calloc(K, 4)) && (s->tflag = gen_calloc(K, 1)) &&
             (s->logits = gen_calloc(NK * (size_t)s->V, 4)) && (s->tokens = gen_calloc(NK, 4)) &&
             (s->parent = gen_calloc(NK, 4)) && (s->inrow = gen_calloc(NK, 4)) && !gen_scratch_init(&s->w, s->V);
    return ok ? VC_OK : VC_ERR_MEMORY;
}

/* Beam sampling: BK draws without replacement from softmax(acc) (torch.multinomial), in draw
 * order; once no positive weight is left, the best remaining entries. */
static void sample_candidates(const vc_gen_config *c, beam_state *s, int step) {
    int n = s->K * s->V;
    float m = -INFINITY;
    for (int i = 0; i < n; i++)
        if (s->acc[i] > m) m = s->acc[i];
    memset(s->chosen, 0, (size_t)n);
    for (int j = 0; j < s->BK; j++) {
        double total = 0.0;
        for (int i = 0; i < n; i++)
            if (!s->chosen[i] && s->acc[i] > -INFINITY) total += exp((double)s->acc[i] - (double)m);
        int pick = -1;
        if (total > 0.0 && isfinite(total)) {
            double target = vc_gen_uniform(c->seed, 0, (uint64_t)step, (uint64_t)j) * total, cum = 0.0;
            for (int i = 0; i < n; i++) {
                if (s->chosen[i] || !(s->acc[i] > -INFINITY)) continue;
                double wgt = exp((double)s->acc[i] - (double)m);
                if (wgt <= 0.0) continue;
                cum += wgt;
                pick = i;
                if (cum > target) break;
            }
        }
        if (pick < 0)
            for (int i = 0; i < n; i++)
                if (!s->chosen[i] && (pick < 0 || gen_ranks_above(s->acc[i], i, s->acc[pick], pick))) pick = i;
        s->chosen[pick] = 1;
        s->cidx[j] = pick;
    }
}

int bs_item_step(const vc_gen_config *c, beam_state *s, int b, int step, int cur, const float *logits,
                     int lstride, float *sc) {
    const int K = s->K, V = s->V, L = s->L, G = s->G, P = s->P, BK = s->BK;
    const int min_keep = c->min_tokens_to_keep > 0 ? c->min_tokens_to_keep : (c->n_eos > 0 ? c->n_eos + 1 : 2);
    for (int k = 0; k < K; k++) {
        float *lp = s->acc + (size_t)k * V;
        gen_log_softmax(logits + (size_t)k * lstride * V, lp, V);
        gen_process_all(c, min_keep, P, s->run_seq + ((size_t)b * K + k) * L, cur, lp, V, &s->w);
        if (sc) memcpy(sc + ((size_t)b * K + k) * V, lp, (size_t)V * sizeof(float));
        float rs = s->run_score[b * K + k];
        for (int v = 0; v < V; v++) lp[v] = lp[v] + rs;
    }
    if (c->do_sample) sample_candidates(c, s, step);
    else gen_topk(s->acc, K * V, BK, s->cidx, s->pairs);

    int all_hit = 1;
    for (int j = 0; j < BK; j++) { /* candidates: parent beam's sequence + token */
        int beam = s->cidx[j] / V, tok = s->cidx[j] % V;
        s->clp[j] = s->acc[s->cidx[j]];
        memcpy(s->cseq + (size_t)j * L, s->run_seq + ((size_t)b * K + beam) * L, (size_t)L * 4);
        memcpy(s->cbidx + (size_t)j * G, s->run_bidx + ((size_t)b * K + beam) * G, (size_t)G * 4);
        s->cseq[(size_t)j * L + cur] = tok;
        s->cbidx[(size_t)j * G + (cur - P)] = b * K + beam;
        s->chit[j] = (cur + 1 >= L) || (c->n_eos > 0 && gen_is_eos(c, tok));
        all_hit &= s->chit[j];
        s->trl[j] = s->chit[j] ? s->clp[j] + NEG_BIG : s->clp[j];
    }
    gen_topk(s->trl, BK, K, s->nidx, s->pairs); /* next running beams */
    for (int k = 0; k < K; k++) {
        int j = s->nidx[k];
        memcpy(s->run_seq + ((size_t)b * K + k) * L, s->cseq + (size_t)j * L, (size_t)L * 4);
        memcpy(s->run_bidx + ((size_t)b * K + k) * G, s->cbidx + (size_t)j * G, (size_t)G * 4);
        s->run_score[b * K + k] = s->trl[j];
        s->parent_beam[b * K + k] = s->cidx[j] / V;
    }

    /* finished slots: merge the K old ones with the just-finished top-K candidates */
    float den = (float)pow((double)(cur + 1 - P), (double)c->length_penalty);
    int full = c->early_stopping == VC_EARLY_STOP_TRUE;
    for (int k = 0; k < K; k++) full &= s->fin_flag[b * K + k];
    for (int k = 0; k < K; k++) s->merged[k] = s->fin_score[b * K + k];
    for (int j = 0; j < BK; j++) {
        float f = s->clp[j] / den;
        if (full) f += NEG_BIG;
        if (!s->heur[b]) f += NEG_BIG;
        if (!(s->chit[j] && j < K)) f += NEG_BIG;
        s->merged[K + j] = f;
    }
    gen_topk(s->merged, K + BK, K, s->midx, s->pairs);
    for (int k = 0; k < K; k++) {
        int src = s->midx[k];
        const int32_t *sq = src < K ? s->fin_seq + ((size_t)b * K + src) * L : s->cseq + (size_t)(src - K) * L;
        const int32_t *bi = src < K ? s->fin_bidx + ((size_t)b * K + src) * G : s->cbidx + (size_t)(src - K) * G;
        memcpy(s->tseq + (size_t)k * L, sq, (size_t)L * 4);
        memcpy(s->tbidx + (size_t)k * G, bi, (size_t)G * 4);
        s->tscore[k] = s->merged[src];
        s->tflag[k] = src < K ? s->fin_flag[b * K + src] : (s->chit[src - K] && src - K < K);
    }
    memcpy(s->fin_seq + (size_t)b * K * L, s->tseq, (size_t)K * L * 4);
    memcpy(s->fin_bidx + (size_t)b * K * G, s->tbidx, (size_t)K * G * 4);
    memcpy(s->fin_score + (size_t)b * K, s->tscore, (size_t)K * 4);
    memcpy(s->fin_flag + (size_t)b * K, s->tflag, (size_t)K);
    return all_hit;
}

void bs_item_heuristic(const vc_gen_config *c, beam_state *s, int b, int cur) {
    const int K = s->K;
    int hyp = (c->early_stopping == VC_EARLY_STOP_NEVER && c->length_penalty > 0.0f) ? s->L - s->P : cur - s->P;
    float best = s->run_score[b * K] / (float)pow((double)hyp, (double)c->length_penalty);
    float mn = s->fin_score[b * K];
    int all_fin = 1, any = 0;
    for (int k = 0; k < K; k++) {
        if (s->fin_score[b * K + k] < mn) mn = s->fin_score[b * K + k];
        all_fin &= s->fin_flag[b * K + k];
    }
    for (int k = 0; k < K; k++) any |= best > (s->fin_flag[b * K + k] ? mn : NEG_BIG);
    s->heur[b] = s->heur[b] && any;
    s->done[b] = !s->heur[b] || (c->early_stopping == VC_EARLY_STOP_TRUE && all_fin);
}
