/* Bindings for csrc/image: Pillow-exact resize, centre crop, and the batch image -> tensor call.
 *
 * Argument checks happen here with the GIL held, so that errors name the argument at fault; the
 * pixel work then runs with the GIL released.
 */
#include "python/pyutil.h"

#include "image/crop.h"
#include "image/pipeline.h"
#include "image/resample.h"
#include "image/to_tensor.h"

/* A uint8 image argument: data pointer and geometry, plus the reference that keeps it alive. */
typedef struct {
    PyArrayObject *arr; /* owned reference */
    const uint8_t *data;
    size_t h, w, c, stride;
    int ndim;
} u8_image;

/* Accepts a uint8 ndarray (H, W) or (H, W, C), C = 1..4. Rows may be strided (a crop view);
 * otherwise non-packed layouts are copied to C order. Returns 0, or -1 with an exception. */
static int get_u8_image(PyObject *obj, const char *what, u8_image *im) {
    im->arr = NULL;
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a uint8 NumPy array (H, W) or (H, W, C), got %s", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_UINT8) {
        PyErr_Format(PyExc_TypeError, "%s must be uint8, got %s", what, PyArray_DESCR(a)->typeobj->tp_name);
        return -1;
    }
    int nd = PyArray_NDIM(a);
    if (nd != 2 && nd != 3) {
        PyErr_Format(PyExc_ValueError, "%s must have shape (H, W) or (H, W, C), got %d dimensions", what, nd);
        return -1;
    }
    npy_intp *shape = PyArray_DIMS(a), *st = PyArray_STRIDES(a);
    size_t c = nd == 3 ? (size_t)shape[2] : 1;
    if (c < 1 || c > 4) {
        PyErr_Format(PyExc_ValueError, "%s must have 1 to 4 channels (last axis), got %zu", what, c);
        return -1;
    }
    if (shape[0] < 1 || shape[1] < 1) {
        PyErr_Format(PyExc_ValueError, "%s is empty (shape %ld x %ld)", what, (long)shape[0], (long)shape[1]);
        return -1;
    }
    int packed_rows = (nd == 2 || st[2] == 1) && st[1] == (npy_intp)c && st[0] >= (npy_intp)(shape[1] * (npy_intp)c);
    if (packed_rows && PyArray_ISALIGNED(a)) {
        Py_INCREF(obj);
        im->arr = a;
    } else {
        im->arr = (PyArrayObject *)PyArray_FromAny(obj, PyArray_DescrFromType(NPY_UINT8), 0, 0,
                                                   NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
        if (!im->arr) return -1;
    }
    im->data = (const uint8_t *)PyArray_DATA(im->arr);
    im->h = (size_t)shape[0];
    im->w = (size_t)shape[1];
    im->c = c;
    im->stride = (size_t)PyArray_STRIDES(im->arr)[0];
    im->ndim = nd;
    return 0;
}

/* (height, width) pair of positive ints. */
static int get_size(PyObject *obj, const char *what, size_t *h, size_t *w) {
    PyObject *seq = PySequence_Fast(obj, "");
    if (!seq || PySequence_Fast_GET_SIZE(seq) != 2) {
        Py_XDECREF(seq);
        PyErr_Format(PyExc_TypeError, "%s must be a (height, width) pair of ints", what);
        return -1;
    }
    long long v[2];
    for (int i = 0; i < 2; i++) {
        v[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_TypeError, "%s must be a (height, width) pair of ints", what);
            return -1;
        }
    }
    Py_DECREF(seq);
    if (v[0] < 1 || v[1] < 1 || (unsigned long long)v[0] > VC_IMAGE_MAX_SIDE ||
        (unsigned long long)v[1] > VC_IMAGE_MAX_SIDE) {
        PyErr_Format(PyExc_ValueError, "%s must be between 1 and %zu on each side, got (%lld, %lld)", what,
                     VC_IMAGE_MAX_SIDE, v[0], v[1]);
        return -1;
    }
    *h = (size_t)v[0];
    *w = (size_t)v[1];
    return 0;
}

static PyObject *new_u8_like(const u8_image *im, size_t h, size_t w) {
    npy_intp dims[3] = {(npy_intp)h, (npy_intp)w, (npy_intp)im->c};
    return PyArray_SimpleNew(im->ndim, dims, NPY_UINT8);
}

static PyObject *py_resize(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"image", "size", "resample", "premultiplied_alpha", "horizontal_first", NULL};
    PyObject *img_obj, *size_obj;
    int filter = VC_FILTER_BICUBIC, premul = 0, hfirst = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|ipp:resize", kwlist, &img_obj, &size_obj, &filter, &premul,
                                     &hfirst))
        return NULL;
    u8_image im;
    size_t dh, dw;
    if (get_size(size_obj, "size", &dh, &dw)) return NULL;
    if (filter < VC_FILTER_NEAREST || filter > VC_FILTER_MKS2021)
        return PyErr_Format(PyExc_ValueError, "resample must be a PIL.Image.Resampling value 0..7, got %d", filter);
    if (get_u8_image(img_obj, "image", &im)) return NULL;
    if (premul && im.c != 2 && im.c != 4) {
        Py_DECREF(im.arr);
        return PyErr_Format(PyExc_ValueError,
                            "premultiplied_alpha needs an image with 2 or 4 channels (LA, RGBA), got %zu", im.c);
    }
    if (vc_image_check_size(dh, dw, im.c, "size") != VC_OK) {
        Py_DECREF(im.arr);
        return vc_py_raise(VC_ERR_ARG);
    }
    PyObject *out = new_u8_like(&im, dh, dw);
    if (!out) {
        Py_DECREF(im.arr);
        return NULL;
    }
    int flags = (premul ? VC_RESIZE_PREMULTIPLIED_ALPHA : 0) | (hfirst ? VC_RESIZE_HORIZONTAL_FIRST : 0);
    vc_status st;
    Py_BEGIN_ALLOW_THREADS;
    st = vc_resize_u8(im.data, im.h, im.w, im.stride, (int)im.c, PyArray_DATA((PyArrayObject *)out), dh, dw, filter,
                      flags);
    Py_END_ALLOW_THREADS;
    Py_DECREF(im.arr);
    if (st != VC_OK) {
        Py_DECREF(out);
        return vc_py_raise(st);
    }
    return out;
}

static int get_convention(int conv) {
    if (conv != VC_CROP_FLOOR && conv != VC_CROP_ROUND) {
        PyErr_Format(PyExc_ValueError, "convention must be 0 (floor, Hugging Face) or 1 (round, torchvision), got %d",
                     conv);
        return -1;
    }
    return 0;
}

static PyObject *py_center_crop(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"image", "size", "convention", NULL};
    PyObject *img_obj, *size_obj;
    int conv = VC_CROP_FLOOR;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|i:center_crop", kwlist, &img_obj, &size_obj, &conv)) return NULL;
    size_t ch, cw;
    if (get_size(size_obj, "size", &ch, &cw) || get_convention(conv)) return NULL;
    u8_image im;
    if (get_u8_image(img_obj, "image", &im)) return NULL;
    vc_axis_window wy, wx;
    vc_axis_window_init(&wy, im.h);
    vc_axis_window_init(&wx, im.w);
    vc_status st = VC_OK;
    if ((st = vc_image_check_size(ch, cw, im.c, "size")) != VC_OK ||
        (st = vc_axis_window_center_crop(&wy, ch, conv)) != VC_OK ||
        (st = vc_axis_window_center_crop(&wx, cw, conv)) != VC_OK) {
        Py_DECREF(im.arr);
        return vc_py_raise(st);
    }
    PyObject *out = new_u8_like(&im, ch, cw);
    if (!out) {
        Py_DECREF(im.arr);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS;
    st = vc_crop_u8(im.data, im.h, im.w, im.stride, (int)im.c, &wy, &wx, PyArray_DATA((PyArrayObject *)out));
    Py_END_ALLOW_THREADS;
    Py_DECREF(im.arr);
    if (st != VC_OK) {
        Py_DECREF(out);
        return vc_py_raise(st);
    }
    return out;
}

static PyObject *py_center_crop_start(PyObject *self, PyObject *args) {
    Py_ssize_t len, crop;
    int conv = VC_CROP_FLOOR;
    if (!PyArg_ParseTuple(args, "nn|i:center_crop_start", &len, &crop, &conv)) return NULL;
    if (len < 1 || crop < 1) return PyErr_Format(PyExc_ValueError, "length and crop must be >= 1");
    if (get_convention(conv)) return NULL;
    return PyLong_FromSsize_t((Py_ssize_t)vc_center_crop_start((size_t)len, (size_t)crop, conv));
}

/* Reads `n` floats (1 value broadcast, or n values) from a sequence argument. */
static int get_floats(PyObject *obj, const char *what, int n, float *out) {
    PyObject *seq = PySequence_Fast(obj, "");
    if (!seq) {
        PyErr_Clear();
        double v = PyFloat_AsDouble(obj);
        if (v == -1.0 && PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "%s must be a float or a sequence of floats", what);
            return -1;
        }
        for (int i = 0; i < n; i++) out[i] = (float)v;
        return 0;
    }
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    if (m != n) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s must have %d values (one per channel), got %zd", what, n, m);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        double v = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_TypeError, "%s[%d] must be a float", what, i);
            return -1;
        }
        out[i] = (float)v; /* the references cast mean and std to float32 before using them */
    }
    Py_DECREF(seq);
    return 0;
}

/* Reads `n` ints in 0..255 (one per channel). */
static int get_bytes(PyObject *obj, const char *what, int n, uint8_t *out) {
    PyObject *seq = PySequence_Fast(obj, "");
    if (!seq || PySequence_Fast_GET_SIZE(seq) != n) {
        Py_XDECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s must be a sequence of %d ints in 0..255", what, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if ((v == -1 && PyErr_Occurred()) || v < 0 || v > 255) {
            Py_DECREF(seq);
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s[%d] must be an int in 0..255", what, i);
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    Py_DECREF(seq);
    return 0;
}

/* Parses one job tuple (image, (rh, rw), crops). */
static int get_job(PyObject *item, Py_ssize_t i, vc_image_job *job, u8_image *im) {
    char what[64];
    snprintf(what, sizeof what, "images[%zd]", i);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
        PyErr_Format(PyExc_TypeError, "jobs[%zd] must be a tuple (image, (height, width), crops)", i);
        return -1;
    }
    if (get_u8_image(PyTuple_GET_ITEM(item, 0), what, im)) return -1;
    job->data = im->data;
    job->h = im->h;
    job->w = im->w;
    job->stride = im->stride;
    snprintf(what, sizeof what, "jobs[%zd] resize size", i);
    if (get_size(PyTuple_GET_ITEM(item, 1), what, &job->rh, &job->rw)) return -1;
    PyObject *crops = PySequence_Fast(PyTuple_GET_ITEM(item, 2), "crops must be a sequence of (height, width)");
    if (!crops) return -1;
    Py_ssize_t nc = PySequence_Fast_GET_SIZE(crops);
    if (nc > VC_IMAGE_MAX_CROPS) {
        Py_DECREF(crops);
        PyErr_Format(PyExc_ValueError, "jobs[%zd]: at most %d crops, got %zd", i, VC_IMAGE_MAX_CROPS, nc);
        return -1;
    }
    job->ncrops = (int)nc;
    for (Py_ssize_t k = 0; k < nc; k++) {
        snprintf(what, sizeof what, "jobs[%zd] crop %zd", i, k);
        if (get_size(PySequence_Fast_GET_ITEM(crops, k), what, &job->crop_h[k], &job->crop_w[k])) {
            Py_DECREF(crops);
            return -1;
        }
    }
    Py_DECREF(crops);
    return 0;
}

static PyObject *py_images_to_tensor(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"jobs",        "out",  "start", "resample",          "premultiplied_alpha",
                             "horizontal_first", "crop_convention", "rescale_mode", "rescale", "mean",
                             "std",         "pad_value", "pad_after_rescale", "flip", NULL};
    PyObject *jobs_obj, *out_obj, *mean_obj = Py_None, *std_obj = Py_None, *pad_obj = Py_None;
    Py_ssize_t start = 0;
    int filter = VC_FILTER_BILINEAR, premul = 0, hfirst = 0, conv = VC_CROP_FLOOR, rmode = VC_RESCALE_MUL_F64;
    int pad_after = 0, flip = 0;
    double rescale = 1.0 / 255.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|n$ippiidOOOpp:images_to_tensor", kwlist, &jobs_obj, &out_obj,
                                     &start, &filter, &premul, &hfirst, &conv, &rmode, &rescale, &mean_obj,
                                     &std_obj, &pad_obj, &pad_after, &flip))
        return NULL;
    if (get_convention(conv)) return NULL;
    if (filter < VC_FILTER_NEAREST || filter > VC_FILTER_MKS2021)
        return PyErr_Format(PyExc_ValueError, "resample must be a PIL.Image.Resampling value 0..7, got %d", filter);
    if (rmode < VC_RESCALE_NONE || rmode > VC_RESCALE_DIV_F32)
        return PyErr_Format(PyExc_ValueError,
                            "rescale_mode must be 0 (none), 1 (x*f in float64) or 2 (x/f in float32)");

    PyArrayObject *out = vc_py_out_array(out_obj, "out");
    if (!out) return NULL;
    PyObject *jobs = NULL;
    vc_image_job *cj = NULL;
    u8_image *ims = NULL;
    Py_ssize_t n = 0;
    PyObject *result = NULL;

    if (PyArray_NDIM(out) != 4) {
        PyErr_Format(PyExc_ValueError, "out must have shape (N, C, H, W), got %d dimensions", PyArray_NDIM(out));
        goto done;
    }
    npy_intp *od = PyArray_DIMS(out);
    if (od[1] < 1 || od[1] > 4) {
        PyErr_Format(PyExc_ValueError, "out must have 1 to 4 channels, got %ld", (long)od[1]);
        goto done;
    }
    const int c = (int)od[1];
    if (!(jobs = PySequence_Fast(jobs_obj, "jobs must be a sequence"))) goto done;
    n = PySequence_Fast_GET_SIZE(jobs);
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "jobs is empty: no images to process");
        goto done;
    }
    if (start < 0 || start > od[0] || n > od[0] - start) {
        PyErr_Format(PyExc_ValueError, "out has room for %ld images, cannot write %zd from index %zd", (long)od[0], n,
                     start);
        goto done;
    }
    vc_image_recipe r = {0};
    r.channels = c;
    r.filter = filter;
    r.resize_flags = (premul ? VC_RESIZE_PREMULTIPLIED_ALPHA : 0) | (hfirst ? VC_RESIZE_HORIZONTAL_FIRST : 0);
    r.crop_convention = conv;
    r.rescale_mode = rmode;
    r.rescale = rescale;
    r.pad_after_rescale = pad_after;
    r.flip = flip;
    if ((mean_obj == Py_None) != (std_obj == Py_None)) {
        PyErr_SetString(PyExc_ValueError, "mean and std must be given together (or both None)");
        goto done;
    }
    if (mean_obj != Py_None) {
        r.normalize = 1;
        if (get_floats(mean_obj, "image_mean", c, r.mean) || get_floats(std_obj, "image_std", c, r.std)) goto done;
    }
    if (pad_obj != Py_None && get_bytes(pad_obj, "pad_value", c, r.pad_byte)) goto done;
    cj = PyMem_Calloc((size_t)n, sizeof *cj);
    ims = PyMem_Calloc((size_t)n, sizeof *ims);
    if (!cj || !ims) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (get_job(PySequence_Fast_GET_ITEM(jobs, i), i, &cj[i], &ims[i])) goto done;
        if ((int)ims[i].c != c) {
            PyErr_Format(PyExc_ValueError, "images[%zd] has %zu channels but out has %d", i, ims[i].c, c);
            goto done;
        }
    }
    float *dst = (float *)PyArray_DATA(out) + (size_t)start * (size_t)c * (size_t)od[2] * (size_t)od[3];
    vc_status st;
    Py_BEGIN_ALLOW_THREADS;
    st = vc_image_batch_to_tensor(cj, (size_t)n, &r, dst, (size_t)od[2], (size_t)od[3]);
    Py_END_ALLOW_THREADS;
    if (st != VC_OK) {
        vc_py_raise(st);
        goto done;
    }
    Py_INCREF(out);
    result = (PyObject *)out;
done:
    for (Py_ssize_t i = 0; ims && i < n; i++) Py_XDECREF(ims[i].arr); /* calloc'd: unparsed are NULL */
    PyMem_Free(ims);
    PyMem_Free(cj);
    Py_XDECREF(jobs);
    Py_DECREF(out);
    return result;
}

static PyObject *py_first_nonfinite(PyObject *self, PyObject *arg) {
    PyArrayObject *a = vc_py_float_array(arg, "array", -1);
    if (!a) return NULL;
    ptrdiff_t i;
    const float *p = PyArray_DATA(a);
    size_t n = (size_t)PyArray_SIZE(a);
    Py_BEGIN_ALLOW_THREADS;
    i = vc_first_nonfinite_f32(p, n);
    Py_END_ALLOW_THREADS;
    Py_DECREF(a);
    return PyLong_FromSsize_t((Py_ssize_t)i);
}

static PyMethodDef methods[] = {
    {"resize", (PyCFunction)(void (*)(void))py_resize, METH_VARARGS | METH_KEYWORDS,
     "resize(image, size, resample=3, premultiplied_alpha=False, horizontal_first=False) -> uint8 array.\n"
     "Pillow-exact resize of a uint8 (H, W[, C]) image to size=(height, width)."},
    {"center_crop", (PyCFunction)(void (*)(void))py_center_crop, METH_VARARGS | METH_KEYWORDS,
     "center_crop(image, size, convention=0) -> uint8 array, zero-padded where the crop is larger.\n"
     "convention 0: Hugging Face floor offsets; 1: torchvision round offsets."},
    {"center_crop_start", py_center_crop_start, METH_VARARGS,
     "center_crop_start(length, crop, convention=0) -> first input index of a centre crop."},
    {"images_to_tensor", (PyCFunction)(void (*)(void))py_images_to_tensor, METH_VARARGS | METH_KEYWORDS,
     "images_to_tensor(jobs, out, start=0, *, resample, premultiplied_alpha, horizontal_first, crop_convention,\n"
     "rescale_mode, rescale, mean, std, pad_value, pad_after_rescale, flip) -> out.\n"
     "jobs: [(uint8 image, (resize_h, resize_w), ((crop_h, crop_w), ...)), ...]; writes out[start:start+n]."},
    {"first_nonfinite", py_first_nonfinite, METH_O, "Index of the first NaN/inf in a float32 array, or -1."},
    {NULL, NULL, 0, NULL},
};

int vc_py_register_image(PyObject *m) { return PyModule_AddFunctions(m, methods); }
