/* Tokenizer entry points: finishing a build, encode, decode, clean-up and lookups. */
#include <stdlib.h>

#include "text/tok_internal.h"
#include "text/unicode.h"

vc_status vc_tok_finish(vc_tokenizer *t) {
    if (t->stage == 3) return vc_fail(VC_ERR_INTERNAL, "tokenizer is already finished");
    vc_status s = vc_bpe_finish(t);
    if (!s) s = vc_added_finish(t);
    if (!s) t->stage = 3;
    return s;
}

void vc_tok_free(vc_tokenizer *t) {
    if (!t) return;
    vc_bpe_free(t);
    vc_added_free(t);
    free(t);
}

vc_status vc_tok_encode(const vc_tokenizer *t, const uint8_t *s, size_t n, vc_ids *out) {
    if (t->stage != 3) return vc_fail(VC_ERR_INTERNAL, "tokenizer used before vc_tok_finish");
    return vc_added_encode(t, 0, s, n, out);
}

/* Appends UTF-8 bytes with every ill-formed subpart replaced by U+FFFD. */
static vc_status append_lossy(vc_bytes *out, const uint8_t *s, size_t n) {
    vc_status st = vc_grow((void **)&out->data, &out->cap, out->len + n, 1);
    if (st) return st;
    size_t i = 0;
    while (i < n) {
        size_t run = i; /* copy the longest valid stretch at once */
        uint32_t cp = 0;
        size_t l = 0;
        while (run < n) {
            if (s[run] < 0x80) {
                run++;
                continue;
            }
            l = vc_utf8_next(s + run, n - run, &cp);
            if (cp == VC_UTF8_INVALID) break;
            run += l;
        }
        if ((st = vc_bytes_append(out, s + i, run - i))) return st;
        if (run == n) break;
        if ((st = vc_bytes_append(out, "\xEF\xBF\xBD", 3))) return st;
        i = run + l;
    }
    return VC_OK;
}

vc_status vc_tok_decode(const vc_tokenizer *t, const int32_t *ids, size_t n, int skip_special, int cleanup,
                        vc_bytes *out) {
    if (t->stage != 3) return vc_fail(VC_ERR_INTERNAL, "tokenizer used before vc_tok_finish");
    /* As the reference: every token (added ones too) goes through the ByteLevel decoder, the
     * bytes are joined, and the whole is read as UTF-8 with U+FFFD for ill-formed parts. */
    vc_bytes pending = {0};
    size_t start = out->len;
    vc_status st = VC_OK;
    for (size_t k = 0; k < n && !st; k++) {
        int32_t id = ids[k];
        int32_t a = id >= 0 && id < t->id_limit ? t->added_of_id[id] : -1;
        if (a >= 0) {
            if (skip_special && (t->added[a].flags & VC_ADDED_SPECIAL)) continue;
            st = vc_bytes_append(&pending, t->added_raw + t->added[a].raw_off, (size_t)t->added[a].raw_len);
        } else if (id >= 0 && id < t->n_ids && t->raw[id].len >= 0) {
            st = vc_bytes_append(&pending, t->raw_pool + t->raw[id].off, (size_t)t->raw[id].len);
        } else {
            st = vc_fail(VC_ERR_ARG, "unknown token id %d (valid ids: 0..%d)", id, t->id_limit - 1);
        }
    }
    if (!st) st = append_lossy(out, pending.data, pending.len);
    vc_bytes_free(&pending);
    if (st) {
        out->len = start;
        return st;
    }
    if (cleanup) out->len = start + vc_tok_cleanup(out->data + start, out->len - start);
    return VC_OK;
}

size_t vc_tok_cleanup(uint8_t *s, size_t n) {
    /* transformers' clean_up_tokenization: these str.replace calls, in this order, each
     * over the whole text, left to right without overlaps. Every one shortens the text, so
     * it can be done in place. */
    static const char *const rules[][2] = {
        {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
    };
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        const char *from = rules[r][0], *to = rules[r][1];
        size_t fl = strlen(from), tl = strlen(to), w = 0, i = 0;
        while (i < n) {
            if (i + fl <= n && s[i] == ' ' && !memcmp(s + i, from, fl)) {
                memcpy(s + w, to, tl);
                w += tl;
                i += fl;
            } else {
                s[w++] = s[i++];
            }
        }
        n = w;
    }
    return n;
}

int32_t vc_tok_token_to_id(const vc_tokenizer *t, const char *s, size_t n) {
    int32_t a = vc_strmap_get(&t->added_map, t->added_keys, t->added_pool, s, n);
    if (a >= 0) return t->added[a].id;
    return vc_strmap_get(&t->tok_map, t->tok, t->tok_pool, s, n);
}

const char *vc_tok_id_to_token(const vc_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->id_limit) return NULL;
    int32_t a = t->added_of_id[id];
    if (a >= 0) {
        *len = (size_t)t->added[a].len;
        return t->added_pool + t->added[a].off;
    }
    if (id >= t->n_ids || t->tok[id].len < 0) return NULL;
    *len = (size_t)t->tok[id].len;
    return t->tok_pool + t->tok[id].off;
}

int vc_tok_is_special(const vc_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->id_limit || t->added_of_id[id] < 0) return 0;
    return (t->added[t->added_of_id[id]].flags & VC_ADDED_SPECIAL) != 0;
}

int32_t vc_tok_model_size(const vc_tokenizer *t) { return t->n_model; }
int32_t vc_tok_total_size(const vc_tokenizer *t) { return t->total; }
int32_t vc_tok_id_limit(const vc_tokenizer *t) { return t->id_limit; }
int32_t vc_tok_added_count(const vc_tokenizer *t) { return t->n_added; }

const char *vc_tok_added_at(const vc_tokenizer *t, int32_t i, size_t *len, int32_t *id, unsigned *flags) {
    if (i < 0 || i >= t->n_added) return NULL;
    *len = (size_t)t->added[i].len;
    *id = t->added[i].id;
    *flags = t->added[i].flags;
    return t->added_pool + t->added[i].off;
}
