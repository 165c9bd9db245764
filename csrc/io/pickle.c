/* Restricted pickle VM (see pickle.h): a loop over opcodes with explicit bounds checks. */
#include "io/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vc_pickle {
    vc_pkl_value **all; /* every value, for vc_pickle_free */
    size_t nall, capall;
    void **blocks;      /* raw memory handed to hooks */
    size_t nblocks, capblocks;
};

typedef struct {
    vc_pickle *vm;
    const vc_pkl_hooks *h;
    const unsigned char *start, *p, *end;
    size_t op_pos; /* offset of the opcode being run, for messages */
    unsigned op;
    vc_pkl_value **stack;
    size_t sp, capstack;
    size_t *marks; /* stack heights at each MARK */
    size_t nmarks, capmarks;
    vc_pkl_value **memo;
    size_t capmemo, memo_count;
    size_t ops; /* opcodes run so far: legitimate memo indices never exceed it */
    vc_pkl_value *none, *yes, *no;
} run;

/* ---- memory ---- */

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 16, bytes;
    while (c < need) {
        if (c > SIZE_MAX / 2) return 0;
        c *= 2;
    }
    if (!vc_mul_ok(c, elem, &bytes)) return 0;
    void *q = realloc(*arr, bytes);
    if (!q) return 0;
    *arr = q;
    *cap = c;
    return 1;
}

vc_pkl_value *vc_pkl_new(vc_pickle *vm, vc_pkl_kind kind) {
    if (vm->nall >= VC_PKL_MAX_VALUES) {
        vc_fail(VC_ERR_FORMAT, "pickle: more than %u objects; not a checkpoint this reader accepts", VC_PKL_MAX_VALUES);
        return NULL;
    }
    if (!grow((void **)&vm->all, &vm->capall, vm->nall + 1, sizeof *vm->all)) {
        vc_fail(VC_ERR_MEMORY, "pickle: out of memory");
        return NULL;
    }
    vc_pkl_value *v = calloc(1, sizeof *v);
    if (!v) {
        vc_fail(VC_ERR_MEMORY, "pickle: out of memory");
        return NULL;
    }
    v->kind = kind;
    vm->all[vm->nall++] = v;
    return v;
}

void *vc_pkl_alloc(vc_pickle *vm, size_t bytes) {
    if (!grow((void **)&vm->blocks, &vm->capblocks, vm->nblocks + 1, sizeof *vm->blocks)) goto oom;
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) goto oom;
    vm->blocks[vm->nblocks++] = p;
    return p;
oom:
    vc_fail(VC_ERR_MEMORY, "pickle: out of memory");
    return NULL;
}

void vc_pickle_free(vc_pickle *vm) {
    if (!vm) return;
    for (size_t i = 0; i < vm->nall; i++) {
        vc_pkl_value *v = vm->all[i];
        if (v->kind == VC_PKL_TUPLE || v->kind == VC_PKL_LIST || v->kind == VC_PKL_DICT) free(v->u.seq.items);
        free(v);
    }
    for (size_t i = 0; i < vm->nblocks; i++) free(vm->blocks[i]);
    free(vm->all);
    free(vm->blocks);
    free(vm);
}

const char *vc_pkl_kind_name(vc_pkl_kind k) {
    switch (k) {
    case VC_PKL_NONE: return "None";
    case VC_PKL_BOOL: return "bool";
    case VC_PKL_INT: return "int";
    case VC_PKL_FLOAT: return "float";
    case VC_PKL_STR: return "str";
    case VC_PKL_BYTES: return "bytes";
    case VC_PKL_TUPLE: return "tuple";
    case VC_PKL_LIST: return "list";
    case VC_PKL_DICT: return "dict";
    case VC_PKL_GLOBAL: return "global";
    case VC_PKL_OBJECT: return "object";
    }
    return "?";
}

/* ---- VM helpers ---- */

static vc_status verr(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static vc_status verr(run *r, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vc_fail(VC_ERR_FORMAT, "pickle: %s (opcode 0x%02x at byte %zu)", msg, r->op, r->op_pos);
}

static vc_status push(run *r, vc_pkl_value *v) {
    if (!v) return VC_ERR_MEMORY; /* message already set by vc_pkl_new */
    if (!grow((void **)&r->stack, &r->capstack, r->sp + 1, sizeof *r->stack))
        return vc_fail(VC_ERR_MEMORY, "pickle: out of memory");
    r->stack[r->sp++] = v;
    return VC_OK;
}

/* Bottom of the current frame: items below the last MARK are not poppable. */
static size_t floor_(const run *r) { return r->nmarks ? r->marks[r->nmarks - 1] : 0; }

static vc_status pop(run *r, vc_pkl_value **out) {
    if (r->sp <= floor_(r)) return verr(r, "stack underflow");
    *out = r->stack[--r->sp];
    return VC_OK;
}

static vc_status top(run *r, vc_pkl_value **out) {
    if (r->sp <= floor_(r)) return verr(r, "stack underflow");
    *out = r->stack[r->sp - 1];
    return VC_OK;
}

static vc_status pop_mark(run *r, size_t *base) {
    if (!r->nmarks) return verr(r, "no MARK on the stack");
    *base = r->marks[--r->nmarks];
    return VC_OK;
}

static vc_status need(run *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) return verr(r, "truncated pickle (needs %zu more bytes)", n);
    return VC_OK;
}

static uint64_t le(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

static vc_status seq_append(run *r, vc_pkl_value *seq, vc_pkl_value *v) {
    if (!grow((void **)&seq->u.seq.items, &seq->u.seq.cap, seq->u.seq.n + 1, sizeof *seq->u.seq.items))
        return vc_fail(VC_ERR_MEMORY, "pickle: out of memory");
    seq->u.seq.items[seq->u.seq.n++] = v;
    return VC_OK;
}

/* Builds a TUPLE/LIST/DICT from stack[base..sp) and leaves it in their place. */
static vc_status collect(run *r, size_t base, vc_pkl_kind kind) {
    size_t n = r->sp - base;
    if (kind == VC_PKL_DICT && n % 2) return verr(r, "odd number of items for a dict");
    vc_pkl_value *v = vc_pkl_new(r->vm, kind);
    if (!v) return VC_ERR_MEMORY;
    if (n) {
        if (!grow((void **)&v->u.seq.items, &v->u.seq.cap, n, sizeof *v->u.seq.items))
            return vc_fail(VC_ERR_MEMORY, "pickle: out of memory");
        memcpy(v->u.seq.items, r->stack + base, n * sizeof *r->stack);
        v->u.seq.n = n;
    }
    r->sp = base;
    return push(r, v);
}

static vc_status add_items(run *r, vc_pkl_kind want) {
    size_t base = 0;
    vc_status s = pop_mark(r, &base);
    if (s) return s;
    if (base <= floor_(r)) return verr(r, "stack underflow");
    vc_pkl_value *target = r->stack[base - 1];
    if (target->kind != want)
        return verr(r, "%s into a %s", want == VC_PKL_DICT ? "SETITEMS" : "APPENDS", vc_pkl_kind_name(target->kind));
    if (want == VC_PKL_DICT && (r->sp - base) % 2) return verr(r, "odd number of items for SETITEMS");
    for (size_t i = base; i < r->sp; i++)
        if ((s = seq_append(r, target, r->stack[i]))) return s;
    r->sp = base;
    return VC_OK;
}

static vc_status new_int(run *r, int64_t i) {
    vc_pkl_value *v = vc_pkl_new(r->vm, VC_PKL_INT);
    if (v) v->u.i = i;
    return push(r, v);
}

static vc_status new_str(run *r, vc_pkl_kind kind, size_t lenbytes) {
    vc_status s = need(r, lenbytes);
    if (s) return s;
    uint64_t n = le(r->p, lenbytes);
    r->p += lenbytes;
    if (n > (uint64_t)(r->end - r->p)) return verr(r, "string of %llu bytes past the end of the pickle", (unsigned long long)n);
    vc_pkl_value *v = vc_pkl_new(r->vm, kind);
    if (v) {
        v->u.str.s = (const char *)r->p;
        v->u.str.n = (size_t)n;
    }
    r->p += n;
    return push(r, v);
}

static vc_status memo_put(run *r, uint64_t idx) {
    vc_pkl_value *v = NULL;
    vc_status s = top(r, &v);
    if (s) return s;
    if (idx >= VC_PKL_MAX_VALUES || idx > r->ops) return verr(r, "memo index %llu out of range", (unsigned long long)idx);
    size_t old = r->capmemo;
    if (!grow((void **)&r->memo, &r->capmemo, (size_t)idx + 1, sizeof *r->memo))
        return vc_fail(VC_ERR_MEMORY, "pickle: out of memory");
    if (r->capmemo > old) memset(r->memo + old, 0, (r->capmemo - old) * sizeof *r->memo);
    if (!r->memo[idx]) r->memo_count++;
    r->memo[idx] = v;
    return VC_OK;
}

static vc_status memo_get(run *r, uint64_t idx) {
    if (idx >= r->capmemo || !r->memo[idx]) return verr(r, "memo index %llu not set", (unsigned long long)idx);
    return push(r, r->memo[idx]);
}

/* Reads a newline-terminated line (GLOBAL's operands). */
static vc_status line(run *r, const char **s, size_t *n) {
    const unsigned char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    if (!nl) return verr(r, "unterminated GLOBAL operand");
    *s = (const char *)r->p;
    *n = (size_t)(nl - r->p);
    r->p = nl + 1;
    return VC_OK;
}

static vc_status global(run *r, const char *mod, size_t mlen, const char *name, size_t nlen) {
    int id;
    vc_status s = r->h->find_class(r->h->ctx, mod, mlen, name, nlen, &id);
    if (s) return s;
    vc_pkl_value *v = vc_pkl_new(r->vm, VC_PKL_GLOBAL);
    if (v) {
        v->u.global.id = id;
        v->u.global.module = mod;
        v->u.global.module_len = mlen;
        v->u.global.name = name;
        v->u.global.name_len = nlen;
    }
    return push(r, v);
}

/* ---- the opcode loop ---- */

static vc_status step(run *r, int *stop) {
    vc_pkl_value *a = NULL, *b = NULL, *out = NULL;
    size_t base = 0;
    vc_status s;
    r->op_pos = (size_t)(r->p - r->start);
    r->op = *r->p++;
    r->ops++;
    switch (r->op) {
    case 0x80: /* PROTO */
        if ((s = need(r, 1))) return s;
        if (*r->p > 5) return verr(r, "unsupported pickle protocol %u", *r->p);
        r->p++;
        return VC_OK;
    case 0x95: /* FRAME: framing is transparent to a reader of the whole buffer */
        if ((s = need(r, 8))) return s;
        if (le(r->p, 8) > (uint64_t)(r->end - r->p - 8)) return verr(r, "frame past the end of the pickle");
        r->p += 8;
        return VC_OK;
    case '.': /* STOP */
        *stop = 1;
        return VC_OK;
    case '(': /* MARK */
        if (!grow((void **)&r->marks, &r->capmarks, r->nmarks + 1, sizeof *r->marks))
            return vc_fail(VC_ERR_MEMORY, "pickle: out of memory");
        r->marks[r->nmarks++] = r->sp;
        return VC_OK;
    case '0': return pop(r, &a); /* POP */
    case '1': /* POP_MARK */
        if ((s = pop_mark(r, &base))) return s;
        r->sp = base;
        return VC_OK;
    case '2': /* DUP */
        if ((s = top(r, &a))) return s;
        return push(r, a);
    case 'N': return push(r, r->none);
    case 0x88: return push(r, r->yes);
    case 0x89: return push(r, r->no);
    case 'J': /* BININT: signed 32-bit */
        if ((s = need(r, 4))) return s;
        r->p += 4;
        return new_int(r, (int32_t)(uint32_t)le(r->p - 4, 4));
    case 'K': /* BININT1 */
        if ((s = need(r, 1))) return s;
        r->p += 1;
        return new_int(r, r->p[-1]);
    case 'M': /* BININT2 */
        if ((s = need(r, 2))) return s;
        r->p += 2;
        return new_int(r, (int64_t)le(r->p - 2, 2));
    case 0x8a: /* LONG1 */
    case 0x8b: { /* LONG4: little-endian two's complement of n bytes */
        size_t lb = r->op == 0x8a ? 1 : 4;
        if ((s = need(r, lb))) return s;
        uint64_t n = le(r->p, lb);
        r->p += lb;
        if (n > 8) return verr(r, "integer wider than 64 bits");
        if ((s = need(r, (size_t)n))) return s;
        uint64_t u = le(r->p, (size_t)n);
        if (n && n < 8 && (r->p[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
        r->p += n;
        return new_int(r, (int64_t)u);
    }
    case 'G': { /* BINFLOAT: big-endian double */
        if ((s = need(r, 8))) return s;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = (u << 8) | r->p[i];
        r->p += 8;
        vc_pkl_value *v = vc_pkl_new(r->vm, VC_PKL_FLOAT);
        if (v) memcpy(&v->u.f, &u, 8);
        return push(r, v);
    }
    case 'X': return new_str(r, VC_PKL_STR, 4);    /* BINUNICODE */
    case 0x8c: return new_str(r, VC_PKL_STR, 1);   /* SHORT_BINUNICODE */
    case 0x8d: return new_str(r, VC_PKL_STR, 8);   /* BINUNICODE8 */
    case 'B': return new_str(r, VC_PKL_BYTES, 4);  /* BINBYTES */
    case 'C': return new_str(r, VC_PKL_BYTES, 1);  /* SHORT_BINBYTES */
    case 0x8e: return new_str(r, VC_PKL_BYTES, 8); /* BINBYTES8 */
    case ')': return collect(r, r->sp, VC_PKL_TUPLE);
    case ']': return collect(r, r->sp, VC_PKL_LIST);
    case '}': return collect(r, r->sp, VC_PKL_DICT);
    case 't':
        if ((s = pop_mark(r, &base))) return s;
        return collect(r, base, VC_PKL_TUPLE);
    case 'l':
        if ((s = pop_mark(r, &base))) return s;
        return collect(r, base, VC_PKL_LIST);
    case 'd':
        if ((s = pop_mark(r, &base))) return s;
        return collect(r, base, VC_PKL_DICT);
    case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
        size_t n = r->op - 0x84u;
        if (r->sp < floor_(r) + n) return verr(r, "stack underflow");
        return collect(r, r->sp - n, VC_PKL_TUPLE);
    }
    case 'a': /* APPEND */
        if ((s = pop(r, &a)) || (s = top(r, &b))) return s;
        if (b->kind != VC_PKL_LIST) return verr(r, "APPEND to a %s", vc_pkl_kind_name(b->kind));
        return seq_append(r, b, a);
    case 'e': return add_items(r, VC_PKL_LIST); /* APPENDS */
    case 's': { /* SETITEM */
        vc_pkl_value *k = NULL, *d = NULL;
        if ((s = pop(r, &a)) || (s = pop(r, &k)) || (s = top(r, &d))) return s;
        if (d->kind != VC_PKL_DICT) return verr(r, "SETITEM on a %s", vc_pkl_kind_name(d->kind));
        if ((s = seq_append(r, d, k))) return s;
        return seq_append(r, d, a);
    }
    case 'u': return add_items(r, VC_PKL_DICT); /* SETITEMS */
    case 'q': /* BINPUT */
        if ((s = need(r, 1))) return s;
        r->p += 1;
        return memo_put(r, r->p[-1]);
    case 'r': /* LONG_BINPUT */
        if ((s = need(r, 4))) return s;
        r->p += 4;
        return memo_put(r, le(r->p - 4, 4));
    case 0x94: return memo_put(r, r->memo_count); /* MEMOIZE */
    case 'h': /* BINGET */
        if ((s = need(r, 1))) return s;
        r->p += 1;
        return memo_get(r, r->p[-1]);
    case 'j': /* LONG_BINGET */
        if ((s = need(r, 4))) return s;
        r->p += 4;
        return memo_get(r, le(r->p - 4, 4));
    case 'c': { /* GLOBAL "module\nname\n" */
        const char *m = NULL, *n = NULL;
        size_t ml = 0, nl = 0;
        if ((s = line(r, &m, &ml)) || (s = line(r, &n, &nl))) return s;
        return global(r, m, ml, n, nl);
    }
    case 0x93: /* STACK_GLOBAL */
        if ((s = pop(r, &b)) || (s = pop(r, &a))) return s;
        if (a->kind != VC_PKL_STR || b->kind != VC_PKL_STR) return verr(r, "STACK_GLOBAL operands are not strings");
        return global(r, a->u.str.s, a->u.str.n, b->u.str.s, b->u.str.n);
    case 'R': /* REDUCE: only globals that find_class accepted can be called */
        if ((s = pop(r, &b)) || (s = pop(r, &a))) return s;
        if (a->kind != VC_PKL_GLOBAL) return verr(r, "REDUCE on a %s", vc_pkl_kind_name(a->kind));
        if (b->kind != VC_PKL_TUPLE) return verr(r, "REDUCE arguments are a %s, not a tuple", vc_pkl_kind_name(b->kind));
        if ((s = r->h->reduce(r->h->ctx, r->vm, a, b, &out))) return s;
        return push(r, out);
    case 'b': /* BUILD */
        if ((s = pop(r, &b)) || (s = top(r, &a))) return s;
        return r->h->build(r->h->ctx, r->vm, a, b);
    case 'Q': /* BINPERSID */
        if ((s = pop(r, &a))) return s;
        if ((s = r->h->persistent_load(r->h->ctx, r->vm, a, &out))) return s;
        return push(r, out);
    case 0x81: case 0x92: case 'i': case 'o':
        return vc_fail(VC_ERR_UNSAFE, "pickle: object construction opcode 0x%02x at byte %zu refused", r->op, r->op_pos);
    default:
        return verr(r, "unsupported pickle opcode");
    }
}

vc_status vc_pickle_run(const unsigned char *data, size_t len, const vc_pkl_hooks *hooks, vc_pickle **vm,
                        vc_pkl_value **result) {
    *vm = NULL;
    *result = NULL;
    run r = {.h = hooks, .start = data, .p = data, .end = data + len};
    if (!(r.vm = calloc(1, sizeof *r.vm))) return vc_fail(VC_ERR_MEMORY, "pickle: out of memory");
    vc_status s = VC_OK;
    if (!(r.none = vc_pkl_new(r.vm, VC_PKL_NONE)) || !(r.yes = vc_pkl_new(r.vm, VC_PKL_BOOL)) ||
        !(r.no = vc_pkl_new(r.vm, VC_PKL_BOOL)))
        s = VC_ERR_MEMORY;
    else
        r.yes->u.i = 1;
    int stop = 0;
    while (!s && !stop) {
        if (r.p >= r.end) {
            r.op_pos = len;
            r.op = 0;
            s = verr(&r, "pickle ends without STOP");
            break;
        }
        s = step(&r, &stop);
    }
    vc_pkl_value *res = NULL;
    if (!s && (s = pop(&r, &res)) == VC_OK) {
        *vm = r.vm;
        *result = res;
    }
    free(r.stack);
    free(r.marks);
    free(r.memo);
    if (s) vc_pickle_free(r.vm);
    return s;
}
