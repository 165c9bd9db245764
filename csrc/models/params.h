/* A model's parameter table: one slot per checkpoint tensor, named as the checkpoint names
 * it, with the shape the config implies and the model field its pointer goes to.
 * Parameters are bound to caller-owned memory (mmap'd checkpoints, NumPy arrays); the
 * table never copies or frees them. */
#ifndef VC_PARAMS_H
#define VC_PARAMS_H

#include <stdint.h>

#include "core/tensor.h"
#include "vc.h"

enum { VC_PARAM_NAME_MAX = 96 };

typedef struct {
    char name[VC_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[4];
    const float **field;
} vc_param_slot;

typedef struct {
    vc_param_slot *slots;
    int n, cap;
} vc_param_table;

vc_status vc_params_init(vc_param_table *t, int capacity);
void vc_params_free(vc_param_table *t);
/* Adds a slot; `fmt` may hold up to two %d, filled from i and j. Returns VC_ERR_INTERNAL if full. */
vc_status vc_params_add(vc_param_table *t, const float **field, int ndim, const int64_t *shape, const char *fmt, int i,
                        int j);
const char *vc_params_name(const vc_param_table *t, int i, int *ndim, int64_t shape[4]);
/* Binds slot i to a float32 tensor of exactly the slot's shape, row-major. */
vc_status vc_params_bind(vc_param_table *t, int i, const vc_tensor *x);
/* Clears slot i (a gradient slot left unbound: that tensor is frozen). */
void vc_params_unbind(vc_param_table *t, int i);
/* A gradient table's binding: x binds slot i as vc_params_bind does, x NULL unbinds it (frozen). */
vc_status vc_params_bind_grad(vc_param_table *t, int i, const vc_tensor *x);
/* VC_OK when every slot is bound, else names the first unbound one. */
vc_status vc_params_check_bound(const vc_param_table *t);

/* Shorthand for the common ranks. */
#define VC_SHAPE1(a) ((const int64_t[]){(a)})
#define VC_SHAPE2(a, b) ((const int64_t[]){(a), (b)})
#define VC_SHAPE3(a, b, c) ((const int64_t[]){(a), (b), (c)})
#define VC_SHAPE4(a, b, c, d) ((const int64_t[]){(a), (b), (c), (d)})

#endif
