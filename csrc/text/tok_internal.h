/* Internals shared by the tokenizer's source files (buffers.c, bpe.c, added.c, load.c, tokenizer.c). */
#ifndef VC_TEXT_TOK_INTERNAL_H
#define VC_TEXT_TOK_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "text/tokenizer.h"

/* Fast, well-mixed hash for short byte strings (tokens, words). */
static inline uint64_t vc_hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 32;
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 29);
}

static inline uint64_t vc_hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    return x ^ (x >> 33);
}

/* A byte string inside a pool: pool + off, len bytes; len < 0 means "no string". */
typedef struct {
    uint32_t off;
    int32_t len;
} vc_span;

/* Open-addressing map from a byte string to an id; the strings live in the caller's spans. */
typedef struct {
    int32_t *slots; /* id, or -1 when empty */
    size_t cap;     /* power of two, or 0 */
    size_t count;
} vc_strmap;

/* Merge table entry: pair (left id, right id) -> rank and merged id. */
typedef struct {
    uint64_t key; /* left << 32 | right; UINT64_MAX when empty */
    int32_t rank, id;
} vc_merge;

/* Trie over the bytes of added tokens, for leftmost-longest matching. */
typedef struct {
    int32_t child, sibling; /* first child, next sibling (-1: none) */
    int32_t added;          /* index of the added token ending here, or -1 */
    uint8_t byte;
} vc_trie_node;

typedef struct {
    uint32_t off;  /* content in added_pool */
    int32_t len;
    int32_t id;
    unsigned flags;
    uint32_t raw_off; /* decoded bytes in added_raw */
    int32_t raw_len;
} vc_added;

typedef struct vc_word_cache vc_word_cache;

struct vc_tokenizer {
    int stage; /* 0 vocab, 1 merges, 2 added tokens, 3 finished */
    int add_prefix_space, ignore_merges;

    /* Model vocabulary, by id. */
    vc_span *tok;      /* vocabulary string of each id (len -1: hole) */
    vc_span *raw;      /* bytes that id decodes to (ByteLevel decoder rule) */
    int32_t n_ids;     /* 1 + largest vocabulary id */
    size_t tok_cap;    /* allocated entries of tok */
    int32_t n_model;   /* number of vocabulary entries */
    char *tok_pool;
    size_t tok_pool_len, tok_pool_cap;
    uint8_t *raw_pool;
    size_t raw_pool_len;
    vc_strmap tok_map; /* vocabulary string -> id */
    vc_strmap raw_map; /* decoded bytes -> id, only with ignore_merges */
    int32_t byte_id[256];

    vc_merge *merges;
    size_t merge_cap, n_merges;

    /* Added tokens. */
    vc_added *added;
    int32_t n_added, added_cap;
    char *added_pool;
    size_t added_pool_len, added_pool_cap;
    uint8_t *added_raw;    /* what each added token decodes to */
    int32_t *added_of_id;  /* id -> index into added, or -1; id_limit entries */
    int32_t id_limit;      /* 1 + largest id, added tokens included */
    int32_t total;         /* distinct token strings */
    vc_span *added_keys;   /* content span of each added token, for added_map */
    vc_strmap added_map;   /* content -> index into added */
    vc_trie_node *trie;    /* node 0: root of the non-normalized set, node 1: normalized set */
    size_t n_trie, trie_cap;
    uint8_t first_byte[2][256]; /* bytes that start a token of each set */

    vc_word_cache *cache;
};

/* GPT-2's byte <-> character table (bytes_to_unicode): printable Latin-1 bytes stand for
 * themselves, the other 68 bytes for U+0100..U+0143 in byte order. */
static inline uint32_t vc_byte_char(uint8_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    if (b <= 32) return 256u + b;
    if (b <= 160) return 256u + 33 + (b - 127u);
    return 256u + 67; /* 173, the soft hyphen */
}
static inline int vc_char_byte(uint32_t cp) { /* -1 when cp is not in the table */
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) return (int)cp;
    if (cp < 256 || cp > 256 + 67) return -1;
    uint32_t i = cp - 256;
    return i <= 32 ? (int)i : i <= 66 ? (int)(127 + i - 33) : 173;
}

/* strmap over the spans `keys` whose bytes start at `pool`. */
int32_t vc_strmap_get(const vc_strmap *m, const vc_span *keys, const void *pool, const void *s, size_t n);
vc_status vc_strmap_put(vc_strmap *m, const vc_span *keys, const void *pool, int32_t id);
void vc_strmap_free(vc_strmap *m);


/* The bytes a token decodes to under the ByteLevel decoder: each character through the byte
 * table, or the token's own UTF-8 when one character is not in it. dst holds n bytes. */
size_t vc_bytelevel_bytes(const uint8_t *s, size_t n, uint8_t *dst);

/* bpe.c: tokens of one pre-tokenized piece, appended to out. */
vc_status vc_bpe_piece(const vc_tokenizer *t, const uint8_t *s, size_t n, vc_ids *out);
vc_status vc_bpe_finish(vc_tokenizer *t);
void vc_bpe_free(vc_tokenizer *t);

/* added.c */
vc_status vc_added_finish(vc_tokenizer *t);
void vc_added_free(vc_tokenizer *t);
/* Splits s[0..n) on added tokens of set `set` (0: non-normalized, 1: normalized); plain
 * segments go to set 1 and then to the pre-tokenizer and BPE. */
vc_status vc_added_encode(const vc_tokenizer *t, int set, const uint8_t *s, size_t n, vc_ids *out);

/* Copies the current error message and reissues it with a prefix (file:line, etc.). */
vc_status vc_fail_prefixed(vc_status s, const char *prefix);

#endif
