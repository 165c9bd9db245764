/* Restricted pickle virtual machine: builds plain values, never runs code.
 *
 * It implements the opcodes of protocols 2-5 that describe data (None, bools, ints up to 64
 * bits, floats, str, bytes, tuples, lists, dicts, memo, marks, frames) and delegates the
 * four opcodes that can run code -- GLOBAL/STACK_GLOBAL, REDUCE, BUILD and BINPERSID -- to
 * hooks supplied by the caller. The caller's find_class hook is the security boundary: it
 * must refuse every global it does not explicitly understand, and REDUCE can only call
 * globals that find_class accepted. NEWOBJ, INST/OBJ, EXT* and the text-protocol opcodes are
 * refused outright.
 *
 * Values live as long as the VM: vc_pickle_free releases all of them at once (the object
 * graph may share values and even contain cycles, so there is no per-value ownership).
 * Memory use is bounded by the input size (and by VC_PKL_MAX_VALUES).
 */
#ifndef VC_IO_PICKLE_H
#define VC_IO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

#define VC_PKL_MAX_VALUES (1u << 24)

typedef enum {
    VC_PKL_NONE,
    VC_PKL_BOOL,
    VC_PKL_INT,
    VC_PKL_FLOAT,
    VC_PKL_STR,    /* UTF-8 as found in the pickle (not validated, not NUL-terminated) */
    VC_PKL_BYTES,
    VC_PKL_TUPLE,
    VC_PKL_LIST,
    VC_PKL_DICT,   /* insertion-ordered key/value pairs; duplicates are kept as written */
    VC_PKL_GLOBAL, /* a global accepted by find_class */
    VC_PKL_OBJECT, /* made by a hook (e.g. a tensor); `tag` and `ptr` are the hook's */
} vc_pkl_kind;

typedef struct vc_pkl_value vc_pkl_value;
struct vc_pkl_value {
    vc_pkl_kind kind;
    union {
        int64_t i; /* BOOL (0/1), INT */
        double f;
        struct { const char *s; size_t n; } str;          /* STR, BYTES: point into the pickle */
        struct { vc_pkl_value **items; size_t n, cap; } seq; /* TUPLE, LIST; DICT: k0,v0,k1,v1... */
        struct { int id; const char *module, *name; size_t module_len, name_len; } global;
        struct { int tag; void *ptr; } obj;
    } u;
};

/* Number of key/value pairs of a DICT. */
static inline size_t vc_pkl_dict_len(const vc_pkl_value *d) { return d->u.seq.n / 2; }

typedef struct vc_pickle vc_pickle;

typedef struct {
    void *ctx;
    /* Accept global `module.name` with an id of the hook's choosing, or fail (VC_ERR_UNSAFE)
     * naming it. Called before the global can be used for anything. */
    vc_status (*find_class)(void *ctx, const char *module, size_t module_len, const char *name, size_t name_len,
                            int *id);
    /* REDUCE: call accepted global `fn` with `args` (a TUPLE). */
    vc_status (*reduce)(void *ctx, vc_pickle *vm, const vc_pkl_value *fn, const vc_pkl_value *args, vc_pkl_value **out);
    /* BINPERSID: resolve the persistent id `pid`. */
    vc_status (*persistent_load)(void *ctx, vc_pickle *vm, const vc_pkl_value *pid, vc_pkl_value **out);
    /* BUILD: apply `state` to `obj` (may ignore it, or refuse). */
    vc_status (*build)(void *ctx, vc_pickle *vm, vc_pkl_value *obj, const vc_pkl_value *state);
} vc_pkl_hooks;

/* Runs the pickle in data[0..len) up to STOP. On success *vm owns every value and *result is
 * the unpickled object; on failure *vm is NULL and the message gives the byte offset. Hooks
 * report their own errors with vc_fail; the VM passes them through unchanged. */
vc_status vc_pickle_run(const unsigned char *data, size_t len, const vc_pkl_hooks *hooks, vc_pickle **vm,
                        vc_pkl_value **result);
void vc_pickle_free(vc_pickle *vm);

/* For hooks: a new value owned by the VM (fields zeroed except kind), or NULL with an error
 * set; and raw zeroed memory freed with the VM. */
vc_pkl_value *vc_pkl_new(vc_pickle *vm, vc_pkl_kind kind);
void *vc_pkl_alloc(vc_pickle *vm, size_t bytes);

const char *vc_pkl_kind_name(vc_pkl_kind k);

#endif
