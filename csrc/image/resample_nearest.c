/* Nearest-neighbour resize with Pillow's sample positions.
 *
 * Pillow maps output column x to input column trunc(a/2 + x*a), a = in/out, but it gets there by
 * adding `a` once per column in double, starting from a/2. The accumulated rounding differs from
 * x*a in the last bits, which decides the pick when x*a lands on an integer; so the positions
 * are accumulated the same way here (once, serially), and only the copy runs in parallel.
 */
#include <string.h>

#include "image/resample_internal.h"

/* Pillow's COORD(): negatives go to -1 (outside), others truncate. */
static inline int coord(double v) { return v < 0.0 ? -1 : (int)v; }

static void positions(int *tab, size_t in_size, size_t out_size) {
    /* The span is a float box in Pillow, divided in double. */
    const double a = (double)(float)in_size / (double)out_size;
    double pos = 0.0 + a * 0.5;
    for (size_t i = 0; i < out_size; i++) {
        int p = coord(pos);
        tab[i] = (p >= 0 && (size_t)p < in_size) ? p : -1; /* -1: Pillow leaves a zero pixel */
        pos += a;
    }
}

void vc_resize_nearest_u8(const uint8_t *src, size_t sh, size_t sw, size_t src_stride, int c, uint8_t *dst,
                          size_t dh, size_t dw, int *xtab, int *ytab, int nthreads) {
    positions(xtab, sw, dw);
    positions(ytab, sh, dh);
    const size_t row_len = dw * (size_t)c;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (size_t y = 0; y < dh; y++) {
        uint8_t *out = dst + y * row_len;
        if (ytab[y] < 0) {
            memset(out, 0, row_len);
            continue;
        }
        const uint8_t *in = src + (size_t)ytab[y] * src_stride;
        for (size_t x = 0; x < dw; x++) {
            if (xtab[x] < 0) {
                memset(out + x * c, 0, (size_t)c);
            } else {
                memcpy(out + x * c, in + (size_t)xtab[x] * c, (size_t)c);
            }
        }
    }
}
