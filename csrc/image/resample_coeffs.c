/* Pillow's resampling filters and the per-axis fixed-point coefficient tables built from them.
 *
 * Bit-exactness with Pillow starts here: each kernel is evaluated with the same double
 * expressions, the weights of one output sample are normalised to sum 1 in double, and only
 * then rounded (half away from zero) to VC_PRECISION_BITS fixed point. Changing the order of any
 * of these operations moves some weight by one unit and, after rounding, some pixels by one.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "image/resample.h"
#include "image/resample_internal.h"

/* Each kernel is written as Pillow evaluates it (same constants, same association). */

static double k_box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

static double k_bilinear(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double k_hamming(double x) {
    x = fabs(x);
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    /* Pillow spells the window constants as floats (0.54f, 0.46f): keep their float values. */
    return sin(x) / x * ((double)0.54f + (double)0.46f * cos(x));
}

/* Keys' cubic convolution with a = -0.5 (Pillow's choice). */
static double k_bicubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double k_lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0; }

/* Magic Kernel Sharp 2013 and 2021 (johncostella.com/magic), Pillow >= 13. x * x stands for
 * Pillow's pow(x, 2): compilers emit exactly that product for pow(x, 2.0). */
static double k_mks2013(double x) {
    x = fabs(x);
    if (x < 0.5) return 17.0 / 16.0 - 7.0 / 4.0 * (x * x);
    if (x < 1.5) return (1.0 - x) * (7.0 / 4.0 - x);
    if (x < 2.5) {
        double t = x - 5.0 / 2.0;
        return -1.0 / 8.0 * (t * t);
    }
    return 0.0;
}

static double k_mks2021(double x) {
    x = fabs(x);
    if (x < 0.5) return 577.0 / 576.0 - 239.0 / 144.0 * (x * x);
    if (x < 1.5) return 35.0 / 36.0 * (x - 1.0) * (x - 239.0 / 140.0);
    if (x < 2.5) return 1.0 / 6.0 * (x - 2.0) * (65.0 / 24.0 - x);
    if (x < 3.5) return 1.0 / 36.0 * (x - 3.0) * (x - 15.0 / 4.0);
    if (x < 4.5) {
        double t = x - 9.0 / 2.0;
        return -1.0 / 288.0 * (t * t);
    }
    return 0.0;
}

typedef struct {
    double (*fn)(double);
    double support;
} kernel;

static const kernel *kernel_for(int filter) {
    static const kernel box = {k_box, 0.5}, bilinear = {k_bilinear, 1.0}, hamming = {k_hamming, 1.0},
                        bicubic = {k_bicubic, 2.0}, lanczos = {k_lanczos, 3.0}, mks2013 = {k_mks2013, 2.5},
                        mks2021 = {k_mks2021, 4.5};
    switch (filter) {
    case VC_FILTER_BOX: return &box;
    case VC_FILTER_BILINEAR: return &bilinear;
    case VC_FILTER_HAMMING: return &hamming;
    case VC_FILTER_BICUBIC: return &bicubic;
    case VC_FILTER_LANCZOS: return &lanczos;
    case VC_FILTER_MKS2013: return &mks2013;
    case VC_FILTER_MKS2021: return &mks2021;
    default: return NULL;
    }
}

void vc_axis_coeffs_free(vc_axis_coeffs *ac) {
    free(ac->first);
    free(ac->count);
    free(ac->k);
    ac->first = ac->count = NULL;
    ac->k = NULL;
}

vc_status vc_axis_coeffs_build(vc_axis_coeffs *ac, int in_size, int out_size, int filter) {
    ac->first = ac->count = NULL;
    ac->k = NULL;
    const kernel *kn = kernel_for(filter);
    if (!kn) return vc_fail(VC_ERR_ARG, "resample filter %d has no kernel", filter);
    if (in_size < 1 || out_size < 1) return vc_fail(VC_ERR_ARG, "resize sizes must be >= 1");

    /* Pillow measures the input span as a float box, then divides in double. */
    double scale = (double)(float)in_size / out_size;
    /* Shrinking widens the kernel by the reduction factor: that is Pillow's antialiasing. */
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = kn->support * filterscale;
    double ksize_d = ceil(support) * 2 + 1;
    if (ksize_d > (double)INT_MAX) return vc_fail(VC_ERR_ARG, "resize kernel too wide (%g taps)", ksize_d);
    int ksize = (int)ceil(support) * 2 + 1;
    size_t nk;
    if (!vc_mul_ok((size_t)out_size, (size_t)ksize, &nk) || nk > VC_IMAGE_MAX_BYTES / sizeof(int32_t))
        return vc_fail(VC_ERR_ARG, "resize from %d to %d samples needs too many coefficients", in_size, out_size);

    ac->ksize = ksize;
    ac->first = malloc((size_t)out_size * sizeof(int));
    ac->count = malloc((size_t)out_size * sizeof(int));
    ac->k = calloc(nk, sizeof(int32_t));
    double *w = malloc((size_t)ksize * sizeof(double));
    if (!ac->first || !ac->count || !ac->k || !w) {
        free(w);
        vc_axis_coeffs_free(ac);
        return vc_fail(VC_ERR_MEMORY, "out of memory for resize coefficients (%zu taps)", nk);
    }

    const double inv_filterscale = 1.0 / filterscale;
    const double one = (double)(1 << VC_PRECISION_BITS);
    for (int xx = 0; xx < out_size; xx++) {
        /* Pillow adds the box origin (0.0f here) first; adding zero changes nothing. */
        double center = (xx + 0.5) * scale;
        /* Truncating casts after +0.5: Pillow's rounding of the window ends. */
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        int n = xmax - xmin;
        if (n < 0) n = 0;
        double ww = 0.0;
        for (int x = 0; x < n; x++) {
            /* Same association as Pillow: (int)(x + xmin) - center + 0.5, then scaled. */
            double v = kn->fn((x + xmin - center + 0.5) * inv_filterscale);
            w[x] = v;
            ww += v;
        }
        if (ww != 0.0)
            for (int x = 0; x < n; x++) w[x] /= ww;
        int32_t *k = ac->k + (size_t)xx * ksize;
        for (int x = 0; x < n; x++)
            k[x] = w[x] < 0 ? (int32_t)(-0.5 + w[x] * one) : (int32_t)(0.5 + w[x] * one);
        ac->first[xx] = xmin;
        ac->count[xx] = n;
    }
    free(w);
    return VC_OK;
}
