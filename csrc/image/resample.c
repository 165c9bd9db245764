/* vc_resize_u8: argument checks, Pillow's pass order and its premultiplied-alpha round trip.
 *
 * The order of Pillow's two passes matters because the intermediate image is rounded to uint8.
 * Pillow 13 resizes vertically first when the height shrinks by more than twice as many pixels
 * as the width, and horizontally first otherwise (older Pillow: always horizontally first). When
 * the horizontal pass runs first it only processes the input rows the vertical pass will read.
 */
#include <stdlib.h>
#include <string.h>

#include "image/resample.h"
#include "image/resample_internal.h"

/* Below this many multiply-adds (a few milliseconds of work) a pass stays on one thread. */
#define PARALLEL_WORK ((size_t)1 << 22)

int vc_resample_threads(size_t work, int max_threads) {
    if (work < PARALLEL_WORK) return 1;
    int n = vc_get_num_threads();
    return max_threads > 0 && max_threads < n ? max_threads : n;
}

vc_status vc_image_check_size(size_t h, size_t w, size_t c, const char *what) {
    if (h < 1 || w < 1) return vc_fail(VC_ERR_ARG, "%s: height and width must be >= 1, got %zux%zu", what, h, w);
    if (c < 1 || c > 4) return vc_fail(VC_ERR_ARG, "%s: channels must be 1..4, got %zu", what, c);
    if (h > VC_IMAGE_MAX_SIDE || w > VC_IMAGE_MAX_SIDE)
        return vc_fail(VC_ERR_ARG, "%s: %zux%zu exceeds the largest supported side (%zu)", what, h, w,
                       VC_IMAGE_MAX_SIDE);
    size_t n;
    if (!vc_mul_ok(h, w, &n) || !vc_mul_ok(n, c, &n) || n > VC_IMAGE_MAX_BYTES)
        return vc_fail(VC_ERR_ARG, "%s: %zux%zux%zu is larger than the %zu-byte image limit", what, h, w, c,
                       VC_IMAGE_MAX_BYTES);
    return VC_OK;
}

/* Pillow's RGBA->RGBa: colour * alpha / 255 with its rounding shortcut. */
static void premultiply(uint8_t *out, const uint8_t *in, size_t in_stride, size_t h, size_t w, int c) {
    for (size_t y = 0; y < h; y++) {
        const uint8_t *p = in + y * in_stride;
        uint8_t *q = out + y * w * (size_t)c;
        for (size_t x = 0; x < w; x++, p += c, q += c) {
            unsigned a = p[c - 1];
            for (int ch = 0; ch < c - 1; ch++) {
                unsigned t = p[ch] * a + 128;
                q[ch] = (uint8_t)(((t >> 8) + t) >> 8);
            }
            q[c - 1] = (uint8_t)a;
        }
    }
}

/* Pillow's RGBa->RGBA: exact alphas 0 and 255 keep the colour, others divide (truncating). */
static void unpremultiply(uint8_t *px, size_t n, int c) {
    for (size_t i = 0; i < n; i++, px += c) {
        unsigned a = px[c - 1];
        if (a == 0 || a == 255) continue;
        for (int ch = 0; ch < c - 1; ch++) {
            unsigned v = 255u * px[ch] / a;
            px[ch] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

static void copy_rows(uint8_t *dst, const uint8_t *src, size_t src_stride, size_t h, size_t row_len) {
    for (size_t y = 0; y < h; y++) memcpy(dst + y * row_len, src + y * src_stride, row_len);
}

/* The separable resize proper, on an image whose size changes. */
static vc_status resample(const uint8_t *src, size_t sh, size_t sw, size_t stride, int c, uint8_t *dst, size_t dh,
                          size_t dw, int filter, int flags, int mt) {
    const int need_h = dw != sw, need_v = dh != sh;
    /* Pillow 13's test, in its int arithmetic (sizes here fit easily in long long). */
    const long long shrink_y = (long long)sh - (long long)dh, shrink_x = (long long)sw - (long long)dw;
    const int horizontal_first = (flags & VC_RESIZE_HORIZONTAL_FIRST) || !(shrink_y > 0 && shrink_y > shrink_x * 2);

    vc_axis_coeffs cv = {0}, ch = {0};
    uint8_t *tmp = NULL;
    vc_status st = VC_OK;
    if (need_v && (st = vc_axis_coeffs_build(&cv, (int)sh, (int)dh, filter)) != VC_OK) return st;
    if (need_h && (st = vc_axis_coeffs_build(&ch, (int)sw, (int)dw, filter)) != VC_OK) goto done;

    const size_t out_row = dw * (size_t)c;
    if (horizontal_first) {
        if (!need_h) {
            vc_pass_vertical(dst, src, stride, sw, c, dh, &cv, 0,
                             vc_resample_threads(dh * sw * (size_t)c * (size_t)cv.ksize, mt));
        } else if (!need_v) {
            vc_pass_horizontal(dst, src, stride, 0, sh, c, dw, &ch,
                               vc_resample_threads(sh * out_row * (size_t)ch.ksize, mt));
        } else {
            /* Only the rows the vertical pass reads go through the horizontal pass. */
            const int first = cv.first[0];
            const int last = cv.first[dh - 1] + cv.count[dh - 1];
            const size_t rows = (size_t)(last - first);
            if (!(tmp = malloc(rows * out_row))) {
                st = vc_fail(VC_ERR_MEMORY, "out of memory for a %zux%zu resize buffer", rows, dw);
                goto done;
            }
            vc_pass_horizontal(tmp, src, stride, (size_t)first, rows, c, dw, &ch,
                               vc_resample_threads(rows * out_row * (size_t)ch.ksize, mt));
            vc_pass_vertical(dst, tmp, out_row, dw, c, dh, &cv, first,
                             vc_resample_threads(dh * out_row * (size_t)cv.ksize, mt));
        }
    } else {
        /* Vertical first (need_v is certain here: the height shrinks). */
        const size_t mid_row = sw * (size_t)c;
        uint8_t *mid = dst;
        if (need_h) {
            if (!(tmp = malloc(dh * mid_row))) {
                st = vc_fail(VC_ERR_MEMORY, "out of memory for a %zux%zu resize buffer", dh, sw);
                goto done;
            }
            mid = tmp;
        }
        vc_pass_vertical(mid, src, stride, sw, c, dh, &cv, 0, vc_resample_threads(dh * mid_row * (size_t)cv.ksize, mt));
        if (need_h)
            vc_pass_horizontal(dst, mid, mid_row, 0, dh, c, dw, &ch,
                               vc_resample_threads(dh * out_row * (size_t)ch.ksize, mt));
    }
done:
    free(tmp);
    vc_axis_coeffs_free(&cv);
    vc_axis_coeffs_free(&ch);
    return st;
}

vc_status vc_resize_u8(const uint8_t *src, size_t sh, size_t sw, size_t src_stride, int c, uint8_t *dst,
                       size_t dh, size_t dw, int filter, int flags) {
    return vc_resize_u8_threads(src, sh, sw, src_stride, c, dst, dh, dw, filter, flags, 0);
}

vc_status vc_resize_u8_threads(const uint8_t *src, size_t sh, size_t sw, size_t src_stride, int c, uint8_t *dst,
                               size_t dh, size_t dw, int filter, int flags, int mt) {
    vc_status st;
    if (!src || !dst) return vc_fail(VC_ERR_ARG, "resize: NULL image buffer");
    if ((st = vc_image_check_size(sh, sw, (size_t)(c < 0 ? 0 : c), "resize input")) != VC_OK) return st;
    if ((st = vc_image_check_size(dh, dw, (size_t)c, "resize output size")) != VC_OK) return st;
    if (src_stride < sw * (size_t)c)
        return vc_fail(VC_ERR_ARG, "resize: row stride %zu is shorter than a row (%zu bytes)", src_stride,
                       sw * (size_t)c);
    if (filter < VC_FILTER_NEAREST || filter > VC_FILTER_MKS2021)
        return vc_fail(VC_ERR_ARG, "resample filter must be a PIL.Image.Resampling value 0..7, got %d", filter);
    const int premul = (flags & VC_RESIZE_PREMULTIPLIED_ALPHA) != 0;
    if (premul && c != 2 && c != 4)
        return vc_fail(VC_ERR_ARG, "premultiplied alpha needs 2 or 4 channels (LA or RGBA), got %d", c);

    const size_t row_len = dw * (size_t)c;
    /* Pillow returns a plain copy when the size does not change, before any alpha handling. */
    if (sh == dh && sw == dw) {
        copy_rows(dst, src, src_stride, sh, row_len);
        return VC_OK;
    }
    if (filter == VC_FILTER_NEAREST) {
        /* Pillow never premultiplies for NEAREST: it only copies pixels. */
        int *xtab = malloc(dw * sizeof(int)), *ytab = malloc(dh * sizeof(int));
        if (!xtab || !ytab) {
            free(xtab);
            free(ytab);
            return vc_fail(VC_ERR_MEMORY, "out of memory for nearest-neighbour tables");
        }
        vc_resize_nearest_u8(src, sh, sw, src_stride, c, dst, dh, dw, xtab, ytab,
                             vc_resample_threads(dh * row_len * 4, mt));
        free(xtab);
        free(ytab);
        return VC_OK;
    }
    uint8_t *pm = NULL;
    if (premul) {
        if (!(pm = malloc(sh * sw * (size_t)c))) return vc_fail(VC_ERR_MEMORY, "out of memory for alpha premultiply");
        premultiply(pm, src, src_stride, sh, sw, c);
        src = pm;
        src_stride = sw * (size_t)c;
    }
    st = resample(src, sh, sw, src_stride, c, dst, dh, dw, filter, flags, mt);
    free(pm);
    if (st == VC_OK && premul) unpremultiply(dst, dh * dw, c);
    return st;
}
