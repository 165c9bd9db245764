"""The decoder kernels against PyTorch: linear on [in, out] weights (skinny and BLAS paths, with
and without the fused residual), the skinny path of linear on [out, in] weights (the LM head),
attention of query rows over per-row memories (KV cache, shared cross-attention K/V), and the
token + position embedding.

Tolerances: a float32 sum of K products taken in another order differs by a few ulp of the sum
of the |products| (not of the result, which cancellation can make small), so linear checks each
element against 1e-5 + 8 * 2^-24 * sum_k |x_k w_k| (observed: up to ~5 * 2^-24 of that sum at
K=3072, e.g. 3e-4 on an output of -4.6 whose products sum to ~2400 in absolute value). Attention
outputs are convex mixes of unit-scale values: atol 1e-5 + rtol 1e-5 (observed < 1e-6)."""
import numpy as np
import pytest
import torch

from helpers import assert_close
from visionc import _C, ops

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


# Rows cover the skinny kernels' register tiles (1..4 rows, 4-row blocks plus tails), their
# limits (64 rows) and the BLAS paths past them.
LINEAR_IO_CASES = [(M, N, K) for M in (1, 2, 3, 4, 5, 6, 7, 8, 13, 16, 17, 40, 64, 65) for N, K in ((100, 15), (2304, 768))]
LINEAR_IO_CASES += [(1, 1, 1), (3, 17, 33), (4, 65, 1), (6, 130, 3072)]


def assert_sum_close(name, got, want, abs_terms):
    """|got - want| <= 1e-5 + 8 * 2^-24 * (the sum of the absolute products), per element."""
    bound = 1e-5 + 8 * 2.0 ** -24 * abs_terms
    err = np.abs(got.astype(np.float64) - want)
    worst = np.unravel_index(np.argmax(err / bound), err.shape)
    print(f"{name}: max abs {err.max():.3g}, worst at {err[worst] / bound[worst]:.2f} of its bound")
    assert (err <= bound).all(), f"{name}: {int((err > bound).sum())} elements off, worst {got[worst]} vs {want[worst]}"


@pytest.mark.parametrize("M,N,K", LINEAR_IO_CASES)
def test_linear_io_matches_torch(M, N, K):
    x, w, b, r = randn(M, K), randn(K, N), randn(N), randn(M, N)
    tx, tw, tb, tr = map(torch.from_numpy, (x, w, b, r))
    terms = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64))
    assert_sum_close(f"linear_io {M}x{N}x{K}", ops.linear_io(x, w, b), (tx @ tw + tb).numpy(), terms + np.abs(b))
    assert_sum_close("linear_io no bias", ops.linear_io(x, w), (tx @ tw).numpy(), terms)
    assert_sum_close("linear_io + residual", ops.linear_io(x, w, b, r), (tr + (tx @ tw + tb)).numpy(),
                     terms + np.abs(b) + np.abs(r))


@pytest.mark.parametrize("M", [1, 2, 3, 4, 5, 8, 15, 33, 64, 65])
@pytest.mark.parametrize("N,K", [(7, 768), (1003, 768), (50, 19)])
def test_linear_skinny_rows_match_torch(M, N, K):
    """linear on nn.Linear weights [N, K]: up to 64 rows take the skinny kernel (LM head)."""
    x, w, b = randn(M, K), randn(N, K), randn(N)
    want = torch.nn.functional.linear(*map(torch.from_numpy, (x, w, b))).numpy()
    terms = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T + np.abs(b)
    assert_sum_close(f"linear {M}x{N}x{K}", ops.linear(x, w, b), want, terms)


def torch_attention(q, k, v, mem_index, H, scale, causal):
    """Reference: per row, softmax(scale * q k^T + causal mask) v, heads split from C."""
    R, Tq, C = q.shape
    D = C // H
    out = np.zeros_like(q)
    for r in range(R):
        kk, vv = torch.from_numpy(k[mem_index[r]]), torch.from_numpy(v[mem_index[r]])
        Tk = kk.shape[0]
        qh = torch.from_numpy(q[r]).view(Tq, H, D).transpose(0, 1)
        kh, vh = kk.view(Tk, H, D).transpose(0, 1), vv.view(Tk, H, D).transpose(0, 1)
        s = qh @ kh.transpose(-1, -2) * scale
        if causal:
            allowed = torch.arange(Tk)[None, :] <= (Tk - Tq + torch.arange(Tq))[:, None]
            s = s.masked_fill(~allowed, float("-inf"))
        out[r] = (torch.softmax(s, -1) @ vh).transpose(0, 1).reshape(Tq, C).numpy()
    return out


@pytest.mark.parametrize("R,Tq,Tk,H,C,n_mem", [(1, 1, 1, 1, 4, 1), (3, 1, 17, 2, 32, 3), (5, 1, 197, 12, 768, 2),
                                               (2, 7, 7, 4, 64, 2), (4, 3, 10, 2, 48, 1), (6, 1, 33, 3, 24, 2)])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_kv_matches_torch(R, Tq, Tk, H, C, n_mem, causal):
    """Rows share memories (beams of one image) through mem_index; separate K / V arrays are
    the self-attention cache layout."""
    q, k, v = randn(R, Tq, C), randn(n_mem, Tk, C), randn(n_mem, Tk, C)
    idx = rng.integers(0, n_mem, R).astype(np.int32)
    scale = (C // H) ** -0.5 * 0.7
    got = ops.attention_kv(q, k, v, idx, H, scale, causal)
    assert_close(f"attention_kv R{R} Tq{Tq} Tk{Tk} causal={causal}", got,
                 torch_attention(q, k, v, idx, H, scale, causal), 1e-5, 1e-5)


def test_attention_kv_packed_keys_values():
    """The cross-attention layout: one (n_mem, Tk, 2C) array, keys | values per token."""
    R, Tq, Tk, H, C = 4, 2, 9, 2, 16
    q, kv = randn(R, Tq, C), randn(2, Tk, 2 * C)
    idx = np.array([0, 0, 1, 1], np.int32)
    k, v = np.ascontiguousarray(kv[..., :C]), np.ascontiguousarray(kv[..., C:])
    assert_close("attention_kv packed", ops.attention_kv(q, kv, None, idx, H),
                 torch_attention(q, k, v, idx, H, (C // H) ** -0.5, False), 1e-5, 1e-5)


def test_attention_kv_rejects_bad_arguments():
    q, k = randn(2, 1, 8), randn(1, 4, 8)
    with pytest.raises(ValueError, match="mem_index"):
        ops.attention_kv(q, k, k, np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="Tq <= Tk"):
        ops.attention_kv(randn(1, 5, 8), k, k, np.array([0]), 2, causal=True)
    with pytest.raises(ValueError, match="num_heads"):
        ops.attention_kv(q, k, k, np.array([0, 0]), 3)


@pytest.mark.parametrize("R,T,pos0", [(1, 1, 0), (3, 5, 0), (2, 1, 7)])
def test_token_embed_matches_torch(R, T, pos0):
    wte, wpe = randn(50, 24), randn(16, 24)
    ids = rng.integers(0, 50, (R, T))
    want = (torch.nn.functional.embedding(torch.from_numpy(ids), torch.from_numpy(wte))
            + torch.from_numpy(wpe[pos0:pos0 + T])).numpy()
    assert_close("token_embed", ops.token_embed(wte, wpe, ids, pos0), want, 1e-6)


def test_token_embed_rejects_bad_ids():
    wte, wpe = randn(50, 8), randn(4, 8)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ops.token_embed(wte, wpe, np.array([[50]]))
    with pytest.raises(ValueError, match="pos0"):
        ops.token_embed(wte, wpe, np.array([[1, 2]]), 3)


def test_linear_io_rejects_bad_shapes():
    with pytest.raises(ValueError, match="weight must be"):
        _C.op_linear_io(randn(2, 3), randn(4, 5))
    with pytest.raises(ValueError, match="residual"):
        _C.op_linear_io(randn(2, 3), randn(3, 5), None, randn(2, 4))
