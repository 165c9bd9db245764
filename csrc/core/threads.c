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
/* Set inside vc_parallel_chunks: the threads each chunk's kernels may use. */
static _Thread_local int chunk_threads;

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
    omp_set_max_active_levels(2); /* vc_parallel_chunks runs kernels' regions inside its own */
#endif
    /* BLAS always runs single-threaded inside visionc's own OpenMP pool (see linear.c). */
    vc_blas_set_num_threads(1);
}

int vc_get_num_threads(void) {
    if (chunk_threads) return chunk_threads;
    if (num_threads == 0) vc_set_num_threads(0);
    return num_threads;
}

int vc_kernel_threads(void) {
#ifdef _OPENMP
    /* Inside some kernel's parallel region (not a chunk's): stay on this thread. */
    if (omp_in_parallel() && !chunk_threads) return 1;
#endif
    return vc_get_num_threads();
}

vc_status vc_parallel_chunks(int n, vc_status (*fn)(void *ctx, int lo, int hi), void *ctx) {
    const int nt = vc_get_num_threads();
    const int chunks = n < nt ? n : nt;
    if (chunks <= 1) return fn(ctx, 0, n);
    vc_status first = VC_OK;
    char message[512] = {0};
#pragma omp parallel for schedule(static) num_threads(chunks)
    for (int c = 0; c < chunks; c++) {
        /* The chunk's kernels run with its share of the threads (nested regions of 1 are free). */
        chunk_threads = nt / chunks > 0 ? nt / chunks : 1;
        const int lo = (int)((long)n * c / chunks), hi = (int)((long)n * (c + 1) / chunks);
        vc_status st = fn(ctx, lo, hi);
        chunk_threads = 0;
        if (st) {
#pragma omp critical(vc_chunk_error)
            if (!first) {
                first = st;
                snprintf(message, sizeof message, "%s", vc_last_error());
            }
        }
    }
    if (first) vc_fail(first, "%s", message); /* the message lives in the failing thread's storage */
    return first;
}
