/* A tiny reference model for the next_logits contract (tests and an example for C models):
 * logits(row) = A[last token] + B[token before it], with a per-row "cache" holding those two
 * tokens, reordered by parent_rows exactly as a KV cache would be.
 *
 * ref: the contract in generate.h (no upstream counterpart). */
#include <stdlib.h>
#include <string.h>

#include "generate/gen_internal.h"
#include "generate/gen_toy_model.h"

static vc_status toy_next_logits(void *ctx, const vc_gen_step *st, float *logits) {
    vc_gen_toy_model *t = ctx;
    const int V = t->model.vocab_size;
    if (st->n_rows > t->cap) { /* grow the row caches */
        int32_t *l = realloc(t->last, (size_t)st->n_rows * sizeof *l);
        if (l) t->last = l;
        int32_t *p = l ? realloc(t->prev, (size_t)st->n_rows * sizeof *p) : NULL;
        if (p) t->prev = p;
        int32_t *s = p ? realloc(t->scratch, (size_t)st->n_rows * 2 * sizeof *s) : NULL;
        if (!s) return vc_fail(VC_ERR_MEMORY, "toy model: out of memory");
        t->scratch = s;
        t->cap = st->n_rows;
    }
    for (int i = 0; i < st->n_rows; i++) {
        int32_t last, prev;
        if (st->step == 0) { /* fresh cache from the prompt */
            last = st->tokens[(size_t)i * st->n_tokens + st->n_tokens - 1];
            prev = st->n_tokens > 1 ? st->tokens[(size_t)i * st->n_tokens + st->n_tokens - 2] : last;
        } else {
            int p = st->parent_rows ? st->parent_rows[i] : i;
            if (p < 0 || p >= st->prev_n_rows) return vc_fail(VC_ERR_INTERNAL, "toy model: bad parent row %d", p);
            prev = t->last[p];
            last = st->tokens[i];
        }
        if (last < 0 || last >= V || prev < 0 || prev >= V)
            return vc_fail(VC_ERR_ARG, "toy model: token outside the vocabulary");
        t->scratch[2 * i] = last, t->scratch[2 * i + 1] = prev;
        for (int v = 0; v < V; v++)
            logits[(size_t)i * V + v] = t->A[(size_t)last * V + v] + t->B[(size_t)prev * V + v];
    }
    for (int i = 0; i < st->n_rows; i++) t->last[i] = t->scratch[2 * i], t->prev[i] = t->scratch[2 * i + 1];
    t->calls++;
    t->rows_total += st->n_rows;
    return VC_OK;
}

vc_status vc_gen_toy_model_init(vc_gen_toy_model *t, const float *A, const float *B, int V) {
    memset(t, 0, sizeof *t);
    if (V < 1) return vc_fail(VC_ERR_ARG, "toy model: vocab size must be >= 1");
    t->A = gen_calloc((size_t)V * V, sizeof(float));
    t->B = gen_calloc((size_t)V * V, sizeof(float));
    if (!t->A || !t->B) {
        vc_gen_toy_model_free(t);
        return VC_ERR_MEMORY;
    }
    memcpy(t->A, A, (size_t)V * V * sizeof(float));
    memcpy(t->B, B, (size_t)V * V * sizeof(float));
    t->model.next_logits = toy_next_logits;
    t->model.ctx = t;
    t->model.vocab_size = V;
    return VC_OK;
}

void vc_gen_toy_model_free(vc_gen_toy_model *t) {
    free(t->A), free(t->B), free(t->last), free(t->prev), free(t->scratch);
    memset(t, 0, sizeof *t);
}
