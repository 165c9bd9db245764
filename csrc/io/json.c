/* Strict JSON parser: recursive descent over a length-bounded buffer, tree in one arena.
 *
 * Children of an array/object are first collected on a shared scratch stack (a nested
 * container's children are pushed and popped above its parent's, so one stack serves every
 * level) and copied into the arena when the container closes: the tree ends up compact and
 * its memory is proportional to the input.
 */
#include "io/json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *key; /* NUL-terminated copy in the arena */
    size_t key_len;
} json_key;

struct vc_json {
    uint8_t type;
    uint8_t is_int;  /* number: integer literal that fits int64 */
    uint8_t boolean;
    size_t len;      /* string bytes / array elements / object members */
    union {
        struct { double d; int64_t i; } num;
        const char *s;
        struct { vc_json *items; json_key *keys; size_t *sorted; } c;
    } u;
};

/* ---- arena: a list of blocks, each handing out 8-byte aligned pieces ---- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[]; /* flexible, suitably aligned */
} arena_block;

/* The root node is the first allocation of the first block, so the root pointer leads back
 * to the arena: vc_json_free finds the block header just before it. */
typedef struct {
    arena_block *head;
} arena;

static void *arena_alloc(arena *a, size_t n) {
    n = (n + 7) & ~(size_t)7;
    if (n == 0) n = 8;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = 64 * 1024;
        if (cap < n) cap = n;
        arena_block *b = malloc(sizeof(arena_block) + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        /* Keep the first block (holding the root) at the tail so it is found last. */
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static void arena_release(arena_block *b) {
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
}

/* The root allocation carries a pointer back to the arena's block list. */
typedef struct {
    arena ar;
    vc_json node;
} json_root;

/* ---- parser state ---- */

typedef struct {
    const unsigned char *p, *end, *start;
    int depth, max_depth;
    arena *ar;
    vc_json *scratch; /* children awaiting their container's close */
    json_key *scratch_keys;
    size_t nscratch, capscratch;
} parser;

static vc_status perr(parser *ps, const char *what) {
    return vc_fail(VC_ERR_FORMAT, "invalid JSON at byte %zu: %s", (size_t)(ps->p - ps->start), what);
}

static vc_status oom(void) { return vc_fail(VC_ERR_MEMORY, "out of memory while parsing JSON"); }

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static vc_status scratch_push(parser *ps, const vc_json *v, const json_key *k) {
    if (ps->nscratch == ps->capscratch) {
        size_t cap = ps->capscratch ? ps->capscratch * 2 : 64, bytes_v, bytes_k;
        if (!vc_mul_ok(cap, sizeof(vc_json), &bytes_v) || !vc_mul_ok(cap, sizeof(json_key), &bytes_k)) return oom();
        vc_json *nv = realloc(ps->scratch, bytes_v);
        if (!nv) return oom();
        ps->scratch = nv;
        json_key *nk = realloc(ps->scratch_keys, bytes_k);
        if (!nk) return oom();
        ps->scratch_keys = nk;
        ps->capscratch = cap;
    }
    ps->scratch[ps->nscratch] = *v;
    ps->scratch_keys[ps->nscratch] = k ? *k : (json_key){NULL, 0};
    ps->nscratch++;
    return VC_OK;
}

/* ---- strings ---- */

static int hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v * 16 + d;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(unsigned char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at p (p < end), or 0 if it is invalid: overlong forms,
 * surrogates and code points above U+10FFFF are rejected. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if ((size_t)(end - p) < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

/* Parses a string starting at the opening quote into arena memory. Decoded text is never
 * longer than its escaped source, so one allocation of the source length suffices. */
static vc_status parse_string(parser *ps, const char **out, size_t *out_len) {
    const unsigned char *q = ps->p + 1;
    /* Find the closing quote, skipping escaped characters, to size the output. */
    while (q < ps->end && *q != '"') {
        if (*q == '\\' && ps->end - q < 2) { q = ps->end; break; }
        q += (*q == '\\') ? 2 : 1;
    }
    if (q >= ps->end) return perr(ps, "unterminated string");
    size_t raw = (size_t)(q - (ps->p + 1));
    unsigned char *o = arena_alloc(ps->ar, raw + 1);
    if (!o) return oom();
    size_t n = 0;
    ps->p++;
    while (*ps->p != '"') {
        unsigned c = *ps->p;
        if (c < 0x20) return perr(ps, "control character in string");
        if (c != '\\') {
            size_t k = utf8_seq(ps->p, q);
            if (!k) return perr(ps, "invalid UTF-8 in string");
            memcpy(o + n, ps->p, k);
            n += k;
            ps->p += k;
            continue;
        }
        /* The scan above guarantees a byte after every backslash before q. */
        unsigned e = ps->p[1];
        ps->p += 2;
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (q - ps->p < 4 || !hex4(ps->p, &cp)) return perr(ps, "bad \\u escape");
            ps->p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return perr(ps, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (q - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || !hex4(ps->p + 2, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF)
                    return perr(ps, "high surrogate not followed by a low surrogate");
                ps->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(o + n, cp);
            break;
        }
        default: ps->p -= 1; return perr(ps, "unknown escape in string");
        }
    }
    ps->p++; /* closing quote */
    o[n] = 0;
    *out = (const char *)o;
    *out_len = n;
    return VC_OK;
}

/* ---- numbers ---- */

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void make_c_locale(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static vc_status parse_number(parser *ps, vc_json *v) {
    const unsigned char *s = ps->p, *p = ps->p, *e = ps->end;
    int neg = 0, integral = 1;
    if (p < e && *p == '-') { neg = 1; p++; }
    if (p >= e || *p < '0' || *p > '9') return perr(ps, "invalid number");
    if (*p == '0') {
        p++;
        if (p < e && *p >= '0' && *p <= '9') return perr(ps, "leading zero in number");
    } else {
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    const unsigned char *int_end = p;
    if (p < e && *p == '.') {
        integral = 0;
        p++;
        if (p >= e || *p < '0' || *p > '9') return perr(ps, "digit expected after decimal point");
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        integral = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return perr(ps, "digit expected in exponent");
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    size_t n = (size_t)(p - s);

    v->type = VC_JSON_NUMBER;
    v->is_int = 0;
    if (integral) {
        /* Exact integer path: sizes and offsets must not go through a double. */
        uint64_t mag = 0;
        int ok = 1;
        for (const unsigned char *d = s + neg; d < int_end; d++) {
            unsigned dig = (unsigned)(*d - '0');
            if (mag > (UINT64_MAX - dig) / 10) { ok = 0; break; }
            mag = mag * 10 + dig;
        }
        if (ok && (neg ? mag <= (uint64_t)INT64_MAX + 1 : mag <= (uint64_t)INT64_MAX)) {
            v->is_int = 1;
            v->u.num.i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        }
    }
    /* strtod needs a NUL-terminated copy and the "C" locale (Python may set LC_NUMERIC). */
    pthread_once(&c_locale_once, make_c_locale);
    if (!c_locale) return vc_fail(VC_ERR_INTERNAL, "cannot create the C locale for number parsing");
    char small[64], *buf = small;
    if (n >= sizeof small) {
        buf = malloc(n + 1);
        if (!buf) return oom();
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    errno = 0;
    double d = strtod_l(buf, NULL, c_locale);
    int range = errno == ERANGE && isinf(d);
    if (buf != small) free(buf);
    if (range) return perr(ps, "number out of double range");
    v->u.num.d = d;
    ps->p = p;
    return VC_OK;
}

/* ---- values ---- */

static vc_status parse_value(parser *ps, vc_json *v);

static int cmp_keys(const json_key *a, const json_key *b) {
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    if (c) return c;
    return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* qsort has no context argument in C11: the keys being sorted are published here, per
 * thread, for the duration of one sort. */
static _Thread_local const json_key *sort_keys;
static int cmp_idx(const void *a, const void *b) {
    return cmp_keys(&sort_keys[*(const size_t *)a], &sort_keys[*(const size_t *)b]);
}

/* Moves the top `n` scratch entries into arena arrays owned by container `v`. */
static vc_status close_container(parser *ps, vc_json *v, size_t base, int is_object) {
    size_t n = ps->nscratch - base, bytes;
    v->len = n;
    v->u.c.items = NULL;
    v->u.c.keys = NULL;
    v->u.c.sorted = NULL;
    if (n) {
        if (!vc_mul_ok(n, sizeof(vc_json), &bytes) || !(v->u.c.items = arena_alloc(ps->ar, bytes))) return oom();
        memcpy(v->u.c.items, ps->scratch + base, bytes);
    }
    if (is_object && n) {
        if (!vc_mul_ok(n, sizeof(json_key), &bytes) || !(v->u.c.keys = arena_alloc(ps->ar, bytes))) return oom();
        memcpy(v->u.c.keys, ps->scratch_keys + base, bytes);
        if (!vc_mul_ok(n, sizeof(size_t), &bytes) || !(v->u.c.sorted = arena_alloc(ps->ar, bytes))) return oom();
        for (size_t i = 0; i < n; i++) v->u.c.sorted[i] = i;
        sort_keys = v->u.c.keys;
        qsort(v->u.c.sorted, n, sizeof(size_t), cmp_idx);
        sort_keys = NULL;
        /* Duplicate keys make a document ambiguous (which one wins?): refuse them. */
        for (size_t i = 1; i < n; i++) {
            const json_key *a = &v->u.c.keys[v->u.c.sorted[i - 1]], *b = &v->u.c.keys[v->u.c.sorted[i]];
            if (!cmp_keys(a, b))
                return vc_fail(VC_ERR_FORMAT, "invalid JSON: duplicate key \"%.200s\" in object", b->key);
        }
    }
    ps->nscratch = base;
    return VC_OK;
}

static vc_status parse_container(parser *ps, vc_json *v, int is_object) {
    if (++ps->depth > ps->max_depth) return perr(ps, "nesting too deep");
    size_t base = ps->nscratch;
    unsigned char close = is_object ? '}' : ']';
    vc_status st;
    ps->p++; /* opening bracket */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        for (;;) {
            json_key k = {NULL, 0};
            vc_json child;
            skip_ws(ps);
            if (is_object) {
                if (ps->p >= ps->end || *ps->p != '"') return perr(ps, "object key (string) expected");
                if ((st = parse_string(ps, &k.key, &k.key_len))) return st;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') return perr(ps, "':' expected after object key");
                ps->p++;
                skip_ws(ps);
            }
            if ((st = parse_value(ps, &child))) return st;
            if ((st = scratch_push(ps, &child, is_object ? &k : NULL))) return st;
            skip_ws(ps);
            if (ps->p >= ps->end) return perr(ps, is_object ? "unterminated object" : "unterminated array");
            if (*ps->p == ',') { ps->p++; continue; }
            if (*ps->p == close) { ps->p++; break; }
            return perr(ps, is_object ? "',' or '}' expected" : "',' or ']' expected");
        }
    }
    v->type = is_object ? VC_JSON_OBJECT : VC_JSON_ARRAY;
    v->is_int = v->boolean = 0;
    ps->depth--;
    return close_container(ps, v, base, is_object);
}

static int match_word(parser *ps, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n)) return 0;
    ps->p += n;
    return 1;
}

static vc_status parse_value(parser *ps, vc_json *v) {
    memset(v, 0, sizeof *v);
    if (ps->p >= ps->end) return perr(ps, "value expected");
    switch (*ps->p) {
    case '{': return parse_container(ps, v, 1);
    case '[': return parse_container(ps, v, 0);
    case '"': v->type = VC_JSON_STRING; return parse_string(ps, &v->u.s, &v->len);
    case 't': if (!match_word(ps, "true")) break; v->type = VC_JSON_BOOL; v->boolean = 1; return VC_OK;
    case 'f': if (!match_word(ps, "false")) break; v->type = VC_JSON_BOOL; return VC_OK;
    case 'n': if (!match_word(ps, "null")) break; v->type = VC_JSON_NULL; return VC_OK;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps, v);
    }
    return perr(ps, "unexpected character");
}

vc_status vc_json_parse(const char *text, size_t len, int max_depth, vc_json **out) {
    *out = NULL;
    if (!text && len) return vc_fail(VC_ERR_ARG, "vc_json_parse: NULL text");
    if (max_depth <= 0) max_depth = VC_JSON_DEFAULT_DEPTH;
    if (max_depth > VC_JSON_MAX_DEPTH) max_depth = VC_JSON_MAX_DEPTH;
    arena ar = {NULL};
    json_root *root = arena_alloc(&ar, sizeof(json_root));
    if (!root) return oom();
    parser ps = {.p = (const unsigned char *)text, .end = (const unsigned char *)text + len,
                 .start = (const unsigned char *)text, .max_depth = max_depth, .ar = &ar};
    skip_ws(&ps);
    vc_status st = parse_value(&ps, &root->node);
    if (!st) {
        skip_ws(&ps);
        if (ps.p != ps.end) st = perr(&ps, "trailing characters after the JSON value");
    }
    free(ps.scratch);
    free(ps.scratch_keys);
    if (st) {
        arena_release(ar.head);
        return st;
    }
    root->ar = ar; /* the block list now includes the block holding root itself */
    *out = &root->node;
    return VC_OK;
}

void vc_json_free(vc_json *v) {
    if (!v) return;
    json_root *root = (json_root *)((char *)v - offsetof(json_root, node));
    arena_release(root->ar.head);
}

/* ---- accessors ---- */

vc_json_type vc_json_type_of(const vc_json *v) { return (vc_json_type)v->type; }

const char *vc_json_type_name(vc_json_type t) {
    switch (t) {
    case VC_JSON_NULL: return "null";
    case VC_JSON_BOOL: return "boolean";
    case VC_JSON_NUMBER: return "number";
    case VC_JSON_STRING: return "string";
    case VC_JSON_ARRAY: return "array";
    case VC_JSON_OBJECT: return "object";
    }
    return "?";
}

size_t vc_json_size(const vc_json *v) {
    if (!v) return 0;
    return (v->type == VC_JSON_STRING || v->type == VC_JSON_ARRAY || v->type == VC_JSON_OBJECT) ? v->len : 0;
}

const vc_json *vc_json_at(const vc_json *v, size_t i) {
    if (!v || (v->type != VC_JSON_ARRAY && v->type != VC_JSON_OBJECT) || i >= v->len) return NULL;
    return &v->u.c.items[i];
}

const char *vc_json_key_at(const vc_json *v, size_t i, size_t *len) {
    if (!v || v->type != VC_JSON_OBJECT || i >= v->len) return NULL;
    if (len) *len = v->u.c.keys[i].key_len;
    return v->u.c.keys[i].key;
}

const vc_json *vc_json_getn(const vc_json *v, const char *key, size_t key_len) {
    if (!v || v->type != VC_JSON_OBJECT || !key) return NULL;
    json_key want = {key, key_len};
    size_t lo = 0, hi = v->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_keys(&v->u.c.keys[v->u.c.sorted[mid]], &want);
        if (c == 0) return &v->u.c.items[v->u.c.sorted[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const vc_json *vc_json_get(const vc_json *v, const char *key) { return key ? vc_json_getn(v, key, strlen(key)) : NULL; }

int vc_json_bool(const vc_json *v, int *out) {
    if (!v || v->type != VC_JSON_BOOL) return 0;
    *out = v->boolean;
    return 1;
}

int vc_json_double(const vc_json *v, double *out) {
    if (!v || v->type != VC_JSON_NUMBER) return 0;
    *out = v->u.num.d;
    return 1;
}

int vc_json_int64(const vc_json *v, int64_t *out) {
    if (!v || v->type != VC_JSON_NUMBER || !v->is_int) return 0;
    *out = v->u.num.i;
    return 1;
}

const char *vc_json_string(const vc_json *v, size_t *len) {
    if (!v || v->type != VC_JSON_STRING) return NULL;
    if (len) *len = v->len;
    return v->u.s;
}
