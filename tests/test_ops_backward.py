"""Backward kernels against torch autograd (float32 on both sides): linear, layer norm, the
activations, softmax, attention, cross-entropy; dropout and drop path (mask consistency, keep
rate, seeds, thread-count independence); accumulation semantics; errors on bad input.
Convolutional-model ops are in test_ops_backward_conv.py."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import visionc
from visionc import ops
from helpers import assert_close

rng = np.random.default_rng(7)

# Tolerances, with the reason for each. Gradients are compared element-wise with a relative
# tolerance and an absolute floor proportional to the tensor's largest value: sums of many
# terms of both signs (dw, db, dx of norms) cancel, so small elements carry the rounding error
# of the large terms that produced them.
GRAD_RTOL = 1e-4        # the bar: 1e-4 relative
GRAD_FLOOR = 2e-6       # x max|ref|: fp32 GEMM / reduction order differences (a few ulp x sqrt(K))
ACT_ATOL = 2e-6         # x max|dout|: f' is O(1); vmath erf is 4e-7 absolute, and torch's own tanh-GELU
                        # gradient is off by up to 1e-6 where tanh rounds to +-1 (ours is closer to fp64)
LOSS_RTOL = 1e-6        # loss reduced in double; torch reduces in float


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def t(a, grad=True):
    return torch.from_numpy(np.array(a)).requires_grad_(grad)


def check(name, got, want, rtol=GRAD_RTOL, floor=GRAD_FLOOR):
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    scale = float(np.abs(want).max()) if want.size else 0.0
    return assert_close(name, got, want, floor * max(scale, 1e-30), rtol)


def check_doubled(name, acc, once):
    """A second accumulating call doubles a parameter gradient. Not bit-exactly: BLAS folds the
    existing value into its FMA chain (C = A.B + C), so the sum rounds differently."""
    assert_close(f"{name} accumulated twice", acc, 2 * once, 1e-6 * float(np.abs(once).max()), 1e-5)


# ---- linear ----

@pytest.mark.parametrize("xshape,N", [((1, 1), 1), ((3, 7), 5), ((2, 17), 33), ((2, 5, 17), 9), ((197, 192), 192),
                                      ((4, 49, 96), 384)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_backward(xshape, N, bias):
    K = xshape[-1]
    x, w, b = randn(*xshape), randn(N, K), randn(N)
    g = randn(*xshape[:-1], N)
    xt, wt, bt = t(x), t(w), t(b)
    F.linear(xt, wt, bt if bias else None).backward(torch.from_numpy(g))
    dx, dw, db = ops.linear_backward(x, w, g, bias=bias)
    check("linear dx", dx, xt.grad)
    check("linear dw", dw, wt.grad)
    if bias:
        check("linear db", db, bt.grad)
    else:
        assert db is None


@pytest.mark.parametrize("M,N,K", [(3, 5, 7), (2, 33, 17), (64, 48, 80)])
def test_linear_backward_in_out_layout(M, N, K):
    x, w, g = randn(M, K), randn(K, N), randn(M, N)  # GPT-2 Conv1D: out = x @ w
    xt, wt = t(x), t(w)
    (xt @ wt).backward(torch.from_numpy(g))
    dx, dw, db = ops.linear_backward(x, w, g, weight_layout="in_out")
    check("linear kn dx", dx, xt.grad)
    check("linear kn dw", dw, wt.grad)
    check("linear kn db", db, torch.from_numpy(g.sum(0)))


def test_linear_backward_accumulates_parameters_not_inputs():
    x, w, g = randn(6, 19), randn(11, 19), randn(6, 11)
    dx1, dw, db = ops.linear_backward(x, w, g)
    dw_once, db_once = dw.copy(), db.copy()
    dx2, dw2, db2 = ops.linear_backward(x, w, g, dw=dw, db=db)
    assert dw2 is dw and db2 is db  # accumulated in place into the caller's arrays
    check_doubled("dw", dw, dw_once)
    check_doubled("db", db, db_once)
    np.testing.assert_array_equal(dx1, dx2)  # activation gradients are assigned, not summed
    dx3, _, _ = ops.linear_backward(x, w, g, need_input_grad=False)
    assert dx3 is None


# ---- layer norm ----

LN_SHAPES = [(1, 1), (3, 7), (2, 17), (5, 16), (2, 5, 33), (4, 197, 192), (3, 1000)]


@pytest.mark.parametrize("shape", LN_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_train_and_backward(shape, affine):
    C, eps = shape[-1], 1e-6
    x = randn(*shape, scale=3.0) + 5.0  # offset mean: checks the two-pass statistics
    w, b = (randn(C), randn(C)) if affine else (None, None)
    g = randn(*shape)
    y, mean, rstd = ops.layer_norm_forward_train(x, w, b, eps)
    assert mean.shape == shape[:-1] and rstd.shape == shape[:-1]
    xt = t(x)
    wt, bt = (t(w), t(b)) if affine else (None, None)
    yt = F.layer_norm(xt, (C,), wt, bt, eps)
    yt.backward(torch.from_numpy(g))
    check("layer_norm train y", y, yt, 1e-5, 2e-6)
    if affine:
        np.testing.assert_array_equal(y, ops.layer_norm(x, w, b, eps))  # train output == inference output
    xd = torch.from_numpy(x).double()
    # float statistics, as the inference forward computes them: a sum of C floats is good to
    # ~C ulp in the worst (unvectorised) order
    check("layer_norm mean", mean, xd.mean(-1), 1e-5, 1e-7)
    check("layer_norm rstd", rstd, 1 / torch.sqrt(xd.var(-1, unbiased=False) + eps), 1e-5, 1e-6)
    dx, dw, db = ops.layer_norm_backward(x, w, mean, rstd, g)
    check("layer_norm dx", dx, xt.grad)
    if affine and C == 1:  # xhat is identically 0: torch's dw is rounding noise around 0
        assert_close("layer_norm dw (C=1)", dw, wt.grad.numpy(), 1e-4)
        check("layer_norm db", db, bt.grad)
    elif affine:
        check("layer_norm dw", dw, wt.grad)
        check("layer_norm db", db, bt.grad)
    else:
        assert dw is None and db is None


def test_layer_norm_backward_accumulates():
    x, w, b, g = randn(7, 37), randn(37), randn(37), randn(7, 37)
    _, mean, rstd = ops.layer_norm_forward_train(x, w, b, 1e-5)
    dx1, dw, db = ops.layer_norm_backward(x, w, mean, rstd, g)
    dw1, db1 = dw.copy(), db.copy()
    dx2, _, _ = ops.layer_norm_backward(x, w, mean, rstd, g, dw=dw, db=db)
    check_doubled("dw", dw, dw1)
    check_doubled("db", db, db1)
    np.testing.assert_array_equal(dx1, dx2)


# ---- activations ----

ACT_SHAPES = [(1,), (7,), (3, 17), (5, 33), (197, 768), (40001,)]


@pytest.mark.parametrize("shape", ACT_SHAPES)
@pytest.mark.parametrize("kind", ["gelu", "gelu_tanh", "silu", "relu"])
def test_activation_backward(shape, kind):
    x, g = randn(*shape, scale=4.0), randn(*shape)
    if kind == "relu":
        x.flat[::5] = 0.0  # torch's relu gradient is 0 at exactly 0
    xt = t(x)
    ref = {"gelu": lambda v: F.gelu(v), "gelu_tanh": lambda v: F.gelu(v, approximate="tanh"), "silu": F.silu,
           "relu": F.relu}[kind]
    ref(xt).backward(torch.from_numpy(g))
    got = {"gelu": lambda: ops.gelu_backward(x, g), "gelu_tanh": lambda: ops.gelu_backward(x, g, "tanh"),
           "silu": lambda: ops.silu_backward(x, g), "relu": lambda: ops.relu_backward(x, g)}[kind]()
    assert_close(f"{kind} backward", got, xt.grad.numpy(), ACT_ATOL * float(np.abs(g).max()), GRAD_RTOL)


def test_activation_backward_extremes():
    x = np.array([-1e4, -90, -50, -10, -5, -1e-3, 0, 1e-3, 5, 10, 50, 90, 1e4] * 2, np.float32)
    g = np.ones_like(x)
    for kind, fn, ours in [("gelu", F.gelu, lambda: ops.gelu_backward(x, g)),
                           ("gelu_tanh", lambda v: F.gelu(v, approximate="tanh"), lambda: ops.gelu_backward(x, g, "tanh")),
                           ("silu", F.silu, lambda: ops.silu_backward(x, g))]:
        xt = t(x)
        fn(xt).backward(torch.from_numpy(g))
        got = ours()
        assert np.isfinite(got).all(), kind
        assert_close(f"{kind} backward extremes", got, xt.grad.numpy(), ACT_ATOL, GRAD_RTOL)


# ---- softmax and attention ----

@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 17), (4, 3, 197), (8, 1000)])
@pytest.mark.parametrize("scale", [1.0, 0.125])
def test_softmax_backward(shape, scale):
    x, g = randn(*shape, scale=3.0), randn(*shape)
    xt = t(x)
    yt = torch.softmax(xt * scale, -1)
    yt.backward(torch.from_numpy(g))
    check("softmax backward", ops.softmax_backward(yt.detach().numpy(), g, scale), xt.grad)


@pytest.mark.parametrize("B,T,H,D", [(1, 1, 1, 4), (2, 17, 3, 8), (3, 5, 2, 33), (2, 50, 4, 16), (1, 197, 3, 64)])
def test_attention_backward(B, T, H, D):
    q, k, v, g = (randn(B, T, H * D) for _ in range(4))
    out, probs = ops.attention(q, k, v, H)
    qt, kt, vt = t(q), t(k), t(v)

    def heads(a):
        return a.reshape(B, T, H, D).transpose(1, 2)

    p = torch.softmax(heads(qt) @ heads(kt).transpose(-1, -2) / np.sqrt(D), -1)
    o = (p @ heads(vt)).transpose(1, 2).reshape(B, T, H * D)
    o.backward(torch.from_numpy(g))
    check("attention probs (forward, as saved)", probs, p, 1e-4, 1e-6)
    dq, dk, dv = ops.attention_backward(q, k, v, probs, g, H)
    check("attention dq", dq, qt.grad)
    check("attention dk", dk, kt.grad)
    check("attention dv", dv, vt.grad)


# ---- cross-entropy ----

@pytest.mark.parametrize("M,C", [(1, 1), (3, 7), (8, 10), (5, 1000), (64, 37)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy(M, C, smoothing, ignore):
    z = randn(M, C, scale=3.0)
    y = rng.integers(0, C, M).astype(np.int64)
    if ignore and M > 1:
        y[::3] = -100
    zt = t(z)
    loss_t = F.cross_entropy(zt, torch.from_numpy(y), label_smoothing=smoothing, ignore_index=-100)
    loss_t.backward()
    loss, dz = ops.cross_entropy(z, y, label_smoothing=smoothing, ignore_index=-100)
    assert isinstance(loss, float)
    assert_close("cross_entropy loss", loss, loss_t.item(), 1e-7, LOSS_RTOL)
    check("cross_entropy dlogits", dz, zt.grad, GRAD_RTOL, 1e-6)


def test_cross_entropy_other_ignore_index_and_large_logits():
    z = np.array([[1e4, 0, -1e4], [0, 50, 51], [3, 2, 1], [88, 89, 90]], np.float32)
    y = np.array([0, 2, 7, 1], np.int64)  # 7 is the ignore index here, out of range but ignored
    zt = t(z)
    lt = F.cross_entropy(zt, torch.from_numpy(y), label_smoothing=0.2, ignore_index=7)
    lt.backward()
    loss, dz = ops.cross_entropy(z, y, label_smoothing=0.2, ignore_index=7)
    assert np.isfinite(loss) and np.isfinite(dz).all()
    assert_close("cross_entropy large loss", loss, lt.item(), 1e-6, LOSS_RTOL)
    check("cross_entropy large dlogits", dz, zt.grad, GRAD_RTOL, 1e-6)
    np.testing.assert_array_equal(dz[2], 0)  # ignored row


def test_cross_entropy_all_ignored_is_nan_like_torch():
    z, y = randn(3, 4), np.full(3, -100, np.int64)
    zt = t(z)
    lt = F.cross_entropy(zt, torch.from_numpy(y))
    lt.backward()
    loss, dz = ops.cross_entropy(z, y)
    assert np.isnan(loss) and np.isnan(lt.item())
    np.testing.assert_array_equal(dz, zt.grad.numpy())
    np.testing.assert_array_equal(dz, 0)


def test_cross_entropy_rejects_bad_labels():
    z = randn(4, 5)
    with pytest.raises(ValueError, match=r"label 5 at row 2 is out of range \[0, 5\)"):
        ops.cross_entropy(z, np.array([0, 1, 5, 2], np.int64))
    with pytest.raises(ValueError, match="label -1 at row 0"):
        ops.cross_entropy(z, np.array([-1, 1, 1, 2], np.int64))
    with pytest.raises(TypeError, match="integer"):
        ops.cross_entropy(z, np.array([0, 1, 1, 2], np.float32))
    with pytest.raises(ValueError, match="shape"):
        ops.cross_entropy(z, np.array([0, 1, 1], np.int64))
    with pytest.raises(ValueError, match="label_smoothing"):
        ops.cross_entropy(z, np.array([0, 1, 1, 2], np.int64), label_smoothing=1.5)
    # narrower integer labels are widened, not rejected
    l64, _ = ops.cross_entropy(z, np.array([0, 1, 4, 2], np.int64))
    l32, _ = ops.cross_entropy(z, np.array([0, 1, 4, 2], np.int32))
    assert l64 == l32


# ---- dropout and drop path ----

def mask_of(y):
    return y != 0


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_forward_backward_mask_and_rate(p):
    n = 200_003  # several OpenMP chunks, odd tail
    x = randn(n) + 10.0  # no zeros in x, so a zero in y means dropped
    g = randn(n)
    y = ops.dropout(x, p, seed=1234)
    keep = mask_of(y)
    # keep rate within 5 binomial standard deviations
    sd = np.sqrt(n * p * (1 - p))
    assert abs(keep.sum() - n * (1 - p)) < 5 * sd, (keep.sum(), n * (1 - p))
    scale = np.float32(1.0) / np.float32(1 - p)
    np.testing.assert_allclose(y[keep], x[keep] * scale, rtol=1e-6)
    # torch autograd of the same masked scaling gives the reference gradient
    xt = t(x)
    (xt * torch.from_numpy(keep.astype(np.float32)) * float(scale)).backward(torch.from_numpy(g))
    dx = ops.dropout_backward(g, p, seed=1234)
    check("dropout backward", dx, xt.grad, 1e-6, 0)
    assert np.array_equal(dx != 0, keep & (g != 0))  # the same mask regenerated from the seed


def test_dropout_reproducible_by_seed_and_thread_count():
    x = randn(100_001) + 10.0
    before = visionc.get_num_threads()
    try:
        visionc.set_num_threads(1)
        y1 = ops.dropout(x, 0.3, seed=42)
        visionc.set_num_threads(2)
        y2 = ops.dropout(x, 0.3, seed=42)
    finally:
        visionc.set_num_threads(before)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(ops.dropout(x, 0.3, seed=42), y1)  # reproducible
    assert (mask_of(ops.dropout(x, 0.3, seed=43)) != mask_of(y1)).mean() > 0.3  # a new seed, a new mask


def test_dropout_edge_probabilities():
    x = randn(1000) + 3.0
    np.testing.assert_array_equal(ops.dropout(x, 0.0, 5), x)
    np.testing.assert_array_equal(ops.dropout(x, 1.0, 5), np.zeros_like(x))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ops.dropout(x, 1.5, 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ops.dropout(x, -0.1, 5)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_drop_path(p):
    B = 4000
    x = randn(B, 3, 7) + 10.0
    g = randn(B, 3, 7)
    y = ops.drop_path(x, p, seed=99)
    kept = mask_of(y).reshape(B, -1)
    assert (kept.all(1) | ~kept.any(1)).all()  # whole samples kept or dropped
    keep = kept.all(1)
    sd = np.sqrt(B * p * (1 - p))
    assert abs(keep.sum() - B * (1 - p)) < 5 * sd
    # transformers' drop_path: x.div(keep_prob) * floor(keep_prob + rand)
    keep_prob = 1 - p
    xt = t(x)
    (xt.div(keep_prob) * torch.from_numpy(keep.astype(np.float32)).reshape(B, 1, 1)).backward(torch.from_numpy(g))
    want_y = x / np.float32(keep_prob) * keep[:, None, None]
    check("drop_path forward", y, torch.from_numpy(want_y.astype(np.float32)), 1e-6, 0)
    check("drop_path backward", ops.drop_path_backward(g, p, seed=99), xt.grad, 1e-6, 0)
    before = visionc.get_num_threads()
    try:
        visionc.set_num_threads(1)
        y1 = ops.drop_path(x, p, seed=99)
    finally:
        visionc.set_num_threads(before)
    np.testing.assert_array_equal(y, y1)


# ---- thread-count independence of the reductions ----

def test_reductions_do_not_depend_on_thread_count():
    """Bias/norm gradients and the loss are reduced by one writer per output element (or in
    fixed chunks), so 1 and 2 threads give bit-identical results."""
    x, w, b, g = randn(64, 200, scale=2.0), randn(200), randn(200), randn(64, 200)
    z, y = randn(300, 100, scale=3.0), rng.integers(0, 100, 300)
    before = visionc.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            visionc.set_num_threads(n)
            _, mean, rstd = ops.layer_norm_forward_train(x, w, b, 1e-5)
            ln = ops.layer_norm_backward(x, w, mean, rstd, g)
            ce = ops.cross_entropy(z, y, label_smoothing=0.1)
            results.append((ln, ce))
    finally:
        visionc.set_num_threads(before)
    (ln1, ce1), (ln2, ce2) = results
    for a, c in zip(ln1, ln2):
        np.testing.assert_array_equal(a, c)
    assert ce1[0] == ce2[0]
    np.testing.assert_array_equal(ce1[1], ce2[1])


# ---- gradient helpers ----

def test_add_into_and_scale():
    acc, x = randn(3, 5, 17), randn(3, 5, 17)
    want = acc + x
    out = ops.add_into(acc, x)
    assert out is acc
    np.testing.assert_array_equal(acc, want)
    np.testing.assert_array_equal(ops.scale(x, 0.25), x * np.float32(0.25))
    with pytest.raises(ValueError, match="shape"):
        ops.add_into(acc, randn(3, 5))
    with pytest.raises(TypeError, match="writeable"):
        ops.add_into(acc.astype(np.float64), x)


# ---- bad input ----

def test_backward_bad_input_raises_clear_errors():
    x, w = randn(4, 8), randn(6, 8)
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 6\), got \(4, 5\)"):
        ops.linear_backward(x, w, randn(4, 5))
    with pytest.raises(ValueError, match="weight must be"):
        ops.linear_backward(x, randn(6, 7), randn(4, 6))
    with pytest.raises(TypeError, match="float32"):
        ops.linear_backward(x.astype(np.float64), w, randn(4, 6))
    with pytest.raises(ValueError, match=r"dw must have shape \(6, 8\)"):
        ops.linear_backward(x, w, randn(4, 6), dw=np.zeros((8, 6), np.float32))
    with pytest.raises(TypeError, match="writeable"):
        ops.linear_backward(x, w, randn(4, 6), dw=np.zeros((6, 8), np.float64))
    _, mean, rstd = ops.layer_norm_forward_train(x, randn(8), randn(8), 1e-5)
    with pytest.raises(ValueError, match="rstd must have shape"):
        ops.layer_norm_backward(x, randn(8), mean, rstd[:3], randn(4, 8))
    with pytest.raises(ValueError, match="num_heads"):
        ops.attention_backward(randn(1, 3, 8), randn(1, 3, 8), randn(1, 3, 8), randn(1, 3, 3, 3), randn(1, 3, 8), 3)
    with pytest.raises(ValueError, match="probs must have shape"):
        ops.attention_backward(randn(1, 3, 8), randn(1, 3, 8), randn(1, 3, 8), randn(1, 2, 3, 4), randn(1, 3, 8), 2)
    with pytest.raises(ValueError, match="unknown activation"):
        ops._C.op_activation_backward(x, x, "tanh")
    with pytest.raises(ValueError, match="dout must have shape"):
        ops.gelu_backward(x, randn(4, 7))
