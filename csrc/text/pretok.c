/* GPT-2 pre-tokenization without a regex engine.
 *
 * The pattern is a fixed alternation tried in order at each position, so it can be decided
 * by looking at the current character class: contractions first, then a run of one class
 * with an optional leading ASCII space, then whitespace. The only backtracking in the
 * pattern, \s+(?!\S), means "a whitespace run, minus its last character when a
 * non-space follows" (that character then joins the next word as its leading space).
 */
#include "text/pretok.h"

#include "text/unicode.h"

/* Class and length of the character at s[i], i < n. */
static inline int char_at(const uint8_t *s, size_t n, size_t i, size_t *len) {
    if (s[i] < 0x80) {
        *len = 1;
        return vc_uc_ascii[s[i]];
    }
    uint32_t cp;
    *len = vc_utf8_next(s + i, n - i, &cp);
    return vc_uc_class(cp);
}

/* End of the run of characters of class `cls` starting at i (which is of that class). */
static size_t run_end(const uint8_t *s, size_t n, size_t i, int cls) {
    size_t len;
    while (i < n && char_at(s, n, i, &len) == cls) i += len;
    return i;
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd, lowercase only) at s[pos], or 0. */
static size_t contraction(const uint8_t *s, size_t n, size_t pos) {
    if (s[pos] != '\'' || pos + 1 >= n) return 0;
    uint8_t a = s[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= n) return 0;
    uint8_t b = s[pos + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

size_t vc_gpt2_piece_end(const uint8_t *s, size_t n, size_t pos) {
    size_t c = contraction(s, n, pos);
    if (c) return pos + c;

    /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional space, then a run of one
     * class. If a space is not followed by one of those classes, the space alone cannot start
     * these alternatives (it is \s), so only the whitespace rules remain. */
    size_t len, j = pos;
    if (s[pos] == ' ' && pos + 1 < n) j = pos + 1;
    int cls = char_at(s, n, j, &len);
    if (cls != VC_UC_SPACE) return run_end(s, n, j, cls);

    /* Whitespace at pos. Find the run and the start of its last character. */
    size_t i = pos, last = pos;
    while (i < n && char_at(s, n, i, &len) == VC_UC_SPACE) {
        last = i;
        i += len;
    }
    if (i == n) return n;          /* \s+(?!\S) at the end of the text takes all */
    if (last > pos) return last;   /* \s+(?!\S) backs off one character */
    return i;                      /* a single space before a non-space: \s+ */
}
