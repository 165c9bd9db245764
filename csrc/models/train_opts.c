/* See train_opts.h. */
#include "models/train_opts.h"

#include <string.h>

vc_status vc_backward_begin(const vc_backward_args *a, int kept, int has_loss, int B, int H, int W, int L,
                            float *dlogits) {
    if (!kept)
        return vc_fail(VC_ERR_ARG, "backward() needs a forward kept for it first (each forward allows one backward)");
    if ((a->dlogits || a->dpx) && a->B != B)
        return vc_fail(VC_ERR_ARG, "backward: the arrays are sized for a batch of %d, the kept forward had %d",
                       a->B, B);
    if (a->dpx && (a->H != H || a->W != W))
        return vc_fail(VC_ERR_ARG, "backward: the input gradient is sized for %dx%d images, the kept forward had "
                                   "%dx%d", a->H, a->W, H, W);
    if (!a->dlogits && !has_loss)
        return vc_fail(VC_ERR_ARG, "backward: the kept forward had no labels, so there is no loss to differentiate; "
                                   "pass grad_logits (d objective / d logits) or forward with labels");
    if (a->dlogits) memcpy(dlogits, a->dlogits, sizeof(float) * (size_t)B * L);
    return VC_OK;
}
