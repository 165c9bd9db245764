/* safetensors reader and writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON header, then the data
 * buffer. The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets
 * relative to the data buffer) plus an optional "__metadata__" string->string map.
 *
 * The reader maps the file copy-on-write (mapfile.h) and validates everything before any
 * tensor is handed out: header length within the file and <= 100 MB, strict JSON, known
 * dtypes, non-negative shapes whose byte size does not overflow, offsets inside the data
 * buffer that match the shape, and no two tensors sharing bytes. Tensors keep header order.
 */
#ifndef VC_IO_SAFETENSORS_H
#define VC_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "io/dtype.h"
#include "io/mapfile.h"
#include "vc.h"

#define VC_ST_MAX_HEADER 100000000u /* same limit as the safetensors library */

typedef struct {
    const char *name; /* UTF-8, NUL-terminated (name_len excludes the NUL) */
    size_t name_len;
    vc_io_dtype dtype;
    int ndim;
    const int64_t *shape;
    size_t numel, nbytes;
    size_t offset; /* absolute offset of the data in the file */
} vc_st_tensor;

typedef struct {
    const char *key, *value;
    size_t key_len, value_len;
} vc_st_meta;

typedef struct vc_safetensors vc_safetensors;

/* Opens and validates `path`. Errors name the file and, where one is at fault, the tensor. */
vc_status vc_st_open(const char *path, vc_safetensors **out);
/* Frees the parsed header and unmaps the file unless the mapping was taken. NULL is fine. */
void vc_st_close(vc_safetensors *st);

size_t vc_st_count(const vc_safetensors *st);
const vc_st_tensor *vc_st_tensor_at(const vc_safetensors *st, size_t i);
/* Pointer to tensor i's bytes inside the mapping (writeable, copy-on-write). */
void *vc_st_data(const vc_safetensors *st, size_t i);
size_t vc_st_meta_count(const vc_safetensors *st);
const vc_st_meta *vc_st_meta_at(const vc_safetensors *st, size_t i);
const char *vc_st_path(const vc_safetensors *st);

/* Hands the mapping to the caller (who must vc_mapfile_close it), so that data pointers can
 * outlive the parsed header. After this, vc_st_data must not be called. */
vc_mapfile *vc_st_take_mapping(vc_safetensors *st);

/* ---- writing ---- */

typedef struct {
    const char *name; /* UTF-8 */
    size_t name_len;
    vc_io_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data; /* dense C-order, little-endian, nbytes long */
    size_t nbytes;
} vc_st_entry;

/* Writes a safetensors file atomically: to a temporary file in the same directory, fsync,
 * rename over `path`, fsync the directory. The header lists tensors in the given order; the
 * data buffer is laid out by decreasing element size so every tensor stays aligned. The
 * header is padded with spaces to a multiple of 8 bytes, as the safetensors library does. */
vc_status vc_st_save(const char *path, const vc_st_entry *tensors, size_t n, const vc_st_meta *meta, size_t nmeta);

#endif
