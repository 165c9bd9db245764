/* Logits processors and sampling warpers, one row at a time, in transformers' order:
 *   repetition_penalty, no_repeat_ngram_size, bad_words_ids, min_length, min_new_tokens,
 *   forced_bos_token_id, forced_eos_token_id, remove_invalid_values, suppress_tokens,
 *   begin_suppress_tokens, [sampling: temperature, top_k, top_p], renormalize_logits.
 *
 * ref: transformers GenerationMixin._get_logits_processor and generation/logits_process.py
 * (RepetitionPenaltyLogitsProcessor, NoRepeatNGramLogitsProcessor, NoBadWordsLogitsProcessor,
 * MinLength/MinNewTokensLength, ForcedBOS/ForcedEOS, InfNanRemove, SuppressTokens(AtBegin),
 * TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, LogitNormalization).
 * Arithmetic is float32 like torch's (python scalars are rounded to float32 first). */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "generate/gen_internal.h"

vc_status gen_scratch_init(gen_scratch *w, int V) {
    memset(w, 0, sizeof *w);
    w->V = V;
    w->mark = gen_calloc((size_t)V, 1);
    w->tmp = gen_calloc((size_t)V, sizeof(float));
    w->keys = gen_calloc((size_t)V, sizeof(uint64_t));
    if (!w->mark || !w->tmp || !w->keys) {
        gen_scratch_free(w);
        return VC_ERR_MEMORY;
    }
    return VC_OK;
}

void gen_scratch_free(gen_scratch *w) {
    free(w->mark);
    free(w->tmp);
    free(w->keys);
    memset(w, 0, sizeof *w);
}

static void fill(float *s, int V, float v) {
    for (int i = 0; i < V; i++) s[i] = v;
}

static void ban_ids(float *s, int V, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++)
        if (ids[i] < V) s[ids[i]] = -INFINITY;
}

/* Each token present in the sequence once: negative scores * penalty, others / penalty. */
static void repetition_penalty(float pen, const int32_t *seq, int len, float *s, int V, uint8_t *mark) {
    for (int i = 0; i < len; i++) {
        int32_t t = seq[i];
        if (t >= V || mark[t]) continue;
        mark[t] = 1;
        s[t] = s[t] < 0 ? s[t] * pen : s[t] / pen;
    }
    for (int i = 0; i < len; i++)
        if (seq[i] < V) mark[seq[i]] = 0;
}

/* Bans every token that would complete an n-gram already present in the sequence. */
static void no_repeat_ngram(int n, const int32_t *seq, int len, float *s, int V) {
    if (len < n) return;
    const int32_t *prefix = seq + len - n + 1;
    for (int i = 0; i + n <= len; i++) {
        if (n > 1 && memcmp(seq + i, prefix, (size_t)(n - 1) * sizeof *seq)) continue;
        int32_t t = seq[i + n - 1];
        if (t < V) s[t] = -INFINITY;
    }
}

/* A bad word's last token gets -inf when the sequence ends with the rest of it. Single-token
 * bad words equal to an EOS id are dropped, as NoBadWordsLogitsProcessor does. */
static void bad_words(const vc_gen_config *c, const int32_t *seq, int len, float *s) {
    const int32_t *w = c->bad_words;
    for (int i = 0; i < c->n_bad_words; w += c->bad_word_lens[i], i++) {
        int L = c->bad_word_lens[i];
        if (L == 1 && gen_is_eos(c, w[0])) continue;
        if (L - 1 > len) continue;
        if (L > 1 && memcmp(seq + len - (L - 1), w, (size_t)(L - 1) * sizeof *w)) continue;
        s[w[L - 1]] += -INFINITY;
    }
}

void gen_process(const vc_gen_config *c, int P, const int32_t *seq, int len, float *s, int V, gen_scratch *w) {
    if (c->repetition_penalty != 1.0f) repetition_penalty(c->repetition_penalty, seq, len, s, V, w->mark);
    if (c->no_repeat_ngram_size > 0) no_repeat_ngram(c->no_repeat_ngram_size, seq, len, s, V);
    if (c->n_bad_words > 0) bad_words(c, seq, len, s);
    if (c->min_length > 0 && len < c->min_length) ban_ids(s, V, c->eos_ids, c->n_eos);
    if (c->min_new_tokens > 0 && len - P < c->min_new_tokens) ban_ids(s, V, c->eos_ids, c->n_eos);
    if (c->forced_bos_token_id >= 0 && len == 1) {
        fill(s, V, -INFINITY);
        s[c->forced_bos_token_id] = 0.0f;
    }
    if (c->n_forced_eos > 0 && len == c->max_length - 1) {
        fill(s, V, -INFINITY);
        for (int i = 0; i < c->n_forced_eos; i++) s[c->forced_eos_ids[i]] = 0.0f;
    }
    if (c->remove_invalid_values)
        for (int i = 0; i < V; i++) s[i] = isnan(s[i]) ? 0.0f : isinf(s[i]) ? (s[i] > 0 ? FLT_MAX : -FLT_MAX) : s[i];
    if (c->n_suppress > 0) ban_ids(s, V, c->suppress_tokens, c->n_suppress);
    if (c->n_begin_suppress > 0) {
        int begin = (P > 1 || c->forced_bos_token_id < 0) ? P : P + 1;
        if (len == begin) ban_ids(s, V, c->begin_suppress_tokens, c->n_begin_suppress);
    }
}

/* ---- warpers ---------------------------------------------------------------------------- */

/* float -> uint32 whose unsigned order is the float order (NaN above +inf). */
static uint32_t sortable(float f) {
    uint32_t u;
    if (isnan(f)) return 0xFFFFFFFFu;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static float unsortable(uint32_t u) {
    u = (u & 0x80000000u) ? (u & 0x7FFFFFFFu) : ~u;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Keeps the tokens scoring at least the k-th largest score (ties at the k-th all stay). */
static void top_k(int k, float *s, int V, gen_scratch *w) {
    if (k >= V) return;
    uint64_t *a = w->keys;
    for (int i = 0; i < V; i++) a[i] = sortable(s[i]);
    int want = V - k, lo = 0, hi = V - 1; /* quickselect: position `want` in ascending order */
    while (lo < hi) {
        uint64_t pivot = a[lo + (hi - lo) / 2], t;
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                t = a[i], a[i] = a[j], a[j] = t;
                i++, j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    float kth = unsortable((uint32_t)a[want]);
    for (int i = 0; i < V; i++)
        if (s[i] < kth) s[i] = -INFINITY;
}

/* Removes the tokens whose cumulative probability, ascending, stays <= 1 - top_p, keeping the
 * min_keep largest. Ties in the ascending sort are ordered by token id. */
static void top_p(float p, int min_keep, float *s, int V, gen_scratch *w) {
    for (int i = 0; i < V; i++) w->keys[i] = ((uint64_t)sortable(s[i]) << 32) | (uint32_t)i;
    qsort(w->keys, (size_t)V, sizeof *w->keys, cmp_u64);
    float m = s[(uint32_t)w->keys[V - 1]];
    double sum = 0.0;
    for (int j = 0; j < V; j++) {
        w->tmp[j] = expf(s[(uint32_t)w->keys[j]] - m);
        sum += w->tmp[j];
    }
    float thr = (float)(1.0 - (double)p);
    double cum = 0.0;
    for (int j = 0; j < V - min_keep; j++) {
        cum += (double)(float)(w->tmp[j] / sum);
        if ((float)cum <= thr) w->mark[j] = 1;
    }
    for (int j = 0; j < V - min_keep; j++) {
        if (w->mark[j]) s[(uint32_t)w->keys[j]] = -INFINITY;
        w->mark[j] = 0;
    }
}

void gen_warp(const vc_gen_config *c, int min_keep, float *s, int V, gen_scratch *w) {
    if (c->temperature != 1.0f)
        for (int i = 0; i < V; i++) s[i] = s[i] / c->temperature;
    if (c->top_k != 0) top_k(c->top_k > min_keep ? c->top_k : min_keep, s, V, w);
    if (c->top_p < 1.0f) top_p(c->top_p, min_keep, s, V, w);
}

void gen_process_all(const vc_gen_config *c, int min_keep, int P, const int32_t *seq, int len, float *s, int V,
                     gen_scratch *w) {
    gen_process(c, P, seq, len, s, V, w);
    if (c->do_sample) gen_warp(c, min_keep, s, V, w);
    if (c->renormalize_logits) gen_log_softmax(s, s, V);
}
