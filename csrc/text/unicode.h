/* UTF-8 decoding and the Unicode character classes of GPT-2's pre-tokenizer.
 *
 * The classes come from a generated table (unicode_tables.c, Unicode 16.0.0, the version the
 * reference tokenizer's regex engine uses). Decoding never reads past the given length and
 * reports ill-formed input the way Unicode's "maximal subpart" rule does, which is also how
 * Python's errors="replace" and Rust's from_utf8_lossy split it into U+FFFD replacements.
 */
#ifndef VC_TEXT_UNICODE_H
#define VC_TEXT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum { VC_UC_OTHER = 0, VC_UC_LETTER = 1, VC_UC_NUMBER = 2, VC_UC_SPACE = 3 };

typedef struct {
    uint32_t lo, hi;
    uint8_t cls;
} vc_uc_range;

extern const uint8_t vc_uc_ascii[128];
extern const vc_uc_range vc_uc_ranges[];
extern const size_t vc_uc_nranges;

/* Marks an ill-formed sequence in vc_utf8_next's output. */
#define VC_UTF8_INVALID 0xFFFFFFFFu

/* Class of a code point; VC_UTF8_INVALID is VC_UC_OTHER. */
int vc_uc_class(uint32_t cp);

/* Decodes the character at s[0..n), n >= 1. Returns its length in bytes (1..4) and stores the
 * code point, or VC_UTF8_INVALID with the length of the maximal ill-formed subpart (1..3). */
size_t vc_utf8_next(const uint8_t *s, size_t n, uint32_t *cp);

/* Appends the UTF-8 encoding of cp (a valid scalar value) to out; returns the length. */
size_t vc_utf8_put(uint32_t cp, uint8_t out[4]);

#endif
