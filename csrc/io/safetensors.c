/* safetensors reader: map, parse the JSON header, validate every entry (see safetensors.h). */
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"

struct vc_safetensors {
    char *path;           /* kept for messages after the mapping is taken */
    vc_mapfile *map;
    vc_json *header;      /* owns the name and metadata strings */
    vc_st_tensor *tensors;
    int64_t *shapes;      /* all tensors' dims, back to back */
    size_t n;
    vc_st_meta *meta;
    size_t nmeta;
};

/* Tensor names come from the file: print at most 200 bytes of them. */
#define NAME_FMT "'%.200s'"

static vc_status parse_metadata(vc_safetensors *st, const vc_json *m) {
    const char *path = st->map->path;
    if (!vc_json_is(m, VC_JSON_OBJECT))
        return vc_fail(VC_ERR_FORMAT, "%s: __metadata__ must be an object of strings, got a %s", path,
                       vc_json_type_name(vc_json_type_of(m)));
    st->nmeta = vc_json_size(m);
    if (!st->nmeta) return VC_OK;
    if (!(st->meta = calloc(st->nmeta, sizeof *st->meta))) return vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    for (size_t i = 0; i < st->nmeta; i++) {
        vc_st_meta *e = &st->meta[i];
        e->key = vc_json_key_at(m, i, &e->key_len);
        e->value = vc_json_string(vc_json_at(m, i), &e->value_len);
        if (!e->value)
            return vc_fail(VC_ERR_FORMAT, "%s: __metadata__ value for key " NAME_FMT " is not a string", path, e->key);
    }
    return VC_OK;
}

/* Reads a JSON integer that must be >= 0. */
static int get_size(const vc_json *v, size_t *out) {
    int64_t i;
    if (!vc_json_int64(v, &i) || i < 0 || (uint64_t)i > SIZE_MAX) return 0;
    *out = (size_t)i;
    return 1;
}

/* Fills one tensor from its header entry; `dims` has room for VC_IO_MAX_DIMS values. */
static vc_status parse_tensor(vc_safetensors *st, vc_st_tensor *t, const vc_json *e, int64_t *dims,
                              size_t data_start, size_t data_size) {
    const char *path = st->map->path, *name = t->name;
    if (!vc_json_is(e, VC_JSON_OBJECT))
        return vc_fail(VC_ERR_FORMAT, "%s: tensor " NAME_FMT ": entry must be an object, got a %s", path, name,
                       vc_json_type_name(vc_json_type_of(e)));

    size_t dlen;
    const char *dname = vc_json_string(vc_json_get(e, "dtype"), &dlen);
    if (!dname) return vc_fail(VC_ERR_FORMAT, "%s: tensor " NAME_FMT ": missing or non-string \"dtype\"", path, name);
    if (!vc_io_dtype_from_name(dname, dlen, &t->dtype))
        return vc_fail(VC_ERR_FORMAT,
                       "%s: tensor " NAME_FMT ": unsupported dtype '%.40s' (supported: F64 F32 F16 BF16 I64 I32 I16 "
                       "I8 U8 BOOL)",
                       path, name, dname);

    const vc_json *shape = vc_json_get(e, "shape");
    if (!vc_json_is(shape, VC_JSON_ARRAY))
        return vc_fail(VC_ERR_FORMAT, "%s: tensor " NAME_FMT ": missing or non-array \"shape\"", path, name);
    if (vc_json_size(shape) > VC_IO_MAX_DIMS)
        return vc_fail(VC_ERR_FORMAT, "%s: tensor " NAME_FMT ": %zu dimensions (at most %d supported)", path, name,
                       vc_json_size(shape), VC_IO_MAX_DIMS);
    t->ndim = (int)vc_json_size(shape);
    t->shape = dims;
    /* numel overflow: every dim counts, even next to a zero, so that each dim and the
     * product of the non-zero ones fit in size_t (NumPy needs that to build the array). */
    size_t numel = 1, nonzero = 1;
    for (int i = 0; i < t->ndim; i++) {
        size_t d;
        if (!get_size(vc_json_at(shape, (size_t)i), &d) || d > (size_t)INT64_MAX)
            return vc_fail(VC_ERR_FORMAT, "%s: tensor " NAME_FMT ": shape[%d] is not a non-negative integer", path,
                           name, i);
        dims[i] = (int64_t)d;
        if (d && !vc_mul_ok(nonzero, d, &nonzero))
            return vc_fail(VC_ERR_FORMAT, "%s: tensor " NAME_FMT ": shape product overflows", path, name);
        numel *= d; /* cannot overflow: |numel| <= nonzero */
    }
    t->numel = numel;
    if (!vc_io_size_ok(nonzero, t->dtype))
        return vc_fail(VC_ERR_FORMAT, "%s: tensor " NAME_FMT ": byte size overflows", path, name);
    t->nbytes = numel * vc_io_dtype_size(t->dtype);

    const vc_json *offs = vc_json_get(e, "data_offsets");
    size_t begin, end;
    if (!vc_json_is(offs, VC_JSON_ARRAY) || vc_json_size(offs) != 2 || !get_size(vc_json_at(offs, 0), &begin) ||
        !get_size(vc_json_at(offs, 1), &end))
        return vc_fail(VC_ERR_FORMAT, "%s: tensor " NAME_FMT ": \"data_offsets\" must be [begin, end] (non-negative integers)",
                       path, name);
    if (begin > end)
        return vc_fail(VC_ERR_FORMAT, "%s: tensor " NAME_FMT ": data_offsets begin %zu > end %zu", path, name, begin, end);
    if (end > data_size)
        return vc_fail(VC_ERR_FORMAT, "%s: tensor " NAME_FMT ": data_offsets end %zu is past the data buffer (%zu bytes)",
                       path, name, end, data_size);
    if (end - begin != t->nbytes)
        return vc_fail(VC_ERR_FORMAT,
                       "%s: tensor " NAME_FMT ": data_offsets span %zu bytes but dtype %s and shape give %zu", path,
                       name, end - begin, vc_io_dtype_name(t->dtype), t->nbytes);
    t->offset = data_start + begin; /* <= file size, no overflow */
    return VC_OK;
}

/* qsort has no context in C11: the tensors being sorted are published per thread. */
static _Thread_local const vc_st_tensor *sort_base;
static int by_offset(const void *a, const void *b) {
    const vc_st_tensor *x = &sort_base[*(const size_t *)a], *y = &sort_base[*(const size_t *)b];
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Two tensors sharing bytes would alias each other's (writeable) arrays. Empty tensors own
 * no bytes and never overlap. */
static vc_status check_overlaps(vc_safetensors *st) {
    if (st->n < 2) return VC_OK;
    size_t *order = malloc(st->n * sizeof *order);
    if (!order) return vc_fail(VC_ERR_MEMORY, "%s: out of memory", st->map->path);
    size_t m = 0;
    for (size_t i = 0; i < st->n; i++)
        if (st->tensors[i].nbytes) order[m++] = i;
    sort_base = st->tensors;
    qsort(order, m, sizeof *order, by_offset);
    sort_base = NULL;
    vc_status s = VC_OK;
    for (size_t k = 1; k < m && !s; k++) {
        const vc_st_tensor *a = &st->tensors[order[k - 1]], *b = &st->tensors[order[k]];
        if (b->offset < a->offset + a->nbytes)
            s = vc_fail(VC_ERR_FORMAT, "%s: tensors " NAME_FMT " and " NAME_FMT " overlap in the data buffer",
                        st->map->path, a->name, b->name);
    }
    free(order);
    return s;
}

static vc_status parse_header(vc_safetensors *st) {
    const vc_mapfile *map = st->map;
    const char *path = map->path;
    if (map->size < 8)
        return vc_fail(VC_ERR_FORMAT, "%s: not a safetensors file (%zu bytes, shorter than the 8-byte header length)",
                       path, map->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | map->addr[i];
    if (hlen > map->size - 8)
        return vc_fail(VC_ERR_FORMAT, "%s: header length %llu exceeds the file size (%zu bytes); truncated or not safetensors",
                       path, (unsigned long long)hlen, map->size);
    if (hlen > VC_ST_MAX_HEADER)
        return vc_fail(VC_ERR_FORMAT, "%s: header length %llu exceeds the %u-byte limit", path,
                       (unsigned long long)hlen, VC_ST_MAX_HEADER);
    size_t data_start = 8 + (size_t)hlen, data_size = map->size - data_start;

    vc_status s = vc_json_parse((const char *)map->addr + 8, (size_t)hlen, 8, &st->header);
    if (s) {
        char why[512];
        snprintf(why, sizeof why, "%s", vc_last_error());
        return vc_fail(s == VC_ERR_MEMORY ? s : VC_ERR_FORMAT, "%s: header: %s", path, why);
    }
    const vc_json *h = st->header;
    if (!vc_json_is(h, VC_JSON_OBJECT))
        return vc_fail(VC_ERR_FORMAT, "%s: header is a JSON %s, expected an object", path,
                       vc_json_type_name(vc_json_type_of(h)));

    size_t members = vc_json_size(h), ndims = 0;
    for (size_t i = 0; i < members; i++) {
        size_t klen;
        const char *key = vc_json_key_at(h, i, &klen);
        if (klen == 12 && !memcmp(key, "__metadata__", 12)) {
            if ((s = parse_metadata(st, vc_json_at(h, i)))) return s;
            continue;
        }
        ndims += vc_json_size(vc_json_get(vc_json_at(h, i), "shape")); /* bounded by the header size */
    }
    st->tensors = calloc(members ? members : 1, sizeof *st->tensors);
    st->shapes = calloc(ndims ? ndims : 1, sizeof *st->shapes);
    if (!st->tensors || !st->shapes) return vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);

    size_t dim_used = 0;
    for (size_t i = 0; i < members; i++) {
        size_t klen;
        const char *key = vc_json_key_at(h, i, &klen);
        if (klen == 12 && !memcmp(key, "__metadata__", 12)) continue;
        vc_st_tensor *t = &st->tensors[st->n];
        t->name = key;
        t->name_len = klen;
        const vc_json *e = vc_json_at(h, i);
        /* The shape count above came from the same tree, so dims fit; re-check anyway. */
        if (vc_json_size(vc_json_get(e, "shape")) > ndims - dim_used)
            return vc_fail(VC_ERR_INTERNAL, "%s: shape bookkeeping mismatch", path);
        if ((s = parse_tensor(st, t, e, st->shapes + dim_used, data_start, data_size))) return s;
        dim_used += (size_t)t->ndim;
        st->n++;
    }
    return check_overlaps(st);
}

vc_status vc_st_open(const char *path, vc_safetensors **out) {
    *out = NULL;
    vc_safetensors *st = calloc(1, sizeof *st);
    if (!st) return vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    vc_status s = (st->path = strdup(path)) ? vc_mapfile_open(path, &st->map)
                                             : vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    if (!s) s = parse_header(st);
    if (s) {
        vc_st_close(st);
        return s;
    }
    *out = st;
    return VC_OK;
}

void vc_st_close(vc_safetensors *st) {
    if (!st) return;
    vc_mapfile_close(st->map);
    free(st->path);
    vc_json_free(st->header);
    free(st->tensors);
    free(st->shapes);
    free(st->meta);
    free(st);
}

size_t vc_st_count(const vc_safetensors *st) { return st->n; }
const vc_st_tensor *vc_st_tensor_at(const vc_safetensors *st, size_t i) { return i < st->n ? &st->tensors[i] : NULL; }
void *vc_st_data(const vc_safetensors *st, size_t i) {
    return (i < st->n && st->map) ? st->map->addr + st->tensors[i].offset : NULL;
}
size_t vc_st_meta_count(const vc_safetensors *st) { return st->nmeta; }
const vc_st_meta *vc_st_meta_at(const vc_safetensors *st, size_t i) { return i < st->nmeta ? &st->meta[i] : NULL; }
const char *vc_st_path(const vc_safetensors *st) { return st->path; }

vc_mapfile *vc_st_take_mapping(vc_safetensors *st) {
    vc_mapfile *m = st->map;
    st->map = NULL;
    return m;
}
