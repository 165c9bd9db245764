/* Readers for vocab.json (a JSON object: token -> id) and merges.txt (one "left right" pair
 * per line, in rank order). Both files are user input: every error names the file and the
 * line (and, for JSON, the column, since vocab.json is often a single line). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "text/tok_internal.h"
#include "text/unicode.h"

/* Reads a whole file; the buffer gets a terminating 0 that is not counted in *len. */
static vc_status read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return vc_fail(VC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = cap <= SIZE_MAX / 4 ? realloc(buf, cap * 2 + 1) : NULL;
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return vc_fail(VC_ERR_MEMORY, "out of memory reading %s", path);
    if (err) {
        free(buf);
        return vc_fail(VC_ERR_IO, "error reading %s", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return VC_OK;
}

/* ---- vocab.json ------------------------------------------------------------------------ */

typedef struct {
    const char *path;
    const uint8_t *s;
    size_t n, i;
    char *str; /* decoded string being read */
    size_t str_len, str_cap;
} json_reader;

/* Fails with the position of byte `at`. */
static vc_status json_fail(const json_reader *r, size_t at, const char *what) {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < at && k < r->n; k++) {
        if (r->s[k] == '\n') {
            line++;
            col = 1;
        } else if ((r->s[k] & 0xC0) != 0x80) {
            col++;
        }
    }
    return vc_fail(VC_ERR_FORMAT, "%s:%zu:%zu: %s", r->path, line, col, what);
}

static void skip_ws(json_reader *r) {
    while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' || r->s[r->i] == '\r'))
        r->i++;
}

static int hex4(const uint8_t *p, uint32_t *v) {
    *v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        *v = *v << 4 | (uint32_t)d;
    }
    return 1;
}

static vc_status str_put(json_reader *r, const void *p, size_t k) {
    vc_status s = vc_grow((void **)&r->str, &r->str_cap, r->str_len + k, 1);
    if (s) return s;
    memcpy(r->str + r->str_len, p, k);
    r->str_len += k;
    return VC_OK;
}

/* Reads a JSON string at r->i (which is '"') into r->str. */
static vc_status read_string(json_reader *r) {
    size_t start = r->i++;
    r->str_len = 0;
    for (;;) {
        if (r->i >= r->n) return json_fail(r, start, "unterminated string");
        uint8_t c = r->s[r->i];
        if (c == '"') {
            r->i++;
            return VC_OK;
        }
        if (c < 0x20) return json_fail(r, r->i, "control character inside a string");
        if (c == '\\') {
            if (r->i + 1 >= r->n) return json_fail(r, r->i, "unterminated escape");
            uint8_t e = r->s[r->i + 1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char out[] = "\"\\/\b\f\n\r\t";
                char ch = out[simple - "\"\\/bfnrt"];
                vc_status s = str_put(r, &ch, 1);
                if (s) return s;
                r->i += 2;
                continue;
            }
            if (e != 'u') return json_fail(r, r->i, "invalid escape");
            uint32_t cp;
            if (r->i + 6 > r->n || !hex4(r->s + r->i + 2, &cp)) return json_fail(r, r->i, "invalid \\u escape");
            size_t at = r->i;
            r->i += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return json_fail(r, at, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (r->i + 6 > r->n || r->s[r->i] != '\\' || r->s[r->i + 1] != 'u' || !hex4(r->s + r->i + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return json_fail(r, at, "lone high surrogate in \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                r->i += 6;
            }
            uint8_t u[4];
            vc_status s = str_put(r, u, vc_utf8_put(cp, u));
            if (s) return s;
            continue;
        }
        uint32_t cp;
        size_t l = vc_utf8_next(r->s + r->i, r->n - r->i, &cp);
        if (cp == VC_UTF8_INVALID) return json_fail(r, r->i, "invalid UTF-8");
        vc_status s = str_put(r, r->s + r->i, l);
        if (s) return s;
        r->i += l;
    }
}

/* Reads a non-negative integer id. */
static vc_status read_id(json_reader *r, int64_t *id) {
    size_t start = r->i;
    int64_t v = 0;
    while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') {
        if (v > VC_TOK_MAX_ID) return json_fail(r, start, "token id too large");
        v = v * 10 + (r->s[r->i++] - '0');
    }
    int more = r->i < r->n && (r->s[r->i] == '.' || r->s[r->i] == 'e' || r->s[r->i] == 'E');
    if (r->i == start || more || (r->s[start] == '0' && r->i - start > 1))
        return json_fail(r, start, "token id must be a non-negative integer");
    *id = v;
    return VC_OK;
}

static vc_status parse_vocab(vc_tokenizer *t, json_reader *r) {
    if (r->n >= 3 && !memcmp(r->s, "\xEF\xBB\xBF", 3)) r->i = 3;
    skip_ws(r);
    if (r->i >= r->n || r->s[r->i] != '{') return json_fail(r, r->i, "expected a JSON object ('{')");
    r->i++;
    skip_ws(r);
    if (r->i < r->n && r->s[r->i] == '}') {
        r->i++;
    } else {
        for (;;) {
            if (r->i >= r->n || r->s[r->i] != '"') return json_fail(r, r->i, "expected a token string");
            size_t key_at = r->i;
            vc_status s = read_string(r);
            if (s) return s;
            skip_ws(r);
            if (r->i >= r->n || r->s[r->i] != ':') return json_fail(r, r->i, "expected ':'");
            r->i++;
            skip_ws(r);
            int64_t id = 0;
            if ((s = read_id(r, &id))) return s;
            if ((s = vc_tok_add_vocab(t, r->str, r->str_len, id))) {
                char msg[600];
                snprintf(msg, sizeof msg, "%s", vc_last_error());
                return json_fail(r, key_at, msg);
            }
            skip_ws(r);
            if (r->i < r->n && r->s[r->i] == ',') {
                r->i++;
                skip_ws(r);
                continue;
            }
            if (r->i < r->n && r->s[r->i] == '}') {
                r->i++;
                break;
            }
            return json_fail(r, r->i, "expected ',' or '}'");
        }
    }
    skip_ws(r);
    if (r->i != r->n) return json_fail(r, r->i, "unexpected data after the JSON object");
    return VC_OK;
}

vc_status vc_tok_load_vocab_json(vc_tokenizer *t, const char *path) {
    char *data;
    size_t n;
    vc_status s = read_file(path, &data, &n);
    if (s) return s;
    json_reader r = {path, (const uint8_t *)data, n, 0, NULL, 0, 0};
    s = parse_vocab(t, &r);
    free(r.str);
    free(data);
    return s;
}

/* ---- merges.txt ------------------------------------------------------------------------ */

vc_status vc_tok_load_merges_txt(vc_tokenizer *t, const char *path) {
    char *data;
    size_t n;
    vc_status s = read_file(path, &data, &n);
    if (s) return s;
    size_t line = 0, i = 0;
    while (i < n && !s) {
        line++;
        size_t end = i;
        while (end < n && data[end] != '\n') end++;
        size_t next = end < n ? end + 1 : end;
        if (end > i && data[end - 1] == '\r') end--; /* CRLF files, as BufRead::lines allows */
        const char *l = data + i;
        size_t len = end - i;
        i = next;
        if (len >= 8 && !memcmp(l, "#version", 8)) continue;
        char where[600];
        snprintf(where, sizeof where, "%s:%zu", path, line);
        for (size_t k = 0; k < len;) {
            uint32_t cp;
            k += vc_utf8_next((const uint8_t *)l + k, len - k, &cp);
            if (cp == VC_UTF8_INVALID) {
                s = vc_fail(VC_ERR_FORMAT, "%s: invalid UTF-8", where);
                break;
            }
        }
        if (s) break;
        const char *sp = memchr(l, ' ', len);
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - l)) || sp == l || sp + 1 == l + len) {
            s = vc_fail(VC_ERR_FORMAT, "%s: expected two tokens separated by one space", where);
            break;
        }
        s = vc_tok_add_merge(t, l, (size_t)(sp - l), sp + 1, (size_t)(l + len - sp - 1));
        if (s) s = vc_fail_prefixed(s, where);
    }
    free(data);
    return s;
}
