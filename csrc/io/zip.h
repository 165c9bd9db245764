/* Read-only zip archive index over a byte buffer (the torch.save container).
 *
 * Reads the central directory (end record, zip64 end record and extra fields too, so
 * archives past 4 GB work), checks every entry's local header and data range against the
 * buffer, and refuses duplicate names and overlapping data. Only stored (uncompressed)
 * entries can be read: torch.save writes those, and that is what makes zero-copy possible.
 * CRC-32 is not checked on access (that would touch every byte of a multi-GB checkpoint);
 * callers can check small entries with vc_zip_crc32.
 */
#ifndef VC_IO_ZIP_H
#define VC_IO_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

typedef struct {
    const char *name; /* NUL-terminated copy; name_len excludes the NUL */
    size_t name_len;
    size_t offset;    /* absolute offset of the entry's (stored) bytes in the buffer */
    size_t size;      /* uncompressed size */
    size_t comp_size; /* bytes occupied in the archive */
    uint32_t crc32;
    unsigned method;  /* 0 = stored */
    unsigned flags;   /* general purpose bit flags; bit 0 = encrypted */
} vc_zip_entry;

typedef struct vc_zip vc_zip;

/* Indexes the archive in buf[0..size). `path` is only used in messages. The buffer must
 * outlive the index. */
vc_status vc_zip_open(const unsigned char *buf, size_t size, const char *path, vc_zip **out);
void vc_zip_close(vc_zip *z);

size_t vc_zip_count(const vc_zip *z);
const vc_zip_entry *vc_zip_entry_at(const vc_zip *z, size_t i); /* archive order */
/* Exact name lookup, O(log n); NULL if absent. */
const vc_zip_entry *vc_zip_find(const vc_zip *z, const char *name, size_t name_len);
/* VC_OK when the entry can be read in place (stored, not encrypted); otherwise an error that
 * names the file and the entry. */
vc_status vc_zip_check_stored(const vc_zip *z, const vc_zip_entry *e);

uint32_t vc_zip_crc32(const void *data, size_t n);

#endif
