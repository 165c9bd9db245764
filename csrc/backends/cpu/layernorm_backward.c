/* Layer norm for training: forwards that save mean and rstd, and the backward passes.
 *
 * Legend: rows = batch x tokens, C normalised features; B batch, HW pixels (LayerNorm2d
 * normalises over C at each pixel of an NCHW map).
 *   xhat = (x - mean) * rstd,  rstd = 1 / sqrt(var + eps)  (biased variance, as torch)
 *   y = xhat * w + b
 *   g = dy * w
 *   dx = rstd * (g - mean_C(g) - xhat * mean_C(g * xhat))      (assign)
 *   dw += sum over rows of dy * xhat,  db += sum over rows of dy  (accumulate)
 * Parameter gradients are reduced first and dx written last, so dx may overwrite dy.
 * The train forwards use the same arithmetic as the inference forwards (layernorm.c), so a
 * train-mode output equals the eval-mode one. */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

/* ---- rows, last dimension ---- */

/* out[C], mean[1], rstd[1] from x[C]; w, b: [C] or NULL (no affine). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void ln_row_train(
    float *out, float *mean_out, float *rstd_out, const float *x, const float *w, const float *b, int C, float eps) {
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < C; i++) sum += x[i];
    const float mean = sum / (float)C;
    float var = 0.f;
#pragma omp simd reduction(+ : var)
    for (int i = 0; i < C; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    const float rstd = 1.f / sqrtf(var / (float)C + eps);
    if (w) {
#pragma omp simd
        for (int i = 0; i < C; i++) out[i] = (x[i] - mean) * rstd * w[i] + (b ? b[i] : 0.f);
    } else {
#pragma omp simd
        for (int i = 0; i < C; i++) out[i] = (x[i] - mean) * rstd;
    }
    *mean_out = mean;
    *rstd_out = rstd;
}

/* out[rows,C] (may equal in), mean[rows], rstd[rows]; in[rows,C]; w, b: [C] (NULL: no affine). */
void cpu_layernorm_train(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b,
                         size_t rows, int C, float eps) {
#pragma omp parallel for schedule(static) if (rows * (size_t)C > VC_CHUNK) num_threads(vc_get_num_threads())
    for (size_t r = 0; r < rows; r++) ln_row_train(out + r * C, mean + r, rstd + r, in + r * C, w, b, C, eps);
}

/* dx[C] from dy[C], x[C] and the row's saved statistics; dx may equal dy. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void ln_row_backward(
    float *dx, const float *dy, const float *x, float mean, float rstd, const float *w, int C) {
    float sg = 0.f, sgx = 0.f;
#pragma omp simd reduction(+ : sg, sgx)
    for (int i = 0; i < C; i++) {
        const float g = dy[i] * (w ? w[i] : 1.f);
        sg += g;
        sgx += g * (x[i] - mean) * rstd;
    }
    const float a = sg / (float)C, c = sgx / (float)C;
#pragma omp simd
    for (int i = 0; i < C; i++) {
        const float g = dy[i] * (w ? w[i] : 1.f);
        dx[i] = rstd * (g - a - (x[i] - mean) * rstd * c);
    }
}

/* din[rows,C] (assign, may equal dout; NULL-able), dw[C], db[C] (+=, NULL-able);
 * dout[rows,C], in[rows,C] (the forward input), mean[rows], rstd[rows], w[C] (NULL: no affine). */
void cpu_layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *mean,
                            const float *rstd, const float *w, size_t rows, int C) {
    enum { BLK = 64 };
    if (dw || db) {
        /* Threads own column blocks and walk all rows: no cross-thread reduction, so the
         * result is independent of the thread count. */
        const int nblk = (C + BLK - 1) / BLK;
#pragma omp parallel for schedule(static) if (rows * (size_t)C > VC_CHUNK) num_threads(vc_get_num_threads())
        for (int blk = 0; blk < nblk; blk++) {
            const int lo = blk * BLK, n = C - lo < BLK ? C - lo : BLK;
            double sw[BLK] = {0}, sb[BLK] = {0};
            for (size_t r = 0; r < rows; r++) {
                const float *dy = dout + r * C + lo, *x = in + r * C + lo;
                const float m = mean[r], s = rstd[r];
#pragma omp simd
                for (int j = 0; j < n; j++) {
                    sw[j] += dy[j] * ((x[j] - m) * s);
                    sb[j] += dy[j];
                }
            }
            for (int j = 0; j < n; j++) {
                if (dw) dw[lo + j] += (float)sw[j];
                if (db) db[lo + j] += (float)sb[j];
            }
        }
    }
    if (!din) return;
#pragma omp parallel for schedule(static) if (rows * (size_t)C > VC_CHUNK) num_threads(vc_get_num_threads())
    for (size_t r = 0; r < rows; r++) ln_row_backward(din + r * C, dout + r * C, in + r * C, mean[r], rstd[r], w, C);
}

/* ---- LayerNorm2d: over C at each pixel of x[B, C, HW] ---- */

enum { PIX = 256 }; /* pixels per task: the vector lanes of the channel loops */

/* Pixels p0 .. p0+n-1 of one image: out, x [C, HW]; mean, rstd: [HW] of this image. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void lnc_block_train(
    float *out, const float *x, const float *w, const float *b, int C, size_t HW, size_t p0, size_t n, float eps,
    float *mean, float *rstd) {
    for (size_t i = 0; i < n; i++) mean[i] = rstd[i] = 0.f;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * HW + p0;
#pragma omp simd
        for (size_t i = 0; i < n; i++) mean[i] += xc[i];
    }
    for (size_t i = 0; i < n; i++) mean[i] /= (float)C;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * HW + p0;
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float d = xc[i] - mean[i];
            rstd[i] += d * d;
        }
    }
    for (size_t i = 0; i < n; i++) rstd[i] = 1.f / sqrtf(rstd[i] / (float)C + eps);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * HW + p0;
        float *oc = out + (size_t)c * HW + p0;
        const float wc = w ? w[c] : 1.f, bc = b ? b[c] : 0.f;
#pragma omp simd
        for (size_t i = 0; i < n; i++) oc[i] = (xc[i] - mean[i]) * rstd[i] * wc + bc;
    }
}

/* out[B,C,HW] (may equal in), mean[B,HW], rstd[B,HW]; in[B,C,HW]; w, b: [C] (NULL: no affine). */
void cpu_layernorm_channels_train(float *out, float *mean, float *rstd, const float *in, const float *w,
                                  const float *b, int B, int C, size_t HW, float eps) {
    const size_t nblk = (HW + PIX - 1) / PIX;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * C * HW > VC_CHUNK) \
    num_threads(vc_get_num_threads())
    for (int bi = 0; bi < B; bi++)
        for (size_t k = 0; k < nblk; k++) {
            const size_t p0 = k * PIX, n = HW - p0 < PIX ? HW - p0 : PIX;
            const size_t img = (size_t)bi * C * HW, st = (size_t)bi * HW + p0;
            lnc_block_train(out + img, in + img, w, b, C, HW, p0, n, eps, mean + st, rstd + st);
        }
}

/* dx for pixels p0..p0+n-1 of one image; dx, dy, x: [C, HW]; mean, rstd: [n] at this block. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void lnc_block_backward(
    float *dx, const float *dy, const float *x, const float *mean, const float *rstd, const float *w, int C, size_t HW,
    size_t p0, size_t n) {
    float sg[PIX], sgx[PIX];
    for (size_t i = 0; i < n; i++) sg[i] = sgx[i] = 0.f;
    for (int c = 0; c < C; c++) {
        const float *dyc = dy + (size_t)c * HW + p0, *xc = x + (size_t)c * HW + p0;
        const float wc = w ? w[c] : 1.f;
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float g = dyc[i] * wc;
            sg[i] += g;
            sgx[i] += g * (xc[i] - mean[i]) * rstd[i];
        }
    }
    for (size_t i = 0; i < n; i++) {
        sg[i] /= (float)C;
        sgx[i] /= (float)C;
    }
    for (int c = 0; c < C; c++) {
        const float *dyc = dy + (size_t)c * HW + p0, *xc = x + (size_t)c * HW + p0;
        float *dxc = dx + (size_t)c * HW + p0;
        const float wc = w ? w[c] : 1.f;
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dxc[i] = rstd[i] * (dyc[i] * wc - sg[i] - (xc[i] - mean[i]) * rstd[i] * sgx[i]);
    }
}

/* din[B,C,HW] (assign, may equal dout; NULL-able), dw[C], db[C] (+=, NULL-able);
 * dout, in: [B,C,HW]; mean, rstd: [B,HW] from the train forward; w[C] (NULL: no affine). */
void cpu_layernorm_channels_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                                     const float *mean, const float *rstd, const float *w, int B, int C, size_t HW) {
    const int big = (size_t)B * C * HW > VC_CHUNK;
    if (dw || db) {
        /* One channel per task: its planes in every image, so threads never share a sum. */
#pragma omp parallel for schedule(static) if (big) num_threads(vc_get_num_threads())
        for (int c = 0; c < C; c++) {
            double sw = 0.0, sb = 0.0;
            for (int bi = 0; bi < B; bi++) {
                const float *dy = dout + ((size_t)bi * C + c) * HW, *x = in + ((size_t)bi * C + c) * HW;
                const float *m = mean + (size_t)bi * HW, *s = rstd + (size_t)bi * HW;
#pragma omp simd reduction(+ : sw, sb)
                for (size_t i = 0; i < HW; i++) {
                    sw += dy[i] * ((x[i] - m[i]) * s[i]);
                    sb += dy[i];
                }
            }
            if (dw) dw[c] += (float)sw;
            if (db) db[c] += (float)sb;
        }
    }
    if (!din) return;
    const size_t nblk = (HW + PIX - 1) / PIX;
#pragma omp parallel for collapse(2) schedule(static) if (big) num_threads(vc_get_num_threads())
    for (int bi = 0; bi < B; bi++)
        for (size_t k = 0; k < nblk; k++) {
            const size_t p0 = k * PIX, n = HW - p0 < PIX ? HW - p0 : PIX;
            const size_t img = (size_t)bi * C * HW, st = (size_t)bi * HW + p0;
            lnc_block_backward(din + img, dout + img, in + img, mean + st, rstd + st, w, C, HW, p0, n);
        }
}
