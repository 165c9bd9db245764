/* Thread count shared by visionc's OpenMP kernels and OpenBLAS.
 *
 * OpenBLAS itself is kept at one thread: kernels split GEMMs over the OpenMP threads.
 * The default (vc_default_num_threads) is VISIONC_NUM_THREADS, else OMP_NUM_THREADS, else the
 * CPUs this process may use (cpu_limits.c): SMT siblings share one core's vector units, so a
 * second thread per core slows GEMM down, and threads beyond an affinity mask or a cgroup
 * quota only queue for the same CPUs.
 *
 * Scratch buffers hold one slice per thread (attention, depthwise convolutions), sized from
 * vc_get_num_threads() when a call plans its memory; the kernels then run that many threads.
 * Another Python thread may call set_num_threads meanwhile (the C work runs without the GIL),
 * so a call pins the count it read (vc_threads_pin): until it unpins, vc_get_num_threads on
 * the calling thread answers the pinned count, and sizes and kernels agree. */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- the default ---- */

/* A positive integer up to VC_MAX_THREADS, blanks around it allowed; 0 otherwise. */
static int parse_count(const char *s, const char *end) {
    while (s < end && isspace((unsigned char)*s)) s++;
    while (end > s && isspace((unsigned char)end[-1])) end--;
    if (s == end) return 0;
    long n = 0;
    for (; s < end; s++) {
        if (!isdigit((unsigned char)*s)) return 0;
        n = n * 10 + (*s - '0');
        if (n > VC_MAX_THREADS) return 0;
    }
    return (int)n;
}

int vc_parse_num_threads(const char *s, int list) {
    if (!s) return 0;
    const char *end = s + strlen(s), *p = s;
    while (p < end && isspace((unsigned char)*p)) p++;
    if (p == end) return 0; /* empty: as if unset */
    if (!list) {
        const int n = parse_count(s, end);
        return n ? n : -1;
    }
    /* OMP_NUM_THREADS may list the counts of nested levels ("4,2"): visionc takes the first,
     * and the whole list must be well-formed. */
    int first = 0;
    for (const char *item = s;; item++) {
        const char *comma = strchr(item, ',');
        const int n = parse_count(item, comma ? comma : end);
        if (!n) return -1;
        if (!first) first = n;
        if (!comma) break;
        item = comma;
    }
    return first;
}

/* The variable's count, or 0 when unset or ignored (said once per variable on stderr). */
static int env_count(const char *name, int list, atomic_int *warned) {
    const char *v = getenv(name);
    const int n = vc_parse_num_threads(v, list);
    if (n >= 0) return n;
    if (!atomic_exchange(warned, 1))
        fprintf(stderr, "visionc: ignoring %s=\"%s\": not a positive integer%s (1..%d)\n", name, v,
                list ? " or a comma list of them" : "", VC_MAX_THREADS);
    return 0;
}

int vc_default_num_threads(void) {
    static atomic_int warned_visionc, warned_omp;
    int n = env_count("VISIONC_NUM_THREADS", 0, &warned_visionc);
    if (n > 0) return n;
    if ((n = env_count("OMP_NUM_THREADS", 1, &warned_omp)) > 0) return n;
    n = vc_physical_cores(); /* already within the affinity mask; the mask counts SMT siblings */
    const int mask = vc_affinity_cpus(), quota = vc_cgroup_cpu_limit(NULL);
    if (mask < n) n = mask;
    if (quota > 0 && quota < n) n = quota;
    return n > 0 ? n : 1;
}

/* ---- the current count ---- */

void vc_set_num_threads(int n) {
    if (n < 1) n = vc_default_num_threads();
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
