/* uint8 HWC pixels -> float32 CHW model input: rescale, normalise, optional channel flip.
 *
 * The references compute (x * rescale - mean[c]) / std[c] in a specific precision and order, and
 * the models see exactly those float32 values. Since x is a byte, each channel's whole mapping is
 * a 256-entry table; the table is computed with the reference's arithmetic, so the output is
 * bit-identical and the per-pixel work is one lookup.
 */
#ifndef VC_IMAGE_TO_TENSOR_H
#define VC_IMAGE_TO_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "image/crop.h"
#include "vc.h"

typedef enum {
    VC_RESCALE_NONE = 0,    /* float32(x) */
    VC_RESCALE_MUL_F64 = 1, /* float32(double(x) * rescale): HF's numpy rescale (float64, then cast) */
    VC_RESCALE_DIV_F32 = 2, /* float32(x) / float32(rescale): torchvision to_tensor (x / 255 in float32) */
} vc_rescale_mode;

/* lut[c * 256 + x] for c < channels. mean/std: NULL for no normalisation, else `channels` values
 * each; normalisation is (v - mean) / std in float32, as numpy and torch compute it. */
vc_status vc_pixel_lut(float *lut, int channels, int rescale_mode, double rescale, const float *mean,
                       const float *std);

/* Writes the window (wy x wx) of src (h x w x c) as planes dst[c][y][x] (wy.len x wx.len each).
 * Samples outside the image get pad[c]. flip: plane c - 1 - k receives channel k (RGB -> BGR).
 * Uses at most max_threads OpenMP threads (<= 0: visionc's thread count). */
vc_status vc_u8_to_chw_f32(const uint8_t *src, size_t h, size_t w, size_t src_stride, int c,
                           const vc_axis_window *wy, const vc_axis_window *wx, const float *lut, const float *pad,
                           int flip, float *dst, int max_threads);

/* Index of the first NaN or infinity among n floats, or -1 if all are finite. */
ptrdiff_t vc_first_nonfinite_f32(const float *x, size_t n);

#endif
