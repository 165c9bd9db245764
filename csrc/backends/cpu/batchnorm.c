/* BatchNorm2d for training and evaluation, forward and backward.
 *
 * Legend: B batch, C channels, HW pixels; x[B,C,HW]; n = B*HW values per channel.
 * Training forward (torch's batch_norm_cpu, statistics accumulated in double):
 *   mean_c = sum x / n,  var_c = sum (x - mean_c)^2 / n  (biased, used to normalise)
 *   rstd_c = 1 / sqrt(var_c + eps)
 *   running_mean = (1 - momentum) running_mean + momentum mean_c
 *   running_var  = (1 - momentum) running_var  + momentum var_c * n / (n - 1)   (unbiased)
 * Evaluation forward: mean_c = running_mean, rstd_c = 1 / sqrt(running_var + eps), nothing updated.
 * Both: y = x * a_c + (beta_c - mean_c a_c) with a_c = gamma_c rstd_c (torch's form).
 * Backward, g = dy, sums over the n values of a channel:
 *   dgamma += sum g (x - mean) rstd,  dbeta += sum g
 *   train: dx = gamma rstd (g - sum g / n - (x - mean) rstd^2 sum g (x - mean) / n)
 *   eval:  dx = gamma rstd g        (the statistics are constants)
 * One channel per task: every sum has one writer, so results do not depend on the thread count. */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

/* out[B,C,HW] (may equal in); save_mean, save_rstd [C] (written, NULL-able: what backward needs);
 * running_mean, running_var [C] (updated in training, read in eval; NULL-able in training only);
 * in[B,C,HW]; gamma, beta [C] (NULL: no affine). momentum in [0,1]; eps > 0. */
vc_status cpu_batchnorm_forward(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                float *running_var, const float *in, const float *gamma, const float *beta, int B,
                                int C, size_t HW, float momentum, float eps, int training) {
    const size_t n = (size_t)B * HW;
    if (training && n < 2)
        return vc_fail(VC_ERR_ARG, "batch_norm: expected more than 1 value per channel when training, got %zu", n);
    if (!training && (!running_mean || !running_var))
        return vc_fail(VC_ERR_ARG, "batch_norm: evaluation mode needs running_mean and running_var");
    if (!(eps > 0.f)) return vc_fail(VC_ERR_ARG, "batch_norm: eps must be positive");
#pragma omp parallel for schedule(static) if (n * C > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int c = 0; c < C; c++) {
        double mean, rstd;
        if (training) {
            double s = 0.0, v = 0.0;
            for (int b = 0; b < B; b++) {
                const float *x = in + ((size_t)b * C + c) * HW;
#pragma omp simd reduction(+ : s)
                for (size_t i = 0; i < HW; i++) s += x[i];
            }
            mean = s / (double)n;
            for (int b = 0; b < B; b++) {
                const float *x = in + ((size_t)b * C + c) * HW;
#pragma omp simd reduction(+ : v)
                for (size_t i = 0; i < HW; i++) {
                    const double d = x[i] - mean;
                    v += d * d;
                }
            }
            rstd = 1.0 / sqrt(v / (double)n + eps);
            if (running_mean) running_mean[c] = (float)(momentum * mean + (1.0 - momentum) * running_mean[c]);
            if (running_var)
                running_var[c] = (float)(momentum * (v / (double)(n - 1)) + (1.0 - momentum) * running_var[c]);
        } else {
            mean = running_mean[c];
            rstd = 1.0 / sqrt((double)running_var[c] + eps);
        }
        if (save_mean) save_mean[c] = (float)mean;
        if (save_rstd) save_rstd[c] = (float)rstd;
        const float a = (float)(rstd * (gamma ? gamma[c] : 1.f));
        const float shift = (float)((beta ? beta[c] : 0.f) - mean * a);
        for (int b = 0; b < B; b++) {
            const float *x = in + ((size_t)b * C + c) * HW;
            float *o = out + ((size_t)b * C + c) * HW;
#pragma omp simd
            for (size_t i = 0; i < HW; i++) o[i] = x[i] * a + shift;
        }
    }
    return VC_OK;
}

/* din[B,C,HW] (assign, may equal dout; NULL-able), dgamma, dbeta [C] (+=, NULL-able);
 * dout, in [B,C,HW]; save_mean, save_rstd [C] from the forward of the same mode; gamma [C] or NULL;
 * training: the mode the forward ran in. */
void cpu_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *save_mean, const float *save_rstd, const float *gamma, int B, int C,
                            size_t HW, int training) {
    const size_t n = (size_t)B * HW;
#pragma omp parallel for schedule(static) if (n * C > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int c = 0; c < C; c++) {
        const float mean = save_mean[c], rstd = save_rstd[c];
        double sg = 0.0, sgx = 0.0;
        for (int b = 0; b < B; b++) {
            const float *g = dout + ((size_t)b * C + c) * HW, *x = in + ((size_t)b * C + c) * HW;
#pragma omp simd reduction(+ : sg, sgx)
            for (size_t i = 0; i < HW; i++) {
                sg += g[i];
                sgx += (double)g[i] * (x[i] - mean);
            }
        }
        if (dgamma) dgamma[c] += (float)(sgx * rstd);
        if (dbeta) dbeta[c] += (float)sg;
        if (!din) continue;
        const float gr = (gamma ? gamma[c] : 1.f) * rstd;
        const float mg = training ? (float)(sg / (double)n) : 0.f;
        const float k = training ? (float)(sgx * rstd * rstd / (double)n) : 0.f;
        for (int b = 0; b < B; b++) {
            const float *g = dout + ((size_t)b * C + c) * HW, *x = in + ((size_t)b * C + c) * HW;
            float *d = din + ((size_t)b * C + c) * HW;
#pragma omp simd
            for (size_t i = 0; i < HW; i++) d[i] = gr * (g[i] - mg - (x[i] - mean) * k);
        }
    }
}
