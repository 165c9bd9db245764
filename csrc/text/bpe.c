/* The BPE model: vocabulary, merge ranks, the merge loop for one word, and a word cache.
 *
 * Words are merged as Hugging Face tokenizers does: repeatedly apply the adjacent pair with
 * the lowest merge rank, the leftmost one on ties. A binary heap of candidate pairs keeps
 * that O(n log n) for long words (a run of letters can be one "word" of any length);
 * entries made stale by earlier merges are skipped when popped.
 */
#include <stdio.h>
#include <stdlib.h>

#include "text/tok_internal.h"
#include "text/unicode.h"

/* ---- vocabulary ---------------------------------------------------------------------- */

vc_status vc_tok_create(vc_tokenizer **out) {
    *out = NULL;
    vc_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return vc_fail(VC_ERR_MEMORY, "out of memory creating a tokenizer");
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    *out = t;
    return VC_OK;
}

void vc_tok_set_options(vc_tokenizer *t, int add_prefix_space, int ignore_merges) {
    t->add_prefix_space = add_prefix_space != 0;
    t->ignore_merges = ignore_merges != 0;
}

/* Short printable excerpt of a token for error messages (control bytes escaped). */
static const char *excerpt(const char *s, size_t n, char buf[64]) {
    size_t k = 0, i = 0;
    for (; i < n && k < 48; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F) k += (size_t)snprintf(buf + k, 64 - k, "\\x%02x", c);
        else buf[k++] = (char)c;
    }
    snprintf(buf + k, 64 - k, "%s", i < n ? "..." : "");
    return buf;
}

vc_status vc_tok_add_vocab(vc_tokenizer *t, const char *tok, size_t len, int64_t id) {
    char b1[64], b2[64];
    if (t->stage != 0) return vc_fail(VC_ERR_INTERNAL, "vocabulary entries must come before merges");
    if (id < 0 || id > VC_TOK_MAX_ID)
        return vc_fail(VC_ERR_FORMAT, "token '%s' has id %lld, outside 0..%d", excerpt(tok, len, b1), (long long)id,
                       VC_TOK_MAX_ID);
    if (len > INT32_MAX || t->tok_pool_len + len > UINT32_MAX)
        return vc_fail(VC_ERR_FORMAT, "vocabulary too large");
    if (len == 0) return vc_fail(VC_ERR_FORMAT, "empty token with id %lld", (long long)id);
    int32_t old = vc_strmap_get(&t->tok_map, t->tok, t->tok_pool, tok, len);
    if (old >= 0) return vc_fail(VC_ERR_FORMAT, "token '%s' appears twice (ids %d and %lld)", excerpt(tok, len, b1), old,
                                 (long long)id);
    if (id < t->n_ids && t->tok[id].len >= 0)
        return vc_fail(VC_ERR_FORMAT, "id %lld is given to both '%s' and '%s'", (long long)id,
                       excerpt(t->tok_pool + t->tok[id].off, (size_t)t->tok[id].len, b1), excerpt(tok, len, b2));
    if (id >= t->n_ids) {
        size_t old_cap = t->tok_cap;
        vc_status s = vc_grow((void **)&t->tok, &t->tok_cap, (size_t)id + 1, sizeof *t->tok);
        if (s) return s;
        for (size_t i = old_cap; i < t->tok_cap; i++) t->tok[i] = (vc_span){0, -1};
        t->n_ids = (int32_t)id + 1;
    }
    vc_status s = vc_grow((void **)&t->tok_pool, &t->tok_pool_cap, t->tok_pool_len + len, 1);
    if (s) return s;
    memcpy(t->tok_pool + t->tok_pool_len, tok, len);
    t->tok[id] = (vc_span){(uint32_t)t->tok_pool_len, (int32_t)len};
    t->tok_pool_len += len;
    t->n_model++;
    return vc_strmap_put(&t->tok_map, t->tok, t->tok_pool, (int32_t)id);
}

/* ---- merges -------------------------------------------------------------------------- */

static const vc_merge *merge_get(const vc_tokenizer *t, int32_t a, int32_t b) {
    if (!t->merge_cap) return NULL;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = t->merge_cap - 1, i = (size_t)vc_hash_u64(key) & mask;
    for (;; i = (i + 1) & mask) {
        const vc_merge *m = &t->merges[i];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
    }
}

static vc_status merge_rehash(vc_tokenizer *t) {
    size_t ncap = t->merge_cap ? t->merge_cap * 2 : 1024;
    vc_merge *nm = malloc(ncap * sizeof *nm);
    if (!nm) return vc_fail(VC_ERR_MEMORY, "out of memory building the merge table");
    for (size_t i = 0; i < ncap; i++) nm[i].key = UINT64_MAX;
    for (size_t j = 0; j < t->merge_cap; j++) {
        if (t->merges[j].key == UINT64_MAX) continue;
        size_t i = (size_t)vc_hash_u64(t->merges[j].key) & (ncap - 1);
        while (nm[i].key != UINT64_MAX) i = (i + 1) & (ncap - 1);
        nm[i] = t->merges[j];
    }
    free(t->merges);
    t->merges = nm;
    t->merge_cap = ncap;
    return VC_OK;
}

vc_status vc_tok_add_merge(vc_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen) {
    char b1[64];
    if (t->stage > 1) return vc_fail(VC_ERR_INTERNAL, "merges must come before added tokens");
    t->stage = 1;
    int32_t ia = vc_strmap_get(&t->tok_map, t->tok, t->tok_pool, a, alen);
    if (ia < 0) return vc_fail(VC_ERR_FORMAT, "merge part '%s' is not in the vocabulary", excerpt(a, alen, b1));
    int32_t ib = vc_strmap_get(&t->tok_map, t->tok, t->tok_pool, b, blen);
    if (ib < 0) return vc_fail(VC_ERR_FORMAT, "merge part '%s' is not in the vocabulary", excerpt(b, blen, b1));
    if (alen > SIZE_MAX - blen) return vc_fail(VC_ERR_FORMAT, "merge too long");
    char small[256], *ab = alen + blen <= sizeof small ? small : malloc(alen + blen);
    if (!ab) return vc_fail(VC_ERR_MEMORY, "out of memory reading merges");
    memcpy(ab, a, alen);
    memcpy(ab + alen, b, blen);
    int32_t iab = vc_strmap_get(&t->tok_map, t->tok, t->tok_pool, ab, alen + blen);
    vc_status s = VC_OK;
    if (iab < 0) s = vc_fail(VC_ERR_FORMAT, "merged token '%s' is not in the vocabulary", excerpt(ab, alen + blen, b1));
    if (ab != small) free(ab);
    if (s) return s;
    if (t->n_merges >= INT32_MAX) return vc_fail(VC_ERR_FORMAT, "too many merges");
    int32_t rank = (int32_t)t->n_merges++;
    /* A repeated pair takes its later rank, as the reference's map insertion does. */
    vc_merge *m = (vc_merge *)merge_get(t, ia, ib);
    if (m) {
        m->rank = rank;
        return VC_OK;
    }
    if ((t->n_merges + 1) * 2 > t->merge_cap && (s = merge_rehash(t))) return s;
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    size_t mask = t->merge_cap - 1, i = (size_t)vc_hash_u64(key) & mask;
    while (t->merges[i].key != UINT64_MAX) i = (i + 1) & mask;
    t->merges[i] = (vc_merge){key, rank, iab};
    return VC_OK;
}

/* ---- word cache ---------------------------------------------------------------------- */

/* Frequent words repeat a lot in text, so their merge results are kept. The cache is
 * fixed-size and simply emptied when full; it is shared by all threads behind a mutex. */
enum { CACHE_ENTRIES = 16384, CACHE_SLOTS = 32768, CACHE_KEY_BYTES = 1 << 18, CACHE_IDS = 1 << 16,
       CACHE_MAX_WORD = 64 };

struct vc_word_cache {
    pthread_mutex_t lock;
    size_t n_ent, keys_len, ids_len;
    int32_t slots[CACHE_SLOTS]; /* entry index, or -1 */
    struct {
        uint64_t hash;
        uint32_t key_off, ids_off;
        uint16_t key_len, ids_len;
    } ent[CACHE_ENTRIES];
    uint8_t keys[CACHE_KEY_BYTES];
    int32_t ids[CACHE_IDS];
};

static void cache_clear(vc_word_cache *c) {
    memset(c->slots, 0xFF, sizeof c->slots);
    c->n_ent = c->keys_len = c->ids_len = 0;
}

/* Appends the cached ids of word s[0..n) to out; returns 1 on a hit, 0 on a miss, -1 on error. */
static int cache_get(vc_word_cache *c, uint64_t h, const uint8_t *s, size_t n, vc_ids *out) {
    int r = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = (size_t)h & (CACHE_SLOTS - 1);; i = (i + 1) & (CACHE_SLOTS - 1)) {
        int32_t e = c->slots[i];
        if (e < 0) break;
        if (c->ent[e].hash != h || c->ent[e].key_len != n || memcmp(c->keys + c->ent[e].key_off, s, n)) continue;
        size_t k = c->ent[e].ids_len;
        if (vc_grow((void **)&out->data, &out->cap, out->len + k, sizeof *out->data)) {
            r = -1;
            break;
        }
        memcpy(out->data + out->len, c->ids + c->ent[e].ids_off, k * sizeof *out->data);
        out->len += k;
        r = 1;
        break;
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

static void cache_put(vc_word_cache *c, uint64_t h, const uint8_t *s, size_t n, const int32_t *ids, size_t k) {
    pthread_mutex_lock(&c->lock);
    if (c->n_ent == CACHE_ENTRIES || c->keys_len + n > CACHE_KEY_BYTES || c->ids_len + k > CACHE_IDS) cache_clear(c);
    size_t i = (size_t)h & (CACHE_SLOTS - 1);
    for (;; i = (i + 1) & (CACHE_SLOTS - 1)) {
        int32_t e = c->slots[i];
        if (e < 0) break;
        /* Another thread may have added the same word meanwhile. */
        if (c->ent[e].hash == h && c->ent[e].key_len == n && !memcmp(c->keys + c->ent[e].key_off, s, n)) {
            pthread_mutex_unlock(&c->lock);
            return;
        }
    }
    size_t e = c->n_ent++;
    c->ent[e].hash = h;
    c->ent[e].key_off = (uint32_t)c->keys_len;
    c->ent[e].key_len = (uint16_t)n;
    c->ent[e].ids_off = (uint32_t)c->ids_len;
    c->ent[e].ids_len = (uint16_t)k;
    memcpy(c->keys + c->keys_len, s, n);
    memcpy(c->ids + c->ids_len, ids, k * sizeof *ids);
    c->keys_len += n;
    c->ids_len += k;
    c->slots[i] = (int32_t)e;
    pthread_mutex_unlock(&c->lock);
}

/* ---- finishing and freeing ------------------------------------------------------------ */

size_t vc_bytelevel_bytes(const uint8_t *s, size_t n, uint8_t *dst) {
    size_t k = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = vc_utf8_next(s + i, n - i, &cp);
        int b = cp == VC_UTF8_INVALID ? -1 : vc_char_byte(cp);
        if (b < 0) {
            memcpy(dst, s, n);
            return n;
        }
        dst[k++] = (uint8_t)b;
        i += l;
    }
    return k;
}

vc_status vc_bpe_finish(vc_tokenizer *t) {
    t->raw = malloc(((size_t)t->n_ids + 1) * sizeof *t->raw);
    t->raw_pool = malloc(t->tok_pool_len + 1);
    if (!t->raw || !t->raw_pool) return vc_fail(VC_ERR_MEMORY, "out of memory building the vocabulary");
    size_t at = 0;
    for (int32_t id = 0; id < t->n_ids; id++) {
        vc_span sp = t->tok[id];
        if (sp.len < 0) {
            t->raw[id] = (vc_span){0, -1};
            continue;
        }
        size_t k = vc_bytelevel_bytes((const uint8_t *)t->tok_pool + sp.off, (size_t)sp.len, t->raw_pool + at);
        t->raw[id] = (vc_span){(uint32_t)at, (int32_t)k};
        at += k;
    }
    t->raw_pool_len = at;
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t l = vc_utf8_put(vc_byte_char((uint8_t)b), u);
        t->byte_id[b] = vc_strmap_get(&t->tok_map, t->tok, t->tok_pool, u, l);
    }
    if (t->ignore_merges) {
        for (int32_t id = 0; id < t->n_ids; id++) {
            vc_span sp = t->raw[id];
            if (sp.len < 0 || vc_strmap_get(&t->raw_map, t->raw, t->raw_pool, t->raw_pool + sp.off, (size_t)sp.len) >= 0)
                continue;
            vc_status s = vc_strmap_put(&t->raw_map, t->raw, t->raw_pool, id);
            if (s) return s;
        }
    }
    t->cache = malloc(sizeof *t->cache);
    if (!t->cache) return vc_fail(VC_ERR_MEMORY, "out of memory allocating the word cache");
    if (pthread_mutex_init(&t->cache->lock, NULL)) {
        free(t->cache);
        t->cache = NULL;
        return vc_fail(VC_ERR_INTERNAL, "cannot create the word cache lock");
    }
    cache_clear(t->cache);
    return VC_OK;
}

void vc_bpe_free(vc_tokenizer *t) {
    if (t->cache) {
        pthread_mutex_destroy(&t->cache->lock);
        free(t->cache);
    }
    free(t->tok);
    free(t->raw);
    free(t->tok_pool);
    free(t->raw_pool);
    free(t->merges);
    vc_strmap_free(&t->tok_map);
    vc_strmap_free(&t->raw_map);
}

/* ---- merging one word ------------------------------------------------------------------ */

/* Min-heap of candidate merges, each (rank << 32 | left symbol index): ordering the packed
 * value orders by rank, then by position, which is the reference's tie-break. */
static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

static void push_pair(const vc_tokenizer *t, uint64_t *heap, size_t *nh, const int32_t *id, int32_t left,
                      int32_t right) {
    const vc_merge *m = merge_get(t, id[left], id[right]);
    if (m) heap_push(heap, nh, (uint64_t)(uint32_t)m->rank << 32 | (uint32_t)left);
}

/* Merges the bytes s[0..n) and appends the resulting ids to out. */
static vc_status merge_word(const vc_tokenizer *t, const uint8_t *s, size_t n, vc_ids *out) {
    /* Per symbol: id (-1 once merged into its left neighbour), prev, next. Each merge adds at
     * most two candidates to the n - 1 initial ones, so the heap holds fewer than 3n. */
    enum { SMALL = 64 };
    int32_t sid[SMALL], sprev[SMALL], snext[SMALL];
    uint64_t sheap[3 * SMALL];
    int32_t *id = sid, *prev = sprev, *next = snext;
    uint64_t *heap = sheap;
    void *block = NULL;
    if (n > SMALL) {
        if (n > (SIZE_MAX / 64) || n > INT32_MAX) return vc_fail(VC_ERR_MEMORY, "word too long to tokenize");
        block = malloc(n * (3 * sizeof(int32_t) + 3 * sizeof(uint64_t)));
        if (!block) return vc_fail(VC_ERR_MEMORY, "out of memory tokenizing a %zu-byte word", n);
        heap = block;
        id = (int32_t *)(heap + 3 * n);
        prev = id + n;
        next = prev + n;
    }
    /* One symbol per byte; a byte missing from the vocabulary is dropped, like the
     * reference's BPE without an unknown token. */
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t b = t->byte_id[s[i]];
        if (b < 0) continue;
        id[m] = b;
        prev[m] = m - 1;
        next[m] = m + 1;
        m++;
    }
    if (m) next[m - 1] = -1;
    size_t nh = 0;
    for (int32_t i = 0; i + 1 < m; i++) push_pair(t, heap, &nh, id, i, i + 1);
    while (nh) {
        uint64_t top = heap_pop(heap, &nh);
        int32_t pos = (int32_t)(uint32_t)top, rank = (int32_t)(top >> 32);
        if (id[pos] < 0) continue;
        int32_t nx = next[pos];
        if (nx < 0) continue;
        const vc_merge *mg = merge_get(t, id[pos], id[nx]);
        if (!mg || mg->rank != rank) continue; /* stale: a neighbour changed since the push */
        id[pos] = mg->id;
        id[nx] = -1;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = pos;
        if (prev[pos] >= 0) push_pair(t, heap, &nh, id, prev[pos], pos);
        if (next[pos] >= 0) push_pair(t, heap, &nh, id, pos, next[pos]);
    }
    vc_status st = VC_OK;
    for (int32_t i = m ? 0 : -1; i >= 0 && !st; i = next[i]) st = vc_ids_push(out, id[i]);
    free(block);
    return st;
}

vc_status vc_bpe_piece(const vc_tokenizer *t, const uint8_t *s, size_t n, vc_ids *out) {
    if (n == 0) return VC_OK;
    if (t->ignore_merges) {
        int32_t whole = vc_strmap_get(&t->raw_map, t->raw, t->raw_pool, s, n);
        if (whole >= 0) return vc_ids_push(out, whole);
    }
    if (n == 1) return t->byte_id[s[0]] >= 0 ? vc_ids_push(out, t->byte_id[s[0]]) : VC_OK;
    if (n > CACHE_MAX_WORD) return merge_word(t, s, n, out);
    uint64_t h = vc_hash_bytes(s, n);
    int hit = cache_get(t->cache, h, s, n, out);
    if (hit) return hit < 0 ? vc_fail(VC_ERR_MEMORY, "out of memory tokenizing") : VC_OK;
    size_t start = out->len;
    vc_status st = merge_word(t, s, n, out);
    if (!st) cache_put(t->cache, h, s, n, out->data + start, out->len - start);
    return st;
}
