/* Strict JSON (RFC 8259) parser producing a read-only tree.
 *
 * Used for safetensors headers and, later, for config files read from C. It is strict on
 * purpose (these files come from the network): valid UTF-8 only, no trailing commas, no
 * comments, no duplicate object keys, numbers that overflow a double are errors, nesting is
 * limited. Every byte read is bounds-checked against the given length; the text need not be
 * NUL-terminated.
 *
 * The whole tree lives in one arena owned by the root: vc_json_free(root) releases all of it,
 * and every pointer obtained from the tree (strings, children) dies with it.
 */
#ifndef VC_IO_JSON_H
#define VC_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

typedef enum {
    VC_JSON_NULL,
    VC_JSON_BOOL,
    VC_JSON_NUMBER,
    VC_JSON_STRING,
    VC_JSON_ARRAY,
    VC_JSON_OBJECT,
} vc_json_type;

typedef struct vc_json vc_json;

#define VC_JSON_DEFAULT_DEPTH 64
#define VC_JSON_MAX_DEPTH 512 /* hard cap: the parser recurses once per level */

/* Parses `len` bytes of `text` (surrounding whitespace allowed, nothing else). On success
 * *out is the root (free it with vc_json_free); on failure *out is NULL and the message says
 * what is wrong and at which byte offset. max_depth <= 0 means VC_JSON_DEFAULT_DEPTH. */
vc_status vc_json_parse(const char *text, size_t len, int max_depth, vc_json **out);

/* Frees the tree whose root is `root` (NULL is fine). Only the root may be freed. */
void vc_json_free(vc_json *root);

/* Accessors below accept NULL (answering 0 / NULL), so lookups chain without checks:
 * vc_json_int64(vc_json_at(vc_json_get(obj, "shape"), 0), &d). vc_json_type_of needs a node. */
vc_json_type vc_json_type_of(const vc_json *v);
const char *vc_json_type_name(vc_json_type t);
static inline int vc_json_is(const vc_json *v, vc_json_type t) { return v && vc_json_type_of(v) == t; }

/* Number of elements (array), members (object) or bytes (string); 0 for anything else. */
size_t vc_json_size(const vc_json *v);

/* i-th element of an array, or i-th member value of an object (document order); NULL when
 * out of range or `v` is neither. */
const vc_json *vc_json_at(const vc_json *v, size_t i);

/* Key of the i-th member of an object (UTF-8, NUL-terminated; *len gets its byte length,
 * which may include embedded NULs from \u0000). NULL when out of range or not an object. */
const char *vc_json_key_at(const vc_json *obj, size_t i, size_t *len);

/* Member value for a key (O(log n)), or NULL if absent or `obj` is not an object. */
const vc_json *vc_json_get(const vc_json *obj, const char *key);
const vc_json *vc_json_getn(const vc_json *obj, const char *key, size_t key_len);

/* Scalar accessors: each returns 1 and fills *out when `v` has that type, else 0. */
int vc_json_bool(const vc_json *v, int *out);
int vc_json_double(const vc_json *v, double *out);
/* Only for numbers written as integer literals (no fraction/exponent) that fit in int64, so
 * that sizes and offsets are exact; 1.0 or 1e3 are not integers here. */
int vc_json_int64(const vc_json *v, int64_t *out);
/* String bytes (UTF-8, NUL-terminated) and their length. */
const char *vc_json_string(const vc_json *v, size_t *len);

#endif
