"""Fine-tuning optimizers over NumPy parameters, with PyTorch's update rules and API.

    from visionc import optim
    groups = optim.param_groups_for_weight_decay(model.named_parameters(), weight_decay=0.05)
    opt = optim.AdamW(groups, lr=1e-4)
    schedule = optim.cosine_with_warmup(opt, warmup_steps=500, total_steps=10_000)
    for batch in batches:
        ...                                  # backward pass fills p.grad
        optim.clip_grad_norm(params, 1.0)
        opt.step(); schedule.step(); opt.zero_grad()

Parameters are visionc.nn.Parameter arrays (zero-copy views of model weights carrying
.grad). Updates run in C (csrc/train), fused, vectorised and multi-threaded, and follow
torch.optim's arithmetic (see each module's ref:). State dicts hold NumPy arrays and step
counts; restoring one continues training bit-identically.
"""
from .accumulate import GradientAccumulator, accumulate_grad
from .adam import Adam, AdamW
from .grad import clip_grad_norm, grad_norm, grads_finite
from .groups import NO_DECAY, param_groups_for_weight_decay
from .optimizer import Optimizer
from .schedules import LRSchedule, constant, constant_with_warmup, cosine_with_warmup, linear_with_warmup
from .sgd import SGD

__all__ = ["Adam", "AdamW", "SGD", "Optimizer", "LRSchedule", "constant", "constant_with_warmup",
           "linear_with_warmup", "cosine_with_warmup", "clip_grad_norm", "grad_norm", "grads_finite",
           "GradientAccumulator", "accumulate_grad", "param_groups_for_weight_decay", "NO_DECAY"]
