/* Pieces shared by the resize files: per-axis fixed-point coefficients and the separable passes. */
#ifndef VC_IMAGE_RESAMPLE_INTERNAL_H
#define VC_IMAGE_RESAMPLE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

/* Pillow keeps 8 bits for the result and 2 for overshoot of filters with negative lobes. */
#define VC_PRECISION_BITS (32 - 8 - 2)

/* Coefficients for one axis: output sample i reads `count[i]` inputs from `first[i]` on, with
 * weights k[i * ksize ...]. */
typedef struct {
    int ksize;
    int *first;
    int *count;
    int32_t *k;
} vc_axis_coeffs;

/* Computes Pillow's coefficients for resizing `in_size` samples to `out_size`. */
vc_status vc_axis_coeffs_build(vc_axis_coeffs *ac, int in_size, int out_size, int filter);
void vc_axis_coeffs_free(vc_axis_coeffs *ac);

/* One horizontal pass: rows [row0, row0 + rows) of `in` (width in_w) -> `rows` rows of `out`
 * (width out_w, packed). */
void vc_pass_horizontal(uint8_t *out, const uint8_t *in, size_t in_stride, size_t row0, size_t rows, int c,
                        size_t out_w, const vc_axis_coeffs *ac, int nthreads);

/* One vertical pass: `out_h` rows of width w; output row i reads input rows from
 * first[i] - row_shift on. */
void vc_pass_vertical(uint8_t *out, const uint8_t *in, size_t in_stride, size_t w, int c, size_t out_h,
                      const vc_axis_coeffs *ac, int row_shift, int nthreads);

/* Nearest-neighbour resize with Pillow's sample positions. */
void vc_resize_nearest_u8(const uint8_t *src, size_t sh, size_t sw, size_t src_stride, int c, uint8_t *dst,
                          size_t dh, size_t dw, int *xtab, int *ytab, int nthreads);

/* Threads to use for `work` multiply-adds, at most max_threads (<= 0: visionc's thread count).
 * One below a threshold: a parallel region costs more than a small image's whole pass, and much
 * more when the cores are shared and a team member waits to be scheduled. */
int vc_resample_threads(size_t work, int max_threads);

#endif
