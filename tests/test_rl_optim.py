"""FlatRMSprop against torch.optim.RMSprop: the same steps bit for bit, and interchangeable state;
its TensorFlow variant against TensorFlow's update rule (and SB3's RMSpropTFLike where installed)."""
import io

import numpy as np

import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from galasim.rl.model import make_model  # noqa: E402
from galasim.rl.optim import FlatRMSprop, _sqrt_floor  # noqa: E402


def _pair(lr, alpha, eps, seed=0):
    """Two identical MLP learners: one with torch's RMSprop, one with FlatRMSprop."""
    reference, ref_flat = make_model((5,), 3, seed=seed, hidden=16)
    model, flat = make_model((5,), 3, seed=seed, hidden=16)
    return (reference, ref_flat, torch.optim.RMSprop(reference.parameters(), lr=lr, alpha=alpha, eps=eps),
            model, flat, FlatRMSprop(model.parameters(), flat, lr=lr, alpha=alpha, eps=eps))


def _random_grads(generator, n):
    """Gradients with exact zeros and values so small that their squares are subnormal or 0:
    the entries on which PyTorch's sqrt is slow and the clamp of FlatRMSprop acts."""
    grad = torch.randn(n, generator=generator)
    kind = torch.randint(0, 4, (n,), generator=generator)
    grad[kind == 0] = 0.0
    grad[kind == 1] *= 1e-21  # squares ~1e-42: subnormal
    return grad


def _set_grads(model, flat_grad):
    offset = 0
    for p in model.parameters():
        p.grad = flat_grad[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), lr=st.sampled_from([7e-4, 1.4e-3, 0.1]),
       alpha=st.sampled_from([0.0, 0.5, 0.99, 1.0]), eps=st.sampled_from([1e-5, 1e-8, 1e-3, 1e-40]))
def test_flat_rmsprop_takes_torchs_steps_bit_for_bit(seed, lr, alpha, eps):
    reference, ref_flat, ref_opt, model, flat, opt = _pair(lr, alpha, eps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(12):
        grad = _random_grads(generator, flat.numel())
        _set_grads(reference, grad)
        opt.flat_grad.copy_(grad)
        ref_opt.step()
        opt.step()
        # equal bit for bit (eps 1e-40 with alpha 1 divides by a subnormal: inf and nan in both)
        torch.testing.assert_close(flat, ref_flat, rtol=0, atol=0, equal_nan=True)
    for p, q in zip(reference.parameters(), model.parameters()):
        assert torch.equal(ref_opt.state[p]["square_avg"], opt.state[q]["square_avg"])
        assert float(ref_opt.state[p]["step"]) == float(opt.state[q]["step"]) == 12


def test_backward_fills_the_flat_gradient_and_zero_grad_keeps_it_flat():
    model, flat = make_model((5,), 3, seed=1, hidden=16)
    opt = FlatRMSprop(model.parameters(), flat, lr=1e-2)
    for _ in range(2):  # the second backward must land in the same flat vector
        opt.zero_grad()
        logits, value = model(torch.randn(7, 5))
        (logits.sum() + value.sum()).backward()
        assert torch.equal(opt.flat_grad, torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        assert opt.flat_grad.abs().sum() > 0


def _saved_and_loaded(state_dict):
    """The state as a checkpoint holds it (``torch.load`` with ``weights_only=True``)."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_state_dicts_are_interchangeable_with_torchs_rmsprop():
    """A checkpoint of either optimizer continues in the other with the same steps."""
    generator = torch.Generator().manual_seed(3)
    reference, ref_flat, ref_opt, model, flat, opt = _pair(1e-2, 0.99, 1e-5)
    grads = [_random_grads(generator, flat.numel()) for _ in range(6)]
    for grad in grads[:3]:
        _set_grads(reference, grad)
        ref_opt.step()
    # torch's state into FlatRMSprop (and the parameters, as a learner's checkpoint does)
    with torch.no_grad():
        flat.copy_(ref_flat)
    opt.load_state_dict(_saved_and_loaded(ref_opt.state_dict()))
    # ... and FlatRMSprop's state back into a fresh torch RMSprop
    other, other_flat = make_model((5,), 3, seed=0, hidden=16)
    other_opt = torch.optim.RMSprop(other.parameters(), lr=1e-2, alpha=0.99, eps=1e-5)
    _set_grads(other, grads[0])
    other_opt.step()  # create its state, then overwrite it
    with torch.no_grad():
        other_flat.copy_(flat)
    other_opt.load_state_dict(_saved_and_loaded(opt.state_dict()))
    for grad in grads[3:]:
        _set_grads(reference, grad)
        _set_grads(other, grad)
        opt.flat_grad.copy_(grad)
        ref_opt.step()
        opt.step()
        other_opt.step()
        assert torch.equal(flat, ref_flat) and torch.equal(other_flat, ref_flat)
    assert float(opt.state[next(iter(model.parameters()))]["step"]) == 6


def test_the_sqrt_floor_is_absorbed_by_eps_in_float32():
    for eps in (1e-3, 1e-5, 1e-8, 1e-11, 2.0**-17 * (1 - 2**-23)):  # the last: just below a power of 2
        floor = _sqrt_floor(eps)
        assert floor >= torch.finfo(torch.float32).tiny
        e = torch.tensor(eps, dtype=torch.float32)
        v = torch.tensor([0.0, 1e-45, floor / 2, floor], dtype=torch.float32)
        assert torch.equal(v.sqrt() + e, e.expand(4))
    for eps in (1e-12, 1e-40):  # no normal floor exists: the plain sqrt is used
        assert _sqrt_floor(eps) == 0.0


def test_parameters_that_are_not_views_of_the_flat_vector_are_refused():
    model, flat = make_model((5,), 3, seed=0, hidden=16)
    with pytest.raises(ValueError, match="consecutive views"):
        FlatRMSprop(model.parameters(), flat.clone(), lr=1e-2)


def _tf_rmsprop_reference(grads, x0, lr, alpha, eps):
    """TensorFlow's RMSprop in float64, written from its update rule: v starts at 1,
    v <- alpha v + (1 - alpha) g^2, x <- x - lr g / sqrt(v + eps).

    Also returns, per element, a bound on how far float32 arithmetic may drift from it, to first
    order in float32's unit roundoff u. An update of v rounds alpha, 1 - alpha, two products and
    a sum, each by at most u on positive terms: after k updates v is off by at most 4k u
    relatively. Through the sqrt that counts half, and eps, the sqrt, the division and lr's
    cast and product add one u each, so step k is off by at most (2k + 5) u |step_k| (the bound
    takes 2k + 6); the subtraction adds u |x_k|. The sum over the steps is a few float32 ulps of
    the path the element travelled, not of where it ended: an element that moves by 0.8 and
    ends near 0.0015 keeps the error of the 0.8."""
    u = float(np.finfo(np.float32).eps) / 2
    x, v = x0.astype(np.float64), np.ones_like(x0, dtype=np.float64)
    drift = np.zeros_like(x)
    for k, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        v = alpha * v + (1 - alpha) * g * g
        step = lr * g / np.sqrt(v + eps)
        x = x - step
        drift += (2 * k + 6) * u * np.abs(step) + u * np.abs(x)
    return x, drift


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), lr=st.sampled_from([7e-4, 1.4e-3, 0.1]),
       alpha=st.sampled_from([0.0, 0.5, 0.99]), eps=st.sampled_from([1e-5, 1e-8, 1e-3]))
def test_tf_like_takes_tensorflows_steps(seed, lr, alpha, eps):
    model, flat = make_model((5,), 3, seed=0, hidden=16)
    x0 = flat.detach().numpy().copy()
    opt = FlatRMSprop(model.parameters(), flat, lr=lr, alpha=alpha, eps=eps, tf_like=True)
    generator = torch.Generator().manual_seed(seed)
    # every draw from the seeded generator: hypothesis replays a failing seed to the same gradients
    scales = [10.0 ** float(torch.randint(-4, 2, (), generator=generator)) for _ in range(8)]
    grads = [torch.randn(flat.numel(), generator=generator) * scale for scale in scales]
    for grad in grads:
        opt.flat_grad.copy_(grad)
        opt.step()
    expected, drift = _tf_rmsprop_reference([g.numpy() for g in grads], x0, lr, alpha, eps)
    np.testing.assert_array_less(np.abs(flat.detach().numpy() - expected), drift + 1e-30)


def test_tf_like_first_step_is_small_where_torchs_is_ten_times_lr():
    """The reason for the variant: PyTorch's first step is ~10 lr on every weight with a gradient."""
    lr = 1e-3
    steps = {}
    for tf_like in (False, True):
        model, flat = make_model((5,), 3, seed=0, hidden=16)
        with torch.no_grad():
            flat.zero_()  # the step is then the parameters, without the rounding of a difference
        opt = FlatRMSprop(model.parameters(), flat, lr=lr, alpha=0.99, eps=1e-5, tf_like=tf_like)
        opt.flat_grad.fill_(1e-3)
        opt.step()
        steps[tf_like] = -float(flat.max())
    assert steps[False] == pytest.approx(lr * 1e-3 / (0.1 * 1e-3 + 1e-5), rel=1e-4)  # 9.09 lr
    assert steps[True] == pytest.approx(lr * 1e-3 / np.sqrt(0.99 + 0.01 * 1e-6 + 1e-5), rel=1e-4)  # ~1e-3 lr


def test_tf_like_matches_stable_baselines3s_rmsprop_tf_like_bit_for_bit():
    sb2_compat = pytest.importorskip("stable_baselines3.common.sb2_compat.rmsprop_tf_like")
    reference, ref_flat = make_model((5,), 3, seed=0, hidden=16)
    model, flat = make_model((5,), 3, seed=0, hidden=16)
    ref_opt = sb2_compat.RMSpropTFLike(reference.parameters(), lr=7e-4, alpha=0.99, eps=1e-5)
    opt = FlatRMSprop(model.parameters(), flat, lr=7e-4, alpha=0.99, eps=1e-5, tf_like=True)
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        grad = torch.randn(flat.numel(), generator=generator)
        _set_grads(reference, grad)
        opt.flat_grad.copy_(grad)
        ref_opt.step()
        opt.step()
        assert torch.equal(flat, ref_flat)


def test_tf_like_state_survives_a_checkpoint():
    """Three steps, a save and a load into a fresh optimizer, three more: as six without a break."""
    generator = torch.Generator().manual_seed(4)
    grads = [torch.randn(804, generator=generator) for _ in range(6)]
    straight, straight_flat = make_model((5,), 3, seed=0, hidden=16)
    straight_opt = FlatRMSprop(straight.parameters(), straight_flat, lr=1e-2, eps=1e-5, tf_like=True)
    model, flat = make_model((5,), 3, seed=0, hidden=16)
    opt = FlatRMSprop(model.parameters(), flat, lr=1e-2, eps=1e-5, tf_like=True)
    assert flat.numel() == 804
    for k, grad in enumerate(grads):
        if k == 3:
            state = _saved_and_loaded(opt.state_dict())
            model, new_flat = make_model((5,), 3, seed=0, hidden=16)
            with torch.no_grad():
                new_flat.copy_(flat)
            flat = new_flat
            opt = FlatRMSprop(model.parameters(), flat, lr=1e-2, eps=1e-5, tf_like=True)
            opt.load_state_dict(state)
        for o, g in ((straight_opt, grad), (opt, grad)):
            o.flat_grad.copy_(g)
            o.step()
    assert torch.equal(flat, straight_flat)
    assert torch.equal(opt.square_avg, straight_opt.square_avg)
