"""Label smoothing (section 5.4): the readable loss against the fused one, the
smoothed target distribution, and the limits eps = 0 and uniform logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from aiayn.loss import (
    cross_entropy_loss,
    label_smoothed_cross_entropy,
    smoothed_targets,
)

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def random_case(
    B: int, T: int, V: int, seed: int, pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, T, V) and targets (B, T) with some padding, never all padding."""
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(B, T, V, generator=g)
    target = torch.randint(0, V, (B, T), generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    target[torch.arange(T)[None, :] >= lengths[:, None]] = pad_id  # right padding
    target[0, 0] = (pad_id + 1) % V  # at least one real label
    return logits, target


@SETTINGS
@given(
    B=st.integers(1, 4),
    T=st.integers(1, 7),
    V=st.integers(2, 30),
    eps=st.floats(0.0, 0.5),
    pad_id=st.integers(0, 1),
    reduction=st.sampled_from(["mean", "sum"]),
    seed=st.integers(0, 2**16),
)
def test_readable_equals_fused(
    B: int, T: int, V: int, eps: float, pad_id: int, reduction: str, seed: int
) -> None:
    logits, target = random_case(B, T, V, seed, pad_id)
    logits.requires_grad_()
    readable = label_smoothed_cross_entropy(logits, target, eps, pad_id, reduction)
    fused = cross_entropy_loss(logits, target, eps, pad_id, reduction)
    torch.testing.assert_close(readable, fused, rtol=1e-5, atol=1e-5)
    (g_readable,) = torch.autograd.grad(readable, logits)
    (g_fused,) = torch.autograd.grad(fused, logits)
    torch.testing.assert_close(g_readable, g_fused, rtol=1e-5, atol=1e-6)
    assert (g_fused[target == pad_id] == 0).all()  # padding takes no part


def test_mean_is_sum_over_real_tokens() -> None:
    logits, target = random_case(3, 6, 11, seed=0)
    n_real = int((target != 0).sum())
    assert 0 < n_real < target.numel()
    for loss in (label_smoothed_cross_entropy, cross_entropy_loss):
        mean = loss(logits, target, 0.1, 0, "mean")
        total = loss(logits, target, 0.1, 0, "sum")
        torch.testing.assert_close(mean * n_real, total)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_smoothed_targets(eps: float) -> None:
    V = 7
    target = torch.tensor([0, 3, 6, 3])
    q = smoothed_targets(target, V, eps)
    assert q.shape == (4, V)
    torch.testing.assert_close(q.sum(-1), torch.ones(4))
    on = q[torch.arange(4), target]
    torch.testing.assert_close(on, torch.full((4,), 1 - eps + eps / V))
    off = q.clone()
    off[torch.arange(4), target] = float("nan")
    assert torch.allclose(off[~off.isnan()], torch.tensor(eps / V))
    assert smoothed_targets(target.view(2, 2), V, eps).shape == (4, V)


def test_paper_value_on_a_37k_vocabulary() -> None:
    """eps_ls = 0.1: the correct token gets 0.9 + 0.1 / 37000."""
    q = smoothed_targets(torch.tensor([5]), 37000, 0.1)
    assert q[0, 5].item() == pytest.approx(0.9 + 0.1 / 37000)
    assert q[0, 6].item() == pytest.approx(0.1 / 37000)


def test_no_smoothing_is_plain_nll() -> None:
    logits, target = random_case(4, 5, 9, seed=1)
    nll = F.nll_loss(
        logits.reshape(-1, 9).log_softmax(-1), target.reshape(-1), ignore_index=0
    )
    for loss in (label_smoothed_cross_entropy, cross_entropy_loss):
        torch.testing.assert_close(loss(logits, target, 0.0, 0), nll)


def test_uniform_logits_cost_log_v_whatever_eps() -> None:
    V = 13
    logits = torch.zeros(2, 3, V)
    target = torch.tensor([[4, 5, 0], [6, 0, 0]])
    for eps in (0.0, 0.1, 0.4):
        for loss in (label_smoothed_cross_entropy, cross_entropy_loss):
            assert loss(logits, target, eps, 0).item() == pytest.approx(math.log(V))


def test_smoothing_penalises_confidence() -> None:
    """With eps > 0 the best logits are not infinitely confident: the loss of the
    smoothed target itself is lower than that of a one-hot prediction."""
    V, eps = 10, 0.1
    target = torch.tensor([[3]])
    q = smoothed_targets(target.view(-1), V, eps)
    matched = q.log().view(1, 1, V)  # logits whose softmax is the target
    confident = torch.full((1, 1, V), -30.0)
    confident[0, 0, 3] = 30.0
    for loss in (label_smoothed_cross_entropy, cross_entropy_loss):
        best = loss(matched, target, eps, 0)
        assert best < loss(confident, target, eps, 0)
        entropy = -(q * q.log()).sum()  # cross-entropy of q with itself
        torch.testing.assert_close(best, entropy)
