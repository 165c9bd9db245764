/* Centre-crop windows (HF floor and torchvision round conventions) and the uint8 crop. */
#include <string.h>

#include "image/crop.h"

void vc_axis_window_init(vc_axis_window *w, size_t n) {
    w->offset = 0;
    w->lo = 0;
    w->hi = n;
    w->len = n;
}

ptrdiff_t vc_center_crop_start(size_t len, size_t crop, int convention) {
    if (crop > len) {
        /* Padding case. HF: floor((len - crop) / 2) = -ceil(d / 2); torchvision pads d // 2
         * before the image and then crops at 0. */
        size_t d = crop - len;
        return convention == VC_CROP_ROUND ? -(ptrdiff_t)(d / 2) : -(ptrdiff_t)((d + 1) / 2);
    }
    size_t d = len - crop, half = d / 2;
    /* torchvision rounds d / 2.0 with Python's round(): halves go to the even neighbour. */
    if (convention == VC_CROP_ROUND && (d & 1) && (half & 1)) half += 1;
    return (ptrdiff_t)half;
}

vc_status vc_axis_window_center_crop(vc_axis_window *w, size_t crop, int convention) {
    if (crop < 1) return vc_fail(VC_ERR_ARG, "crop size must be >= 1");
    if (convention != VC_CROP_FLOOR && convention != VC_CROP_ROUND)
        return vc_fail(VC_ERR_ARG, "crop convention must be 0 (floor, HF) or 1 (round, torchvision), got %d",
                       convention);
    const ptrdiff_t start = vc_center_crop_start(w->len, crop, convention);
    /* New output i reads old output i + start, which reads the input when it lies in [lo, hi). */
    ptrdiff_t lo = (ptrdiff_t)w->lo - start, hi = (ptrdiff_t)w->hi - start;
    if (lo < 0) lo = 0;
    if (hi > (ptrdiff_t)crop) hi = (ptrdiff_t)crop;
    if (hi < lo) hi = lo = 0;
    w->offset += start;
    w->lo = (size_t)lo;
    w->hi = (size_t)hi;
    w->len = crop;
    return VC_OK;
}

vc_status vc_axis_window_check(const vc_axis_window *w, size_t len, const char *axis) {
    if (w->lo > w->hi || w->hi > w->len)
        return vc_fail(VC_ERR_ARG, "%s crop window [%zu, %zu) does not fit its %zu outputs", axis, w->lo, w->hi,
                       w->len);
    if (w->lo == w->hi) return VC_OK;
    ptrdiff_t first = (ptrdiff_t)w->lo + w->offset, last = (ptrdiff_t)w->hi - 1 + w->offset;
    if (first < 0 || last >= (ptrdiff_t)len)
        return vc_fail(VC_ERR_ARG, "%s crop window reads [%td, %td], outside the image's %zu samples", axis, first,
                       last, len);
    return VC_OK;
}

vc_status vc_crop_u8(const uint8_t *src, size_t h, size_t w, size_t src_stride, int c, const vc_axis_window *wy,
                     const vc_axis_window *wx, uint8_t *dst) {
    vc_status st;
    if ((st = vc_axis_window_check(wy, h, "vertical")) != VC_OK) return st;
    if ((st = vc_axis_window_check(wx, w, "horizontal")) != VC_OK) return st;
    const size_t row = wx->len * (size_t)c;
    for (size_t y = 0; y < wy->len; y++) {
        uint8_t *out = dst + y * row;
        if (y < wy->lo || y >= wy->hi) {
            memset(out, 0, row);
            continue;
        }
        const uint8_t *in = src + (size_t)((ptrdiff_t)y + wy->offset) * src_stride;
        memset(out, 0, wx->lo * (size_t)c);
        if (wx->hi > wx->lo)
            memcpy(out + wx->lo * (size_t)c, in + (size_t)((ptrdiff_t)wx->lo + wx->offset) * (size_t)c,
                   (wx->hi - wx->lo) * (size_t)c);
        memset(out + wx->hi * (size_t)c, 0, (wx->len - wx->hi) * (size_t)c);
    }
    return VC_OK;
}
