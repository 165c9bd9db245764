/* Added tokens (special tokens such as <|endoftext|>): registration, and splitting text on
 * them before pre-tokenization, as Hugging Face's AddedVocabulary does.
 *
 * The reference finds them with an Aho-Corasick automaton in leftmost-longest mode, first
 * the non-normalized tokens on the raw text, then the normalized ones inside the remaining
 * pieces. A byte trie plus a first-byte filter gives the same matches; added-token sets are
 * small and their first bytes rare in text, so scanning is nearly free.
 */
#include <stdlib.h>

#include "text/pretok.h"
#include "text/tok_internal.h"
#include "text/unicode.h"

vc_status vc_tok_add_added(vc_tokenizer *t, const char *content, size_t len, int64_t id, unsigned flags,
                           int32_t *id_out) {
    if (t->stage > 2) return vc_fail(VC_ERR_INTERNAL, "tokenizer is already finished");
    t->stage = 2;
    if (len == 0) return vc_fail(VC_ERR_FORMAT, "empty added token");
    if (len > INT32_MAX || t->added_pool_len + len > UINT32_MAX) return vc_fail(VC_ERR_FORMAT, "added token too long");
    if (flags & VC_ADDED_SINGLE_WORD)
        return vc_fail(VC_ERR_UNSUPPORTED, "added token '%.*s': single_word=True is not supported", (int)(len > 60 ? 60 : len),
                       content);
    if (id > VC_TOK_MAX_ID) return vc_fail(VC_ERR_FORMAT, "added token id %lld is too large", (long long)id);
    /* Building is done once, so plain scans over the added tokens are fine here. */
    int32_t max_added = -1;
    for (int32_t i = 0; i < t->n_added; i++) {
        vc_added *a = &t->added[i];
        if ((size_t)a->len == len && !memcmp(t->added_pool + a->off, content, len)) {
            if (id >= 0 && id != a->id)
                return vc_fail(VC_ERR_FORMAT, "added token '%.*s' is given two ids (%d and %lld)", (int)(len > 60 ? 60 : len),
                               content, a->id, (long long)id);
            a->flags = flags; /* the later definition wins */
            if (id_out) *id_out = a->id;
            return VC_OK;
        }
        if (id >= 0 && a->id == id)
            return vc_fail(VC_ERR_FORMAT, "id %lld is given to two added tokens", (long long)id);
        if (a->id > max_added) max_added = a->id;
    }
    if (id < 0) {
        /* The reference reuses the vocabulary's id for known content, else takes the next id
         * after the vocabulary and the added tokens so far. */
        id = vc_strmap_get(&t->tok_map, t->tok, t->tok_pool, content, len);
        if (id < 0) id = t->n_ids > max_added + 1 ? t->n_ids : max_added + 1;
        if (id > VC_TOK_MAX_ID) return vc_fail(VC_ERR_FORMAT, "too many added tokens");
    }
    size_t cap = (size_t)t->added_cap;
    vc_status s = vc_grow((void **)&t->added, &cap, (size_t)t->n_added + 1, sizeof *t->added);
    if (s) return s;
    t->added_cap = (int32_t)cap;
    if ((s = vc_grow((void **)&t->added_pool, &t->added_pool_cap, t->added_pool_len + len, 1))) return s;
    memcpy(t->added_pool + t->added_pool_len, content, len);
    t->added[t->n_added++] = (vc_added){(uint32_t)t->added_pool_len, (int32_t)len, (int32_t)id, flags, 0, 0};
    t->added_pool_len += len;
    if (id_out) *id_out = (int32_t)id;
    return VC_OK;
}

static vc_status trie_node(vc_tokenizer *t, uint8_t byte, int32_t *out) {
    vc_status s = vc_grow((void **)&t->trie, &t->trie_cap, t->n_trie + 1, sizeof *t->trie);
    if (s) return s;
    t->trie[t->n_trie] = (vc_trie_node){-1, -1, -1, byte};
    *out = (int32_t)t->n_trie++;
    return VC_OK;
}

static vc_status trie_insert(vc_tokenizer *t, int set, const uint8_t *s, size_t n, int32_t added) {
    int32_t node = set;
    t->first_byte[set][s[0]] = 1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = t->trie[node].child;
        while (c >= 0 && t->trie[c].byte != s[i]) c = t->trie[c].sibling;
        if (c < 0) {
            vc_status st = trie_node(t, s[i], &c);
            if (st) return st;
            t->trie[c].sibling = t->trie[node].child;
            t->trie[node].child = c;
        }
        node = c;
    }
    t->trie[node].added = added;
    return VC_OK;
}

vc_status vc_added_finish(vc_tokenizer *t) {
    int32_t limit = t->n_ids;
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].id >= limit) limit = t->added[i].id + 1;
    t->id_limit = limit;
    t->added_of_id = malloc(((size_t)limit + 1) * sizeof *t->added_of_id);
    t->added_keys = malloc(((size_t)t->n_added + 1) * sizeof *t->added_keys);
    t->added_raw = malloc(t->added_pool_len + 1);
    if (!t->added_of_id || !t->added_keys || !t->added_raw) return vc_fail(VC_ERR_MEMORY, "out of memory building added tokens");
    memset(t->added_of_id, 0xFF, (size_t)limit * sizeof *t->added_of_id);
    int32_t root;
    vc_status s;
    if ((s = trie_node(t, 0, &root)) || (s = trie_node(t, 0, &root))) return s;
    t->total = t->n_model;
    for (int32_t i = 0; i < t->n_added; i++) {
        vc_added *a = &t->added[i];
        t->added_of_id[a->id] = i;
        t->added_keys[i] = (vc_span){a->off, a->len};
        /* Decoding passes added tokens through the ByteLevel decoder too (so an added "Ġx"
         * decodes to " x"), exactly like vocabulary tokens. */
        a->raw_off = a->off;
        a->raw_len = (int32_t)vc_bytelevel_bytes((const uint8_t *)t->added_pool + a->off, (size_t)a->len,
                                                 t->added_raw + a->off);
        if ((s = vc_strmap_put(&t->added_map, t->added_keys, t->added_pool, i))) return s;
        if (vc_strmap_get(&t->tok_map, t->tok, t->tok_pool, t->added_pool + a->off, (size_t)a->len) < 0) t->total++;
        int set = (a->flags & VC_ADDED_NORMALIZED) ? 1 : 0;
        if ((s = trie_insert(t, set, (const uint8_t *)t->added_pool + a->off, (size_t)a->len, i))) return s;
    }
    return VC_OK;
}

void vc_added_free(vc_tokenizer *t) {
    free(t->added);
    free(t->added_pool);
    free(t->added_of_id);
    free(t->added_keys);
    free(t->added_raw);
    free(t->trie);
    vc_strmap_free(&t->added_map);
}

/* Longest token of trie root `set` starting at s[i]: its index (and end), or -1. */
static int32_t match_at(const vc_tokenizer *t, int set, const uint8_t *s, size_t n, size_t i, size_t *end) {
    int32_t node = set, best = -1;
    for (size_t k = i; k < n; k++) {
        int32_t c = t->trie[node].child;
        while (c >= 0 && t->trie[c].byte != s[k]) c = t->trie[c].sibling;
        if (c < 0) break;
        node = c;
        if (t->trie[node].added >= 0) {
            best = t->trie[node].added;
            *end = k + 1;
        }
    }
    return best;
}

/* Start of the whitespace run that ends at `end` (not before `floor`). */
static size_t space_before(const uint8_t *s, size_t floor, size_t end) {
    while (end > floor) {
        size_t p = end - 1;
        while (p > floor && end - p < 4 && (s[p] & 0xC0) == 0x80) p--;
        uint32_t cp;
        if (vc_utf8_next(s + p, end - p, &cp) != end - p || vc_uc_class(cp) != VC_UC_SPACE) break;
        end = p;
    }
    return end;
}

/* End of the whitespace run that starts at `i`. */
static size_t space_after(const uint8_t *s, size_t n, size_t i) {
    while (i < n) {
        uint32_t cp;
        size_t l = vc_utf8_next(s + i, n - i, &cp);
        if (vc_uc_class(cp) != VC_UC_SPACE) break;
        i += l;
    }
    return i;
}

/* Pre-tokenizes a piece of text without added tokens and runs BPE on each word. */
static vc_status encode_plain(const vc_tokenizer *t, const uint8_t *s, size_t n, vc_ids *out) {
    if (n == 0) return VC_OK;
    uint8_t *copy = NULL;
    if (t->add_prefix_space && s[0] != ' ') {
        /* ByteLevel(add_prefix_space=True) treats each piece as if it began with a space. */
        copy = malloc(n + 1);
        if (!copy) return vc_fail(VC_ERR_MEMORY, "out of memory tokenizing");
        copy[0] = ' ';
        memcpy(copy + 1, s, n);
        s = copy;
        n++;
    }
    vc_status st = VC_OK;
    for (size_t pos = 0; pos < n && !st;) {
        size_t end = vc_gpt2_piece_end(s, n, pos);
        st = vc_bpe_piece(t, s + pos, end - pos, out);
        pos = end;
    }
    free(copy);
    return st;
}

vc_status vc_added_encode(const vc_tokenizer *t, int set, const uint8_t *s, size_t n, vc_ids *out) {
    if (set == 2) return encode_plain(t, s, n, out);
    size_t start_offset = 0, i = 0;
    vc_status st;
    while (i < n) {
        size_t mend = 0;
        int32_t a = t->first_byte[set][s[i]] ? match_at(t, set, s, n, i, &mend) : -1;
        if (a < 0) {
            i++;
            continue;
        }
        /* lstrip / rstrip make the token swallow the whitespace around it (which is then
         * not encoded); the search goes on after the token itself, as the reference's does. */
        size_t start = i, stop = mend;
        unsigned flags = t->added[a].flags;
        if (flags & VC_ADDED_LSTRIP) start = space_before(s, start_offset, start);
        if (flags & VC_ADDED_RSTRIP) stop = space_after(s, n, stop);
        if (start_offset < start && (st = vc_added_encode(t, set + 1, s + start_offset, start - start_offset, out)))
            return st;
        if ((st = vc_ids_push(out, t->added[a].id))) return st;
        start_offset = stop;
        i = mend;
    }
    if (start_offset < n) return vc_added_encode(t, set + 1, s + start_offset, n - start_offset, out);
    return VC_OK;
}
