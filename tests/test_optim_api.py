"""visionc.optim's API around the update rules: state_dict round trips (bit-identical
continuation), argument errors, zero_grad, and zero-copy Parameters."""
import math

import numpy as np
import pytest

from visionc import nn, optim

SHAPES = [(5,), (40, 17), (300, 70)]


def _params(seed):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]


def _grads(rng):
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def _groups(ps):
    return [{"params": ps[:1], "weight_decay": 0.0, "lr": 3e-3}, {"params": ps[1:]}]


FACTORIES = {
    "AdamW-amsgrad": lambda g: optim.AdamW(g, lr=1e-2, amsgrad=True),
    "Adam": lambda g: optim.Adam(g, lr=1e-2, weight_decay=1e-3),
    "SGD-nesterov": lambda g: optim.SGD(g, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
}


@pytest.mark.parametrize("kind", list(FACTORIES))
def test_state_dict_round_trip_is_bit_identical(kind):
    """10 steps, save (optimizer + schedule), fresh objects, load, 10 more == 20 uninterrupted."""
    make = FACTORIES[kind]
    rng = np.random.default_rng(1)
    grads = [_grads(rng) for _ in range(20)]

    def run(opt, sched, ps, steps):
        for gs in steps:
            for p, g in zip(ps, gs):
                p.grad = g.copy()
            opt.step()
            sched.step()
            opt.zero_grad()

    straight = _params(0)
    opt = make(_groups(straight))
    run(opt, optim.cosine_with_warmup(opt, 3, 20), straight, grads)

    first = _params(0)
    opt = make(_groups(first))
    sched = optim.cosine_with_warmup(opt, 3, 20)
    run(opt, sched, first, grads[:10])
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    saved_params = [p.copy() for p in first]
    run(opt, sched, first, grads[10:11])  # later steps must not change what was saved (copies)
    if kind != "SGD-nesterov":
        assert saved_opt["state"][1]["step"] == 10 and opt.state[first[1]]["step"] == 11

    resumed = [nn.Parameter(p.view(np.ndarray).copy()) for p in saved_params]
    opt2 = make(_groups(resumed))
    sched2 = optim.cosine_with_warmup(opt2, 3, 20)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert [g["lr"] for g in opt2.param_groups] == sched2.get_last_lr()
    run(opt2, sched2, resumed, grads[10:])
    for a, b in zip(resumed, straight):
        assert np.array_equal(a, b), f"{kind}: resumed training differs from uninterrupted training"
    print(f"{kind}: 10 + 10 steps after save/load == 20 steps, bit-identical ({sum(p.size for p in resumed)} "
          "elements)")


def test_load_state_dict_rejects_mismatches():
    ps = _params(0)
    opt = optim.AdamW(ps)
    for p in ps:
        p.grad = np.ones_like(p.view(np.ndarray))
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="groups"):
        optim.AdamW(_groups(_params(0))).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameters"):
        optim.AdamW(_params(0)[:2]).load_state_dict(sd)
    other = [nn.Parameter(np.zeros(s[::-1], np.float32)) for s in SHAPES]
    with pytest.raises(ValueError, match="shape"):
        optim.AdamW(other).load_state_dict(sd)
    bad = opt.state_dict()
    bad["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        optim.AdamW(_params(0)).load_state_dict(bad)


@pytest.mark.parametrize("lr", [float("nan"), -1e-3, float("inf")])
@pytest.mark.parametrize("cls", [optim.AdamW, optim.Adam, optim.SGD])
def test_bad_lr_raises_naming_lr(cls, lr):
    with pytest.raises(ValueError, match=r"\blr\b"):
        cls(_params(0), lr=lr)
    with pytest.raises(ValueError, match=r"\blr\b"):  # in a group too
        cls([{"params": _params(0), "lr": lr}], lr=1e-3)


def test_bad_arguments():
    ps = _params(0)
    cases = [
        (lambda: optim.AdamW(ps, betas=(1.0, 0.999)), ValueError, "betas"),
        (lambda: optim.Adam(ps, betas=(0.9, -0.1)), ValueError, "betas"),
        (lambda: optim.Adam(ps, betas=0.9), ValueError, "betas"),
        (lambda: optim.AdamW(ps, eps=-1e-8), ValueError, "eps"),
        (lambda: optim.AdamW(ps, weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: optim.SGD(ps, lr=0.1, momentum=-0.5), ValueError, "momentum"),
        (lambda: optim.SGD(ps, lr=0.1, nesterov=True), ValueError, "Nesterov"),
        (lambda: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "Nesterov"),
        (lambda: optim.SGD(ps, lr="0.1"), TypeError, "lr"),
        (lambda: optim.AdamW([]), ValueError, "empty"),
        (lambda: optim.AdamW(ps[0]), TypeError, "iterable"),
        (lambda: optim.AdamW([np.zeros(3, np.float32)]), TypeError, "Parameter"),
        (lambda: optim.AdamW([nn.Parameter(np.zeros(3))]), TypeError, "float32"),
        (lambda: optim.AdamW([nn.Parameter(np.zeros((4, 4), np.float32).T)]), TypeError, "contiguous"),
        (lambda: optim.AdamW([ps[0], ps[0]]), ValueError, "more than once"),
        (lambda: optim.AdamW([{"params": ps[:2]}, {"params": ps[1:]}]), ValueError, "more than once"),
        (lambda: optim.AdamW([{"lr": 1.0}]), ValueError, "params"),
        (lambda: optim.AdamW([("a", ps[0]), ps[1]]), ValueError, "named"),
    ]
    for make, exc, words in cases:
        with pytest.raises(exc, match=words):
            make()


def test_bad_gradients_raise_at_step():
    p = nn.Parameter(np.zeros((3, 4), np.float32))
    opt = optim.AdamW([("encoder.weight", p)])
    p.grad = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"'encoder.weight'.*shape"):
        opt.step()
    p.grad = np.zeros((3, 4), np.float64)
    with pytest.raises(TypeError, match="float32"):
        opt.step()
    p.grad = np.ones((4, 3), np.float32).T  # strided gradients are fine (copied in C)
    opt.step()
    assert opt.state[p]["step"] == 1
    opt.param_groups[0]["lr"] = float("nan")  # set behind the optimizer's back: the C layer refuses
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    assert opt.state[p]["step"] == 1  # a refused step changes nothing


def test_zero_grad():
    ps = _params(0)
    opt = optim.SGD(ps, lr=0.1)
    for p in ps:
        p.grad = np.ones(p.shape, np.float32)
    kept = ps[0].grad
    opt.zero_grad(set_to_none=False)
    assert ps[0].grad is kept and not kept.any()
    opt.zero_grad()
    assert all(p.grad is None for p in ps)


def test_parameter_is_zero_copy():
    w = np.arange(12, dtype=np.float32).reshape(3, 4)  # memory a model owns
    p = nn.Parameter(w)
    assert np.shares_memory(p, w) and p.requires_grad and p.grad is None
    assert type(p * 2) is np.ndarray and type(p[0]) is np.ndarray and isinstance(p.sum(), np.floating)
    p.grad = np.ones((3, 4), np.float32)
    optim.SGD([p], lr=0.5).step()
    assert np.array_equal(w, np.arange(12, dtype=np.float32).reshape(3, 4) - 0.5)
    assert not nn.Parameter(w, requires_grad=False).requires_grad


def test_triples_update_memory_and_keep_grad_buffers():
    """(name, array, grad) triples: the array is updated in place, the grad buffer is zeroed
    in place by zero_grad() (a model writing into it keeps working)."""
    w = np.ones((2, 3), np.float32)
    g = np.full((2, 3), 2.0, np.float32)
    opt = optim.SGD([("layer.weight", w, g)], lr=0.25)
    opt.step()
    assert np.array_equal(w, np.full((2, 3), 0.5, np.float32))
    opt.zero_grad()
    assert opt.param_groups[0]["params"][0].grad is g and not g.any()
    assert opt.param_groups[0]["param_names"] == ["layer.weight"]


def test_grads_finite_and_grad_norm():
    ps = _params(3)
    for p in ps:
        p.grad = np.ones(p.shape, np.float32)
    assert optim.grads_finite(ps)
    n = sum(p.size for p in ps)
    assert optim.grad_norm(ps) == pytest.approx(math.sqrt(n), rel=1e-12)
    ps[2].grad[299, 69] = np.inf
    assert not optim.grads_finite(ps)
    ps[2].grad[299, 69] = np.nan
    assert not optim.grads_finite(ps) and math.isnan(optim.grad_norm(ps))
