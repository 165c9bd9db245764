/* OpenBLAS from the scipy-openblas32 wheel: its symbols carry a scipy_ prefix. */
#ifndef VC_BLAS_H
#define VC_BLAS_H

#include <cblas.h>

#define vc_sgemm scipy_cblas_sgemm
#define vc_sgemm_batch_strided scipy_cblas_sgemm_batch_strided

static inline void vc_blas_set_num_threads(int n) { scipy_openblas_set_num_threads(n); }

#endif
