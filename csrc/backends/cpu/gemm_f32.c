/* fp32 GEMM on AVX-512F: c[M,N] = alpha op(a)[M,K] . op(b)[K,N] + beta c, row-major, one thread.
 *
 * Why our own: OpenBLAS picks its kernels when it loads, and OPENBLAS_CORETYPE=Haswell (set on
 * some machines) pins its AVX2 kernels: half the GEMM speed of an AVX-512 CPU. This kernel
 * gives visionc the AVX-512 speed whatever OpenBLAS was told. It has the architecture of
 * gemm_bf16.c in fp32:
 *
 *   micro-kernel  an MR x NR tile of c (14 x 32) in 28 zmm accumulators (gemm_f32_tile.c);
 *                 at the FMA peak on data in L1 (245 GFLOP/s on one Zen 5 core).
 *   blocking      KC values of k at a time: the kernel walks the A panels of an MC-row block
 *                 (packed, in L2) against one B panel, then the next; B is packed once per
 *                 (KC, NC) block and reused by every MC block. Blocks are split evenly.
 *   packing       A: each MC-row block before its use, unless c is narrow (A is then read
 *                 in place: too few B panels use it to pay for a copy); B: GB panels at a
 *                 time as the first MC block reaches them, so they are still in cache when
 *                 the kernel reads them (gemm_f32_pack.c).
 *   edges         rows: a kernel instance per row count (1..MR), so an edge tile costs its own
 *                 rows only; columns: a 16-column instance for nr <= 16, masked stores.
 * Threads: none here. visionc's callers split their GEMMs over the OpenMP threads (linear.c);
 * the packing buffers are per thread. */
#include <pthread.h>
#include <stdlib.h>

#include "backends/cpu/gemm_f32.h"

/* Block sizes, measured on Zen 5 (48 KiB L1, 1 MiB L2 per core) on ViT-B and ConvNeXt shapes
 * with operands from memory: KC 768 beat 256/384/512 by 3-10% on the large GEMMs (fewer passes
 * over c and over the packing loops; the kernel streams a B panel from L2 at full speed, so it
 * need not fit L1); MC from 168 to 280 rows measured alike (210 keeps ViT's 197 tokens in one
 * block), NC 1024 as fast as 4096 (512: 3% slower). B is packed GB panels at a time: for b not
 * transposed that reads its rows in runs of 1 KiB rather than 128 bytes (+30% at M = 48). */
enum { MR = GEMM_F32_MR, NV = GEMM_F32_NV, NR = GEMM_F32_NR, KC = 768, MC = 15 * MR, NC = 32 * NR, GB = 8 };

/* c up to this many columns (8 B panels) reads a in place: each element of a packed A block is
 * used once per B panel, and for a few panels the copy costs more than contiguous panels save
 * (measured, a from memory: +6 to +17% at N = 48..196, e.g. attention's P.V and ConvNeXt's last
 * stage; wider, the gain fades to 0-2%, and with rows of a 12 KiB apart, K = 3072, turns into a
 * 3% loss to L1 set conflicts). */
enum { DIRECT_A_MAX_N = 8 * NR };

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
    /* A narrow c reads a in place (see DIRECT_A_MAX_N); B is always packed (gemm_f32_tile.c) */
    const int direct_a = N <= DIRECT_A_MAX_N;
    const int kstep = block_step(K, KC, 1), mstep = block_step(M, MC, MR), nstep = block_step(N, NC, NR);
    /* A's panels, then B's (A's part rounded to 16 floats: B's panels stay 64-byte aligned) */
    const size_t a_floats = direct_a ? 0 : ((size_t)mstep * kstep + 15) / 16 * 16;
    const size_t b_floats = (size_t)nstep * kstep;
    float *buf = thread_buffer(a_floats + b_floats);
    if (!buf) return -1;
    float *ap = buf, *bp = buf + a_floats;
    const gemm_f32_tile_fn(*tiles)[GEMM_F32_NV] = gemm_f32_tiles[direct_a && !trans_a];

    for (int jc = 0; jc < N; jc += nstep) {
        const int nc = min_int(nstep, N - jc);
        for (int pc = 0; pc < K; pc += kstep) {
            const int kc = min_int(kstep, K - pc);
            const float beta_k = pc == 0 ? beta : 1.f; /* later K blocks add to what the first stored */
            for (int ic = 0; ic < M; ic += mstep) {
                const int mc = min_int(mstep, M - ic);
                if (!direct_a) gemm_f32_pack_a(ap, a, lda, trans_a, ic, mc, pc, kc);
                for (int jr = 0; jr < nc; jr += NR) {
                    const int nr = min_int(NR, nc - jr);
                    /* B for this (jc, pc) block, GB panels at a time, as the first MC block
                     * reaches them; the later MC blocks reuse it */
                    float *bpanel = bp + (size_t)(jr / NR) * kc * NR;
                    if (ic == 0 && jr % (GB * NR) == 0)
                        gemm_f32_pack_b(bpanel, b, ldb, trans_b, jc + jr, min_int(GB * NR, nc - jr), pc, kc);
                    for (int ir = 0; ir < mc; ir += MR) {
                        const int mr = min_int(MR, mc - ir), i = ic + ir;
                        const float *apanel = !direct_a ? ap + (size_t)(ir / MR) * kc * MR
                                              : trans_a ? a + (size_t)pc * lda + i
                                                        : a + (size_t)i * lda + pc;
                        const size_t a_step = direct_a ? (size_t)lda : MR;
                        tiles[mr - 1][nr > 16](kc, apanel, a_step, bpanel, c + (size_t)i * ldc + jc + jr,
                                               (size_t)ldc, nr, alpha, beta_k);
                    }
                }
            }
        }
    }
    return 0;
}
