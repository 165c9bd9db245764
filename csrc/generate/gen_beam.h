/* Beam search state shared by the step (gen_beam_step.c) and the driver (gen_beam.c). */
#ifndef VC_GEN_BEAM_H
#define VC_GEN_BEAM_H

#include "generate/gen_internal.h"

#define NEG_BIG (-1.0e9f)

typedef struct {
    int N, K, BK, V, L, G, P;
    int32_t *run_seq, *run_bidx, *fin_seq, *fin_bidx; /* [N*K*L], [N*K*G] */
    float *run_score, *fin_score;                     /* [N*K] */
    uint8_t *fin_flag, *heur, *done;                  /* [N*K], [N], [N] */
    int32_t *parent_beam;                             /* [N*K] beam each new running beam continues */
    int32_t *pos;                                     /* [N] item position in the current call, -1 */
    /* one item's step */
    float *acc;                                       /* [K*V] */
    gen_pair *pairs;                                  /* [max(K*V, K+BK)] top-k scratch */
    int32_t *cidx, *nidx, *midx;                      /* [BK], [K], [K] */
    float *clp, *trl, *merged;                        /* [BK], [BK], [K+BK] */
    uint8_t *chit, *chosen;                           /* [BK], [K*V] (beam sampling) */
    int32_t *cseq, *cbidx, *tseq, *tbidx;             /* [BK*L], [BK*G], [K*L], [K*G] */
    float *tscore;                                    /* [K] */
    uint8_t *tflag;                                   /* [K] */
    /* calls */
    float *logits;                                    /* [N*K*V] */
    int32_t *tokens, *parent, *inrow;                 /* [N*K] */
    gen_scratch w;
} beam_state;

vc_status bs_alloc(beam_state *s);
void bs_free(beam_state *s);
/* One step of prompt b: logits of its beam k at logits + k * lstride * V. Returns whether every
 * continuation hit a stopping criterion. sc: its score rows, or NULL. */
int bs_item_step(const vc_gen_config *c, beam_state *s, int b, int step, int cur, const float *logits, int lstride,
                 float *sc);
/* The early-stop heuristic of prompt b after a step (cur: the new length), and its done state. */
void bs_item_heuristic(const vc_gen_config *c, beam_state *s, int b, int cur);

#endif
