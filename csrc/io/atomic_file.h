/* Atomic file replacement: write to a temporary file next to the target, fsync, rename.
 *
 * A process killed mid-save leaves at worst a stray "<path>.tmp.*" file, never a half-written
 * file under the final name; readers see either the old file or the complete new one.
 */
#ifndef VC_IO_ATOMIC_FILE_H
#define VC_IO_ATOMIC_FILE_H

#include <stddef.h>

#include "vc.h"

typedef struct {
    int fd;
    char *tmp_path, *path;
} vc_atomic_file;

/* Creates the temporary file (mode 0666 minus umask, like a plain open). */
vc_status vc_atomic_open(const char *path, vc_atomic_file *f);
/* Writes all `n` bytes (retrying short writes and EINTR). */
vc_status vc_atomic_write(vc_atomic_file *f, const void *data, size_t n);
/* fsync, close, rename over the target, fsync the directory. Cleans up on failure too. */
vc_status vc_atomic_commit(vc_atomic_file *f);
/* Closes and deletes the temporary file; safe after a failed open/commit. */
void vc_atomic_abort(vc_atomic_file *f);

#endif
