/* Centre crops with zero padding, in the two conventions the reference pipelines use.
 *
 * A crop is kept as one window per axis: output index i reads input index i + offset when
 * lo <= i < hi, and is padding elsewhere. Windows compose, so a resize followed by two crops
 * (ConvNeXt's crop_pct crop, then an optional crop_size crop) is still one read of the image.
 */
#ifndef VC_IMAGE_CROP_H
#define VC_IMAGE_CROP_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

typedef enum {
    /* Hugging Face image_transforms.center_crop: start = (L - n) // 2 (floor, also when the crop is
     * larger and the image gets padded). */
    VC_CROP_FLOOR = 0,
    /* torchvision CenterCrop (timm): start = int(round((L - n) / 2.0)), Python's round half to
     * even; a larger crop first pads (n - L) // 2 before and the rest after. */
    VC_CROP_ROUND = 1,
} vc_crop_convention;

typedef struct {
    ptrdiff_t offset; /* output i reads input i + offset */
    size_t lo, hi;    /* output range that reads the input; padding outside */
    size_t len;       /* output length */
} vc_axis_window;

/* The identity window over n samples. */
void vc_axis_window_init(vc_axis_window *w, size_t n);

/* Composes w with a centre crop of its output to `crop` samples. */
vc_status vc_axis_window_center_crop(vc_axis_window *w, size_t crop, int convention);

/* Start of a centre crop of `crop` samples from `len` (negative: padding before the image). */
ptrdiff_t vc_center_crop_start(size_t len, size_t crop, int convention);

/* Copies the window (wy x wx) of src (h x w x c, rows src_stride bytes apart) into dst (packed
 * wy.len x wx.len x c), zero outside the image. */
vc_status vc_crop_u8(const uint8_t *src, size_t h, size_t w, size_t src_stride, int c, const vc_axis_window *wy,
                     const vc_axis_window *wx, uint8_t *dst);

/* Checks that a window only reads inside an axis of `len` samples. */
vc_status vc_axis_window_check(const vc_axis_window *w, size_t len, const char *axis);

#endif
