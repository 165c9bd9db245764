/* What the conv kernels (conv.c, conv_backward.c, conv_bf16.c) share: the choice of path, made
 * by one set of conditions so every forward, backward and precision agrees on it, and the
 * im2col lowering with its adjoint.
 * Legend: Cg input channels of one group, H,W in size, Ho,Wo out size, kh,kw kernel,
 * s stride, p padding, d dilation. */
#ifndef VC_CPU_CONV_IM2COL_H
#define VC_CPU_CONV_IM2COL_H

/* One filter per channel, square and undilated: the direct per-plane kernels. */
static inline int vc_conv_is_depthwise(int Ci, int Co, int groups, int kh, int kw, int sh, int sw, int ph, int pw,
                                       int dh, int dw) {
    return groups == Ci && Co == Ci && dh == 1 && dw == 1 && kh == kw && sh == sw && ph == pw;
}

/* 1x1, stride 1, unpadded, one group: the image itself is the GEMM operand (no im2col). */
static inline int vc_conv_is_pointwise(int kh, int kw, int sh, int sw, int ph, int pw, int groups) {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && groups == 1;
}

/* cols[(c*kh + ky)*kw + kx, oy*Wo + ox] = img[c, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw] (0 outside);
 * img [Cg, H, W], cols [Cg*kh*kw, Ho*Wo]. */
void cpu_im2col(float *cols, const float *img, int Cg, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                int dh, int dw, int Ho, int Wo);
/* img[Cg,H,W] = sum of cols over every window position that read each pixel (assign): the
 * adjoint of cpu_im2col. */
void cpu_col2im(float *img, const float *cols, int Cg, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                int dh, int dw, int Ho, int Wo);

#endif
