"""fp32 GEMM (vc_sgemm): visionc's AVX-512 kernel against a float64 reference, against OpenBLAS,
and end to end (models give the same outputs with VISIONC_GEMM=openblas).

Two kinds of check, with |A||B| the elementwise product of absolute values (each dot product's
sum of |a_ik b_kj|) and u = 2^-24 (fp32 unit roundoff):
  exact     small-integer inputs, alpha and beta powers of two: every product and partial sum
            is an integer below 2^24, so fp32 computes it exactly in any order and the result
            must EQUAL the float64 reference. This catches any element read from, or written to,
            the wrong place, down to one term of one dot product.
  rounding  random normal inputs: |got - ref| <= (K + 2) u (|alpha| |A||B| + |beta| |C|), the
            worst-case bound for an fp32 dot product summed in any order (K additions, the
            alpha scaling and the beta term), so it cannot fail by bad luck."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import assert_close, subprocess_env
from visionc import _C

U = 2.0 ** -24
AVX512 = _C.cpu_features()["avx512f"]
BACKENDS = ["avx512", "auto", "openblas"] if AVX512 else ["auto", "openblas"]
TRANS = [(False, False), (False, True), (True, False), (True, True)]

# Every edge of the 14 x 32 register tile, of the 16-wide vectors and transposes in packing,
# and of the blocks (K 768, M 210, N 1024, B packed 256 columns at a time): 1, primes, one
# under/over a tile, K past one and two K blocks, M and N past one block; c up to 256 columns
# wide (a read in place) and wider (a packed).
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (2, 3, 1), (13, 31, 17), (14, 32, 16), (15, 33, 257), (28, 64, 256),
          (29, 17, 300), (97, 101, 103), (197, 64, 197), (64, 197, 64), (3, 100, 1600), (30, 300, 800),
          (130, 48, 40), (281, 70, 33), (600, 41, 20), (17, 1100, 9), (250, 257, 50), (43, 290, 771)]


def _operands(rng, M, N, K, ta, tb, integer, pad=0):
    """op(a) [M,K] and op(b) [K,N] as the stored arrays (transposed when the flag is set), each a
    view of a wider array when pad > 0, so its leading dimension exceeds its row length."""
    def make(rows, cols):
        full = (rng.integers(-4, 5, (rows, cols + pad)) if integer else rng.standard_normal((rows, cols + pad)))
        return full.astype(np.float32)[:, :cols]
    a = make(K, M) if ta else make(M, K)
    b = make(N, K) if tb else make(K, N)
    return a, b


def _ops(a, b, ta, tb):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64.T if ta else a64), (b64.T if tb else b64)


def _reference(a, b, ta, tb, alpha, beta, c0):
    a_op, b_op = _ops(a, b, ta, tb)
    ref = alpha * (a_op @ b_op)
    return ref if beta == 0 else ref + beta * c0.astype(np.float64)


def _check_bound(name, got, a, b, ta, tb, alpha, beta, c0):
    a_op, b_op = _ops(a, b, ta, tb)
    K = a_op.shape[1]
    ref = _reference(a, b, ta, tb, alpha, beta, c0)
    cond = abs(alpha) * (np.abs(a_op) @ np.abs(b_op))
    if beta != 0:
        cond = cond + abs(beta) * np.abs(c0.astype(np.float64))
    bound = (K + 2) * U * cond + 1e-38
    err = np.abs(got.astype(np.float64) - ref)
    ratio = float((err / bound).max()) if err.size else 0.0
    bad = err > bound
    assert not bad.any(), (f"{name}: {int(bad.sum())} elements past (K+2)u|A||B| (worst {ratio:.3g} of the "
                           f"bound); first at {tuple(np.argwhere(bad)[0])}")
    print(f"{name}: max err {err.max() if err.size else 0:.3g}, worst {ratio:.3g} of the (K+2)u bound",
          file=sys.stderr)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_exact_on_integers(backend, ta, tb):
    rng = np.random.default_rng(1)
    for M, N, K in SHAPES:
        a, b = _operands(rng, M, N, K, ta, tb, integer=True)
        for alpha, beta in [(1.0, 0.0), (2.0, 1.0), (-0.5, 0.5), (1.0, -2.0)]:
            c0 = rng.integers(-8, 9, (M, N)).astype(np.float32)
            c = c0.copy()
            got = _C.gemm_f32(a, b, ta, tb, c=c, alpha=alpha, beta=beta, backend=backend)
            assert got is c
            want = _reference(a, b, ta, tb, alpha, beta, c0)
            if not np.array_equal(got, want):
                idx = tuple(np.argwhere(got != want)[0])
                raise AssertionError(f"{backend} ta={ta} tb={tb} M,N,K={M},{N},{K} alpha={alpha} beta={beta}: "
                                     f"{int((got != want).sum())} of {got.size} differ, first {idx}: "
                                     f"{got[idx]} vs {want[idx]}")
    print(f"{backend} ta={ta} tb={tb}: {len(SHAPES)} shapes x 4 (alpha, beta) exact", file=sys.stderr)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_random_within_rounding_bound(backend, ta, tb):
    rng = np.random.default_rng(2)
    for M, N, K in SHAPES + [(197, 768, 768), (50, 96, 3136)]:
        a, b = _operands(rng, M, N, K, ta, tb, integer=False)
        got = _C.gemm_f32(a, b, ta, tb, backend=backend)
        _check_bound(f"{backend} {'T' if ta else 'N'}{'T' if tb else 'N'} {M}x{N}x{K}", got, a, b, ta, tb, 1.0,
                     0.0, None)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_leading_dimensions_past_the_row(backend, ta, tb):
    """lda, ldb, ldc larger than the rows: a, b are views of wider arrays, c a view whose columns
    past N hold sentinels that must survive."""
    rng = np.random.default_rng(3)
    for M, N, K in [(15, 33, 257), (29, 17, 300), (1, 5, 3), (40, 70, 19), (20, 270, 30)]:
        for pad in (1, 3, 16):
            a, b = _operands(rng, M, N, K, ta, tb, integer=False, pad=pad)
            assert a.strides[0] > a.shape[1] * 4 or a.shape[0] == 1
            wide = np.full((M, N + pad), 12345.0, np.float32)
            c = wide[:, :N]
            c[:] = rng.standard_normal((M, N))
            c0 = c.copy()
            _C.gemm_f32(a, b, ta, tb, c=c, alpha=0.75, beta=0.5, backend=backend)
            _check_bound(f"{backend} ld+{pad} {M}x{N}x{K}", c, a, b, ta, tb, 0.75, 0.5, c0)
            assert (wide[:, N:] == 12345.0).all(), "a write past column N of c"


@pytest.mark.parametrize("backend", BACKENDS)
def test_beta_zero_does_not_read_c(backend):
    rng = np.random.default_rng(4)
    for M, N, K in [(15, 33, 257), (197, 64, 197), (3, 2, 1)]:
        for ta, tb in TRANS:
            a, b = _operands(rng, M, N, K, ta, tb, integer=True)
            c = np.full((M, N), np.nan, np.float32)
            c[::2, ::3] = np.inf
            _C.gemm_f32(a, b, ta, tb, c=c, alpha=1.0, beta=0.0, backend=backend)
            assert np.array_equal(c, _reference(a, b, ta, tb, 1.0, 0.0, None)), (backend, M, N, K, ta, tb)
    # c=None: a fresh, uninitialised array, so garbage would show too
    a, b = _operands(rng, 29, 17, 300, False, True, integer=True)
    assert np.array_equal(_C.gemm_f32(a, b, False, True, backend=backend), _reference(a, b, 0, 1, 1.0, 0.0, None))


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_sizes(backend):
    """As cblas: M or N zero does nothing; K zero (an empty sum) leaves c = beta c."""
    rng = np.random.default_rng(5)
    for M, N, K in [(0, 5, 3), (4, 0, 3), (0, 0, 0), (4, 5, 0), (1, 1, 0)]:
        for ta, tb in TRANS:
            a, b = _operands(rng, M, N, K, ta, tb, integer=True)
            for beta in (0.0, 1.0, 0.5):
                c0 = rng.standard_normal((M, N)).astype(np.float32)
                c = c0.copy() if beta != 0 else np.full((M, N), np.nan, np.float32)
                _C.gemm_f32(a, b, ta, tb, c=c, alpha=2.0, beta=beta, backend=backend)
                want = np.zeros((M, N), np.float32) if beta == 0 else (beta * c0).astype(np.float32)
                assert np.array_equal(c, want), (backend, M, N, K, ta, tb, beta)
    assert _C.gemm_f32(np.zeros((0, 3), np.float32), np.zeros((3, 4), np.float32), backend=backend).shape == (0, 4)


def test_alpha_zero_reads_neither_operand():
    """Reference BLAS: alpha == 0 gives c = beta c without touching a or b (NaNs there stay out)."""
    if not AVX512:
        pytest.skip("the CPU has no AVX-512F: visionc's kernel is not built for it")
    a = np.full((6, 5), np.nan, np.float32)
    b = np.full((5, 7), np.nan, np.float32)
    c0 = np.arange(42, dtype=np.float32).reshape(6, 7)
    for beta in (0.0, 1.0, 0.5):
        c = c0.copy()
        _C.gemm_f32(a, b, c=c, alpha=0.0, beta=beta, backend="avx512")
        assert np.array_equal(c, beta * c0), beta


@pytest.mark.parametrize("ta,tb", TRANS)
def test_avx512_agrees_with_openblas(ta, tb):
    if not AVX512:
        pytest.skip("the CPU has no AVX-512F: visionc's kernel is not built for it")
    rng = np.random.default_rng(6)
    for M, N, K in [(197, 768, 64), (64, 197, 197), (300, 130, 1000)]:
        a, b = _operands(rng, M, N, K, ta, tb, integer=False)
        ours = _C.gemm_f32(a, b, ta, tb, backend="avx512")
        theirs = _C.gemm_f32(a, b, ta, tb, backend="openblas")
        a_op, b_op = _ops(a, b, ta, tb)
        scale = float((np.abs(a_op) @ np.abs(b_op)).max())
        assert_close(f"avx512 vs openblas {M}x{N}x{K}", ours, theirs, atol=2 * (K + 2) * U * scale)


@pytest.mark.parametrize("backend", ["auto", "openblas"])
def test_batch_strided(backend):
    rng = np.random.default_rng(7)
    for ta, tb in TRANS:
        M, N, K, count = 15, 33, 40, 3
        a = rng.integers(-4, 5, (count, K, M) if ta else (count, M, K)).astype(np.float32)
        b = rng.integers(-4, 5, (count, N, K) if tb else (count, K, N)).astype(np.float32)
        c0 = rng.integers(-4, 5, (count, M, N)).astype(np.float32)
        c = c0.copy()
        _C.gemm_f32_batch(a, b, ta, tb, c=c, alpha=2.0, beta=0.5, backend=backend)
        for i in range(count):
            assert np.array_equal(c[i], _reference(a[i], b[i], ta, tb, 2.0, 0.5, c0[i])), (backend, ta, tb, i)


def _child(code: str, gemm: str | None) -> str:
    env = subprocess_env()
    env.pop("VISIONC_GEMM", None)
    if gemm:
        env["VISIONC_GEMM"] = gemm
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_environment_variable_selects_openblas():
    code = "from visionc import _C; print(_C.gemm_f32_backend())"
    assert _child(code, "openblas") == "openblas"
    assert _child(code, None) == ("avx512" if AVX512 else "openblas")


def test_models_agree_with_openblas(tmp_path):
    """Logits of a ViT with ViT-Ti/16's widths (224 px, 197 tokens, heads of 64) and of a ConvNeXt,
    and a small ViT's training gradients (every GEMM shape and transpose the layers use, forward
    and backward), with visionc's kernel and with VISIONC_GEMM=openblas, each in its own
    process: within 1e-5."""
    if not AVX512:
        pytest.skip("the CPU has no AVX-512F: both runs would use OpenBLAS")
    import torch
    import transformers
    torch.manual_seed(0)
    transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=192, num_hidden_layers=2, num_attention_heads=3, intermediate_size=768, image_size=224,
        patch_size=16, num_labels=100)).save_pretrained(tmp_path / "vit_tiny")
    transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        depths=[1, 1, 2, 1], hidden_sizes=[16, 24, 40, 64], num_labels=10)).save_pretrained(tmp_path / "cnx")
    transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=32,
        patch_size=4, num_labels=5, initializer_range=0.1)).save_pretrained(tmp_path / "vit")
    code = f"""
        import numpy as np, visionc
        rng = np.random.default_rng(0)
        out = {{}}
        vit = visionc.AutoModelForImageClassification.from_pretrained({str(tmp_path / 'vit_tiny')!r})
        out['vit_tiny'] = vit(rng.standard_normal((2, 3, 224, 224)).astype(np.float32)).logits
        cnx = visionc.AutoModelForImageClassification.from_pretrained({str(tmp_path / 'cnx')!r})
        out['convnext'] = cnx(rng.standard_normal((2, 3, 64, 64)).astype(np.float32)).logits
        small = visionc.AutoModelForImageClassification.from_pretrained({str(tmp_path / 'vit')!r}).train()
        small(rng.standard_normal((4, 3, 32, 32)).astype(np.float32), labels=np.array([0, 1, 2, 3]))
        small.backward()
        for n, p in small.named_parameters():
            out['grad ' + n] = p.grad
        path = {str(tmp_path)!r} + '/' + visionc._C.gemm_f32_backend() + '.npz'
        np.savez(path, **out)
        print(path)
    """
    ours = np.load(_child(code, None))
    theirs = np.load(_child(code, "openblas"))
    assert set(ours.files) == set(theirs.files) and len(ours.files) > 3
    for name in ours.files:
        assert_close(f"{name}: avx512 vs openblas", ours[name], theirs[name], atol=1e-5)


def test_binding_rejects_bad_arguments():
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="backend"):
        _C.gemm_f32(a, b, backend="mkl")
    with pytest.raises(ValueError, match="inner dimensions"):
        _C.gemm_f32(a, b.T.copy())
    with pytest.raises(ValueError, match="beta needs"):
        _C.gemm_f32(a, b, beta=1.0)
    with pytest.raises(ValueError, match="c must be"):
        _C.gemm_f32(a, b, c=np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="writeable"):
        _C.gemm_f32(a, b, c=np.zeros((5, 3), np.float32).T)  # columns not contiguous
    with pytest.raises(TypeError, match="float32"):
        _C.gemm_f32(a.astype(np.float64), b)
