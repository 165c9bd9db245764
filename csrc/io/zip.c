/* Zip central-directory reader (see zip.h). All multi-byte fields are little-endian and
 * every read goes through rd16/rd32/rd64 after an explicit range check. */
#include "io/zip.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

struct vc_zip {
    const char *path;
    vc_zip_entry *e;
    size_t n;
    size_t *by_name; /* indices sorted by name */
    char *names;     /* all names, NUL-separated */
};

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* [off, off+len) lies inside a buffer of `size` bytes. */
static int in_buf(uint64_t off, uint64_t len, size_t size) { return off <= size && len <= size - off; }

typedef struct {
    uint64_t entries, cd_size, cd_offset;
    size_t cd_limit; /* the central directory must end before this offset */
} eocd_info;

static vc_status find_eocd(const unsigned char *b, size_t size, const char *path, eocd_info *info) {
    if (size < 22) return vc_fail(VC_ERR_FORMAT, "%s: not a zip archive (%zu bytes)", path, size);
    /* The end record is 22 bytes plus a comment of at most 65535 bytes: scan back for it. */
    size_t lo = size - 22 > 65535 ? size - 22 - 65535 : 0, pos = size - 22 + 1, found = SIZE_MAX;
    while (pos-- > lo) {
        if (rd32(b + pos) == SIG_EOCD && pos + 22 + rd16(b + pos + 20) <= size) {
            found = pos;
            break;
        }
    }
    if (found == SIZE_MAX) return vc_fail(VC_ERR_FORMAT, "%s: not a zip archive (no end of central directory record)", path);
    const unsigned char *e = b + found;
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0)
        return vc_fail(VC_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", path);
    info->entries = rd16(e + 10);
    info->cd_size = rd32(e + 12);
    info->cd_offset = rd32(e + 16);
    info->cd_limit = found;

    /* zip64: a locator right before the end record points at the zip64 end record, whose
     * 64-bit counts replace the 16/32-bit ones. */
    if (found >= 20 && rd32(b + found - 20) == SIG_LOC64) {
        const unsigned char *loc = b + found - 20;
        uint64_t off = rd64(loc + 8);
        if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1)
            return vc_fail(VC_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", path);
        if (!in_buf(off, 56, found - 20) || rd32(b + off) != SIG_EOCD64)
            return vc_fail(VC_ERR_FORMAT, "%s: corrupt zip64 end of central directory record", path);
        const unsigned char *z = b + off;
        if (rd32(z + 16) != 0 || rd32(z + 20) != 0)
            return vc_fail(VC_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", path);
        info->entries = rd64(z + 32);
        info->cd_size = rd64(z + 40);
        info->cd_offset = rd64(z + 48);
        info->cd_limit = (size_t)off;
    }
    if (!in_buf(info->cd_offset, info->cd_size, info->cd_limit))
        return vc_fail(VC_ERR_FORMAT, "%s: zip central directory lies outside the file (truncated?)", path);
    /* Each central entry takes at least 46 bytes: bounds the allocation below. */
    if (info->entries > info->cd_size / 46)
        return vc_fail(VC_ERR_FORMAT, "%s: zip central directory too small for %llu entries", path,
                       (unsigned long long)info->entries);
    return VC_OK;
}

/* Applies the zip64 extra field (id 1) of a central entry: 64-bit values follow in a fixed
 * order, present only for the fields whose 32-bit value is saturated. */
static vc_status apply_zip64_extra(const unsigned char *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                                   uint64_t *loff, const char *path, const char *name) {
    while (xlen >= 4) {
        unsigned id = rd16(x), len = rd16(x + 2);
        if (len > xlen - 4) break; /* malformed extras after the one we need are harmless */
        if (id == 1) {
            const unsigned char *p = x + 4, *end = x + 4 + len;
            uint64_t *fields[3] = {usize, csize, loff};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xFFFFFFFFu) continue;
                if (end - p < 8)
                    return vc_fail(VC_ERR_FORMAT, "%s: zip entry '%.200s': truncated zip64 extra field", path, name);
                *fields[i] = rd64(p);
                p += 8;
            }
            return VC_OK;
        }
        x += 4 + len;
        xlen -= 4 + len;
    }
    return VC_OK;
}

static _Thread_local const vc_zip_entry *sort_e;
static int cmp_name(const void *a, const void *b) {
    const vc_zip_entry *x = &sort_e[*(const size_t *)a], *y = &sort_e[*(const size_t *)b];
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}
static int cmp_offset(const void *a, const void *b) {
    const vc_zip_entry *x = &sort_e[*(const size_t *)a], *y = &sort_e[*(const size_t *)b];
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static vc_status read_entries(vc_zip *z, const unsigned char *b, size_t size, const eocd_info *info) {
    const char *path = z->path;
    const unsigned char *p = b + info->cd_offset, *end = p + info->cd_size;
    z->n = (size_t)info->entries;
    z->e = calloc(z->n ? z->n : 1, sizeof *z->e);
    z->by_name = calloc(z->n ? z->n : 1, sizeof *z->by_name);
    /* Names total at most cd_size bytes, plus one NUL each. */
    z->names = malloc((size_t)info->cd_size + z->n + 1);
    if (!z->e || !z->by_name || !z->names) return vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    char *names = z->names;
    for (size_t i = 0; i < z->n; i++) {
        if (end - p < 46 || rd32(p) != SIG_CENTRAL)
            return vc_fail(VC_ERR_FORMAT, "%s: corrupt zip central directory (entry %zu)", path, i);
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if ((size_t)(end - p) - 46 < nlen + xlen + clen)
            return vc_fail(VC_ERR_FORMAT, "%s: corrupt zip central directory (entry %zu)", path, i);
        vc_zip_entry *e = &z->e[i];
        memcpy(names, p + 46, nlen);
        names[nlen] = 0;
        e->name = names;
        e->name_len = nlen;
        names += nlen + 1;
        if (memchr(e->name, 0, nlen))
            return vc_fail(VC_ERR_FORMAT, "%s: zip entry %zu has a NUL byte in its name", path, i);
        e->flags = rd16(p + 8);
        e->method = rd16(p + 10);
        e->crc32 = rd32(p + 16);
        uint64_t csize = rd32(p + 20), usize = rd32(p + 24), loff = rd32(p + 42);
        if (rd16(p + 34) != 0 && rd16(p + 34) != 0xFFFF)
            return vc_fail(VC_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", path);
        vc_status s = apply_zip64_extra(p + 46 + nlen, xlen, &usize, &csize, &loff, path, e->name);
        if (s) return s;
        p += 46 + nlen + xlen + clen;

        /* Local header: its own name/extra lengths decide where the data starts (torch pads
         * the local extra field so that tensor data is 64-byte aligned). */
        if (!in_buf(loff, 30, size) || rd32(b + loff) != SIG_LOCAL)
            return vc_fail(VC_ERR_FORMAT, "%s: zip entry '%.200s': bad local header (truncated?)", path, e->name);
        const unsigned char *lh = b + loff;
        size_t lnlen = rd16(lh + 26), lxlen = rd16(lh + 28);
        if (!in_buf(loff + 30, lnlen + lxlen, size))
            return vc_fail(VC_ERR_FORMAT, "%s: zip entry '%.200s': local header past the end of the file", path, e->name);
        if (lnlen != nlen || memcmp(lh + 30, e->name, nlen))
            return vc_fail(VC_ERR_FORMAT, "%s: zip entry '%.200s': local and central names differ", path, e->name);
        uint64_t data = loff + 30 + lnlen + lxlen;
        if (!in_buf(data, csize, size))
            return vc_fail(VC_ERR_FORMAT, "%s: zip entry '%.200s': data (%llu bytes) past the end of the file (truncated?)",
                           path, e->name, (unsigned long long)csize);
        if (usize > SIZE_MAX)
            return vc_fail(VC_ERR_FORMAT, "%s: zip entry '%.200s': size too large", path, e->name);
        e->offset = (size_t)data;
        e->comp_size = (size_t)csize;
        e->size = (size_t)usize;
        z->by_name[i] = i;
    }

    /* Duplicate names would make lookups ambiguous; overlapping data would alias arrays. */
    sort_e = z->e;
    qsort(z->by_name, z->n, sizeof *z->by_name, cmp_name);
    for (size_t i = 1; i < z->n; i++)
        if (!cmp_name(&z->by_name[i - 1], &z->by_name[i])) {
            sort_e = NULL;
            return vc_fail(VC_ERR_FORMAT, "%s: duplicate zip entry '%.200s'", path, z->e[z->by_name[i]].name);
        }
    size_t *by_off = malloc((z->n ? z->n : 1) * sizeof *by_off);
    if (!by_off) {
        sort_e = NULL;
        return vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    }
    for (size_t i = 0; i < z->n; i++) by_off[i] = i;
    qsort(by_off, z->n, sizeof *by_off, cmp_offset);
    sort_e = NULL;
    vc_status s = VC_OK;
    for (size_t i = 1; i < z->n && !s; i++) {
        const vc_zip_entry *a = &z->e[by_off[i - 1]], *c = &z->e[by_off[i]];
        if (a->comp_size && c->comp_size && c->offset < a->offset + a->comp_size)
            s = vc_fail(VC_ERR_FORMAT, "%s: zip entries '%.200s' and '%.200s' overlap", path, a->name, c->name);
    }
    free(by_off);
    return s;
}

vc_status vc_zip_open(const unsigned char *buf, size_t size, const char *path, vc_zip **out) {
    *out = NULL;
    vc_zip *z = calloc(1, sizeof *z);
    if (!z) return vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    z->path = path;
    eocd_info info = {0};
    vc_status s = find_eocd(buf, size, path, &info);
    if (!s) s = read_entries(z, buf, size, &info);
    if (s) {
        vc_zip_close(z);
        return s;
    }
    *out = z;
    return VC_OK;
}

void vc_zip_close(vc_zip *z) {
    if (!z) return;
    free(z->e);
    free(z->by_name);
    free(z->names);
    free(z);
}

size_t vc_zip_count(const vc_zip *z) { return z->n; }
const vc_zip_entry *vc_zip_entry_at(const vc_zip *z, size_t i) { return i < z->n ? &z->e[i] : NULL; }

const vc_zip_entry *vc_zip_find(const vc_zip *z, const char *name, size_t name_len) {
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const vc_zip_entry *e = &z->e[z->by_name[mid]];
        size_t n = e->name_len < name_len ? e->name_len : name_len;
        int c = memcmp(e->name, name, n);
        if (!c) c = (e->name_len > name_len) - (e->name_len < name_len);
        if (!c) return e;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

vc_status vc_zip_check_stored(const vc_zip *z, const vc_zip_entry *e) {
    if (e->flags & 1) return vc_fail(VC_ERR_UNSUPPORTED, "%s: zip entry '%.200s' is encrypted", z->path, e->name);
    if (e->method != 0)
        return vc_fail(VC_ERR_UNSUPPORTED,
                       "%s: zip entry '%.200s' is compressed (method %u); only stored entries are supported, as "
                       "written by torch.save",
                       z->path, e->name, e->method);
    if (e->comp_size != e->size)
        return vc_fail(VC_ERR_FORMAT, "%s: zip entry '%.200s': stored entry with different compressed (%zu) and "
                       "uncompressed (%zu) sizes", z->path, e->name, e->comp_size, e->size);
    return VC_OK;
}

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static void make_crc_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t vc_zip_crc32(const void *data, size_t n) {
    pthread_once(&crc_once, make_crc_table);
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}
