"""Label smoothing (section 5.4): the readable loss against the fused one, the
smoothed target distribution, and the limits eps = 0 and uniform logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from aiayn import ModelConfig, Transformer
from aiayn.batching import collate
from aiayn.loss import (
    cross_entropy_loss,
    label_smoothed_cross_entropy,
    projected_cross_entropy,
    smoothed_targets,
)
from aiayn.train import batch_loss

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


@SETTINGS
@given(
    N=st.integers(1, 9),
    d=st.integers(1, 12),
    V=st.integers(2, 40),
    eps=st.sampled_from([0.0, 0.1, 0.3]),
    seed=st.integers(0, 10_000),
)
def test_projected_loss_has_the_value_and_gradients_of_the_unfused_one(
    N: int, d: int, V: int, eps: float, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    h = (2 * torch.randn(N, d, generator=g)).requires_grad_()
    W = torch.randn(V, d, generator=g).requires_grad_()
    target = torch.randint(0, V, (N,), generator=g)
    h2, W2 = h.detach().clone().requires_grad_(), W.detach().clone().requires_grad_()
    fused = projected_cross_entropy(h, W, target, eps)
    plain = cross_entropy_loss(h2 @ W2.t(), target, eps, pad_id=-100, reduction="sum")
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    (3.0 * fused).backward()  # an upstream gradient that is not 1
    (3.0 * plain).backward()
    torch.testing.assert_close(h.grad, h2.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(W.grad, W2.grad, rtol=1e-4, atol=1e-5)


def test_projected_loss_rejects_padded_shapes() -> None:
    with pytest.raises(ValueError, match="must be"):
        projected_cross_entropy(
            torch.randn(2, 3, 4), torch.randn(5, 4), torch.zeros(2, 3), 0.1
        )


@pytest.mark.parametrize("tied", [True, False])
def test_training_loss_fused_or_not_is_the_same(tied: bool) -> None:
    """batch_loss, as the training loop calls it: same loss, same gradients."""
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(vocab_size=23, tie_embeddings=tied, label_smoothing=0.1)
    model = Transformer(cfg).eval()  # no dropout: both calls see the same network
    b = collate([([5, 6, 7, 8], [9, 10]), ([5], [11, 12, 13, 14, 15])], 0, 1, 2)
    got = []
    for fused in (True, False):
        model.zero_grad()
        loss = batch_loss(model, model, b, None, fused)
        loss.backward()
        got.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(got[0][0], got[1][0])
    for a, c in zip(got[0][1], got[1][1], strict=True):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-6)
    plain = cross_entropy_loss(model(b.src, b.tgt_in), b.tgt_out, 0.1, 0, "sum")
    torch.testing.assert_close(got[0][0], plain.detach())  # padding rows ignored
