/* SGD with momentum, dampening, Nesterov and L2 weight decay: one fused pass per element.
 *
 * ref: torch.optim.sgd._single_tensor_sgd (torch 2.13, the CPU default). Per element, in float
 * (ATen's vectorised add with alpha is a fused multiply-add, fma(other, alpha, self)):
 *   g = fma(p, wd, g)                  grad = grad.add(param, alpha=weight_decay)   (wd != 0)
 *   first step:  b = g                 buf = grad.detach().clone()                  (momentum != 0)
 *   later:       b = fma(g, 1 - damp, b * mom)   buf.mul_(momentum).add_(grad, alpha=1 - dampening)
 *   nesterov:    g = fma(b, mom, g)    grad = grad.add(buf, alpha=momentum)
 *   otherwise:   g = b
 *   p = fma(g, -lr, p)                 param.add_(grad, alpha=-lr)
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#include "train/chunks.h"
#include "train/optim.h"

typedef struct {
    float wd, mom, one_minus_damp, neg_lr;
    int use_wd, use_mom, nesterov;
} consts;

typedef void (*sgd_fn)(const vc_sgd_tensor *t, size_t i, size_t end, const consts *c);

static void sgd_scalar(const vc_sgd_tensor *t, size_t i, size_t end, const consts *c) {
    for (; i < end; i++) {
        float p = t->param[i], g = t->grad[i];
        if (c->use_wd) g = fmaf(p, c->wd, g);
        if (c->use_mom) {
            float b = t->init_buf ? g : fmaf(g, c->one_minus_damp, t->momentum_buffer[i] * c->mom);
            t->momentum_buffer[i] = b;
            g = c->nesterov ? fmaf(b, c->mom, g) : b;
        }
        t->param[i] = fmaf(g, c->neg_lr, p);
    }
}

__attribute__((target("avx512f"))) static void sgd_avx512(const vc_sgd_tensor *t, size_t i, size_t end,
                                                        const consts *c) {
    const __m512 wd = _mm512_set1_ps(c->wd), mom = _mm512_set1_ps(c->mom),
                 omd = _mm512_set1_ps(c->one_minus_damp), nlr = _mm512_set1_ps(c->neg_lr);
    for (; i + 16 <= end; i += 16) {
        __m512 p = _mm512_loadu_ps(t->param + i), g = _mm512_loadu_ps(t->grad + i);
        if (c->use_wd) g = _mm512_fmadd_ps(p, wd, g);
        if (c->use_mom) {
            __m512 b = t->init_buf ? g
                                   : _mm512_fmadd_ps(g, omd, _mm512_mul_ps(_mm512_loadu_ps(t->momentum_buffer + i), mom));
            _mm512_storeu_ps(t->momentum_buffer + i, b);
            g = c->nesterov ? _mm512_fmadd_ps(b, mom, g) : b;
        }
        _mm512_storeu_ps(t->param + i, _mm512_fmadd_ps(g, nlr, p));
    }
    sgd_scalar(t, i, end, c);
}

__attribute__((target("avx2,fma"))) static void sgd_avx2(const vc_sgd_tensor *t, size_t i, size_t end,
                                                       const consts *c) {
    const __m256 wd = _mm256_set1_ps(c->wd), mom = _mm256_set1_ps(c->mom),
                 omd = _mm256_set1_ps(c->one_minus_damp), nlr = _mm256_set1_ps(c->neg_lr);
    for (; i + 8 <= end; i += 8) {
        __m256 p = _mm256_loadu_ps(t->param + i), g = _mm256_loadu_ps(t->grad + i);
        if (c->use_wd) g = _mm256_fmadd_ps(p, wd, g);
        if (c->use_mom) {
            __m256 b = t->init_buf ? g
                                   : _mm256_fmadd_ps(g, omd, _mm256_mul_ps(_mm256_loadu_ps(t->momentum_buffer + i), mom));
            _mm256_storeu_ps(t->momentum_buffer + i, b);
            g = c->nesterov ? _mm256_fmadd_ps(b, mom, g) : b;
        }
        _mm256_storeu_ps(t->param + i, _mm256_fmadd_ps(g, nlr, p));
    }
    sgd_scalar(t, i, end, c);
}

static sgd_fn pick(void) {
    const vc_cpu_features *f = vc_cpu();
    if (f->avx512f) return sgd_avx512;
    if (f->avx2 && f->fma) return sgd_avx2;
    return sgd_scalar;
}

static vc_status check(const vc_sgd_tensor *t, size_t count, const vc_sgd_hparams *h) {
    if (!h) return vc_fail(VC_ERR_ARG, "sgd: no hyper-parameters");
    if (!(h->lr >= 0) || !isfinite(h->lr)) return vc_fail(VC_ERR_ARG, "sgd: invalid learning rate lr=%g", h->lr);
    if (!(h->momentum >= 0) || !isfinite(h->momentum))
        return vc_fail(VC_ERR_ARG, "sgd: invalid momentum=%g", h->momentum);
    if (!isfinite(h->dampening)) return vc_fail(VC_ERR_ARG, "sgd: invalid dampening=%g", h->dampening);
    if (!(h->weight_decay >= 0) || !isfinite(h->weight_decay))
        return vc_fail(VC_ERR_ARG, "sgd: invalid weight_decay=%g", h->weight_decay);
    if (h->nesterov && (h->momentum <= 0 || h->dampening != 0))
        return vc_fail(VC_ERR_ARG, "sgd: Nesterov momentum requires a momentum and zero dampening");
    if (count && !t) return vc_fail(VC_ERR_ARG, "sgd: no tensors");
    for (size_t k = 0; k < count; k++)
        if (t[k].n && (!t[k].param || !t[k].grad || (h->momentum != 0 && !t[k].momentum_buffer)))
            return vc_fail(VC_ERR_ARG, "sgd: tensor %zu is missing an array", k);
    return VC_OK;
}

vc_status vc_sgd_update(const vc_sgd_tensor *t, size_t count, const vc_sgd_hparams *h) {
    vc_status st = check(t, count, h);
    if (st != VC_OK || count == 0) return st;
    size_t *first = malloc((count + 1) * sizeof *first);
    if (!first) return vc_fail(VC_ERR_MEMORY, "sgd: cannot allocate the work list for %zu tensors", count);
    first[0] = 0;
    for (size_t k = 0; k < count; k++) first[k + 1] = first[k] + vc_nchunks(t[k].n);
    const consts c = {
        .wd = (float)h->weight_decay,
        .mom = (float)h->momentum,
        .one_minus_damp = (float)(1 - h->dampening),
        .neg_lr = (float)-h->lr,
        .use_wd = h->weight_decay != 0,
        .use_mom = h->momentum != 0,
        .nesterov = h->nesterov,
    };
    const size_t total = first[count];
    const sgd_fn fn = pick();
#pragma omp parallel for schedule(static) if (total >= VC_TRAIN_PARALLEL_CHUNKS) num_threads(vc_get_num_threads())
    for (size_t ch = 0; ch < total; ch++) {
        size_t k = vc_chunk_owner(first, count, ch);
        size_t start = (ch - first[k]) * VC_CHUNK;
        size_t end = t[k].n - start < VC_CHUNK ? t[k].n : start + VC_CHUNK;
        fn(&t[k], start, end, &c);
    }
    free(first);
    return VC_OK;
}
