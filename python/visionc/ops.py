"""visionc's CPU kernels, one by one, on NumPy float32 arrays (new arrays out).

The same kernels the models run: useful for building layers of your own and for testing
each kernel against a reference."""
from ._native import _C


def linear(x, weight, bias=None, dtype="fp32"):
    """x[..., K] . weight[N, K]^T + bias[N] -> [..., N]

    dtype="bf16": x and weight are rounded to bfloat16 (nearest even, as torch's .bfloat16())
    inside the kernel, products are summed in fp32, bias and result are fp32. Uses AVX512_BF16
    when the CPU has it (visionc.ops.bf16_native()), else fp32 GEMM of the rounded inputs:
    the same values up to fp32 summation order."""
    if dtype in ("fp32", "float32"):
        return _C.op_linear(x, weight, bias)
    if dtype in ("bf16", "bfloat16"):
        return _C.op_linear_bf16(x, weight, bias)
    raise ValueError(f"dtype must be 'fp32' or 'bf16', got {dtype!r}")


def gemm_bf16(a, b, trans_a=False, trans_b=False, c=None, beta=0.0):
    """op(a) . op(b) (+ beta c, c updated in place) with bf16-rounded inputs and fp32 sums.
    op(a) = a.T when trans_a, op(b) = b.T when trans_b; all float32 arrays."""
    return _C.op_gemm_bf16(a, b, trans_a, trans_b, c, beta)


def bf16_native():
    """True when bf16 GEMMs run on the AVX512_BF16 kernel (False: the plain-C path)."""
    return _C.bf16_native()


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


def attention(q, k, v, num_heads, dropout_p=0.0, seed=0):
    """Multi-head attention over q, k, v of shape (B, T, H*D): (out (B, T, H*D), probs (B, H, T, T)).

    dropout_p > 0 (training): out = dropout(probs, dropout_p, seed) @ v per head, the mask being
    the one `dropout` draws for the whole (B, H, T, T) tensor; probs are returned before dropout."""
    return _C.op_attention(q, k, v, num_heads, float(dropout_p), int(seed))


def patch_embed(pixel_values, weight, bias):
    """A PxP, stride-P convolution flattened to tokens: (B, C, H, W) -> (B, (H//P)*(W//P), Cout)."""
    return _C.op_patch_embed(pixel_values, weight, bias)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _bf16_flag(dtype):
    if dtype in ("fp32", "float32"):
        return False
    if dtype in ("bf16", "bfloat16"):
        return True
    raise ValueError(f"dtype must be 'fp32' or 'bf16', got {dtype!r}")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, dtype="fp32"):
    """torch.nn.functional.conv2d semantics on NCHW float32 arrays (zero padding).

    dtype="bf16": the mixed-precision kernel of bf16 training: x and weight rounded to bfloat16
    inside the GEMM, fp32 sums, fp32 bias and result. Per-channel convs (groups == channels > 1,
    depthwise) have no GEMM and compute in fp32 either way."""
    return _C.op_conv2d(x, weight, bias, _pair(stride), _pair(padding), _pair(dilation), groups, _bf16_flag(dtype))


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


# ---- training: backward kernels, loss, dropout, batch norm ----
# Conventions (as in the C backend, csrc/ops/backend.h): gradients of activations come back as
# new arrays; gradients of parameters ACCUMULATE. Pass dw=/db= (writeable float32 arrays of the
# parameter's shape) to add into them across calls; with None they start from zeros. Each
# backward takes the tensors its forward saw (the pre-activation input, saved statistics).


def linear_backward(x, weight, dout, bias=True, need_input_grad=True, dw=None, db=None, weight_layout="out_in"):
    """Backward of linear(x, weight, bias): (dx, dw, db).

    weight_layout "out_in" is weight[N, K] (torch.nn.Linear); "in_out" is weight[K, N] (GPT-2
    Conv1D, out = x @ weight). dx is None when need_input_grad is False; db is None without bias."""
    if weight_layout not in ("out_in", "in_out"):
        raise ValueError(f"weight_layout must be 'out_in' or 'in_out', got {weight_layout!r}")
    return _C.op_linear_backward(x, weight, dout, need_input_grad, weight_layout == "in_out", bias, dw, db)


def layer_norm_forward_train(x, weight, bias, eps=1e-5):
    """layer_norm that also returns what the backward needs: (y, mean, rstd), stats shaped x.shape[:-1]."""
    return _C.op_layernorm_train(x, weight, bias, eps, False)


def layer_norm_backward(x, weight, mean, rstd, dout, need_input_grad=True, dw=None, db=None):
    """(dx, dw, db) of layer_norm; dw and db are None when weight is None (no affine)."""
    return _C.op_layernorm_backward(x, weight, mean, rstd, dout, False, need_input_grad, dw, db)


def layer_norm_2d_forward_train(x, weight, bias, eps=1e-6):
    """layer_norm_2d returning (y, mean, rstd) with stats shaped (B, H, W)."""
    return _C.op_layernorm_train(x, weight, bias, eps, True)


def layer_norm_2d_backward(x, weight, mean, rstd, dout, need_input_grad=True, dw=None, db=None):
    """(dx, dw, db) of layer_norm_2d (LayerNorm2d over channels of NCHW)."""
    return _C.op_layernorm_backward(x, weight, mean, rstd, dout, True, need_input_grad, dw, db)


def gelu_backward(x, dout, approximate="none"):
    """dout * gelu'(x) for the pre-activation x (exact erf GELU, or approximate="tanh")."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return _C.op_activation_backward(x, dout, "gelu" if approximate == "none" else "gelu_tanh")


def silu_backward(x, dout):
    """dout * silu'(x) for the pre-activation x."""
    return _C.op_activation_backward(x, dout, "silu")


def relu_backward(x, dout):
    """dout where x > 0, else 0."""
    return _C.op_activation_backward(x, dout, "relu")


def softmax_backward(y, dy, scale=1.0):
    """Gradient wrt x of y = softmax(scale * x) over the last dimension, given y and dy."""
    return _C.op_softmax_backward(y, dy, scale)


def attention_backward(q, k, v, probs, dout, num_heads, dropout_p=0.0, seed=0):
    """(dq, dk, dv) of attention(q, k, v, num_heads, dropout_p, seed), given the probs it returned
    (the dropout mask is rebuilt from the seed)."""
    return _C.op_attention_backward(q, k, v, probs, dout, num_heads, float(dropout_p), int(seed))


def conv2d_backward(x, weight, dout, bias=True, stride=1, padding=0, dilation=1, groups=1, need_input_grad=True,
                    dw=None, db=None, dtype="fp32"):
    """(dx, dw, db) of conv2d(x, weight, bias, stride, padding, dilation, groups).

    dtype="bf16": dx and dw from GEMMs of bf16-rounded dout, weight and x with fp32 sums; db is
    the fp32 sum of dout; per-channel convs stay fp32 (see conv2d)."""
    return _C.op_conv2d_backward(x, weight, dout, bias, _pair(stride), _pair(padding), _pair(dilation), groups,
                                 need_input_grad, dw, db, _bf16_flag(dtype))


def patch_embed_backward(pixel_values, weight, dout, need_input_grad=True, dw=None, db=None):
    """(dpixel_values, dw, db) of patch_embed; dout is (B, G, Cout) like its output."""
    return _C.op_patch_embed_backward(pixel_values, weight, dout, need_input_grad, dw, db)


def global_avg_pool_backward(dout, spatial_size):
    """(B, C) gradient -> (B, C, H, W): dout / (H*W) at every pixel."""
    return _C.op_global_avg_pool_backward(dout, _pair(spatial_size))


def scale_channels_add_backward(x, scale, dout, need_input_grad=True, need_residual_grad=True, dscale=None):
    """Backward of out = residual + scale[c] * x (layer scale): (dx, dscale, dresidual).
    scale may be None (then dscale is None)."""
    return _C.op_scale_channels_add_backward(x, scale, dout, need_input_grad, need_residual_grad, dscale)


def resize_bilinear_backward(dout, input_size):
    """Adjoint of resize_bilinear (align_corners=False): (B, C, Ho, Wo) -> (B, C, H, W)."""
    return _C.op_resize_bilinear_backward(dout, _pair(input_size))


def concat_channels_backward(dout, split):
    """Backward of a channel concatenation cat([a, b], 1) with a having `split` channels: (da, db)."""
    return _C.op_concat_channels_backward(dout, split)


def patch_unfold_backward(dpatches, shape, patch_size=2):
    """patch_unfold is a permutation: its backward is patch_fold."""
    return patch_fold(dpatches, shape, patch_size)


def patch_fold_backward(dx, patch_size=2):
    """patch_fold is a permutation: its backward is patch_unfold."""
    return patch_unfold(dx, patch_size)


def cross_entropy(logits, labels, label_smoothing=0.0, ignore_index=-100, need_grad=True):
    """F.cross_entropy(logits (M, C), labels (M,), reduction="mean") with label smoothing:
    (loss as a Python float, dlogits (M, C) or None). Labels are integer class indices; one out
    of range (and not ignore_index) raises ValueError naming it. All rows ignored: loss NaN."""
    return _C.op_cross_entropy(logits, labels, label_smoothing, ignore_index, need_grad)


def dropout(x, p, seed):
    """Inverted dropout: x / (1 - p) where kept, 0 elsewhere. The mask is a pure function of
    (seed, element index), the same for any thread count; use a new seed per layer and step."""
    return _C.op_dropout(x, p, seed)


def dropout_backward(dout, p, seed):
    """dout * mask / (1 - p) with the mask regenerated from the forward's seed."""
    return _C.op_dropout(dout, p, seed)


def drop_path(x, p, seed):
    """Stochastic depth (timm/transformers drop_path): sample b is x[b] / (1 - p) or 0."""
    return _C.op_drop_path(x, p, seed)


def drop_path_backward(dout, p, seed):
    """Backward of drop_path: the same per-sample mask and scale applied to dout."""
    return _C.op_drop_path(dout, p, seed)


def batch_norm_train(x, weight, bias, running_mean, running_var, momentum=0.1, eps=1e-5):
    """BatchNorm2d in training mode: (y, save_mean, save_rstd). Normalises with the batch
    statistics; running_mean / running_var (writeable float32 arrays, or None) are updated in
    place as torch does (momentum, unbiased variance)."""
    return _C.op_batchnorm_forward(x, weight, bias, running_mean, running_var, True, momentum, eps)


def batch_norm_eval(x, weight, bias, running_mean, running_var, eps=1e-5):
    """BatchNorm2d in eval mode: (y, mean, rstd) from the running statistics (not modified)."""
    return _C.op_batchnorm_forward(x, weight, bias, running_mean, running_var, False, 0.0, eps)


def batch_norm_backward(x, weight, save_mean, save_rstd, dout, training=True, need_input_grad=True, dw=None,
                        db=None):
    """(dx, dweight, dbias) of batch norm, for the mode the forward ran in."""
    return _C.op_batchnorm_backward(x, weight, save_mean, save_rstd, dout, training, need_input_grad, dw, db)


def add_into(acc, x):
    """acc += x in place (acc: writeable float32); returns acc."""
    return _C.op_add_into(acc, x)


def scale(x, alpha):
    """alpha * x as a new array."""
    return _C.op_scale(x, alpha)
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
