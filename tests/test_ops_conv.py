"""Convolutional kernels against PyTorch: every conv2d path (pointwise GEMM, depthwise 3x3/7x7
with stride and padding, general im2col with groups and dilation), LayerNorm2d, pooling,
bilinear resize and MobileViT's unfold/fold."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from visionc import ops
from helpers import assert_close

rng = np.random.default_rng(1)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


CONV_CASES = [
    # (B, Ci, H, W, Co, k, stride, pad, dil, groups)  -- path exercised
    (2, 16, 9, 11, 24, 1, 1, 0, 1, 1),     # pointwise GEMM
    (2, 48, 20, 21, 192, 1, 1, 0, 1, 1),   # pointwise, small-K direct kernel with row and column tails
    (1, 5, 30, 30, 3, 1, 1, 0, 1, 1),      # pointwise, fewer output rows than one register block
    (1, 160, 8, 8, 640, 1, 1, 0, 1, 1),    # pointwise, MobileViT conv_1x1_exp size
    (2, 12, 15, 13, 12, 3, 1, 1, 1, 12),   # depthwise 3x3
    (2, 12, 16, 16, 12, 3, 2, 1, 1, 12),   # depthwise 3x3 stride 2
    (1, 48, 56, 56, 48, 7, 1, 3, 1, 48),   # depthwise 7x7 (ConvNeXt)
    (2, 5, 10, 9, 5, 7, 1, 3, 1, 5),       # depthwise 7x7 on a map smaller than padding + kernel
    (2, 6, 13, 37, 6, 9, 1, 4, 1, 6),      # depthwise 9x9: two tap groups in the AVX-512 backward
    (1, 4, 11, 19, 4, 5, 1, 0, 1, 4),      # depthwise 5x5 unpadded: the backward pads dO by 4
    (1, 4, 9, 10, 4, 3, 1, 2, 1, 4),       # depthwise, padding k-1: the backward pads dO by 0
    (1, 3, 20, 21, 3, 17, 1, 8, 1, 3),     # depthwise 17x17: beyond the register-tiled backward
    (2, 3, 32, 32, 16, 3, 2, 1, 1, 1),     # general: MobileViT stem
    (1, 3, 35, 29, 48, 4, 4, 0, 1, 1),     # general: ConvNeXt stem (patchify)
    (2, 8, 14, 14, 16, 2, 2, 0, 1, 1),     # general: ConvNeXt downsample
    (2, 8, 12, 12, 6, 3, 1, 2, 2, 2),      # general: dilation + groups
    (1, 6, 7, 9, 9, 3, 2, 1, 1, 3),        # grouped, stride 2
    (1, 4, 5, 5, 4, 3, 1, 0, 1, 1),        # no padding
    (1, 4, 6, 6, 4, 1, 2, 0, 1, 1),        # 1x1 stride 2: general path
]


@pytest.mark.parametrize("B,Ci,H,W,Co,k,s,p,d,g", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(B, Ci, H, W, Co, k, s, p, d, g, bias):
    x, w = randn(B, Ci, H, W), randn(Co, Ci // g, k, k)
    b = randn(Co) if bias else None
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b) if bias else None, s, p, d,
                    g).numpy()
    got = ops.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    assert_close("conv2d", got, want, 1e-5 * np.sqrt(Ci // g * k * k), 1e-5)


def test_conv2d_rejects_bad_shapes():
    with pytest.raises(ValueError, match="conv2d"):
        ops.conv2d(randn(1, 4, 8, 8), randn(4, 3, 3, 3))
    with pytest.raises(ValueError, match="larger"):
        ops.conv2d(randn(1, 4, 2, 2), randn(4, 4, 5, 5))


@pytest.mark.parametrize("shape", [(1, 48, 56, 56), (2, 7, 3, 5), (3, 384, 1, 1), (1, 300, 17, 19)])
def test_layer_norm_2d(shape):
    x, w, b = randn(*shape) * 3 + 2, randn(shape[1]), randn(shape[1])
    t = torch.from_numpy(x).permute(0, 2, 3, 1)
    want = F.layer_norm(t, (shape[1],), torch.from_numpy(w), torch.from_numpy(b), 1e-6).permute(0, 3, 1, 2).numpy()
    assert_close("layernorm2d", ops.layer_norm_2d(x, w, b, 1e-6), want, 2e-5, 1e-5)


@pytest.mark.parametrize("shape", [(2, 640, 8, 8), (1, 3, 1, 1), (3, 5, 7, 11)])
def test_global_avg_pool(shape):
    x = randn(*shape)
    assert_close("avg pool", ops.global_avg_pool(x), x.mean(axis=(2, 3)), 1e-6, 1e-5)


@pytest.mark.parametrize("src,dst", [((7, 9), (8, 10)), ((8, 10), (7, 9)), ((5, 5), (16, 3)), ((1, 1), (3, 4)),
                                     ((32, 32), (32, 32))])
def test_resize_bilinear(src, dst):
    x = randn(2, 3, *src)
    want = F.interpolate(torch.from_numpy(x), size=dst, mode="bilinear", align_corners=False).numpy()
    assert_close("bilinear", ops.resize_bilinear(x, dst), want, 1e-5, 1e-5)


def test_patch_unfold_fold_matches_mobilevit_layout():
    B, C, H, W = 2, 5, 6, 8
    x = randn(B, C, H, W)
    p = ops.patch_unfold(x, 2)
    # The documented layout: patches[b*4 + dy*2 + dx, i*npw + j, c] = x[b, c, 2i+dy, 2j+dx]
    npw = W // 2
    for b, c, i, j, dy, dx in [(0, 0, 0, 0, 0, 0), (1, 4, 2, 3, 1, 0), (1, 2, 1, 1, 1, 1), (0, 3, 2, 0, 0, 1)]:
        assert p[b * 4 + dy * 2 + dx, i * npw + j, c] == x[b, c, 2 * i + dy, 2 * j + dx]
    np.testing.assert_array_equal(ops.patch_fold(p, x.shape, 2), x)
    # and the reference reshape sequence from transformers' MobileViTLayer.unfolding
    t = torch.from_numpy(x).reshape(B * C * (H // 2), 2, W // 2, 2).transpose(1, 2)
    t = t.reshape(B, C, (H // 2) * (W // 2), 4).transpose(1, 3).reshape(B * 4, (H // 2) * (W // 2), C)
    np.testing.assert_array_equal(p, t.numpy())
