/* A whole file mapped copy-on-write (MAP_PRIVATE, PROT_READ|PROT_WRITE).
 *
 * Checkpoint readers hand out arrays that point straight into this mapping. Writes through
 * those arrays (fine-tuning in place) land in private pages and never reach the file, and
 * pages that are only read are shared with the page cache, so loading costs no copy.
 * Caveat of any mmap: if another process truncates the file while it is mapped, touching the
 * lost pages raises SIGBUS; checkpoints are not expected to change under a reader.
 */
#ifndef VC_IO_MAPFILE_H
#define VC_IO_MAPFILE_H

#include <stddef.h>

#include "vc.h"

typedef struct {
    unsigned char *addr; /* NULL when size == 0 (an empty file cannot be mapped) */
    size_t size;
    char *path;          /* copy of the path, for messages */
} vc_mapfile;

/* Maps `path`; errors (VC_ERR_IO) name the file and the system's reason. */
vc_status vc_mapfile_open(const char *path, vc_mapfile **out);
/* Unmaps and frees; NULL is fine. Every pointer into the mapping dies here. */
void vc_mapfile_close(vc_mapfile *m);

#endif
