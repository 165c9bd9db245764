/* safetensors writer: JSON header + data buffer, written atomically (see safetensors.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"
#include "io/safetensors.h"

typedef struct {
    char *p;
    size_t len, cap;
    int failed; /* out of memory: later appends are no-ops, checked once at the end */
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n + 1) {
            if (cap > SIZE_MAX / 2) { b->failed = 1; return; }
            cap *= 2;
        }
        char *q = realloc(b->p, cap);
        if (!q) { b->failed = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void put_u64(sbuf *b, unsigned long long v) {
    char t[32];
    put(b, t, (size_t)snprintf(t, sizeof t, "%llu", v));
}

/* JSON string: quote, backslash and control characters escaped; other bytes (already UTF-8,
 * the Python layer encoded them) pass through. */
static void put_str(sbuf *b, const char *s, size_t n) {
    put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        if (c == '"') put(b, "\\\"", 2);
        else if (c == '\\') put(b, "\\\\", 2);
        else put(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c));
    }
    put(b, s + run, n - run);
    put(b, "\"", 1);
}

static _Thread_local const vc_st_entry *sort_entries;
/* Data layout order: larger elements first (keeps every tensor aligned to its element size
 * when the data buffer is 8-aligned), then original order. */
static int by_itemsize(const void *a, const void *b) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    size_t si = vc_io_dtype_size(sort_entries[i].dtype), sj = vc_io_dtype_size(sort_entries[j].dtype);
    if (si != sj) return si > sj ? -1 : 1;
    return (i > j) - (i < j);
}
static int by_name(const void *a, const void *b) {
    const vc_st_entry *x = &sort_entries[*(const size_t *)a], *y = &sort_entries[*(const size_t *)b];
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* Checks entries (sizes match shapes, names unique and not "__metadata__"). */
static vc_status check_entries(const char *path, const vc_st_entry *t, size_t n, size_t *order) {
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)t[i].dtype >= VC_IO_NDTYPES || t[i].ndim < 0 || t[i].ndim > VC_IO_MAX_DIMS)
            return vc_fail(VC_ERR_ARG, "%s: tensor '%.200s': bad dtype or rank", path, t[i].name);
        if (t[i].name_len == 12 && !memcmp(t[i].name, "__metadata__", 12))
            return vc_fail(VC_ERR_ARG, "%s: '__metadata__' is reserved and cannot be a tensor name", path);
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0 || !vc_mul_ok(numel, (size_t)t[i].shape[d], &numel))
                return vc_fail(VC_ERR_ARG, "%s: tensor '%.200s': bad shape", path, t[i].name);
        size_t nbytes;
        if (!vc_mul_ok(numel, vc_io_dtype_size(t[i].dtype), &nbytes) || nbytes != t[i].nbytes)
            return vc_fail(VC_ERR_ARG, "%s: tensor '%.200s': %zu data bytes do not match its shape and dtype", path,
                           t[i].name, t[i].nbytes);
        order[i] = i;
    }
    sort_entries = t;
    qsort(order, n, sizeof *order, by_name);
    sort_entries = NULL;
    for (size_t i = 1; i < n; i++)
        if (t[order[i]].name_len == t[order[i - 1]].name_len &&
            !memcmp(t[order[i]].name, t[order[i - 1]].name, t[order[i]].name_len))
            return vc_fail(VC_ERR_ARG, "%s: duplicate tensor name '%.200s'", path, t[order[i]].name);
    return VC_OK;
}

static vc_status build_header(const char *path, const vc_st_entry *t, size_t n, const vc_st_meta *meta, size_t nmeta,
                              const size_t *begin, sbuf *h) {
    puts_(h, "{");
    if (nmeta) {
        puts_(h, "\"__metadata__\":{");
        for (size_t i = 0; i < nmeta; i++) {
            if (i) puts_(h, ",");
            put_str(h, meta[i].key, meta[i].key_len);
            puts_(h, ":");
            put_str(h, meta[i].value, meta[i].value_len);
        }
        puts_(h, "}");
    }
    for (size_t i = 0; i < n; i++) {
        if (i || nmeta) puts_(h, ",");
        put_str(h, t[i].name, t[i].name_len);
        puts_(h, ":{\"dtype\":\"");
        puts_(h, vc_io_dtype_name(t[i].dtype));
        puts_(h, "\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            if (d) puts_(h, ",");
            put_u64(h, (unsigned long long)t[i].shape[d]);
        }
        puts_(h, "],\"data_offsets\":[");
        put_u64(h, begin[i]);
        puts_(h, ",");
        put_u64(h, begin[i] + t[i].nbytes);
        puts_(h, "]}");
    }
    puts_(h, "}");
    while (h->len % 8) puts_(h, " "); /* data buffer starts 8-aligned */
    if (h->failed) return vc_fail(VC_ERR_MEMORY, "%s: out of memory building the header", path);
    if (h->len > VC_ST_MAX_HEADER) return vc_fail(VC_ERR_ARG, "%s: header would exceed the 100 MB limit", path);
    return VC_OK;
}

vc_status vc_st_save(const char *path, const vc_st_entry *t, size_t n, const vc_st_meta *meta, size_t nmeta) {
    size_t *order = malloc((n ? n : 1) * sizeof *order), *begin = malloc((n ? n : 1) * sizeof *begin);
    sbuf h = {0};
    vc_status s = VC_OK;
    if (!order || !begin) s = vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    if (!s) s = check_entries(path, t, n, order);
    if (!s) {
        for (size_t i = 0; i < n; i++) order[i] = i;
        sort_entries = t;
        qsort(order, n, sizeof *order, by_itemsize);
        sort_entries = NULL;
        size_t off = 0;
        for (size_t k = 0; k < n && !s; k++) {
            begin[order[k]] = off;
            if (off > SIZE_MAX - t[order[k]].nbytes) s = vc_fail(VC_ERR_ARG, "%s: total size overflows", path);
            else off += t[order[k]].nbytes;
        }
    }
    if (!s) s = build_header(path, t, n, meta, nmeta, begin, &h);
    if (!s) {
        vc_atomic_file f;
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
        s = vc_atomic_open(path, &f);
        if (!s) s = vc_atomic_write(&f, len8, 8);
        if (!s) s = vc_atomic_write(&f, h.p, h.len);
        for (size_t k = 0; k < n && !s; k++) s = vc_atomic_write(&f, t[order[k]].data, t[order[k]].nbytes);
        if (!s) s = vc_atomic_commit(&f);
        else if (f.path) vc_atomic_abort(&f);
    }
    free(h.p);
    free(order);
    free(begin);
    return s;
}
