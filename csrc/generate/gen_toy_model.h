/* Reference C model for the decoders' callback contract (see gen_toy_model.c). */
#ifndef VC_GEN_TOY_MODEL_H
#define VC_GEN_TOY_MODEL_H

#include "generate/generate.h"

typedef struct {
    vc_gen_model model; /* first member: a vc_gen_toy_model * is a vc_gen_model * */
    float *A, *B;       /* [V * V] */
    int32_t *last, *prev, *scratch;
    int cap;
    long calls, rows_total; /* statistics for tests */
} vc_gen_toy_model;

vc_status vc_gen_toy_model_init(vc_gen_toy_model *t, const float *A, const float *B, int V);
void vc_gen_toy_model_free(vc_gen_toy_model *t);

#endif
