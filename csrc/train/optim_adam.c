/* Adam and AdamW: one fused pass per element over param, grad, exp_avg, exp_avg_sq
 * (and max_exp_avg_sq with amsgrad).
 *
 * ref: torch.optim.adam._single_tensor_adam (torch 2.13, capturable=False, the CPU default;
 *      AdamW is the same function with decoupled_weight_decay=True). Per element, in float:
 *   AdamW:  p = p * (1 - lr*wd)                          param.mul_(1 - lr * weight_decay)
 *   Adam:   g = fma(p, wd, g)                            grad.add(param, alpha=weight_decay)
 *           m = fma(w, g - m, m)  (w = 1-beta1 < 0.5)     exp_avg.lerp_(grad, 1 - beta1)
 *             = fma(w - 1, g - m, g)  (w >= 0.5)          (ATen's vectorised lerp)
 *           v = fma((1-beta2)*g, g, v*beta2)             exp_avg_sq.mul_(beta2).addcmul_(g, g, 1-beta2)
 *           amsgrad: vmax = maximum(vmax, v) (NaN-propagating); v' = vmax, else v' = v
 *           d = sqrt(v') / bc2_sqrt + eps                (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
 *           p = p + (-step_size * m) / d                 param.addcdiv_(exp_avg, denom, value=-step_size)
 * with step_size = lr / (1 - beta1^step) and bc2_sqrt = (1 - beta2^step)^0.5 in double. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#include "train/chunks.h"
#include "train/optim.h"

typedef struct {
    float decay, wd, w, w_minus_1, b2, one_minus_b2, bc2_sqrt, eps, neg_step;
    int w_small, decoupled, l2, amsgrad;
} consts;

static consts make_consts(const vc_adam_hparams *h, int64_t step) {
    consts c;
    const double s = (double)step;
    c.decoupled = h->decoupled && h->weight_decay != 0;
    c.l2 = !h->decoupled && h->weight_decay != 0;
    c.decay = (float)(1 - h->lr * h->weight_decay);
    c.wd = (float)h->weight_decay;
    c.w = (float)(1 - h->beta1);
    c.w_minus_1 = c.w - 1.f;
    c.w_small = fabsf(c.w) < 0.5f;
    c.b2 = (float)h->beta2;
    c.one_minus_b2 = (float)(1 - h->beta2);
    c.bc2_sqrt = (float)pow(1 - pow(h->beta2, s), 0.5);
    c.eps = (float)h->eps;
    c.neg_step = (float)-(h->lr / (1 - pow(h->beta1, s)));
    c.amsgrad = h->amsgrad;
    return c;
}

typedef void (*adam_fn)(const vc_adam_tensor *t, size_t i, size_t end, const consts *c);

/* Scalar body, also the tail of the vector bodies: the same operations as the vector code. */
static void adam_scalar(const vc_adam_tensor *t, size_t i, size_t end, const consts *c) {
    for (; i < end; i++) {
        float p = t->param[i], g = t->grad[i], m = t->exp_avg[i], v = t->exp_avg_sq[i];
        if (c->decoupled) p = p * c->decay;
        if (c->l2) g = fmaf(p, c->wd, g);
        float d = g - m;
        m = c->w_small ? fmaf(c->w, d, m) : fmaf(c->w_minus_1, d, g);
        v = fmaf(c->one_minus_b2 * g, g, v * c->b2);
        float vv = v;
        if (c->amsgrad) {
            float old = t->max_exp_avg_sq[i];
            vv = (isnan(v) || v > old) ? v : old; /* an old NaN stays NaN */
            t->max_exp_avg_sq[i] = vv;
        }
        float den = sqrtf(vv) / c->bc2_sqrt + c->eps;
        t->param[i] = p + (c->neg_step * m) / den;
        t->exp_avg[i] = m;
        t->exp_avg_sq[i] = v;
    }
}

__attribute__((target("avx512f"))) static void adam_avx512(const vc_adam_tensor *t, size_t i, size_t end,
                                                         const consts *c) {
    const __m512 decay = _mm512_set1_ps(c->decay), wd = _mm512_set1_ps(c->wd), w = _mm512_set1_ps(c->w),
                 wm1 = _mm512_set1_ps(c->w_minus_1), b2 = _mm512_set1_ps(c->b2),
                 omb2 = _mm512_set1_ps(c->one_minus_b2), bc2 = _mm512_set1_ps(c->bc2_sqrt),
                 eps = _mm512_set1_ps(c->eps), nstep = _mm512_set1_ps(c->neg_step);
    for (; i + 16 <= end; i += 16) {
        __m512 p = _mm512_loadu_ps(t->param + i), g = _mm512_loadu_ps(t->grad + i);
        __m512 m = _mm512_loadu_ps(t->exp_avg + i), v = _mm512_loadu_ps(t->exp_avg_sq + i);
        if (c->decoupled) p = _mm512_mul_ps(p, decay);
        if (c->l2) g = _mm512_fmadd_ps(p, wd, g);
        __m512 d = _mm512_sub_ps(g, m);
        m = c->w_small ? _mm512_fmadd_ps(w, d, m) : _mm512_fmadd_ps(wm1, d, g);
        v = _mm512_fmadd_ps(_mm512_mul_ps(omb2, g), g, _mm512_mul_ps(v, b2));
        __m512 vv = v;
        if (c->amsgrad) {
            /* max_ps returns its second operand when either is NaN; then put v's NaNs back */
            vv = _mm512_max_ps(v, _mm512_loadu_ps(t->max_exp_avg_sq + i));
            vv = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), vv, v);
            _mm512_storeu_ps(t->max_exp_avg_sq + i, vv);
        }
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vv), bc2), eps);
        _mm512_storeu_ps(t->param + i, _mm512_add_ps(p, _mm512_div_ps(_mm512_mul_ps(nstep, m), den)));
        _mm512_storeu_ps(t->exp_avg + i, m);
        _mm512_storeu_ps(t->exp_avg_sq + i, v);
    }
    adam_scalar(t, i, end, c);
}

__attribute__((target("avx2,fma"))) static void adam_avx2(const vc_adam_tensor *t, size_t i, size_t end,
                                                        const consts *c) {
    const __m256 decay = _mm256_set1_ps(c->decay), wd = _mm256_set1_ps(c->wd), w = _mm256_set1_ps(c->w),
                 wm1 = _mm256_set1_ps(c->w_minus_1), b2 = _mm256_set1_ps(c->b2),
                 omb2 = _mm256_set1_ps(c->one_minus_b2), bc2 = _mm256_set1_ps(c->bc2_sqrt),
                 eps = _mm256_set1_ps(c->eps), nstep = _mm256_set1_ps(c->neg_step);
    for (; i + 8 <= end; i += 8) {
        __m256 p = _mm256_loadu_ps(t->param + i), g = _mm256_loadu_ps(t->grad + i);
        __m256 m = _mm256_loadu_ps(t->exp_avg + i), v = _mm256_loadu_ps(t->exp_avg_sq + i);
        if (c->decoupled) p = _mm256_mul_ps(p, decay);
        if (c->l2) g = _mm256_fmadd_ps(p, wd, g);
        __m256 d = _mm256_sub_ps(g, m);
        m = c->w_small ? _mm256_fmadd_ps(w, d, m) : _mm256_fmadd_ps(wm1, d, g);
        v = _mm256_fmadd_ps(_mm256_mul_ps(omb2, g), g, _mm256_mul_ps(v, b2));
        __m256 vv = v;
        if (c->amsgrad) {
            vv = _mm256_max_ps(v, _mm256_loadu_ps(t->max_exp_avg_sq + i));
            vv = _mm256_blendv_ps(vv, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            _mm256_storeu_ps(t->max_exp_avg_sq + i, vv);
        }
        __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), bc2), eps);
        _mm256_storeu_ps(t->param + i, _mm256_add_ps(p, _mm256_div_ps(_mm256_mul_ps(nstep, m), den)));
        _mm256_storeu_ps(t->exp_avg + i, m);
        _mm256_storeu_ps(t->exp_avg_sq + i, v);
    }
    adam_scalar(t, i, end, c);
}

static adam_fn pick(void) {
    const vc_cpu_features *f = vc_cpu();
    if (f->avx512f) return adam_avx512;
    if (f->avx2 && f->fma) return adam_avx2;
    return adam_scalar;
}

static vc_status check(const vc_adam_tensor *t, size_t count, const vc_adam_hparams *h) {
    if (!h) return vc_fail(VC_ERR_ARG, "adam: no hyper-parameters");
    if (!(h->lr >= 0) || !isfinite(h->lr)) return vc_fail(VC_ERR_ARG, "adam: invalid learning rate lr=%g", h->lr);
    if (!(h->eps >= 0) || !isfinite(h->eps)) return vc_fail(VC_ERR_ARG, "adam: invalid eps=%g", h->eps);
    if (!(h->beta1 >= 0 && h->beta1 < 1) || !(h->beta2 >= 0 && h->beta2 < 1))
        return vc_fail(VC_ERR_ARG, "adam: betas must lie in [0, 1), got (%g, %g)", h->beta1, h->beta2);
    if (!(h->weight_decay >= 0) || !isfinite(h->weight_decay))
        return vc_fail(VC_ERR_ARG, "adam: invalid weight_decay=%g", h->weight_decay);
    if (count && !t) return vc_fail(VC_ERR_ARG, "adam: no tensors");
    for (size_t k = 0; k < count; k++) {
        if (t[k].n && (!t[k].param || !t[k].grad || !t[k].exp_avg || !t[k].exp_avg_sq ||
                       (h->amsgrad && !t[k].max_exp_avg_sq)))
            return vc_fail(VC_ERR_ARG, "adam: tensor %zu is missing an array", k);
        if (t[k].step < 1) return vc_fail(VC_ERR_ARG, "adam: tensor %zu has step %lld < 1", k, (long long)t[k].step);
    }
    return VC_OK;
}

vc_status vc_adam_update(const vc_adam_tensor *t, size_t count, const vc_adam_hparams *h) {
    vc_status st = check(t, count, h);
    if (st != VC_OK || count == 0) return st;
    size_t *first = malloc((count + 1) * sizeof *first);
    consts *c = malloc(count * sizeof *c);
    if (!first || !c) {
        free(first);
        free(c);
        return vc_fail(VC_ERR_MEMORY, "adam: cannot allocate the work list for %zu tensors", count);
    }
    first[0] = 0;
    for (size_t k = 0; k < count; k++) {
        first[k + 1] = first[k] + vc_nchunks(t[k].n);
        c[k] = make_consts(h, t[k].step); /* steps may differ: a parameter may have skipped steps */
    }
    const size_t total = first[count];
    const adam_fn fn = pick();
#pragma omp parallel for schedule(static) if (total >= VC_TRAIN_PARALLEL_CHUNKS) num_threads(vc_get_num_threads())
    for (size_t ch = 0; ch < total; ch++) {
        size_t k = vc_chunk_owner(first, count, ch);
        size_t start = (ch - first[k]) * VC_CHUNK;
        size_t end = t[k].n - start < VC_CHUNK ? t[k].n : start + VC_CHUNK;
        fn(&t[k], start, end, &c[k]);
    }
    free(first);
    free(c);
    return VC_OK;
}
