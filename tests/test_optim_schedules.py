"""visionc.optim schedules against transformers' (on a torch optimizer): the lr of every param
group at every step, including warmup 0, steps past total_steps, and a resumed schedule.
The multipliers use the same float operations, so the lrs must be equal, not just close."""
import numpy as np
import pytest
import torch
import transformers
from optim_helpers import Parity, make_params, random_grads, set_grads
from optim_helpers import SHAPES, torch_one_thread  # noqa: F401 (fixture)

from visionc import nn, optim

TOTAL = 40
LRS = (1e-3, 5e-4)

SCHEDULES = {
    "constant": (lambda o, w: optim.constant(o), lambda o, w: transformers.get_constant_schedule(o)),
    "constant_with_warmup": (lambda o, w: optim.constant_with_warmup(o, w),
                             lambda o, w: transformers.get_constant_schedule_with_warmup(o, w)),
    "linear_with_warmup": (lambda o, w: optim.linear_with_warmup(o, w, TOTAL),
                           lambda o, w: transformers.get_linear_schedule_with_warmup(o, w, TOTAL)),
    "cosine_with_warmup": (lambda o, w: optim.cosine_with_warmup(o, w, TOTAL),
                           lambda o, w: transformers.get_cosine_schedule_with_warmup(o, w, TOTAL)),
    "cosine_1.5_cycles": (lambda o, w: optim.cosine_with_warmup(o, w, TOTAL, num_cycles=1.5),
                          lambda o, w: transformers.get_cosine_schedule_with_warmup(o, w, TOTAL, num_cycles=1.5)),
    "cosine_min_lr": (lambda o, w: optim.cosine_with_warmup(o, w, TOTAL, min_lr_ratio=0.1),
                      lambda o, w: transformers.get_cosine_with_min_lr_schedule_with_warmup(
                          o, w, TOTAL, min_lr_rate=0.1)),
}


def _optimizers():
    ours = [nn.Parameter(np.zeros(3, np.float32)), nn.Parameter(np.zeros(2, np.float32))]
    theirs = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))]
    opt = optim.AdamW([{"params": [ours[0]], "lr": LRS[0]}, {"params": [ours[1]], "lr": LRS[1]}])
    ref = torch.optim.AdamW([{"params": [theirs[0]], "lr": LRS[0]}, {"params": [theirs[1]], "lr": LRS[1]}])
    return opt, ref


@pytest.mark.parametrize("warmup", [0, 7])
@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_lr_equals_transformers_every_step(kind, warmup):
    make, make_ref = SCHEDULES[kind]
    opt, ref = _optimizers()
    sched, ref_sched = make(opt, warmup), make_ref(ref, warmup)
    seen = []
    for step in range(TOTAL + 6):  # a few steps past the end too
        want = ref_sched.get_last_lr()
        assert sched.get_last_lr() == want, f"{kind}, warmup {warmup}, step {step}: {sched.get_last_lr()} != {want}"
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref.param_groups]
        seen.append(want[0])
        sched.step()
        ref.step()  # (no gradients: a no-op, keeps torch from warning about the call order)
        ref_sched.step()
    print(f"{kind}, warmup {warmup}: lr equal to transformers' at all {TOTAL + 6} steps "
          f"(first {seen[0]:.3g}, mid {seen[TOTAL // 2]:.3g}, end {seen[TOTAL]:.3g})")
    if warmup and kind != "constant":
        assert seen[0] == 0.0 and seen[warmup] == LRS[0]


def test_schedule_drives_adamw_like_torch():
    """AdamW + linear warmup/decay: parameters match torch + transformers step for step."""
    ours, theirs = make_params(11)
    opt, ref = optim.AdamW(ours, lr=1e-2), torch.optim.AdamW(theirs, lr=1e-2)
    sched = optim.linear_with_warmup(opt, 5, 20)
    ref_sched = transformers.get_linear_schedule_with_warmup(ref, 5, 20)
    rng = np.random.default_rng(12)
    parity = Parity("AdamW + linear_with_warmup", theirs)
    for step in range(1, 21):
        set_grads(ours, theirs, random_grads(rng, SHAPES))
        opt.step()
        ref.step()
        sched.step()
        ref_sched.step()
        parity.check(step, ours, theirs)
    parity.report()


def test_resume_and_errors():
    opt, _ = _optimizers()
    sched = optim.cosine_with_warmup(opt, 3, 30)
    for _ in range(12):
        sched.step()
    state = sched.state_dict()
    opt2, _ = _optimizers()
    sched2 = optim.cosine_with_warmup(opt2, 3, 30)
    sched2.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == sched.get_last_lr()
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr()
    with pytest.raises(ValueError, match="linear"):
        optim.linear_with_warmup(opt2, 3, 30).load_state_dict(state)
    with pytest.raises(ValueError, match="saved with"):
        optim.cosine_with_warmup(_optimizers()[0], 3, 31).load_state_dict(state)
    with pytest.raises(ValueError, match="warmup_steps"):
        optim.linear_with_warmup(opt, 31, 30)
    with pytest.raises(ValueError, match="warmup_steps"):
        optim.constant_with_warmup(opt, -1)
    with pytest.raises(ValueError, match="total_steps"):
        optim.cosine_with_warmup(opt, 0, 0)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        optim.cosine_with_warmup(opt, 0, 10, min_lr_ratio=1.5)
