/* Copy-on-write file mapping (see mapfile.h). */
#include "io/mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static vc_status sys_fail(const char *path, const char *what, int err) {
    char buf[256];
    /* GNU strerror_r (we build with _GNU_SOURCE) returns the message pointer. */
    const char *msg = strerror_r(err, buf, sizeof buf);
    return vc_fail(VC_ERR_IO, "%s: %s: %s", path, what, msg);
}

vc_status vc_mapfile_open(const char *path, vc_mapfile **out) {
    *out = NULL;
    vc_mapfile *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return vc_fail(VC_ERR_MEMORY, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        vc_status st = sys_fail(path, "cannot open", errno);
        vc_mapfile_close(m);
        return st;
    }
    struct stat sb;
    vc_status st = VC_OK;
    if (fstat(fd, &sb) != 0) st = sys_fail(path, "cannot stat", errno);
    else if (!S_ISREG(sb.st_mode)) st = vc_fail(VC_ERR_IO, "%s: not a regular file", path);
    else if ((unsigned long long)sb.st_size > (unsigned long long)SIZE_MAX)
        st = vc_fail(VC_ERR_IO, "%s: file too large to map", path);
    if (!st && sb.st_size > 0) {
        m->size = (size_t)sb.st_size;
        void *p = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) st = sys_fail(path, "cannot map", errno);
        else m->addr = p;
    }
    close(fd); /* the mapping keeps its own reference to the file */
    if (st) {
        vc_mapfile_close(m);
        return st;
    }
    *out = m;
    return VC_OK;
}

void vc_mapfile_close(vc_mapfile *m) {
    if (!m) return;
    if (m->addr) munmap(m->addr, m->size);
    free(m->path);
    free(m);
}
