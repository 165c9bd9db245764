"""visionc.optim's Adam, AdamW and SGD against torch.optim: same gradients, parameters
compared after every step (measure and tolerance in optim_helpers.py)."""
import numpy as np
import pytest
import torch
from optim_helpers import SHAPES, TOL, Parity, make_params, random_grads, set_grads
from optim_helpers import torch_one_thread  # noqa: F401 (fixture)

from visionc import optim

STEPS = 30
pytestmark = pytest.mark.usefixtures("torch_one_thread")

CASES = [
    ("AdamW", {}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.0}),
    ("AdamW", {"lr": 1e-3, "betas": (0.3, 0.9)}),  # lerp weight 1 - beta1 >= 0.5: ATen's other branch
    ("Adam", {}),
    ("Adam", {"lr": 1e-2, "weight_decay": 0.05, "amsgrad": True}),
    ("Adam", {"lr": 1e-3, "betas": (0.0, 0.5), "weight_decay": 1e-3}),
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2, "nesterov": True}),
    ("SGD", {"lr": 0.02, "momentum": 0.5, "dampening": 0.3, "weight_decay": 1e-3}),
]


def _run(name, groups_ours, groups_theirs, kwargs, ours, theirs, seed, skip_schedule=None):
    opt = getattr(optim, name)(groups_ours, **kwargs)
    ref = getattr(torch.optim, name)(groups_theirs, **kwargs)
    parity = Parity(f"{name}{kwargs}", theirs)
    rng = np.random.default_rng(seed)
    for step in range(1, STEPS + 1):
        skip = skip_schedule(step) if skip_schedule else ()
        set_grads(ours, theirs, random_grads(rng, SHAPES), skip)
        opt.step()
        ref.step()
        parity.check(step, ours, theirs)
    return opt, ref, parity


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch_every_step(name, kwargs):
    ours, theirs = make_params(0)
    opt, ref, parity = _run(name, ours, theirs, kwargs, ours, theirs, seed=1)
    parity.report()
    # the optimizer state too (relative to the largest element: the state holds values near 0)
    for p, t in zip(ours, theirs):
        mine, want = opt.state[p], ref.state[t]
        for key, val in want.items():
            if key == "step":
                assert mine["step"] == int(val) == STEPS
            elif val is not None:
                got, want_v = mine[key].astype(np.float64), val.numpy().astype(np.float64)
                rel = float(np.abs(got - want_v).max() / max(np.abs(want_v).max(), 1e-30))
                assert rel <= TOL, f"state {key}: max |diff| / max |torch| = {rel:.3g} > {TOL:g}"


@pytest.mark.parametrize("name", ["AdamW", "Adam", "SGD"])
def test_param_groups_and_skipped_grads(name):
    """Groups with their own lr / weight_decay; parameter 3 has no gradient on every third step
    (its step count and momentum must not advance then)."""
    ours, theirs = make_params(2)
    extra = {"momentum": 0.9} if name == "SGD" else {"amsgrad": True}
    g_ours = [{"params": ours[:2], "lr": 0.02, "weight_decay": 0.0}, {"params": ours[2:], "weight_decay": 0.1}]
    g_theirs = [{"params": theirs[:2], "lr": 0.02, "weight_decay": 0.0}, {"params": theirs[2:], "weight_decay": 0.1}]
    opt, ref, parity = _run(name, g_ours, g_theirs, {"lr": 5e-3, **extra}, ours, theirs, seed=3,
                            skip_schedule=lambda s: (3,) if s % 3 == 0 else ())
    parity.report()
    assert [g["lr"] for g in opt.param_groups] == [0.02, 5e-3]
    if name != "SGD":
        assert opt.state[ours[3]]["step"] == int(ref.state[theirs[3]]["step"]) == STEPS - STEPS // 3


def test_named_parameters_and_weight_decay_groups():
    """param_groups_for_weight_decay on ViT-style names, then AdamW against torch on the same split."""
    names = ["embeddings.cls_token", "embeddings.position_embeddings", "embeddings.patch_embeddings.weight",
             "encoder.layer.0.layernorm_before.weight", "encoder.layer.0.attention.query.weight",
             "encoder.layer.0.attention.query.bias", "blocks.0.norm1.weight", "blocks.0.gamma", "ln_1.weight",
             "head.weight", "stages.0.kernel"]
    shapes = [(1, 1, 8), (1, 5, 8), (8, 3, 2, 2), (8,), (8, 8), (8,), (8,), (8,), (4, 8), (3, 8), (4, 4)]
    ours, theirs = make_params(4, shapes)
    groups = optim.param_groups_for_weight_decay(list(zip(names, ours)), weight_decay=0.05)
    assert groups[0]["param_names"] == ["embeddings.patch_embeddings.weight",
                                        "encoder.layer.0.attention.query.weight", "head.weight", "stages.0.kernel"]
    assert groups[1]["weight_decay"] == 0.0 and len(groups[1]["params"]) == 7
    assert "ln_1.weight" in groups[1]["param_names"]  # 2-D, but excluded by its name ("ln" piece)
    by_id = {id(p): t for p, t in zip(ours, theirs)}
    t_groups = [{"params": [by_id[id(p)] for p in g["params"]], "weight_decay": g["weight_decay"]} for g in groups]
    opt, ref = optim.AdamW(groups, lr=1e-2), torch.optim.AdamW(t_groups, lr=1e-2)
    parity = Parity("AdamW weight-decay groups", theirs)
    rng = np.random.default_rng(5)
    for step in range(1, 11):
        set_grads(ours, theirs, random_grads(rng, shapes))
        opt.step()
        ref.step()
        parity.check(step, ours, theirs)
    parity.report()
    assert opt.state_dict()["param_groups"][1]["param_names"][0] == "embeddings.cls_token"


def test_gradient_accumulation_matches_autograd():
    """4 micro-batches of loss / 4 summed by autograd == accumulate_grad with acc.loss_scale."""
    steps = 3
    ours, theirs = make_params(6)
    opt, ref = optim.AdamW(ours, lr=1e-2), torch.optim.AdamW(theirs, lr=1e-2)
    acc = optim.GradientAccumulator(steps)
    rng = np.random.default_rng(7)
    parity = Parity("AdamW + accumulation", theirs)
    updates = 0
    for micro in range(4 * steps + 1):  # the last one stays pending
        cs = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
        loss = sum((t * torch.from_numpy(c)).sum() for t, c in zip(theirs, cs)) / steps
        loss.backward()  # d/dt = c / steps, added into t.grad
        for p, c in zip(ours, cs):
            optim.accumulate_grad(p, c, acc.loss_scale)
        if acc.step():
            for p, t in zip(ours, theirs):
                assert np.array_equal(p.grad, t.grad.numpy()), "accumulated gradients differ from autograd's"
            opt.step()
            ref.step()
            opt.zero_grad()
            ref.zero_grad()
            updates += 1
            parity.check(updates, ours, theirs)
    parity.report()
    assert updates == acc.num_updates == 4 and acc.pending == 1
    assert all(p.grad is not None for p in ours)
    with pytest.raises(ValueError, match="steps"):
        optim.GradientAccumulator(0)


def test_threads_do_not_change_results():
    import visionc

    big = [(300, 257), (5,), (70000,)]
    results = []
    n0 = visionc.get_num_threads()
    try:
        for threads in (1, 2):
            visionc.set_num_threads(threads)
            ours, _ = make_params(8, big)
            opt = optim.AdamW(ours, lr=1e-2, amsgrad=True)
            rng = np.random.default_rng(9)
            for _ in range(3):
                for p, g in zip(ours, random_grads(rng, big)):
                    p.grad = g
                opt.step()
            results.append([p.copy() for p in ours])
    finally:
        visionc.set_num_threads(n0)
    assert all(np.array_equal(a, b) for a, b in zip(*results))


@pytest.mark.parametrize("name,kwargs", [("AdamW", {"amsgrad": True}), ("Adam", {"amsgrad": True, "weight_decay": 0.1}),
                                         ("SGD", {"lr": 0.1, "momentum": 0.9})])
def test_nonfinite_gradients_propagate_like_torch(name, kwargs):
    """NaN / inf gradients poison the same elements of parameters and state as in torch."""
    ours, theirs = make_params(13, [(40,)])
    opt, ref = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    rng = np.random.default_rng(14)
    for step in range(4):
        g = rng.standard_normal(40).astype(np.float32)
        if step == 1:
            g[[3, 20, 37]] = [np.nan, np.inf, -np.inf]
        set_grads(ours, theirs, [g])
        opt.step()
        ref.step()
    got, want = np.asarray(ours[0]), theirs[0].detach().numpy()
    assert np.isnan(want).any() and np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    ok = np.isfinite(want)
    assert np.allclose(got[ok], want[ok], rtol=TOL, atol=0)
    for key, val in ref.state[theirs[0]].items():
        if key != "step" and val is not None:
            assert np.array_equal(np.isnan(opt.state[ours[0]][key]), np.isnan(val.numpy())), key
