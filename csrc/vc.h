/* visionc public C API: status codes, threads, CPU features.
 *
 * Every function that can fail returns vc_status; on failure a message is left in a
 * thread-local buffer (vc_last_error) for the caller to turn into an exception.
 * Nothing here calls exit() or abort() on anything a user can cause.
 */
#ifndef VC_H
#define VC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    VC_OK = 0,
    VC_ERR_ARG,      /* bad argument: shape, dtype, range (-> ValueError) */
    VC_ERR_TYPE,     /* wrong kind of object (-> TypeError) */
    VC_ERR_IO,       /* file cannot be opened or read (-> OSError) */
    VC_ERR_FORMAT,   /* file is malformed or inconsistent (-> ValueError) */
    VC_ERR_MEMORY,   /* allocation failed (-> MemoryError) */
    VC_ERR_UNSAFE,   /* refused to run untrusted content, e.g. a pickle global (-> ValueError) */
    VC_ERR_UNSUPPORTED, /* valid input that this build cannot handle (-> NotImplementedError) */
    VC_ERR_INTERNAL,
} vc_status;

const char *vc_status_name(vc_status s);

/* Records a printf-style message for the current thread and returns `s`. */
vc_status vc_fail(vc_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *vc_last_error(void);
void vc_clear_error(void);

/* Threads used by visionc's own kernels and by its BLAS. n < 1: the default. */
enum { VC_MAX_THREADS = 4096 };
void vc_set_num_threads(int n);
int vc_get_num_threads(void);
/* VISIONC_NUM_THREADS, else OMP_NUM_THREADS (its first entry), else the smallest of the
 * physical cores, the affinity mask and the cgroup CPU quota. A variable that is not a positive
 * integer (up to VC_MAX_THREADS) is ignored, with one line on stderr the first time. */
int vc_default_num_threads(void);
/* A thread-count variable's value: the count, 0 when NULL or blank (unset), -1 when malformed.
 * list: a comma-separated list is allowed (OMP_NUM_THREADS) and its first entry returned. */
int vc_parse_num_threads(const char *s, int list);
/* What bounds the default (cpu_limits.c): the physical cores in the affinity mask, the CPUs in
 * the mask, and the cgroup quota as whole CPUs (rounded up; 0: no quota). vc_cgroup_cpu_limit
 * reads root/proc/self/cgroup, root/proc/self/mountinfo and the hierarchy under root (NULL or
 * "": the real ones; tests pass a directory of fake files). */
int vc_physical_cores(void);
int vc_affinity_cpus(void);
int vc_cgroup_cpu_limit(const char *root);

/* Pins the calling thread's count for one call: until vc_threads_unpin(*saved), its
 * vc_get_num_threads() answers the count returned here, the current count capped at `most`
 * (most < 1: no cap), whatever vc_set_num_threads does meanwhile. A call that sizes per-thread
 * scratch and then runs the kernels that use it pins first, so that both see one count.
 * Pins nest (an inner pin keeps the outer count unless it caps it). */
int vc_threads_pin(int most, int *saved);
void vc_threads_unpin(int saved);

/* Splits [0, n) into min(n, threads) contiguous chunks run at once, each with its share of
 * the threads for the kernels inside. Used to run a batch as independent sub-batches: no
 * synchronisation between images, which matters on shared or virtual CPUs where every
 * barrier can cost a scheduler time slice. Returns the first failure. */
/* Threads a kernel that splits its own work (a GEMM) may use here: 1 when called from inside
 * another kernel's parallel region, else vc_get_num_threads(). */
int vc_kernel_threads(void);
vc_status vc_parallel_chunks(int n, vc_status (*fn)(void *ctx, int lo, int hi), void *ctx);

/* CPU features, detected once at run time; kernels pick their paths from these. */
typedef struct {
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512_bf16, avx512_vnni, avx_vnni;
} vc_cpu_features;
const vc_cpu_features *vc_cpu(void);

/* size_t multiply that reports overflow instead of wrapping. Returns 0 on overflow. */
static inline int vc_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

#ifdef __cplusplus
}
#endif
#endif
