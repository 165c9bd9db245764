/* Cross-entropy loss with label smoothing, forward and gradient in one pass.
 *
 * Legend: M rows (samples), Ncls classes; logits z[M,Ncls], labels y[M] (int64).
 * PyTorch's definition (F.cross_entropy, reduction='mean', no class weights), with eps the
 * label smoothing and V the set of rows whose label is not ignore_index:
 *   lse_i  = log sum_c exp(z_ic)
 *   loss_i = (1 - eps) (lse_i - z_iy) + eps (lse_i - mean_c z_ic)
 *   loss   = sum_{i in V} loss_i / |V|            (NaN when V is empty, as torch)
 *   dz_ic  = (softmax(z_i)_c - eps/Ncls - (1 - eps) [c == y_i]) / |V| for i in V, 0 otherwise
 * Each row is reduced in double (max-shifted, so large logits do not overflow). */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

/* One row: returns its loss (0 if ignored) and writes dz[Ncls] (assign) when dz is not NULL. */
static double row_loss(float *dz, const float *z, int64_t label, int Ncls, double eps, double inv_valid,
                       int64_t ignore_index) {
    if (label == ignore_index) {
        if (dz)
            for (int c = 0; c < Ncls; c++) dz[c] = 0.f;
        return 0.0;
    }
    const int y = (int)label;
    float mx = z[0];
    for (int c = 1; c < Ncls; c++) mx = z[c] > mx ? z[c] : mx;
    double se = 0.0, sz = 0.0;
    for (int c = 0; c < Ncls; c++) {
        se += exp((double)z[c] - mx);
        sz += z[c];
    }
    const double lse = mx + log(se);
    if (dz) {
        const double off = eps / Ncls;
        for (int c = 0; c < Ncls; c++) {
            /* in double: p_y - 1 cancels badly in float when the model is confident */
            const double d = exp((double)z[c] - lse) - off - (c == y ? 1.0 - eps : 0.0);
            dz[c] = (float)(d * inv_valid);
        }
    }
    return (1.0 - eps) * (lse - z[y]) + eps * (lse - sz / Ncls);
}

/* loss[1]; dlogits[M,Ncls] (assign, NULL-able: loss only); logits[M,Ncls]; labels[M].
 * Fails with VC_ERR_ARG, before writing anything, on a label outside [0, Ncls) that is not
 * ignore_index, or a label smoothing outside [0, 1]. */
vc_status cpu_cross_entropy(float *loss, float *dlogits, const float *logits, const int64_t *labels, int M, int Ncls,
                            float label_smoothing, int64_t ignore_index) {
    if (M < 1 || Ncls < 1) return vc_fail(VC_ERR_ARG, "cross_entropy: need at least one row and one class");
    if (!(label_smoothing >= 0.f && label_smoothing <= 1.f))
        return vc_fail(VC_ERR_ARG, "cross_entropy: label_smoothing must be in [0, 1], got %g", (double)label_smoothing);
    int valid = 0;
    for (int i = 0; i < M; i++) {
        if (labels[i] == ignore_index) continue;
        if (labels[i] < 0 || labels[i] >= Ncls)
            return vc_fail(VC_ERR_ARG, "cross_entropy: label %lld at row %d is out of range [0, %d)",
                           (long long)labels[i], i, Ncls);
        valid++;
    }
    const double eps = label_smoothing, inv_valid = valid ? 1.0 / valid : 0.0;
    /* The loss is summed in a fixed number of row chunks, then the chunk sums in order, so it
     * is the same for any thread count (an OpenMP reduction would add in a varying order). */
    enum { CHUNKS = 64 };
    double part[CHUNKS] = {0};
    const int nch = M < CHUNKS ? M : CHUNKS;
#pragma omp parallel for schedule(static) if ((size_t)M * Ncls > VC_CHUNK) num_threads(vc_get_num_threads())
    for (int ch = 0; ch < nch; ch++) {
        const int lo = (int)((long)M * ch / nch), hi = (int)((long)M * (ch + 1) / nch);
        for (int i = lo; i < hi; i++) part[ch] += row_loss(dlogits ? dlogits + (size_t)i * Ncls : NULL,
                                                           logits + (size_t)i * Ncls, labels[i], Ncls, eps, inv_valid,
                                                           ignore_index);
    }
    double total = 0.0;
    for (int ch = 0; ch < nch; ch++) total += part[ch];
    *loss = valid ? (float)(total * inv_valid) : NAN;
    return VC_OK;
}
