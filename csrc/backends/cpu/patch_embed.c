/* Patch embedding (a PxP convolution with stride P) as im2col + GEMM. */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "vc.h"

/* px: [B, Cin, Hi, Wi]; w: [Cout, Cin*P*P]; out: [B, 1+G, Cout] with G = (Hi/P)*(Wi/P);
 * scratch: [B*G, Cin*P*P]. Row 0 of each image (the class token slot) is not written. */
void cpu_patch_embed(float *out, const float *px, const float *w, const float *bias, int B, int Cin, int Hi,
                     int Wi, int P, int Cout, float *scratch) {
    const int gh = Hi / P, gw = Wi / P, G = gh * gw;
    const int K = Cin * P * P;
#pragma omp parallel for collapse(2) schedule(static) num_threads(vc_get_num_threads())
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            int py = g / gw, pxi = g % gw;
            float *row = scratch + ((size_t)b * G + g) * K;
            for (int c = 0; c < Cin; c++)
                for (int ky = 0; ky < P; ky++) {
                    const float *src = px + (((size_t)b * Cin + c) * Hi + (size_t)py * P + ky) * Wi + (size_t)pxi * P;
                    memcpy(row + ((size_t)c * P + ky) * P, src, sizeof(float) * P);
                }
        }
    for (int b = 0; b < B; b++) {
        float *dst = out + ((size_t)b * (G + 1) + 1) * Cout;
        cpu_gemm_nt(G, Cout, K, scratch + (size_t)b * G * K, K, w, K, 0.f, dst, Cout);
        if (bias)
            for (int g = 0; g < G; g++)
                for (int n = 0; n < Cout; n++) dst[(size_t)g * Cout + n] += bias[n];
    }
}
