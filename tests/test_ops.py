"""Each CPU kernel against its PyTorch reference, on random inputs of awkward sizes
(tails that are not multiples of the vector width, single rows, large rows)."""
import numpy as np
import pytest
import torch

from visionc import ops
from helpers import assert_close

rng = np.random.default_rng(0)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


SIZES = [(1, 1), (3, 7), (5, 16), (2, 17), (4, 33), (197, 768), (8, 1000)]


@pytest.mark.parametrize("shape", SIZES)
def test_gelu_exact(shape):
    x = randn(*shape, scale=4.0)
    # erf approximation: 4.2e-7 absolute on erf, times |x|/2 on GELU
    assert_close("gelu", ops.gelu(x), torch.nn.functional.gelu(torch.from_numpy(x)).numpy(), 2e-6, 1e-6)


def test_gelu_extremes():
    x = np.array([-1e4, -50, -10, -5, -1e-3, 0, 1e-3, 5, 10, 50, 1e4], np.float32)
    assert_close("gelu extremes", ops.gelu(x), torch.nn.functional.gelu(torch.from_numpy(x)).numpy(), 2e-6, 1e-6)


@pytest.mark.parametrize("shape", SIZES)
def test_gelu_tanh(shape):
    x = randn(*shape, scale=4.0)
    want = torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy()
    assert_close("gelu_tanh", ops.gelu(x, approximate="tanh"), want, 2e-6, 1e-6)


@pytest.mark.parametrize("shape", SIZES)
def test_silu(shape):
    x = randn(*shape, scale=6.0)
    assert_close("silu", ops.silu(x), torch.nn.functional.silu(torch.from_numpy(x)).numpy(), 2e-6, 1e-6)


@pytest.mark.parametrize("shape", SIZES + [(2, 3, 197)])
@pytest.mark.parametrize("scale", [1.0, 0.125])
def test_softmax(shape, scale):
    x = randn(*shape, scale=5.0)
    want = torch.softmax(torch.from_numpy(x) * scale, dim=-1).numpy()
    assert_close("softmax", ops.softmax(x, scale), want, 1e-6, 1e-5)


def test_softmax_large_logits_are_stable():
    x = np.array([[1e4, 1e4 - 1, -1e4, 0]], np.float32)
    want = torch.softmax(torch.from_numpy(x), -1).numpy()
    assert_close("softmax large", ops.softmax(x), want, 1e-7)


@pytest.mark.parametrize("shape", SIZES + [(2, 5, 192)])
@pytest.mark.parametrize("eps", [1e-12, 1e-6, 1e-5])
def test_layer_norm(shape, eps):
    x = randn(*shape, scale=3.0) + 10.0  # an offset mean tests the two-pass variance
    C = shape[-1]
    w, b = randn(C), randn(C)
    want = torch.nn.functional.layer_norm(torch.from_numpy(x), (C,), torch.from_numpy(w), torch.from_numpy(b),
                                          eps).numpy()
    assert_close("layer_norm", ops.layer_norm(x, w, b, eps), want, 2e-5, 1e-5)


@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (3, 5, 7), (197, 768, 768), (16, 1000, 192), (64, 48, 3072),
                                   (2, 33, 17)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(M, N, K, bias):
    x, w = randn(M, K), randn(N, K)
    b = randn(N) if bias else None
    want = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w),
                                      torch.from_numpy(b) if bias else None).numpy()
    # fp32 dot products of length K: error grows like sqrt(K) ulp
    assert_close("linear", ops.linear(x, w, b), want, 1e-5 * np.sqrt(K), 1e-5)


def test_linear_batched_leading_dims():
    x, w, b = randn(2, 3, 10), randn(4, 10), randn(4)
    assert ops.linear(x, w, b).shape == (2, 3, 4)
    assert_close("linear 3-d", ops.linear(x, w, b), x @ w.T + b, 1e-5)


@pytest.mark.parametrize("B,T,H,D", [(1, 1, 1, 8), (2, 5, 3, 4), (1, 197, 12, 64), (4, 50, 3, 64), (3, 17, 2, 7)])
def test_attention(B, T, H, D):
    q, k, v = randn(B, T, H * D), randn(B, T, H * D), randn(B, T, H * D)
    out, probs = ops.attention(q, k, v, H)
    tq, tk, tv = (torch.from_numpy(a).view(B, T, H, D).transpose(1, 2) for a in (q, k, v))
    s = (tq @ tk.transpose(-1, -2)) / np.sqrt(D)
    p = torch.softmax(s, -1)
    want = (p @ tv).transpose(1, 2).reshape(B, T, H * D).numpy()
    assert_close("attention probs", probs, p.numpy(), 1e-6, 1e-5)
    assert_close("attention out", out, want, 1e-5, 1e-5)


@pytest.mark.parametrize("B,C,H,W,P,Cout", [(1, 3, 16, 16, 16, 8), (2, 3, 32, 48, 8, 5), (1, 4, 30, 30, 6, 7),
                                            (2, 3, 35, 33, 8, 4)])
def test_patch_embed(B, C, H, W, P, Cout):
    px, w, b = randn(B, C, H, W), randn(Cout, C, P, P), randn(Cout)
    want = torch.nn.functional.conv2d(torch.from_numpy(px), torch.from_numpy(w), torch.from_numpy(b), stride=P)
    want = want.flatten(2).transpose(1, 2).numpy()
    assert_close("patch_embed", ops.patch_embed(px, w, b), want, 1e-5 * np.sqrt(C * P * P), 1e-5)


def test_ops_reject_bad_input():
    with pytest.raises(TypeError, match="float32"):
        ops.gelu(np.zeros(3, np.float64))
    with pytest.raises(ValueError, match="weight"):
        ops.linear(randn(2, 3), randn(4, 5))
    with pytest.raises(ValueError, match="weight and bias"):
        ops.layer_norm(randn(2, 3), randn(4), randn(4))
    with pytest.raises(ValueError, match="num_heads"):
        ops.attention(randn(1, 2, 6), randn(1, 2, 6), randn(1, 2, 6), 4)
    with pytest.raises(ValueError):
        ops.gelu(randn(2), approximate="fast")
