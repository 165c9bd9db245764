/* Batch driver: resize (Pillow-exact) -> crop windows -> table lookup into the output slot.
 *
 * A batch runs one image per thread: one parallel region for the whole batch, instead of a few
 * per image (each pass, the conversion), which on shared cores costs more than small images'
 * work. A single image uses the threads inside its passes instead.
 */
#include <stdlib.h>

#include "image/crop.h"
#include "image/pipeline.h"
#include "image/resample.h"
#include "image/to_tensor.h"

/* The crop windows of one job, composed; checks that they end at the batch's size. */
static vc_status job_windows(const vc_image_job *j, size_t i, const vc_image_recipe *r, size_t out_h, size_t out_w,
                             vc_axis_window *wy, vc_axis_window *wx) {
    vc_status st;
    const size_t c = (size_t)r->channels;
    if ((st = vc_image_check_size(j->h, j->w, c, "image")) != VC_OK) return st;
    if ((st = vc_image_check_size(j->rh, j->rw, c, "resize target")) != VC_OK) return st;
    if (j->ncrops < 0 || j->ncrops > VC_IMAGE_MAX_CROPS)
        return vc_fail(VC_ERR_ARG, "at most %d crops per image", VC_IMAGE_MAX_CROPS);
    if (j->stride < j->w * c) return vc_fail(VC_ERR_ARG, "image %zu: row stride shorter than a row", i);
    vc_axis_window_init(wy, j->rh);
    vc_axis_window_init(wx, j->rw);
    for (int k = 0; k < j->ncrops; k++) {
        if ((st = vc_axis_window_center_crop(wy, j->crop_h[k], r->crop_convention)) != VC_OK ||
            (st = vc_axis_window_center_crop(wx, j->crop_w[k], r->crop_convention)) != VC_OK)
            return st;
    }
    if (wy->len != out_h || wx->len != out_w)
        return vc_fail(VC_ERR_ARG, "image %zu comes out %zux%zu but the batch is %zux%zu", i, wy->len, wx->len, out_h,
                       out_w);
    return VC_OK;
}

/* Resize (into a buffer of its own) and convert one image. */
static vc_status run_job(const vc_image_job *j, const vc_image_recipe *r, const vc_axis_window *wy,
                         const vc_axis_window *wx, const float *lut, const float *pad, float *dst, int max_threads) {
    const int c = r->channels;
    if (j->rh == j->h && j->rw == j->w)
        return vc_u8_to_chw_f32(j->data, j->h, j->w, j->stride, c, wy, wx, lut, pad, r->flip, dst, max_threads);
    uint8_t *buf = malloc(j->rh * j->rw * (size_t)c); /* size bounded by vc_image_check_size */
    if (!buf) return vc_fail(VC_ERR_MEMORY, "out of memory for a %zux%zu resized image", j->rh, j->rw);
    vc_status st = vc_resize_u8_threads(j->data, j->h, j->w, j->stride, c, buf, j->rh, j->rw, r->filter,
                                        r->resize_flags, max_threads);
    if (st == VC_OK)
        st = vc_u8_to_chw_f32(buf, j->rh, j->rw, j->rw * (size_t)c, c, wy, wx, lut, pad, r->flip, dst, max_threads);
    free(buf);
    return st;
}

vc_status vc_image_batch_to_tensor(const vc_image_job *jobs, size_t n, const vc_image_recipe *r, float *out,
                                   size_t out_h, size_t out_w) {
    vc_status st;
    const int c = r->channels;
    float lut[4 * 256], pad[4];
    if ((st = vc_pixel_lut(lut, c, r->rescale_mode, r->rescale, r->normalize ? r->mean : NULL,
                           r->normalize ? r->std : NULL)) != VC_OK)
        return st;
    /* Padding is a byte (zero, or timm's fill colour) that then goes through the mapping, unless
     * the reference pads the already-rescaled float image with 0 (MobileViT crops after
     * rescaling). */
    for (int k = 0; k < c; k++) pad[k] = r->pad_after_rescale ? 0.0f : lut[k * 256 + r->pad_byte[k]];
    if ((st = vc_image_check_size(out_h, out_w, (size_t)c, "output")) != VC_OK) return st;
    const size_t slot = out_h * out_w * (size_t)c;

    /* Everything that can be refused is checked here, on the calling thread, so that messages
     * (thread-local) reach the caller. */
    vc_axis_window *win = malloc(2 * n * sizeof *win);
    vc_status *status = malloc(n * sizeof *status);
    if (!win || !status) {
        free(win);
        free(status);
        return vc_fail(VC_ERR_MEMORY, "out of memory for %zu image jobs", n);
    }
    for (size_t i = 0; i < n && st == VC_OK; i++)
        st = job_windows(&jobs[i], i, r, out_h, out_w, &win[2 * i], &win[2 * i + 1]);

    const int nthreads = n > 1 ? vc_get_num_threads() : 1;
    if (st == VC_OK && nthreads > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
        for (size_t i = 0; i < n; i++)
            status[i] = run_job(&jobs[i], r, &win[2 * i], &win[2 * i + 1], lut, pad, out + i * slot, 1);
        /* A worker's failure (memory) left its message on that thread: redo that image here. */
        for (size_t i = 0; i < n && st == VC_OK; i++)
            if (status[i] != VC_OK)
                st = run_job(&jobs[i], r, &win[2 * i], &win[2 * i + 1], lut, pad, out + i * slot, 1);
    } else {
        for (size_t i = 0; i < n && st == VC_OK; i++)
            st = run_job(&jobs[i], r, &win[2 * i], &win[2 * i + 1], lut, pad, out + i * slot, 0);
    }
    free(win);
    free(status);
    return st;
}
