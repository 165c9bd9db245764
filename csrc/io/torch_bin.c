/* torch.save zip checkpoints: locate data.pkl, run it in the restricted pickle VM with the
 * torch whitelist below, then flatten the resulting dict into named tensors. */
#include "io/torch_bin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/pickle.h"
#include "io/zip.h"

#define MAX_NEST 32      /* nested dict levels accepted in a checkpoint */
#define MAX_PKL (1u << 30) /* data.pkl larger than this is not a state dict */

/* ---- whitelisted globals ---- */

enum { G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_PARAM, G_REBUILD_PARAM_STATE, G_STORAGE /* + dtype */ };

static const struct {
    const char *module, *name;
    int id;
} allowed[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM},
    {"torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAM_STATE},
    {"torch", "FloatStorage", G_STORAGE + VC_IO_F32},
    {"torch", "HalfStorage", G_STORAGE + VC_IO_F16},
    {"torch", "BFloat16Storage", G_STORAGE + VC_IO_BF16},
    {"torch", "DoubleStorage", G_STORAGE + VC_IO_F64},
    {"torch", "LongStorage", G_STORAGE + VC_IO_I64},
    {"torch", "IntStorage", G_STORAGE + VC_IO_I32},
    {"torch", "ShortStorage", G_STORAGE + VC_IO_I16},
    {"torch", "CharStorage", G_STORAGE + VC_IO_I8},
    {"torch", "ByteStorage", G_STORAGE + VC_IO_U8},
    {"torch", "BoolStorage", G_STORAGE + VC_IO_BOOL},
};

/* Objects the hooks create (vc_pkl_value.u.obj.tag). Problems found while building them are
 * recorded in `err` and reported when the tensor's name is known (at flatten time). */
enum { OBJ_STORAGE = 1, OBJ_TENSOR };

typedef struct {
    vc_io_dtype dtype;
    const unsigned char *data;
    size_t numel; /* usable elements */
    const char *err;
} tb_storage;

typedef struct {
    const tb_storage *storage;
    vc_io_dtype dtype;
    int ndim;
    int64_t *shape, *stride;
    size_t numel;
    const unsigned char *data;
    int contiguous;
    const char *err;
    size_t first; /* index of its first flattened name, SIZE_MAX until seen */
} tb_tensor;

struct vc_torch_bin {
    char *path;
    vc_mapfile *map;
    vc_zip *zip;
    vc_pickle *vm; /* owns shapes/strides referenced by `t` */
    vc_tb_tensor *t;
    size_t n, cap;
    char **names;
    int found_other; /* flatten met a non-tensor leaf */
};

typedef struct {
    vc_torch_bin *tb;
    const char *prefix; /* archive root directory (the part before /data.pkl) */
    size_t prefix_len;
} ctx;

/* A message kept in VM memory for later (deferred errors). */
static const char *defer(vc_pickle *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *defer(vc_pickle *vm, const char *fmt, ...) {
    char *m = vc_pkl_alloc(vm, 256);
    if (!m) return "out of memory";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, 256, fmt, ap);
    va_end(ap);
    return m;
}

/* ---- pickle hooks ---- */

static vc_status find_class(void *c, const char *mod, size_t ml, const char *name, size_t nl, int *id) {
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (strlen(allowed[i].module) == ml && !memcmp(allowed[i].module, mod, ml) && strlen(allowed[i].name) == nl &&
            !memcmp(allowed[i].name, name, nl)) {
            *id = allowed[i].id;
            return VC_OK;
        }
    }
    return vc_fail(VC_ERR_UNSAFE,
                   "refusing pickle global '%.*s.%.*s': only tensors, typed storages and OrderedDict may appear in a "
                   "checkpoint (the file may be malicious, or hold other Python objects)",
                   (int)(ml > 200 ? 200 : ml), mod, (int)(nl > 200 ? 200 : nl), name);
}

static int as_int(const vc_pkl_value *v, int64_t *out) {
    if (v->kind != VC_PKL_INT) return 0;
    *out = v->u.i;
    return 1;
}

static vc_status persistent_load(void *c, vc_pickle *vm, const vc_pkl_value *pid, vc_pkl_value **out) {
    ctx *cx = c;
    const vc_pkl_value *const *it = (const vc_pkl_value *const *)pid->u.seq.items;
    int64_t numel;
    if (pid->kind != VC_PKL_TUPLE || pid->u.seq.n != 5 || it[0]->kind != VC_PKL_STR || it[0]->u.str.n != 7 ||
        memcmp(it[0]->u.str.s, "storage", 7) || it[1]->kind != VC_PKL_GLOBAL || it[2]->kind != VC_PKL_STR ||
        !as_int(it[4], &numel))
        return vc_fail(VC_ERR_FORMAT, "persistent id is not ('storage', <storage type>, key, location, numel)");
    if (it[1]->u.global.id < G_STORAGE)
        return vc_fail(VC_ERR_FORMAT, "persistent id names '%.*s.%.*s' as its storage type", (int)it[1]->u.global.module_len,
                       it[1]->u.global.module, (int)it[1]->u.global.name_len, it[1]->u.global.name);
    tb_storage *st = vc_pkl_alloc(vm, sizeof *st);
    vc_pkl_value *v = vc_pkl_new(vm, VC_PKL_OBJECT);
    if (!st || !v) return VC_ERR_MEMORY;
    v->u.obj.tag = OBJ_STORAGE;
    v->u.obj.ptr = st;
    st->dtype = (vc_io_dtype)(it[1]->u.global.id - G_STORAGE);
    *out = v;

    const char *key = it[2]->u.str.s;
    int klen = (int)(it[2]->u.str.n > 200 ? 200 : it[2]->u.str.n);
    size_t n = cx->prefix_len + 6 + it[2]->u.str.n;
    char *ename = vc_pkl_alloc(vm, n + 1);
    if (!ename) return VC_ERR_MEMORY;
    memcpy(ename, cx->prefix, cx->prefix_len);
    memcpy(ename + cx->prefix_len, "/data/", 6);
    memcpy(ename + cx->prefix_len + 6, key, it[2]->u.str.n);
    const vc_zip_entry *e = vc_zip_find(cx->tb->zip, ename, n);
    size_t need;
    if (!e) {
        st->err = defer(vm, "storage '%.*s' (zip entry '%.200s') is missing from the archive", klen, key, ename);
    } else if (vc_zip_check_stored(cx->tb->zip, e)) {
        st->err = defer(vm, "%s", vc_last_error());
    } else if (numel < 0 || !vc_mul_ok((size_t)numel, vc_io_dtype_size(st->dtype), &need) || need > e->size) {
        st->err = defer(vm, "storage '%.*s' claims %lld %s elements but its entry holds %zu bytes", klen, key,
                        (long long)numel, vc_io_dtype_name(st->dtype), e->size);
    } else {
        st->data = cx->tb->map->addr + e->offset;
        st->numel = (size_t)numel;
    }
    return VC_OK;
}

/* Validates a _rebuild_tensor_v2 call; returns a deferred message or NULL. */
static const char *check_tensor(vc_pickle *vm, tb_tensor *t, const vc_pkl_value *args) {
    const vc_pkl_value *const *a = (const vc_pkl_value *const *)args->u.seq.items;
    int64_t off;
    if (args->u.seq.n != 6 && args->u.seq.n != 7)
        return defer(vm, "_rebuild_tensor_v2 called with %zu arguments (expected 6 or 7)", args->u.seq.n);
    if (a[0]->kind != VC_PKL_OBJECT || a[0]->u.obj.tag != OBJ_STORAGE)
        return "_rebuild_tensor_v2: first argument is not a storage";
    const tb_storage *st = a[0]->u.obj.ptr;
    t->storage = st;
    t->dtype = st->dtype;
    if (st->err) return st->err;
    if (!as_int(a[1], &off) || off < 0) return "storage offset is not a non-negative integer";
    const vc_pkl_value *size = a[2], *stride = a[3];
    if (size->kind != VC_PKL_TUPLE || stride->kind != VC_PKL_TUPLE || size->u.seq.n != stride->u.seq.n)
        return "size and stride are not tuples of the same length";
    if (size->u.seq.n > VC_IO_MAX_DIMS) return defer(vm, "%zu dimensions (at most %d supported)", size->u.seq.n, VC_IO_MAX_DIMS);
    t->ndim = (int)size->u.seq.n;
    t->shape = vc_pkl_alloc(vm, (size_t)(t->ndim + 1) * sizeof(int64_t));
    t->stride = vc_pkl_alloc(vm, (size_t)(t->ndim + 1) * sizeof(int64_t));
    if (!t->shape || !t->stride) return "out of memory";
    size_t numel = 1, nonzero = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (!as_int(size->u.seq.items[i], &t->shape[i]) || t->shape[i] < 0)
            return defer(vm, "size[%d] is not a non-negative integer", i);
        if (!as_int(stride->u.seq.items[i], &t->stride[i]) || t->stride[i] < 0)
            return defer(vm, "stride[%d] is not a non-negative integer", i);
        if (t->shape[i] && !vc_mul_ok(nonzero, (size_t)t->shape[i], &nonzero)) return "element count overflows";
        numel *= (size_t)t->shape[i];
    }
    if (!vc_io_size_ok(nonzero, st->dtype)) return "byte size overflows";
    t->numel = numel;
    t->data = st->data;
    t->contiguous = 1;
    if (!numel) return NULL; /* nothing is read: any offset is harmless */

    /* Last element addressed: off + sum((size-1)*stride), overflow-checked, must lie inside
     * the storage. Everything in between is then inside too (all strides >= 0). */
    size_t last = (size_t)off, expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        size_t span;
        if (!vc_mul_ok((size_t)t->shape[i] - 1, (size_t)t->stride[i], &span) || last > SIZE_MAX - span)
            return "extent overflows";
        last += span;
        if (t->shape[i] != 1 && (size_t)t->stride[i] != expect) t->contiguous = 0;
        expect *= (size_t)t->shape[i];
    }
    if (last >= st->numel)
        return defer(vm, "offset %lld and size/stride reach element %zu but the storage has %zu %s elements",
                     (long long)off, last, st->numel, vc_io_dtype_name(st->dtype));
    t->data = st->data + (size_t)off * vc_io_dtype_size(st->dtype);
    return NULL;
}

/* Attribute state as pickled by torch._utils._get_obj_state: None, a dict, or (dict, slots). */
static int plain_state(const vc_pkl_value *v) {
    return v->kind == VC_PKL_NONE || v->kind == VC_PKL_DICT || v->kind == VC_PKL_TUPLE;
}

static vc_status reduce(void *c, vc_pickle *vm, const vc_pkl_value *fn, const vc_pkl_value *args, vc_pkl_value **out) {
    const vc_pkl_value *const *a = (const vc_pkl_value *const *)args->u.seq.items;
    size_t n = args->u.seq.n;
    switch (fn->u.global.id) {
    case G_ORDERED_DICT:
        if (n != 0) return vc_fail(VC_ERR_FORMAT, "collections.OrderedDict called with arguments");
        *out = vc_pkl_new(vm, VC_PKL_DICT);
        return *out ? VC_OK : VC_ERR_MEMORY;
    case G_REBUILD_TENSOR_V2: {
        tb_tensor *t = vc_pkl_alloc(vm, sizeof *t);
        vc_pkl_value *v = vc_pkl_new(vm, VC_PKL_OBJECT);
        if (!t || !v) return VC_ERR_MEMORY;
        t->first = SIZE_MAX;
        t->err = check_tensor(vm, t, args);
        v->u.obj.tag = OBJ_TENSOR;
        v->u.obj.ptr = t;
        *out = v;
        return VC_OK;
    }
    case G_REBUILD_PARAM:
    case G_REBUILD_PARAM_STATE:
        /* (data, requires_grad, backward_hooks[, state]): a Parameter is its tensor here. */
        if (n != (fn->u.global.id == G_REBUILD_PARAM ? 3u : 4u) || a[0]->kind != VC_PKL_OBJECT ||
            a[0]->u.obj.tag != OBJ_TENSOR)
            return vc_fail(VC_ERR_FORMAT, "%.*s called with unexpected arguments", (int)fn->u.global.name_len,
                           fn->u.global.name);
        /* The state holds Python attributes set on the Parameter (p.foo = 1). The VM can only
         * have built plain data or whitelisted objects, so it is dropped like dict attributes. */
        if (n == 4 && !plain_state(a[3]))
            return vc_fail(VC_ERR_UNSUPPORTED, "Parameter state of type %s is not supported", vc_pkl_kind_name(a[3]->kind));
        *out = (vc_pkl_value *)a[0];
        return VC_OK;
    default:
        return vc_fail(VC_ERR_FORMAT, "cannot call '%.*s.%.*s'", (int)fn->u.global.module_len, fn->u.global.module,
                       (int)fn->u.global.name_len, fn->u.global.name);
    }
}

/* torch pickles a state dict's `_metadata` attribute (per-module versions) with BUILD on the
 * OrderedDict: attributes of a dict are not tensors, so they are dropped. */
static vc_status build(void *c, vc_pickle *vm, vc_pkl_value *obj, const vc_pkl_value *state) {
    if (obj->kind == VC_PKL_DICT && (state->kind == VC_PKL_DICT || state->kind == VC_PKL_NONE)) return VC_OK;
    return vc_fail(VC_ERR_UNSUPPORTED, "BUILD (setting Python state) on a %s is not supported",
                   obj->kind == VC_PKL_OBJECT ? "tensor" : vc_pkl_kind_name(obj->kind));
}

/* ---- flattening the result into named tensors ---- */

static const char *describe(const vc_pkl_value *v) {
    if (v->kind == VC_PKL_OBJECT) return v->u.obj.tag == OBJ_TENSOR ? "tensor" : "storage";
    return vc_pkl_kind_name(v->kind);
}

/* "top-level keys: 'state_dict' (dict), 'epoch' (int)" for messages about what was found. */
static void summarize(const vc_pkl_value *d, char *buf, size_t cap) {
    size_t used = (size_t)snprintf(buf, cap, "top-level keys:");
    size_t n = vc_pkl_dict_len(d);
    for (size_t i = 0; i < n && i < 8 && used < cap; i++) {
        const vc_pkl_value *k = d->u.seq.items[2 * i], *v = d->u.seq.items[2 * i + 1];
        if (k->kind == VC_PKL_STR)
            used += (size_t)snprintf(buf + used, cap - used, "%s '%.*s' (%s)", i ? "," : "",
                                     (int)(k->u.str.n > 60 ? 60 : k->u.str.n), k->u.str.s, describe(v));
        else
            used += (size_t)snprintf(buf + used, cap - used, "%s <%s> (%s)", i ? "," : "", describe(k), describe(v));
    }
    if (n > 8 && used < cap) snprintf(buf + used, cap - used, ", ... (%zu keys)", n);
}

static vc_status add_tensor(vc_torch_bin *tb, char *name, size_t len, tb_tensor *t) {
    if (t->err) {
        vc_status s = vc_fail(VC_ERR_FORMAT, "%s: tensor '%.200s': %s", tb->path, name, t->err);
        free(name);
        return s;
    }
    if (tb->n == tb->cap) {
        size_t cap = tb->cap ? tb->cap * 2 : 64;
        vc_tb_tensor *nt = realloc(tb->t, cap * sizeof *nt);
        char **nn = nt ? realloc(tb->names, cap * sizeof *nn) : NULL;
        if (nt) tb->t = nt;
        if (nn) tb->names = nn;
        if (!nt || !nn) {
            free(name);
            return vc_fail(VC_ERR_MEMORY, "%s: out of memory", tb->path);
        }
        tb->cap = cap;
    }
    tb->names[tb->n] = name;
    tb->t[tb->n] = (vc_tb_tensor){name, len, t->dtype, t->ndim, t->shape, t->stride, t->numel, t->data, t->contiguous,
                                  t->first};
    if (t->first == SIZE_MAX) t->first = tb->n;
    tb->n++;
    return VC_OK;
}

static vc_status flatten(vc_torch_bin *tb, const vc_pkl_value *d, const char *prefix, size_t plen, int depth) {
    if (depth > MAX_NEST)
        return vc_fail(VC_ERR_FORMAT, "%s: dicts nested more than %d deep (or a cycle) under '%.200s'", tb->path, MAX_NEST,
                       prefix);
    for (size_t i = 0; i < vc_pkl_dict_len(d); i++) {
        const vc_pkl_value *k = d->u.seq.items[2 * i], *v = d->u.seq.items[2 * i + 1];
        if (k->kind != VC_PKL_STR)
            return vc_fail(VC_ERR_FORMAT, "%s: dict key %s'%.200s' is a %s; a state dict has string keys", tb->path,
                           plen ? "under " : "at top level", prefix, describe(k));
        size_t len = plen + (plen ? 1 : 0) + k->u.str.n;
        char *name = malloc(len + 1);
        if (!name) return vc_fail(VC_ERR_MEMORY, "%s: out of memory", tb->path);
        memcpy(name, prefix, plen);
        if (plen) name[plen] = '.';
        memcpy(name + len - k->u.str.n, k->u.str.s, k->u.str.n);
        name[len] = 0;
        vc_status s;
        if (v->kind == VC_PKL_OBJECT && v->u.obj.tag == OBJ_TENSOR) {
            if ((s = add_tensor(tb, name, len, v->u.obj.ptr))) return s;
            continue;
        }
        if (v->kind == VC_PKL_DICT) s = flatten(tb, v, name, len, depth + 1);
        else {
            tb->found_other = 1;
            s = vc_fail(VC_ERR_FORMAT, "%s: '%.200s' is %s %s, not a tensor; expected a state dict (a dict of tensors, "
                        "possibly nested)", tb->path, name, describe(v)[0] == 'i' ? "an" : "a", describe(v));
        }
        free(name);
        if (s) return s;
    }
    return VC_OK;
}

static _Thread_local const vc_tb_tensor *sort_t;
static int by_name(const void *a, const void *b) {
    const vc_tb_tensor *x = &sort_t[*(const size_t *)a], *y = &sort_t[*(const size_t *)b];
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* A repeated key (or "a.b" next to {"a": {"b": ...}}) would silently drop a tensor. */
static vc_status check_unique(vc_torch_bin *tb) {
    if (tb->n < 2) return VC_OK;
    size_t *o = malloc(tb->n * sizeof *o);
    if (!o) return vc_fail(VC_ERR_MEMORY, "%s: out of memory", tb->path);
    for (size_t i = 0; i < tb->n; i++) o[i] = i;
    sort_t = tb->t;
    qsort(o, tb->n, sizeof *o, by_name);
    sort_t = NULL;
    vc_status s = VC_OK;
    for (size_t i = 1; i < tb->n && !s; i++) {
        const vc_tb_tensor *a = &tb->t[o[i - 1]], *b = &tb->t[o[i]];
        if (a->name_len == b->name_len && !memcmp(a->name, b->name, a->name_len))
            s = vc_fail(VC_ERR_FORMAT, "%s: tensor name '%.200s' appears twice", tb->path, a->name);
    }
    free(o);
    return s;
}

/* ---- opening ---- */

/* Finds the single "<prefix>/data.pkl" entry whose prefix is one path component. */
static vc_status find_pickle(vc_torch_bin *tb, const vc_zip_entry **pkl, ctx *cx) {
    *pkl = NULL;
    for (size_t i = 0; i < vc_zip_count(tb->zip); i++) {
        const vc_zip_entry *e = vc_zip_entry_at(tb->zip, i);
        if (e->name_len < 9 || memcmp(e->name + e->name_len - 9, "/data.pkl", 9)) continue;
        if (memchr(e->name, '/', e->name_len - 9)) continue;
        if (*pkl) return vc_fail(VC_ERR_FORMAT, "%s: more than one data.pkl in the archive", tb->path);
        *pkl = e;
    }
    if (!*pkl)
        return vc_fail(VC_ERR_FORMAT, "%s: zip archive without <name>/data.pkl: not a torch.save checkpoint", tb->path);
    cx->prefix = (*pkl)->name;
    cx->prefix_len = (*pkl)->name_len - 9;
    return VC_OK;
}

static vc_status check_byteorder(vc_torch_bin *tb, const ctx *cx) {
    char name[512];
    if (cx->prefix_len > 400) return VC_OK;
    int n = snprintf(name, sizeof name, "%.*s/byteorder", (int)cx->prefix_len, cx->prefix);
    const vc_zip_entry *e = vc_zip_find(tb->zip, name, (size_t)n);
    if (!e) return VC_OK; /* older writers omit it: they were little-endian */
    vc_status s = vc_zip_check_stored(tb->zip, e);
    if (s) return s;
    if (e->size == 6 && !memcmp(tb->map->addr + e->offset, "little", 6)) return VC_OK;
    return vc_fail(VC_ERR_UNSUPPORTED, "%s: checkpoint was written on a big-endian machine; not supported", tb->path);
}

static vc_status detect_legacy(const vc_mapfile *m) {
    /* Pre-1.6 torch.save (or _use_new_zipfile_serialization=False) writes a bare pickle
     * stream starting with a protocol-2 PROTO opcode; older still, a tar archive. */
    int pickle = m->size >= 2 && m->addr[0] == 0x80 && m->addr[1] <= 5;
    int tar = m->size >= 262 && !memcmp(m->addr + 257, "ustar", 5);
    if (pickle || tar)
        return vc_fail(VC_ERR_UNSUPPORTED,
                       "%s: legacy (non-zip) torch.save format; re-save it with a recent PyTorch: "
                       "torch.save(torch.load(path), path)",
                       m->path);
    return VC_OK;
}

static vc_status open_impl(vc_torch_bin *tb) {
    vc_status s = vc_mapfile_open(tb->path, &tb->map);
    if (s) return s;
    if ((s = detect_legacy(tb->map))) return s;
    if ((s = vc_zip_open(tb->map->addr, tb->map->size, tb->path, &tb->zip))) return s;

    ctx cx = {tb, NULL, 0};
    const vc_zip_entry *pkl;
    if ((s = find_pickle(tb, &pkl, &cx)) || (s = vc_zip_check_stored(tb->zip, pkl)) || (s = check_byteorder(tb, &cx)))
        return s;
    if (pkl->size > MAX_PKL) return vc_fail(VC_ERR_FORMAT, "%s: data.pkl is larger than 1 GiB", tb->path);
    const unsigned char *pdata = tb->map->addr + pkl->offset;
    if (vc_zip_crc32(pdata, pkl->size) != pkl->crc32)
        return vc_fail(VC_ERR_FORMAT, "%s: %.200s: CRC mismatch (corrupt file)", tb->path, pkl->name);

    vc_pkl_hooks hooks = {&cx, find_class, reduce, persistent_load, build};
    vc_pkl_value *root;
    if ((s = vc_pickle_run(pdata, pkl->size, &hooks, &tb->vm, &root))) {
        char why[768];
        snprintf(why, sizeof why, "%s", vc_last_error());
        return vc_fail(s, "%s: %.200s: %s", tb->path, pkl->name, why);
    }
    if (root->kind != VC_PKL_DICT)
        return vc_fail(VC_ERR_FORMAT, "%s: checkpoint holds a %s, expected a state dict (a dict of tensors)", tb->path,
                       describe(root));
    if ((s = flatten(tb, root, "", 0, 0)) && tb->found_other) {
        /* Say what the checkpoint does hold, e.g. {"model": ..., "optimizer": ..., "epoch": 3}. */
        char why[600], keys[400];
        snprintf(why, sizeof why, "%s", vc_last_error());
        summarize(root, keys, sizeof keys);
        return vc_fail(s, "%s; %s", why, keys);
    }
    if (s) return s;
    return check_unique(tb);
}

vc_status vc_tb_open(const char *path, vc_torch_bin **out) {
    *out = NULL;
    vc_torch_bin *tb = calloc(1, sizeof *tb);
    if (!tb || !(tb->path = strdup(path))) {
        free(tb);
        return vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    }
    vc_status s = open_impl(tb);
    if (s) {
        vc_tb_close(tb);
        return s;
    }
    /* The zip index is no longer needed: tensors point straight into the mapping. */
    vc_zip_close(tb->zip);
    tb->zip = NULL;
    *out = tb;
    return VC_OK;
}

void vc_tb_close(vc_torch_bin *tb) {
    if (!tb) return;
    for (size_t i = 0; i < tb->n; i++) free(tb->names[i]);
    free(tb->names);
    free(tb->t);
    vc_pickle_free(tb->vm);
    vc_zip_close(tb->zip);
    vc_mapfile_close(tb->map);
    free(tb->path);
    free(tb);
}

size_t vc_tb_count(const vc_torch_bin *tb) { return tb->n; }
const vc_tb_tensor *vc_tb_tensor_at(const vc_torch_bin *tb, size_t i) { return i < tb->n ? &tb->t[i] : NULL; }

vc_mapfile *vc_tb_take_mapping(vc_torch_bin *tb) {
    vc_mapfile *m = tb->map;
    tb->map = NULL;
    return m;
}
