/* Thread count shared by visionc's OpenMP kernels and OpenBLAS.
 *
 * OpenBLAS itself is kept at one thread: kernels split GEMMs over the OpenMP threads.
 * The default is the number of physical cores this process may run on: SMT siblings
 * share one core's vector units, so a second thread per core slows GEMM down.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/blas.h"
#include "vc.h"

static int num_threads; /* 0 until first use */

int vc_physical_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    /* Count distinct (package, core) pairs among the CPUs we may run on. */
    int seen[1024][2];
    int nseen = 0, nlogical = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && cpu < 1024; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        nlogical++;
        char path[128];
        int ids[2] = {-1, -1};
        const char *names[2] = {"physical_package_id", "core_id"};
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, names[k]);
            FILE *f = fopen(path, "r");
            if (f) {
                if (fscanf(f, "%d", &ids[k]) != 1) ids[k] = -1;
                fclose(f);
            }
        }
        if (ids[1] < 0) continue;
        int dup = 0;
        for (int i = 0; i < nseen; i++)
            if (seen[i][0] == ids[0] && seen[i][1] == ids[1]) dup = 1;
        if (!dup) { seen[nseen][0] = ids[0]; seen[nseen][1] = ids[1]; nseen++; }
    }
    if (nseen == 0) nseen = nlogical; /* no topology information: trust the affinity mask */
    return nseen > 0 ? nseen : 1;
}

void vc_set_num_threads(int n) {
    if (n < 1) n = vc_physical_cores();
    num_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    /* BLAS always runs single-threaded inside visionc's own OpenMP pool (see linear.c). */
    vc_blas_set_num_threads(1);
}

int vc_get_num_threads(void) {
    if (num_threads == 0) vc_set_num_threads(0);
    return num_threads;
}
