/* The CPUs this process may use: its affinity mask, the physical cores in it, and its cgroup's
 * CPU quota. Schedulers give a job its CPUs in any of these ways (taskset and Ray set the mask;
 * docker --cpus and Kubernetes limits set the quota), and more threads than that only queue
 * for the same time slices. */
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc.h"

/* ---- affinity ---- */

/* The affinity mask, grown until the kernel's fits (it refuses a smaller one); NULL if it
 * cannot be read. *ncpus: the CPU numbers it covers. Free with CPU_FREE. */
static cpu_set_t *affinity_mask(int *ncpus) {
    for (int n = 1024; n <= (1 << 20); n *= 2) {
        cpu_set_t *set = CPU_ALLOC(n);
        if (!set) return NULL;
        if (sched_getaffinity(0, CPU_ALLOC_SIZE(n), set) == 0) {
            *ncpus = n;
            return set;
        }
        CPU_FREE(set);
    }
    return NULL;
}

int vc_affinity_cpus(void) {
    int n;
    cpu_set_t *set = affinity_mask(&n);
    if (!set) return 1;
    const int count = CPU_COUNT_S(CPU_ALLOC_SIZE(n), set);
    CPU_FREE(set);
    return count > 0 ? count : 1;
}

/* ---- physical cores ---- */

/* The (package, core) ids of a CPU from sysfs; 0 when it has no topology information. */
static int core_of(int cpu, int ids[2]) {
    static const char *const names[2] = {"physical_package_id", "core_id"};
    for (int k = 0; k < 2; k++) {
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, names[k]);
        FILE *f = fopen(path, "r");
        ids[k] = -1;
        if (f) {
            if (fscanf(f, "%d", &ids[k]) != 1) ids[k] = -1;
            fclose(f);
        }
    }
    return ids[1] >= 0;
}

int vc_physical_cores(void) {
    int n;
    cpu_set_t *set = affinity_mask(&n);
    if (!set) return 1;
    const size_t size = CPU_ALLOC_SIZE(n);
    const int nlogical = CPU_COUNT_S(size, set);
    int (*seen)[2] = malloc(sizeof *seen * (size_t)(nlogical > 0 ? nlogical : 1));
    int nseen = 0, known = 1;
    /* Distinct (package, core) pairs among the CPUs we may run on: SMT siblings share one. */
    for (int cpu = 0; seen && cpu < n; cpu++) {
        int ids[2], dup = 0;
        if (!CPU_ISSET_S(cpu, size, set)) continue;
        if (!core_of(cpu, ids)) {
            known = 0;
            break;
        }
        for (int i = 0; i < nseen && !dup; i++) dup = seen[i][0] == ids[0] && seen[i][1] == ids[1];
        if (!dup) seen[nseen][0] = ids[0], seen[nseen][1] = ids[1], nseen++;
    }
    free(seen);
    CPU_FREE(set);
    if (!seen || !known || nseen == 0) nseen = nlogical; /* no topology information: trust the mask */
    return nseen > 0 ? nseen : 1;
}

/* ---- cgroup CPU quota ---- */

enum { CG_PATH = 4096, CG_DIR = 3 * CG_PATH }; /* a path; root + mount point + cgroup */

typedef struct {
    char cgroup[CG_PATH];     /* the process's cgroup, from /proc/self/cgroup ("" if none) */
    char mount_root[CG_PATH]; /* the hierarchy's directory mounted at mount_point */
    char mount_point[CG_PATH];
} cg_hierarchy;

/* Reads the small file dir/name into buf (NUL-terminated); 0 on failure. */
static int read_small(const char *dir, const char *name, char *buf, size_t cap) {
    char path[CG_DIR + 32];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    const size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

/* ceil(quota / period) as a CPU count; 0 (no limit) for a non-positive quota. */
static int quota_cpus(long long quota, long long period) {
    if (quota <= 0 || period <= 0) return 0;
    const long long n = (quota + period - 1) / period;
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* The quota of one cgroup directory: 0 when it sets none or the files do not parse.
 * v2 cpu.max holds "$MAX $PERIOD" with $MAX a count or "max"; v1 has cpu.cfs_quota_us (-1: none)
 * and cpu.cfs_period_us. */
static int dir_quota(const char *dir, int v2) {
    char buf[128], tail;
    long long quota, period;
    if (v2) /* "max ..." or garbage: no limit */
        return read_small(dir, "cpu.max", buf, sizeof buf) &&
                       sscanf(buf, "%lld %lld %c", &quota, &period, &tail) == 2
                   ? quota_cpus(quota, period)
                   : 0;
    if (!read_small(dir, "cpu.cfs_quota_us", buf, sizeof buf) || sscanf(buf, "%lld %c", &quota, &tail) != 1)
        return 0;
    if (!read_small(dir, "cpu.cfs_period_us", buf, sizeof buf) || sscanf(buf, "%lld %c", &period, &tail) != 1)
        return 0;
    return quota_cpus(quota, period);
}

/* Whether a comma-separated controller list names the cpu controller. */
static int has_cpu(const char *list) {
    for (const char *p = list; *p;) {
        const size_t n = strcspn(p, ",");
        if (n == 3 && !strncmp(p, "cpu", 3)) return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* The process's cgroup in the v2 hierarchy (line "0::path") or in the v1 one holding the cpu
 * controller ("id:cpu,cpuacct:path"), from /proc/self/cgroup. */
static int own_cgroup(const char *root, int v2, char *out) {
    char path[CG_DIR], line[CG_PATH + 256];
    if ((size_t)snprintf(path, sizeof path, "%s/proc/self/cgroup", root) >= sizeof path) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *ctl = strchr(line, ':'), *cg = ctl ? strchr(ctl + 1, ':') : NULL;
        if (!cg) continue;
        *ctl++ = '\0'; /* line: the hierarchy id, ctl: its controllers, cg: the path */
        *cg++ = '\0';
        if (v2 ? (!strcmp(line, "0") && !*ctl) : has_cpu(ctl)) found = snprintf(out, CG_PATH, "%s", cg) < CG_PATH;
    }
    fclose(f);
    return found;
}

/* The hierarchy's mount from /proc/self/mountinfo ("id parent dev root mountpoint opts
 * [optional...] - fstype source superopts"); /sys/fs/cgroup(/cpu) with root "/" when there
 * is no mountinfo to read. */
static void find_mount(const char *root, int v2, cg_hierarchy *h) {
    char path[CG_DIR], line[3 * CG_PATH];
    snprintf(h->mount_root, CG_PATH, "/");
    snprintf(h->mount_point, CG_PATH, v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/cpu");
    if ((size_t)snprintf(path, sizeof path, "%s/proc/self/mountinfo", root) >= sizeof path) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        char mroot[CG_PATH], mpoint[CG_PATH], fstype[64], opts[512];
        const char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", mroot, mpoint) != 2 ||
            sscanf(dash + 3, "%63s %*s %511s", fstype, opts) != 2)
            continue;
        if (v2 ? !strcmp(fstype, "cgroup2") : (!strcmp(fstype, "cgroup") && has_cpu(opts))) {
            snprintf(h->mount_root, CG_PATH, "%s", mroot);
            snprintf(h->mount_point, CG_PATH, "%s", mpoint);
            break;
        }
    }
    fclose(f);
}

/* The smallest quota on the path from the process's cgroup up to the mount point (a parent's
 * quota caps its children). A cgroup outside the mounted subtree (another namespace's view)
 * is looked up at the mount point itself. */
static int hierarchy_quota(const char *root, int v2) {
    cg_hierarchy h;
    if (!own_cgroup(root, v2, h.cgroup)) return 0;
    find_mount(root, v2, &h);
    const size_t rl = strcmp(h.mount_root, "/") ? strlen(h.mount_root) : 0;
    const char *rel = h.cgroup;
    if (rl && !strncmp(rel, h.mount_root, rl) && (rel[rl] == '/' || !rel[rl])) rel += rl;
    else if (rl) rel = "";
    char dir[CG_DIR];
    const int base = snprintf(dir, sizeof dir, "%s%s", root, h.mount_point); /* the mount point's length */
    if (base < 0 || (size_t)base >= sizeof dir ||
        (size_t)snprintf(dir + base, sizeof dir - (size_t)base, "%s", rel) >= sizeof dir - (size_t)base)
        return 0;
    int best = 0;
    for (;;) {
        const int q = dir_quota(dir, v2);
        if (q > 0 && (best == 0 || q < best)) best = q;
        char *slash = strrchr(dir, '/');
        if (!slash || slash - dir < base) break; /* the mount point was the last to read */
        *slash = '\0';                           /* on to the parent */
    }
    return best;
}

int vc_cgroup_cpu_limit(const char *root) {
    if (!root) root = "";
    const int v2 = hierarchy_quota(root, 1), v1 = hierarchy_quota(root, 0);
    if (v2 > 0 && v1 > 0) return v2 < v1 ? v2 : v1;
    return v2 > 0 ? v2 : v1;
}
