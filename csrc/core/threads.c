/* Thread count shared by visionc's OpenMP kernels and OpenBLAS.
 *
 * OpenBLAS itself is kept at one thread: kernels split GEMMs over the OpenMP threads.
 * The default is the number of physical cores this process may run on: SMT siblings
 * share one core's vector units, so a second thread per core slows GEMM down.
 *
 * Scratch buffers hold one slice per thread (attention, depthwise convolutions), sized from
 * vc_get_num_threads() when a call plans its memory; the kernels then run that many threads.
 * Another Python thread may call set_num_threads meanwhile (the C work runs without the GIL),
 * so a call pins the count it read (vc_threads_pin): until it unpins, vc_get_num_threads on
 * the calling thread answers the pinned count, and sizes and kernels agree.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/blas.h"
#include "vc.h"

static atomic_int num_threads; /* 0 until first use */
/* Set inside vc_parallel_chunks: the threads each chunk's kernels may use. */
static _Thread_local int chunk_threads;
/* Set by vc_threads_pin: the count of the call running on this thread. */
static _Thread_local int call_threads;

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
    if (n > VC_MAX_THREADS) n = VC_MAX_THREADS;
    atomic_store_explicit(&num_threads, n, memory_order_relaxed);
#ifdef _OPENMP
    omp_set_num_threads(n);
    omp_set_max_active_levels(2); /* vc_parallel_chunks runs kernels' regions inside its own */
#endif
    /* BLAS always runs single-threaded inside visionc's own OpenMP pool (see linear.c). */
    vc_blas_set_num_threads(1);
}

int vc_get_num_threads(void) {
    if (chunk_threads) return chunk_threads;
    if (call_threads) return call_threads;
    int n = atomic_load_explicit(&num_threads, memory_order_relaxed);
    if (n == 0) {
        vc_set_num_threads(0);
        n = atomic_load_explicit(&num_threads, memory_order_relaxed);
    }
    return n;
}

int vc_threads_pin(int most, int *saved) {
    *saved = call_threads;
    int n = vc_get_num_threads();
    if (most > 0 && most < n) n = most;
    call_threads = n;
    return n;
}

void vc_threads_unpin(int saved) { call_threads = saved; }

int vc_kernel_threads(void) {
#ifdef _OPENMP
    /* Inside some kernel's parallel region (not a chunk's): stay on this thread. */
    if (omp_in_parallel() && !chunk_threads) return 1;
#endif
    return vc_get_num_threads();
}

vc_status vc_parallel_chunks(int n, vc_status (*fn)(void *ctx, int lo, int hi), void *ctx) {
    int saved;
    const int nt = vc_threads_pin(0, &saved); /* a single chunk runs on this thread, pinned */
    const int chunks = n < nt ? n : nt;
    vc_status first = VC_OK;
    if (chunks <= 1) {
        first = fn(ctx, 0, n);
        vc_threads_unpin(saved);
        return first;
    }
    char message[512] = {0};
#pragma omp parallel for schedule(static) num_threads(chunks)
    for (int c = 0; c < chunks; c++) {
        /* The chunk's kernels run with its share of the threads (nested regions of 1 are free). */
        const int outer = chunk_threads;
        chunk_threads = nt / chunks > 0 ? nt / chunks : 1;
        const int lo = (int)((long)n * c / chunks), hi = (int)((long)n * (c + 1) / chunks);
        vc_status st = fn(ctx, lo, hi);
        chunk_threads = outer;
        if (st) {
#pragma omp critical(vc_chunk_error)
            if (!first) {
                first = st;
                snprintf(message, sizeof message, "%s", vc_last_error());
            }
        }
    }
    vc_threads_unpin(saved);
    if (first) vc_fail(first, "%s", message); /* the message lives in the failing thread's storage */
    return first;
}
