/* fp32 GEMM on AVX-512F: c[M,N] = alpha op(a)[M,K] . op(b)[K,N] + beta c, row-major, one thread.
 *
 * Why our own: OpenBLAS picks its kernels when it loads, and OPENBLAS_CORETYPE=Haswell (set on
 * some machines) pins its AVX2 kernels: half the GEMM speed of an AVX-512 CPU. This kernel
 * gives visionc the AVX-512 speed whatever OpenBLAS was told. It has the architecture of
 * gemm_bf16.c in fp32:
 *
 *   micro-kernel  an MR x NR tile of c (14 x 32) in 28 zmm accumulators; per k it loads one
 *                 row of the B panel (2 vectors) and broadcasts MR values of the A panel
 *                 (2 FMAs each). 28 independent FMA chains hide the FMA latency on 2 pipes:
 *                 on panels in L1 it runs at the FMA peak (245 GFLOP/s on one Zen 5 core).
 *   blocking      KC values of k at a time: the kernel walks the A panels of an MC-row block
 *                 (packed, in L2) against one B panel, then the next; B is packed once per
 *                 (KC, NC) block and reused by every MC block. Blocks are split evenly.
 *   packing       A: each MC-row block before its use; B: GB panels at a time as the first
 *                 MC block reaches them, so they are still in cache when the kernel reads
 *                 them (gemm_f32_pack.c).
 *   edges         rows: a kernel instance per row count (1..MR), so an edge tile costs its own
 *                 rows only; columns: a 16-column instance for nr <= 16, masked stores.
 * Threads: none here. visionc's callers split their GEMMs over the OpenMP threads (linear.c);
 * the packing buffers are per thread. */
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>

#include "backends/cpu/gemm_f32.h"

#define F32_TARGET "avx512f"

/* Block sizes, measured on Zen 5 (48 KiB L1, 1 MiB L2 per core) on ViT-B and ConvNeXt shapes
 * with operands from memory: KC 768 beat 256/384/512 by 3-10% on the large GEMMs (fewer passes
 * over c and over the packing loops; the kernel streams a B panel from L2 at full speed, so it
 * need not fit L1); MC from 168 to 280 rows measured alike (210 keeps ViT's 197 tokens in one
 * block), NC 1024 as fast as 4096 (512: 3% slower). B is packed GB panels at a time: for b not
 * transposed that reads its rows in runs of 1 KiB rather than 128 bytes (+30% at M = 48). */
enum { MR = GEMM_F32_MR, NV = GEMM_F32_NV, NR = GEMM_F32_NR, KC = 768, MC = 15 * MR, NC = 32 * NR, GB = 8 };

__attribute__((target(F32_TARGET))) static inline __mmask16 first_lanes(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* c tile (mr rows, nr <= 16*nv columns) = alpha * (A panel . B panel over kc) + beta c.
 * mr and nv are compile-time constants in every instance below, so the loops unroll and acc
 * lives in registers. */
__attribute__((target(F32_TARGET), always_inline)) static inline void tile(const int mr, const int nv, int kc,
                                                                          const float *restrict ap,
                                                                          const float *restrict bp, float *c,
                                                                          size_t ldc, int nr, float alpha,
                                                                          float beta) {
    __m512 acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_setzero_ps();
    /* The tile of c is read (or written) only after the k loop; started now, its cache lines
     * arrive during the FMAs. (c is the one operand not packed: after a pass over the other
     * K blocks it is often no longer in L2, and waiting for its lines cost 10% on wide GEMMs.) */
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) _mm_prefetch((const char *)(c + (size_t)i * ldc + 16 * j), _MM_HINT_T0);
    for (int p = 0; p < kc; p++) {
        __m512 bv[NV];
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) bv[j] = _mm512_load_ps(bp + 16 * j);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            const __m512 av = _mm512_set1_ps(ap[i]);
#pragma GCC unroll 4
            for (int j = 0; j < nv; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
        ap += MR;
        bp += NR;
    }
    __mmask16 mask[NV];
#pragma GCC unroll 4
    for (int j = 0; j < nv; j++) mask[j] = first_lanes(nr - 16 * j);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        float *row = c + (size_t)i * ldc;
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) {
            __m512 v = _mm512_mul_ps(acc[i][j], va);
            if (beta != 0.f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[j], row + 16 * j), v);
            _mm512_mask_storeu_ps(row + 16 * j, mask[j], v);
        }
    }
}

typedef void (*tile_fn)(int kc, const float *ap, const float *bp, float *c, size_t ldc, int nr, float alpha,
                        float beta);

#define TILE_INSTANCE(m, v)                                                                                       \
    __attribute__((target(F32_TARGET))) static void tile_##m##x##v(int kc, const float *ap, const float *bp,    \
                                                                   float *c, size_t ldc, int nr, float alpha,    \
                                                                   float beta) {                                 \
        tile(m, v, kc, ap, bp, c, ldc, nr, alpha, beta);                                                          \
    }
#define TILE_ROWS(m) TILE_INSTANCE(m, 1) TILE_INSTANCE(m, 2)
TILE_ROWS(1) TILE_ROWS(2) TILE_ROWS(3) TILE_ROWS(4) TILE_ROWS(5) TILE_ROWS(6) TILE_ROWS(7)
TILE_ROWS(8) TILE_ROWS(9) TILE_ROWS(10) TILE_ROWS(11) TILE_ROWS(12) TILE_ROWS(13) TILE_ROWS(14)

_Static_assert(MR == 14 && NV == 2, "the tile table below lists MR x NV instances");
#define TILE_ENTRY(m) {tile_##m##x1, tile_##m##x2}
static const tile_fn tiles[MR][NV] = {TILE_ENTRY(1),  TILE_ENTRY(2),  TILE_ENTRY(3),  TILE_ENTRY(4), TILE_ENTRY(5),
                                      TILE_ENTRY(6),  TILE_ENTRY(7),  TILE_ENTRY(8),  TILE_ENTRY(9), TILE_ENTRY(10),
                                      TILE_ENTRY(11), TILE_ENTRY(12), TILE_ENTRY(13), TILE_ENTRY(14)};

/* ---- per-thread packing buffers ----
 * Kept between calls (a model makes thousands of small GEMM calls; a fresh allocation of a few
 * hundred KiB is an mmap and page faults each time) and freed when the thread exits. */

typedef struct {
    float *data;
    size_t floats;
} pack_buffer;

static pthread_key_t buffer_key;
static pthread_once_t buffer_once = PTHREAD_ONCE_INIT;
static int buffer_key_ok;

static void free_buffer(void *p) {
    pack_buffer *pb = p;
    free(pb->data);
    free(pb);
}

static void make_buffer_key(void) { buffer_key_ok = pthread_key_create(&buffer_key, free_buffer) == 0; }

/* This thread's buffer of at least `floats` floats, 64-byte aligned; NULL when out of memory. */
static float *thread_buffer(size_t floats) {
    pthread_once(&buffer_once, make_buffer_key);
    if (!buffer_key_ok) return NULL;
    pack_buffer *pb = pthread_getspecific(buffer_key);
    if (!pb) {
        if (!(pb = calloc(1, sizeof *pb))) return NULL;
        if (pthread_setspecific(buffer_key, pb)) {
            free(pb);
            return NULL;
        }
    }
    if (pb->floats < floats) {
        free(pb->data);
        pb->data = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        pb->floats = pb->data ? floats : 0;
    }
    return pb->data;
}

/* ---- driver ---- */

static int min_int(int a, int b) { return a < b ? a : b; }
static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* c = beta c (beta == 0: zeros, c not read): the whole answer when alpha or K is zero. */
static void scale_c(int M, int N, float beta, float *c, int ldc) {
    if (beta == 1.f) return;
    for (int i = 0; i < M; i++) {
        float *row = c + (size_t)i * ldc;
        if (beta == 0.f)
            for (int j = 0; j < N; j++) row[j] = 0.f;
        else
            for (int j = 0; j < N; j++) row[j] *= beta;
    }
}

/* Splits n into the fewest blocks of at most max_step, of equal size rounded up to a multiple
 * of unit: 300 with steps of 256 is 150 + 150, not 256 + 44 (a short block pays the fixed
 * costs of a long one: packing passes, a pass over c, tile prologues, for a fraction of its
 * FMAs). */
static int block_step(int n, int max_step, int unit) {
    const int blocks = (n + max_step - 1) / max_step;
    return round_up((n + blocks - 1) / blocks, unit);
}

int cpu_gemm_f32_avx512(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc) {
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0 || alpha == 0.f) {
        scale_c(M, N, beta, c, ldc);
        return 0;
    }
    const int kstep = block_step(K, KC, 1), mstep = block_step(M, MC, MR), nstep = block_step(N, NC, NR);
    /* A's panels, then B's (A's part rounded to 16 floats: B's rows stay 64-byte aligned for the
     * kernel's aligned loads) */
    const size_t a_floats = ((size_t)mstep * kstep + 15) / 16 * 16, b_floats = (size_t)nstep * kstep;
    float *buf = thread_buffer(a_floats + b_floats);
    if (!buf) return -1;
    float *ap = buf, *bp = buf + a_floats;

    for (int jc = 0; jc < N; jc += nstep) {
        const int nc = min_int(nstep, N - jc);
        for (int pc = 0; pc < K; pc += kstep) {
            const int kc = min_int(kstep, K - pc);
            const float beta_k = pc == 0 ? beta : 1.f; /* later K blocks add to what the first stored */
            for (int ic = 0; ic < M; ic += mstep) {
                const int mc = min_int(mstep, M - ic);
                gemm_f32_pack_a(ap, a, lda, trans_a, ic, mc, pc, kc);
                for (int jr = 0; jr < nc; jr += NR) {
                    const int nr = min_int(NR, nc - jr);
                    float *bpanel = bp + (size_t)(jr / NR) * kc * NR;
                    /* B for this (jc, pc) block, GB panels at a time, as the first MC block
                     * reaches them; the later MC blocks reuse it */
                    if (ic == 0 && jr % (GB * NR) == 0)
                        gemm_f32_pack_b(bpanel, b, ldb, trans_b, jc + jr, min_int(GB * NR, nc - jr), pc, kc);
                    const tile_fn *by_rows = tiles[0] + (nr > 16 ? 1 : 0);
                    for (int ir = 0; ir < mc; ir += MR) {
                        const int mr = min_int(MR, mc - ir);
                        by_rows[(mr - 1) * NV](kc, ap + (size_t)(ir / MR) * kc * MR, bpanel,
                                               c + (size_t)(ic + ir) * ldc + jc + jr, (size_t)ldc, nr, alpha, beta_k);
                    }
                }
            }
        }
    }
    return 0;
}
