/* Resize of 8-bit interleaved images (H x W x C, C = 1..4), bit-exact with Pillow's Image.resize.
 *
 * Hugging Face's slow image processors and timm's eval transform resize through Pillow, and the
 * models were trained and validated on exactly those pixels. Pillow's result depends on details a
 * generic resampler gets wrong: the filter support widens with the reduction factor (antialiasing),
 * coefficients are normalised in double and then rounded to 22-bit fixed point, every pass rounds
 * and clips back to uint8, and the order of the two passes changes the result. This module
 * reproduces all of it; see resample_coeffs.c and resample.c for each rule.
 */
#ifndef VC_IMAGE_RESAMPLE_H
#define VC_IMAGE_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

/* Filter ids are Pillow's Image.Resampling values, so Python passes them straight through. */
typedef enum {
    VC_FILTER_NEAREST = 0,
    VC_FILTER_LANCZOS = 1,
    VC_FILTER_BILINEAR = 2,
    VC_FILTER_BICUBIC = 3,
    VC_FILTER_BOX = 4,
    VC_FILTER_HAMMING = 5,
    VC_FILTER_MKS2013 = 6,
    VC_FILTER_MKS2021 = 7,
} vc_filter;

enum {
    /* Treat the last channel as alpha and resample premultiplied colour, as Pillow does for its
     * "RGBA" and "LA" modes (it converts to "RGBa"/"La", resizes, converts back). C must be 2 or 4.
     * Without the flag every channel is independent, as for Pillow's RGB, L, RGBX, CMYK. */
    VC_RESIZE_PREMULTIPLIED_ALPHA = 1,
    /* Pillow <= 12 always ran the horizontal pass first; Pillow 13 runs the vertical pass first
     * when the height shrinks by more than twice as many pixels as the width. The uint8 rounding
     * between passes makes the order visible, so the caller says which Pillow it must match. */
    VC_RESIZE_HORIZONTAL_FIRST = 2,
};

/* Largest side and largest buffer accepted: far above any photo, small enough that every index
 * fits in an int (as in Pillow) and that a corrupt header cannot ask for terabytes. */
#define VC_IMAGE_MAX_SIDE ((size_t)1 << 24)
#define VC_IMAGE_MAX_BYTES ((size_t)1 << 32)

/* Checks an image geometry against the limits; `what` names the argument in the message. */
vc_status vc_image_check_size(size_t h, size_t w, size_t c, const char *what);

/* Resizes src (sh x sw x c, rows `src_stride` bytes apart, pixels packed) into dst (dh x dw x c,
 * packed). `filter` is a vc_filter; `flags` a combination of VC_RESIZE_*. Rows are spread over
 * OpenMP threads when the image is large. Returns VC_ERR_ARG / VC_ERR_MEMORY with a message. */
vc_status vc_resize_u8(const uint8_t *src, size_t sh, size_t sw, size_t src_stride, int c, uint8_t *dst,
                       size_t dh, size_t dw, int filter, int flags);

/* Same, using at most `max_threads` OpenMP threads (1: stay on the calling thread, for callers
 * that already run one image per thread). */
vc_status vc_resize_u8_threads(const uint8_t *src, size_t sh, size_t sw, size_t src_stride, int c, uint8_t *dst,
                               size_t dh, size_t dw, int filter, int flags, int max_threads);

#endif
