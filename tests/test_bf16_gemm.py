"""bf16 GEMM (bf16 inputs, fp32 accumulation) parity with PyTorch, on the AVX512_BF16 kernel
and on the plain-C fallback.

Tolerances, with |A||B| the elementwise product of absolute values (the condition of each dot
product) and u = 2^-24 (fp32 unit roundoff):
  vs torch on the bf16-rounded inputs (products exact in fp32, so only the order of the fp32
  additions differs): |diff| <= 2 K u (|A||B|)            (first-order bound for two sums)
  vs the fp32 GEMM of the unrounded inputs (each input off by <= 2^-8 relative):
  |diff| <= (2^-7 + 2^-16 + 2 K u) (|A||B|)."""
import sys

import numpy as np
import pytest
import torch

import visionc
from visionc import ops

torch.set_num_threads(2)
U = 2.0 ** -24
NATIVE = visionc._C.bf16_native()


@pytest.fixture(params=["native", "fallback"])
def path(request):
    if request.param == "native" and not NATIVE:
        pytest.skip("CPU has no AVX512_BF16")
    visionc._C.bf16_set_native(request.param == "native")
    yield request.param
    visionc._C.bf16_set_native(True)


def _rb(x):
    return torch.from_numpy(np.ascontiguousarray(x)).bfloat16().float()


def _check(name, got, a_op, b_op, beta_term=None):
    """a_op [M,K], b_op [K,N] as float32 arrays (already transposed as the op reads them)."""
    K = a_op.shape[1]
    cond = np.abs(a_op).astype(np.float64) @ np.abs(b_op).astype(np.float64)
    extra = 0.0 if beta_term is None else beta_term
    ref_bf = (_rb(a_op) @ _rb(b_op)).numpy().astype(np.float64) + extra  # torch: bf16 inputs, fp32 sums
    ref_32 = a_op.astype(np.float64) @ b_op.astype(np.float64) + extra
    slack = 1e-30 + 2 * U * np.abs(extra)
    err_bf = np.abs(got - ref_bf)
    bound_bf = 2 * K * U * cond + slack
    assert (err_bf <= bound_bf).all(), f"{name}: vs torch bf16 max err {err_bf.max():.3g}, worst ratio " \
                                       f"{(err_bf / bound_bf).max():.3g}"
    err_32 = np.abs(got - ref_32)
    bound_32 = (2.0 ** -7 + 2.0 ** -16 + 2 * K * U) * cond + slack
    assert (err_32 <= bound_32).all(), f"{name}: vs fp32 worst ratio {(err_32 / bound_32).max():.3g}"
    print(f"{name}: vs torch-bf16 max {err_bf.max():.2g} ({(err_bf / bound_bf).max():.2g} of bound), "
          f"vs fp32 max {err_32.max():.2g} ({(err_32 / bound_32).max():.2g} of bound)", file=sys.stderr)


# N covers last column panels of each kernel width: 1, 2 and 3 vectors of 16 (panels are 48 wide)
SHAPES = [(1, 1, 1), (3, 5, 2), (7, 47, 9), (8, 48, 256), (9, 49, 257), (11, 68, 33), (33, 100, 300),
          (130, 97, 517)]


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("ta,tb", [(0, 1), (0, 0), (1, 0), (1, 1)])
def test_gemm_variants(path, M, N, K, ta, tb):
    rng = np.random.default_rng(M * 1000 + N + K)
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    got = ops.gemm_bf16(a, b, trans_a=bool(ta), trans_b=bool(tb))
    assert got.shape == (M, N) and got.dtype == np.float32
    _check(f"{path} ta={ta} tb={tb} {M}x{N}x{K}", got.astype(np.float64), a.T if ta else a, b.T if tb else b)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_gemm_beta(path, beta):
    rng = np.random.default_rng(1)
    M, N, K = 37, 130, 700  # K > one k-block: later blocks add into c
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    c0 = rng.standard_normal((M, N), dtype=np.float32)
    c = c0.copy()
    out = ops.gemm_bf16(a, b, c=c, beta=beta)
    assert out is c
    _check(f"{path} beta={beta}", c.astype(np.float64), a, b, beta_term=beta * c0.astype(np.float64))


def test_linear_bf16(path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 197, 192), dtype=np.float32)
    w = (rng.standard_normal((576, 192)) * 0.05).astype(np.float32)
    b = rng.standard_normal(576, dtype=np.float32)
    got = ops.linear(x, w, b, dtype="bf16")
    assert got.shape == (2, 197, 576)
    _check(f"{path} linear", got.reshape(-1, 576).astype(np.float64) - b, x.reshape(-1, 192), w.T)
    # torch's own bf16 linear (bf16 output) is within one bf16 rounding of ours
    tref = torch.nn.functional.linear(torch.from_numpy(x).bfloat16(), torch.from_numpy(w).bfloat16(),
                                      torch.from_numpy(b).bfloat16()).float().numpy()
    assert np.abs(got - tref).max() <= 2.0 ** -7 * np.abs(tref).max()


def test_rounding_matches_torch(path):
    """A K=1 product with 1.0 returns bf16(x): ties to even, overflow to inf, NaN."""
    v = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 3.0000001, 65504.0, 3.3895e38, 3.4e38, np.inf,
                  -np.inf, 0.0, -0.0, 1e-30, 0.1, 2 ** -126], np.float32)
    v = np.concatenate([v, np.random.default_rng(3).standard_normal(1000).astype(np.float32) * 100])
    got = ops.gemm_bf16(v[:, None], np.ones((1, 1), np.float32))[:, 0]
    want = torch.from_numpy(v).bfloat16().float().numpy()
    np.testing.assert_array_equal(got, want)
    nan = ops.gemm_bf16(np.array([[np.nan]], np.float32), np.ones((1, 1), np.float32))
    assert np.isnan(nan).all()


def test_threads_bit_identical():
    """Each element's sum runs in the same order whatever the thread split."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((300, 400), dtype=np.float32)
    w = rng.standard_normal((500, 400), dtype=np.float32)
    n0 = visionc.get_num_threads()
    try:
        visionc.set_num_threads(1)
        one = ops.linear(a, w, dtype="bf16")
        visionc.set_num_threads(2)
        two = ops.linear(a, w, dtype="bf16")
    finally:
        visionc.set_num_threads(n0)
    np.testing.assert_array_equal(one, two)


def test_native_matches_fallback():
    if not NATIVE:
        pytest.skip("CPU has no AVX512_BF16")
    rng = np.random.default_rng(5)
    a = rng.standard_normal((100, 300), dtype=np.float32)
    w = rng.standard_normal((70, 300), dtype=np.float32)
    nat = ops.linear(a, w, dtype="bf16")
    visionc._C.bf16_set_native(False)
    try:
        ref = ops.linear(a, w, dtype="bf16")
    finally:
        visionc._C.bf16_set_native(True)
    cond = np.abs(a) @ np.abs(w).T
    assert (np.abs(nat - ref) <= 2 * 300 * U * cond).all()


def test_errors():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError):
        ops.gemm_bf16(a, np.zeros((5, 6), np.float32))
    with pytest.raises(ValueError):
        ops.gemm_bf16(a, np.zeros((4, 6), np.float32), beta=1.0)  # beta without c
    with pytest.raises(ValueError):
        ops.gemm_bf16(a, np.zeros((4, 6), np.float32), c=np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError):
        ops.linear(a, np.zeros((6, 5), np.float32), dtype="bf16")
    with pytest.raises(ValueError):
        ops.linear(a, np.zeros((6, 4), np.float32), dtype="fp16")
    assert ops.gemm_bf16(np.zeros((2, 0), np.float32), np.zeros((0, 3), np.float32)).tolist() == [[0.0] * 3] * 2
