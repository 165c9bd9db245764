/* Byte-level BPE tokenizer (GPT-2 family), matching Hugging Face's GPT2TokenizerFast.
 *
 * Build once, then use from any number of threads: a finished tokenizer is read-only except
 * for its word cache, which locks internally. Building goes in order: vocabulary entries,
 * then merges (by rank), then added tokens, then vc_tok_finish.
 *
 * Vocabulary strings are in GPT-2's byte-to-unicode form ("Ġthe" for " the"), as stored in
 * vocab.json / tokenizer.json. Text to encode and decoded output are UTF-8 bytes.
 */
#ifndef VC_TEXT_TOKENIZER_H
#define VC_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

typedef struct vc_tokenizer vc_tokenizer;

/* Growable outputs; zero-initialise, and free with the matching function. */
typedef struct {
    int32_t *data;
    size_t len, cap;
} vc_ids;
typedef struct {
    uint8_t *data;
    size_t len, cap;
} vc_bytes;
void vc_ids_free(vc_ids *v);
void vc_bytes_free(vc_bytes *v);
vc_status vc_ids_push(vc_ids *v, int32_t id);
vc_status vc_bytes_append(vc_bytes *v, const void *s, size_t n);
/* Ensures room for `need` elements of `size` bytes in *p (capacity *cap, in elements). */
vc_status vc_grow(void **p, size_t *cap, size_t need, size_t size);

/* Flags of an added token (Hugging Face AddedToken fields). */
enum {
    VC_ADDED_SPECIAL = 1,     /* dropped by decode(skip_special_tokens=True) */
    VC_ADDED_LSTRIP = 2,      /* swallows whitespace before it */
    VC_ADDED_RSTRIP = 4,      /* swallows whitespace after it */
    VC_ADDED_NORMALIZED = 8,  /* matched after the non-normalized ones (no normalizer here) */
    VC_ADDED_SINGLE_WORD = 16 /* not supported: refused with VC_ERR_UNSUPPORTED */
};

/* Ids are limited so that a corrupt file cannot make per-id tables huge. */
#define VC_TOK_MAX_ID ((1 << 26) - 1)

vc_status vc_tok_create(vc_tokenizer **out);
void vc_tok_free(vc_tokenizer *t);

/* Options of the Hugging Face pipeline: ByteLevel(add_prefix_space) and BPE(ignore_merges). */
void vc_tok_set_options(vc_tokenizer *t, int add_prefix_space, int ignore_merges);
vc_status vc_tok_add_vocab(vc_tokenizer *t, const char *tok, size_t len, int64_t id);
/* Next merge, in rank order: both parts and their concatenation must be in the vocabulary. */
vc_status vc_tok_add_merge(vc_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen);
/* id < 0: reuse the id the content already has, else the next free one (as tokenizers does).
 * The id used is stored in *id_out when id_out is not NULL. */
vc_status vc_tok_add_added(vc_tokenizer *t, const char *content, size_t len, int64_t id, unsigned flags,
                           int32_t *id_out);
vc_status vc_tok_finish(vc_tokenizer *t);

/* File loaders; errors name the file and the line. */
vc_status vc_tok_load_vocab_json(vc_tokenizer *t, const char *path);
vc_status vc_tok_load_merges_txt(vc_tokenizer *t, const char *path);

/* Appends the ids of UTF-8 text s[0..n) to out. Ill-formed UTF-8 is tokenized byte-wise. */
vc_status vc_tok_encode(const vc_tokenizer *t, const uint8_t *s, size_t n, vc_ids *out);
/* Appends the UTF-8 text of ids to out (ill-formed byte runs become U+FFFD). An id that names
 * no token is an error (VC_ERR_ARG). cleanup applies transformers' clean_up_tokenization. */
vc_status vc_tok_decode(const vc_tokenizer *t, const int32_t *ids, size_t n, int skip_special, int cleanup,
                        vc_bytes *out);
/* In-place transformers clean_up_tokenization on UTF-8 text; returns the new length. */
size_t vc_tok_cleanup(uint8_t *s, size_t n);

/* Lookups. token_to_id returns -1 when unknown; id_to_token NULL when unknown. */
int32_t vc_tok_token_to_id(const vc_tokenizer *t, const char *s, size_t n);
const char *vc_tok_id_to_token(const vc_tokenizer *t, int32_t id, size_t *len);
int vc_tok_is_special(const vc_tokenizer *t, int32_t id);
int32_t vc_tok_model_size(const vc_tokenizer *t); /* vocabulary entries, without added tokens */
int32_t vc_tok_total_size(const vc_tokenizer *t); /* distinct tokens, added ones included */
int32_t vc_tok_id_limit(const vc_tokenizer *t);   /* 1 + the largest id */
/* Added tokens in the order they were added: content, id and flags of entry i < count. */
int32_t vc_tok_added_count(const vc_tokenizer *t);
const char *vc_tok_added_at(const vc_tokenizer *t, int32_t i, size_t *len, int32_t *id, unsigned *flags);

#endif
