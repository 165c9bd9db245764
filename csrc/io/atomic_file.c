/* Temporary file + fsync + rename (see atomic_file.h). */
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static vc_status sys_fail(const char *path, const char *what, int err) {
    char buf[256];
    const char *msg = strerror_r(err, buf, sizeof buf); /* GNU variant (_GNU_SOURCE) */
    return vc_fail(VC_ERR_IO, "%s: %s: %s", path, what, msg);
}

static void release(vc_atomic_file *f) {
    free(f->tmp_path);
    free(f->path);
    f->tmp_path = f->path = NULL;
    f->fd = -1;
}

vc_status vc_atomic_open(const char *path, vc_atomic_file *f) {
    static atomic_uint counter;
    f->fd = -1;
    f->path = strdup(path);
    size_t n = strlen(path) + 64;
    f->tmp_path = malloc(n);
    if (!f->path || !f->tmp_path) {
        release(f);
        return vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    }
    /* O_EXCL with a pid+counter name instead of mkstemp: mkstemp forces mode 0600. */
    for (int tries = 0; tries < 100; tries++) {
        snprintf(f->tmp_path, n, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));
        f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (f->fd >= 0) return VC_OK;
        if (errno != EEXIST) break;
    }
    vc_status s = sys_fail(path, "cannot create a temporary file next to it", errno);
    release(f);
    return s;
}

vc_status vc_atomic_write(vc_atomic_file *f, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = write(f->fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return sys_fail(f->path, "write failed", errno);
        }
        p += w;
        n -= (size_t)w;
    }
    return VC_OK;
}

/* Makes the rename itself durable. Failure here is reported: the data may not survive a
 * crash even though the file is in place. */
static vc_status sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    vc_status s = VC_OK;
    if (fd < 0 || fsync(fd) != 0) s = sys_fail(path, "cannot sync its directory", errno);
    if (fd >= 0) close(fd);
    free(dir);
    return s;
}

vc_status vc_atomic_commit(vc_atomic_file *f) {
    vc_status s = VC_OK;
    if (fsync(f->fd) != 0) s = sys_fail(f->path, "fsync failed", errno);
    if (close(f->fd) != 0 && !s) s = sys_fail(f->path, "close failed", errno);
    f->fd = -1;
    if (!s && rename(f->tmp_path, f->path) != 0) s = sys_fail(f->path, "cannot rename the temporary file over it", errno);
    if (s) {
        vc_atomic_abort(f);
        return s;
    }
    s = sync_dir(f->path);
    release(f);
    return s;
}

void vc_atomic_abort(vc_atomic_file *f) {
    if (f->fd >= 0) close(f->fd);
    if (f->tmp_path) unlink(f->tmp_path);
    release(f);
}
