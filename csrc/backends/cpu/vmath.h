/* Vectorised exp and erf for the CPU kernels, in AVX-512 and AVX2 flavours.
 *
 * exp: Cephes-style range reduction x = n ln2 + r with a degree-6 polynomial (about 1 ulp).
 * erf: a clamped rational approximation in x^2 (max abs error 4.2e-7 over the reals; the
 * coefficients are the widely used ones from Eigen / XLA's fast erf).
 * Only functions compiled with the matching target attribute may include these bodies.
 */
#ifndef VC_VMATH_H
#define VC_VMATH_H

#include <immintrin.h>
#include <math.h>

#define VC_EXP_HI 88.3762626647949f
#define VC_EXP_LO_512 -104.0f  /* scalef underflows to 0 cleanly below this */
#define VC_EXP_LO_256 -87.3365447505531f

#define VC_ERF_A13 -2.72614225801306e-10f
#define VC_ERF_A11 2.77068142495902e-08f
#define VC_ERF_A9 -2.10102402082508e-06f
#define VC_ERF_A7 -5.69250639462346e-05f
#define VC_ERF_A5 -7.34990630326855e-04f
#define VC_ERF_A3 -2.95459980854025e-03f
#define VC_ERF_A1 -1.60960333262415e-02f
#define VC_ERF_B8 -1.45660718464996e-05f
#define VC_ERF_B6 -2.13374055278905e-04f
#define VC_ERF_B4 -1.68282697438203e-03f
#define VC_ERF_B2 -7.37332916720468e-03f
#define VC_ERF_B0 -1.42647390514189e-02f

static inline float vc_erf_scalar(float x) {
    x = x < -4.f ? -4.f : (x > 4.f ? 4.f : x);
    float x2 = x * x;
    float p = VC_ERF_A13;
    p = p * x2 + VC_ERF_A11; p = p * x2 + VC_ERF_A9; p = p * x2 + VC_ERF_A7;
    p = p * x2 + VC_ERF_A5; p = p * x2 + VC_ERF_A3; p = p * x2 + VC_ERF_A1;
    float q = VC_ERF_B8;
    q = q * x2 + VC_ERF_B6; q = q * x2 + VC_ERF_B4; q = q * x2 + VC_ERF_B2; q = q * x2 + VC_ERF_B0;
    return x * p / q;
}

#define VC_EXP_POLY(FMA, SET, r, out)                                                     \
    do {                                                                                  \
        out = SET(1.9875691500E-4f);                                                      \
        out = FMA(out, r, SET(1.3981999507E-3f));                                         \
        out = FMA(out, r, SET(8.3334519073E-3f));                                         \
        out = FMA(out, r, SET(4.1665795894E-2f));                                         \
        out = FMA(out, r, SET(1.6666665459E-1f));                                         \
        out = FMA(out, r, SET(5.0000001201E-1f));                                         \
    } while (0)

__attribute__((target("avx512f"))) static inline __m512 vc_exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(VC_EXP_LO_512)), _mm512_set1_ps(VC_EXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p;
    VC_EXP_POLY(_mm512_fmadd_ps, _mm512_set1_ps, r, p);
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
    return _mm512_scalef_ps(y, n);
}

__attribute__((target("avx2,fma"))) static inline __m256 vc_exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(VC_EXP_LO_256)), _mm256_set1_ps(VC_EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p;
    VC_EXP_POLY(_mm256_fmadd_ps, _mm256_set1_ps, r, p);
    __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

#define VC_ERF_BODY(FMA, SET, MUL, MIN, MAX, DIV, x, out)                                 \
    do {                                                                                  \
        __typeof__(x) xc = MIN(MAX(x, SET(-4.f)), SET(4.f));                              \
        __typeof__(x) x2 = MUL(xc, xc);                                                   \
        __typeof__(x) p = SET(VC_ERF_A13);                                                \
        p = FMA(p, x2, SET(VC_ERF_A11)); p = FMA(p, x2, SET(VC_ERF_A9));                  \
        p = FMA(p, x2, SET(VC_ERF_A7)); p = FMA(p, x2, SET(VC_ERF_A5));                   \
        p = FMA(p, x2, SET(VC_ERF_A3)); p = FMA(p, x2, SET(VC_ERF_A1));                   \
        __typeof__(x) q = SET(VC_ERF_B8);                                                 \
        q = FMA(q, x2, SET(VC_ERF_B6)); q = FMA(q, x2, SET(VC_ERF_B4));                   \
        q = FMA(q, x2, SET(VC_ERF_B2)); q = FMA(q, x2, SET(VC_ERF_B0));                   \
        out = DIV(MUL(xc, p), q);                                                         \
    } while (0)

__attribute__((target("avx512f"))) static inline __m512 vc_erf512(__m512 x) {
    __m512 out;
    VC_ERF_BODY(_mm512_fmadd_ps, _mm512_set1_ps, _mm512_mul_ps, _mm512_min_ps, _mm512_max_ps, _mm512_div_ps,
                x, out);
    return out;
}

__attribute__((target("avx2,fma"))) static inline __m256 vc_erf256(__m256 x) {
    __m256 out;
    VC_ERF_BODY(_mm256_fmadd_ps, _mm256_set1_ps, _mm256_mul_ps, _mm256_min_ps, _mm256_max_ps, _mm256_div_ps,
                x, out);
    return out;
}

#endif
