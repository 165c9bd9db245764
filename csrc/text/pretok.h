/* GPT-2's pre-tokenizer: splits text into the pieces BPE runs on. */
#ifndef VC_TEXT_PRETOK_H
#define VC_TEXT_PRETOK_H

#include <stddef.h>
#include <stdint.h>

/* Given UTF-8 text s[0..n) and a piece start pos < n, returns the end of that piece (> pos).
 * The pieces are the matches of
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * found one after another (they cover the whole text). Ill-formed UTF-8 counts as
 * [^\s\p{L}\p{N}], one maximal subpart at a time, so any byte string is safe. */
size_t vc_gpt2_piece_end(const uint8_t *s, size_t n, size_t pos);

#endif
