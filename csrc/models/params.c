#include "models/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

vc_status vc_params_init(vc_param_table *t, int capacity) {
    t->n = 0;
    t->cap = capacity;
    t->slots = calloc((size_t)capacity, sizeof *t->slots);
    return t->slots ? VC_OK : vc_fail(VC_ERR_MEMORY, "out of memory for a parameter table");
}

void vc_params_free(vc_param_table *t) {
    free(t->slots);
    t->slots = NULL;
    t->n = t->cap = 0;
}

vc_status vc_params_add(vc_param_table *t, const float **field, int ndim, const int64_t *shape, const char *fmt, int i,
                        int j) {
    if (t->n >= t->cap || ndim < 0 || ndim > 4) return vc_fail(VC_ERR_INTERNAL, "parameter table overflow");
    vc_param_slot *s = &t->slots[t->n++];
    snprintf(s->name, sizeof s->name, fmt, i, j);
    s->ndim = ndim;
    for (int d = 0; d < 4; d++) s->shape[d] = d < ndim ? shape[d] : 1;
    s->field = field;
    *field = NULL;
    return VC_OK;
}

const char *vc_params_name(const vc_param_table *t, int i, int *ndim, int64_t shape[4]) {
    if (i < 0 || i >= t->n) return NULL;
    *ndim = t->slots[i].ndim;
    memcpy(shape, t->slots[i].shape, sizeof t->slots[i].shape);
    return t->slots[i].name;
}

vc_status vc_params_bind(vc_param_table *t, int i, const vc_tensor *x) {
    if (i < 0 || i >= t->n) return vc_fail(VC_ERR_ARG, "parameter index %d out of range", i);
    const vc_param_slot *s = &t->slots[i];
    vc_status st = vc_tensor_check(x, s->name, VC_F32, s->ndim, s->shape);
    if (st) return st;
    *s->field = (const float *)x->data;
    return VC_OK;
}

vc_status vc_params_check_bound(const vc_param_table *t) {
    for (int i = 0; i < t->n; i++)
        if (!*t->slots[i].field) return vc_fail(VC_ERR_ARG, "parameter %s was never loaded", t->slots[i].name);
    return VC_OK;
}

void vc_params_unbind(vc_param_table *t, int i) {
    if (i >= 0 && i < t->n) *t->slots[i].field = NULL;
}

vc_status vc_params_bind_grad(vc_param_table *t, int i, const vc_tensor *x) {
    if (i < 0 || i >= t->n) return vc_fail(VC_ERR_ARG, "gradient slot %d out of range", i);
    if (x) return vc_params_bind(t, i, x);
    vc_params_unbind(t, i);
    return VC_OK;
}
