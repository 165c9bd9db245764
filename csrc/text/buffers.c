/* Growable arrays, the string -> id hash map and error prefixing used by the tokenizer. */
#include <stdio.h>
#include <stdlib.h>

#include "text/tok_internal.h"

vc_status vc_grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return VC_OK;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2) return vc_fail(VC_ERR_MEMORY, "tokenizer buffer too large");
        n *= 2;
    }
    size_t bytes;
    if (!vc_mul_ok(n, size, &bytes)) return vc_fail(VC_ERR_MEMORY, "tokenizer buffer too large");
    void *q = realloc(*p, bytes);
    if (!q) return vc_fail(VC_ERR_MEMORY, "out of memory (%zu bytes) in the tokenizer", bytes);
    *p = q;
    *cap = n;
    return VC_OK;
}

vc_status vc_ids_push(vc_ids *v, int32_t id) {
    if (v->len == v->cap) {
        vc_status s = vc_grow((void **)&v->data, &v->cap, v->len + 1, sizeof *v->data);
        if (s) return s;
    }
    v->data[v->len++] = id;
    return VC_OK;
}

vc_status vc_bytes_append(vc_bytes *v, const void *s, size_t n) {
    if (n > SIZE_MAX - v->len) return vc_fail(VC_ERR_MEMORY, "decoded text too large");
    vc_status st = vc_grow((void **)&v->data, &v->cap, v->len + n, 1);
    if (st) return st;
    if (n) memcpy(v->data + v->len, s, n);
    v->len += n;
    return VC_OK;
}

void vc_ids_free(vc_ids *v) {
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

void vc_bytes_free(vc_bytes *v) {
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

int32_t vc_strmap_get(const vc_strmap *m, const vc_span *keys, const void *pool, const void *s, size_t n) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = (size_t)vc_hash_bytes(s, n) & mask;
    for (;; i = (i + 1) & mask) {
        int32_t id = m->slots[i];
        if (id < 0) return -1;
        if ((size_t)keys[id].len == n && memcmp((const char *)pool + keys[id].off, s, n) == 0) return id;
    }
}

/* Inserts id (its key must not be present yet). Keeps the load factor at most 1/2. */
vc_status vc_strmap_put(vc_strmap *m, const vc_span *keys, const void *pool, int32_t id) {
    if ((m->count + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 1024;
        int32_t *ns = malloc(ncap * sizeof *ns);
        if (!ns) return vc_fail(VC_ERR_MEMORY, "out of memory building the token table");
        memset(ns, 0xFF, ncap * sizeof *ns);
        for (size_t j = 0; j < m->cap; j++) {
            int32_t k = m->slots[j];
            if (k < 0) continue;
            size_t i = (size_t)vc_hash_bytes((const char *)pool + keys[k].off, (size_t)keys[k].len) & (ncap - 1);
            while (ns[i] >= 0) i = (i + 1) & (ncap - 1);
            ns[i] = k;
        }
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    size_t mask = m->cap - 1;
    size_t i = (size_t)vc_hash_bytes((const char *)pool + keys[id].off, (size_t)keys[id].len) & mask;
    while (m->slots[i] >= 0) i = (i + 1) & mask;
    m->slots[i] = id;
    m->count++;
    return VC_OK;
}

void vc_strmap_free(vc_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

vc_status vc_fail_prefixed(vc_status s, const char *prefix) {
    char msg[768];
    snprintf(msg, sizeof msg, "%s", vc_last_error()); /* copy: vc_fail rewrites that buffer */
    return vc_fail(s, "%s: %s", prefix, msg);
}
