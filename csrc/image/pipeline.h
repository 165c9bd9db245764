/* A batch of decoded images -> one float32 (N, C, H, W) model input, in a single C call.
 *
 * Every reference pipeline handled here is: Pillow resize, zero or more centre crops, then a
 * per-channel byte -> float mapping and an optional channel flip. The caller (Python) computes
 * the per-image sizes with the reference's own formulas; this file does the pixel work.
 */
#ifndef VC_IMAGE_PIPELINE_H
#define VC_IMAGE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "vc.h"

#define VC_IMAGE_MAX_CROPS 2

typedef struct {
    const uint8_t *data; /* h x w x channels, rows `stride` bytes apart */
    size_t h, w, stride;
    size_t rh, rw; /* resize target; equal to h, w: no resize */
    int ncrops;    /* centre crops after the resize, in order */
    size_t crop_h[VC_IMAGE_MAX_CROPS], crop_w[VC_IMAGE_MAX_CROPS];
} vc_image_job;

typedef struct {
    int channels;
    int filter;           /* vc_filter */
    int resize_flags;     /* VC_RESIZE_* */
    int crop_convention;  /* vc_crop_convention */
    int rescale_mode;     /* vc_rescale_mode */
    double rescale;
    int normalize;        /* use mean/std */
    float mean[4], std[4];
    uint8_t pad_byte[4];   /* padding colour before the mapping (0; timm's "border" mode fills the mean) */
    int pad_after_rescale; /* padding is float 0.0 (crop after rescale, MobileViT) instead of pad_byte */
    int flip;              /* reverse channel order (RGB -> BGR) */
} vc_image_recipe;

/* Processes jobs[0..n) into out[i] (channels x out_h x out_w each). */
vc_status vc_image_batch_to_tensor(const vc_image_job *jobs, size_t n, const vc_image_recipe *r, float *out,
                                   size_t out_h, size_t out_w);

#endif
