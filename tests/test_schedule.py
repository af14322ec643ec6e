"""The learning-rate schedule (section 5.3, equation 3) and Adam's settings."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aiayn.schedule import make_optimizer, make_scheduler, noam_lr


def test_peak_of_the_base_model() -> None:
    peak = noam_lr(4000, d_model=512, warmup=4000)
    assert peak == pytest.approx(512**-0.5 * 4000**-0.5)
    assert peak == pytest.approx(6.988e-4, rel=1e-4)
    assert noam_lr(3999, 512, 4000) < peak and noam_lr(4001, 512, 4000) < peak
    steps = range(1, 20001, 7)
    assert max(steps, key=lambda s: noam_lr(s, 512, 4000)) in range(3994, 4007)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    d_model=st.sampled_from([32, 128, 512, 1024]),
    warmup=st.integers(1, 10000),
    factor=st.floats(0.1, 4.0),
    step=st.integers(1, 10**6),
)
def test_linear_then_inverse_square_root(
    d_model: int, warmup: int, factor: float, step: int
) -> None:
    peak = factor * d_model**-0.5 * warmup**-0.5
    lr = noam_lr(step, d_model, warmup, factor)
    if step <= warmup:  # "increasing the learning rate linearly"
        assert lr == pytest.approx(peak * step / warmup, rel=1e-9)
    else:  # "proportionally to the inverse square root of the step number"
        assert lr == pytest.approx(peak * (warmup / step) ** 0.5, rel=1e-9)
    assert 0 < lr <= peak * (1 + 1e-12)


def test_step_zero_is_step_one() -> None:
    assert noam_lr(0, 512, 4000) == noam_lr(1, 512, 4000) > 0


def test_scheduler_follows_equation_3() -> None:
    """The rate used by optimizer step n (1-based) is noam_lr(n)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = make_optimizer(model)
    sched = make_scheduler(opt, d_model=64, warmup=10, factor=2.0)
    x = torch.randn(8, 4)
    for n in range(1, 41):
        lr = opt.param_groups[0]["lr"]
        assert lr == pytest.approx(noam_lr(n, 64, 10, 2.0), rel=1e-12)
        before = [p.detach().clone() for p in model.parameters()]
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        sched.step()
        if n == 1:  # Adam's first step moves each weight by lr * sign(gradient)
            for p, p0, g in zip(model.parameters(), before, grads, strict=True):
                step = (p0 - p).detach()
                expected = lr * g / (g.abs() + 1e-9)
                torch.testing.assert_close(step, expected, rtol=1e-4, atol=1e-9)


def test_adam_is_the_papers() -> None:
    opt = make_optimizer(torch.nn.Linear(2, 2))
    assert isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9
    assert group["weight_decay"] == 0 and not group["amsgrad"]
    other = make_optimizer(torch.nn.Linear(2, 2), betas=(0.8, 0.9), eps=1e-6)
    assert other.param_groups[0]["betas"] == (0.8, 0.9)
    assert other.param_groups[0]["eps"] == 1e-6
