"""visionc's CPU kernels, one by one, on NumPy float32 arrays (new arrays out).

The same kernels the models run: useful for building layers of your own and for testing
each kernel against a reference."""
from ._native import _C


def linear(x, weight, bias=None):
    """x[..., K] . weight[N, K]^T + bias[N] -> [..., N]"""
    return _C.op_linear(x, weight, bias)


def layer_norm(x, weight, bias, eps=1e-5):
    """Layer norm over the last dimension."""
    return _C.op_layernorm(x, weight, bias, eps)


def gelu(x, approximate="none"):
    """GELU: exact (erf) by default, or approximate="tanh" (GPT-2's gelu_new)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return _C.op_gelu(x) if approximate == "none" else _C.op_gelu_tanh(x)


def silu(x):
    return _C.op_silu(x)


def softmax(x, scale=1.0):
    """softmax(scale * x) over the last dimension."""
    return _C.op_softmax(x, scale)


def attention(q, k, v, num_heads):
    """Multi-head attention over q, k, v of shape (B, T, H*D): (out (B, T, H*D), probs (B, H, T, T))."""
    return _C.op_attention(q, k, v, num_heads)


def patch_embed(pixel_values, weight, bias):
    """A PxP, stride-P convolution flattened to tokens: (B, C, H, W) -> (B, (H//P)*(W//P), Cout)."""
    return _C.op_patch_embed(pixel_values, weight, bias)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d semantics on NCHW float32 arrays (zero padding)."""
    return _C.op_conv2d(x, weight, bias, _pair(stride), _pair(padding), _pair(dilation), groups)


def layer_norm_2d(x, weight, bias, eps=1e-6):
    """Layer norm over the channels of (B, C, H, W) at every pixel (timm's LayerNorm2d)."""
    return _C.op_layernorm2d(x, weight, bias, eps)


def global_avg_pool(x):
    """(B, C, H, W) -> (B, C)"""
    return _C.op_global_avg_pool(x)


def resize_bilinear(x, size):
    """F.interpolate(x, size, mode="bilinear", align_corners=False)"""
    return _C.op_resize_bilinear(x, _pair(size))


def patch_unfold(x, patch_size=2):
    """MobileViT unfolding: (B, C, H, W) -> (B*ph*pw, (H/ph)*(W/pw), C)."""
    return _C.op_patch_unfold(x, _pair(patch_size))


def patch_fold(patches, shape, patch_size=2):
    """Inverse of patch_unfold, back to `shape` = (B, C, H, W)."""
    return _C.op_patch_fold(patches, tuple(shape), _pair(patch_size))


# ---- autoregressive decoders (GPT-2) ----

def linear_io(x, weight, bias=None, residual=None):
    """x[M, K] . weight[K, N] + bias[N] (+ residual[M, N]): weights stored [in, out], as GPT-2's
    Conv1D stores them."""
    return _C.op_linear_io(x, weight, bias, residual)


def attention_kv(q, k, v, mem_index, num_heads, scale=None, causal=False):
    """Rows of queries q (R, Tq, C) against per-row memories: row r reads keys k[mem_index[r]]
    and values v[mem_index[r]] (n_mem, Tk, C); v=None: k is (n_mem, Tk, 2C) holding keys | values.
    causal: query i sees keys up to Tk - Tq + i. scale defaults to 1/sqrt(C / num_heads)."""
    C = q.shape[-1]
    if scale is None:
        scale = (C // num_heads) ** -0.5 if num_heads > 0 and C % num_heads == 0 else 1.0
    return _C.op_attention_kv(q, k, v, mem_index, num_heads, float(scale), bool(causal))


def token_embed(wte, wpe, ids, pos0=0):
    """wte[ids] + wpe[pos0 + t] for ids (R, T) -> (R, T, C)."""
    return _C.op_token_embed(wte, wpe, ids, int(pos0))
