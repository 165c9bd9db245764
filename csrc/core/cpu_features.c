/* Run-time CPU feature detection. The package is built for baseline x86-64; kernels
 * with AVX2 / AVX-512 bodies are compiled with target attributes and chosen from these
 * flags, so one wheel runs everywhere and uses what the machine has. */
#include "vc.h"

static vc_cpu_features features;
static int detected;

const vc_cpu_features *vc_cpu(void) {
    if (!detected) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_cpu_init();
        features.avx2 = __builtin_cpu_supports("avx2");
        features.fma = __builtin_cpu_supports("fma");
        features.f16c = __builtin_cpu_supports("f16c");
        features.avx512f = __builtin_cpu_supports("avx512f");
        features.avx512bw = __builtin_cpu_supports("avx512bw");
        features.avx512vl = __builtin_cpu_supports("avx512vl");
        features.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
        features.avx512_vnni = __builtin_cpu_supports("avx512vnni");
        features.avx_vnni = __builtin_cpu_supports("avxvnni");
#endif
        detected = 1; /* benign race: every thread computes the same values */
    }
    return &features;
}
