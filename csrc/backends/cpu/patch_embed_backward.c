/* Backward of patch embedding (a PxP, stride-P convolution written as patches . w^T).
 *
 * Legend: B batch, Cin channels, Hi,Wi image size, P patch size, gh = Hi/P, gw = Wi/P,
 * G = gh*gw patches, K = Cin*P*P, Cout embedding width.
 * The forward writes rows 1..G of out[B, 1+G, Cout] (row 0 is the class-token slot), so dout
 * has that layout too and its row 0 is ignored. Per image:
 *   patches[G,K] = gather(px);   dw[Cout,K] += dout_g^T . patches;   db += column sums of dout_g
 *   dpatches[G,K] = dout_g . w;  dpx = scatter(dpatches)  (patches do not overlap: a permutation;
 *   pixels right of gw*P or below gh*P, which no patch reads, get zero gradient). */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_train.h"
#include "vc.h"

/* One patch row <-> its pixels: row[(c*P + ky)*P + kx] <-> img[c, py*P + ky, px*P + kx]. */
static void patch_gather(float *row, const float *img, int Cin, int Hi, int Wi, int P, int py, int pxi) {
    for (int c = 0; c < Cin; c++)
        for (int ky = 0; ky < P; ky++)
            memcpy(row + ((size_t)c * P + ky) * P, img + ((size_t)c * Hi + (size_t)py * P + ky) * Wi + (size_t)pxi * P,
                   sizeof(float) * P);
}
static void patch_scatter(float *img, const float *row, int Cin, int Hi, int Wi, int P, int py, int pxi) {
    for (int c = 0; c < Cin; c++)
        for (int ky = 0; ky < P; ky++)
            memcpy(img + ((size_t)c * Hi + (size_t)py * P + ky) * Wi + (size_t)pxi * P, row + ((size_t)c * P + ky) * P,
                   sizeof(float) * P);
}

size_t cpu_patch_embed_backward_scratch(int B, int Cin, int Hi, int Wi, int P) {
    return (size_t)(Hi / P) * (Wi / P) * Cin * P * P;
}

/* dpx [B,Cin,Hi,Wi] (assign, NULL-able), dw [Cout,K] (+=, NULL-able), db [Cout] (+=, NULL-able);
 * dout [B,1+G,Cout] (row 0 of each image ignored); px [B,Cin,Hi,Wi]; w [Cout,K];
 * scratch: cpu_patch_embed_backward_scratch(...) = G*K floats (one image's patches). */
void cpu_patch_embed_backward(float *dpx, float *dw, float *db, const float *dout, const float *px, const float *w,
                              int B, int Cin, int Hi, int Wi, int P, int Cout, float *scratch) {
    const int gh = Hi / P, gw = Wi / P, G = gh * gw, K = Cin * P * P;
    const size_t img = (size_t)Cin * Hi * Wi;
    for (int b = 0; b < B; b++) {
        const float *g = dout + ((size_t)b * (G + 1) + 1) * Cout;
        if (db) cpu_sum_rows_into(db, g, (size_t)G, Cout, (size_t)Cout);
        if (dw) {
#pragma omp parallel for schedule(static) if ((size_t)G * K > VC_CHUNK) num_threads(vc_get_num_threads())
            for (int p = 0; p < G; p++)
                patch_gather(scratch + (size_t)p * K, px + b * img, Cin, Hi, Wi, P, p / gw, p % gw);
            cpu_gemm_tn(Cout, K, G, g, Cout, scratch, K, 1.f, dw, K);
        }
        if (dpx) {
            float *d = dpx + b * img;
            if (Hi % P || Wi % P) memset(d, 0, sizeof(float) * img);
            cpu_gemm_nn(G, K, Cout, g, Cout, w, K, 0.f, scratch, K);
#pragma omp parallel for schedule(static) if ((size_t)G * K > VC_CHUNK) num_threads(vc_get_num_threads())
            for (int p = 0; p < G; p++) patch_scatter(d, scratch + (size_t)p * K, Cin, Hi, Wi, P, p / gw, p % gw);
        }
    }
}
