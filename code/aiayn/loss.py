"""Label smoothing (section 5.4).

"During training, we employed label smoothing of value eps_ls = 0.1. This hurts
perplexity, as the model learns to be more unsure, but improves accuracy and BLEU
score."

The smoothed target distribution puts 1 - eps + eps/V on the correct token and
eps/V on every token (PyTorch's convention, Szegedy et al. 2016); the loss is the
cross-entropy against it, averaged over the non-padding target positions.
:func:`label_smoothed_cross_entropy` writes this out for the book;
:func:`cross_entropy_loss` uses ``F.cross_entropy(label_smoothing=...)``, the fused
version, and a test shows they agree. :func:`projected_cross_entropy` goes one
step further for the training loop: the pre-softmax projection and this loss in
one function, whose backward pass turns the saved probabilities into the
gradient in place (tests show the same loss and gradients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def smoothed_targets(target: Tensor, vocab_size: int, eps: float) -> Tensor:
    """(N,) ids -> (N, V) targets: 1-eps+eps/V on the id, eps/V elsewhere."""
    N = target.numel()
    dist = torch.full((N, vocab_size), eps / vocab_size, device=target.device)
    dist.scatter_(1, target.reshape(-1, 1), 1.0 - eps + eps / vocab_size)  # (N, V)
    return dist


def label_smoothed_cross_entropy(
    logits: Tensor, target: Tensor, eps: float, pad_id: int, reduction: str = "mean"
) -> Tensor:
    """Readable version. logits: (B, T, V), target: (B, T) with pad_id for padding."""
    V = logits.size(-1)
    logp = logits.reshape(-1, V).float().log_softmax(dim=-1)  # (N, V)
    flat = target.reshape(-1)  # (N,)
    q = smoothed_targets(flat.clamp(min=0), V, eps)  # (N, V)
    per_token = -(q * logp).sum(dim=-1)  # (N,)
    keep = flat != pad_id
    total = per_token[keep].sum()
    return total / keep.sum() if reduction == "mean" else total


def cross_entropy_loss(
    logits: Tensor, target: Tensor, eps: float, pad_id: int, reduction: str = "mean"
) -> Tensor:
    """Fused version for the hot path; same value as the readable one."""
    V = logits.size(-1)
    return F.cross_entropy(
        logits.reshape(-1, V).float(),
        target.reshape(-1),
        ignore_index=pad_id,
        label_smoothing=eps,
        reduction=reduction,
    )


class _ProjectedCrossEntropy(torch.autograd.Function):
    """sum_i loss_i of logits h W^T against label-smoothed targets, in one buffer.

    With z = h W^T (N, V), lse = log sum_j exp z_j and the smoothed target
    q = (1 - eps) onehot(t) + eps / V, the loss of a row is
    lse - (1 - eps) z_t - (eps / V) sum_j z_j, and its gradient with respect to
    z is softmax(z) - q. The forward pass turns the logits into softmax(z) in
    place and keeps that one (N, V) buffer; the backward pass subtracts q from it
    in place and multiplies by W and h. The separate projection and
    ``F.cross_entropy`` hold up to three (N, V) tensors at once: the logits,
    their log-softmax and the gradient.
    """

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, target: Tensor, eps: float) -> Tensor:
        z = h @ weight.t()  # (N, V) logits
        V = z.size(1)
        z_t = z.gather(1, target[:, None])[:, 0]  # (N,)
        z_sum = z.sum(dim=1)  # (N,)
        m = z.amax(dim=1, keepdim=True)  # (N, 1)
        p = z.sub_(m).exp_()  # (N, V), in place: exp(z - m)
        s = p.sum(dim=1, keepdim=True)  # (N, 1)
        p.div_(s)  # softmax(z), in place
        lse = m[:, 0] + s[:, 0].log()  # (N,)
        ctx.save_for_backward(h, weight, target, p)
        ctx.eps = eps
        return (lse - (1.0 - eps) * z_t - (eps / V) * z_sum).sum()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        h, weight, target, p = ctx.saved_tensors
        eps, V = ctx.eps, p.size(1)
        g = p.sub_(eps / V)  # softmax(z) - q, in place (this backward runs once)
        g.scatter_add_(
            1,
            target[:, None],
            torch.full_like(target[:, None], -(1.0 - eps), dtype=g.dtype),
        )
        g.mul_(grad)
        grad_h = g @ weight if ctx.needs_input_grad[0] else None  # (N, d)
        grad_w = g.t() @ h if ctx.needs_input_grad[1] else None  # (V, d)
        return grad_h, grad_w, None, None


def projected_cross_entropy(
    h: Tensor, weight: Tensor, target: Tensor, eps: float
) -> Tensor:
    """Summed loss of the logits ``h @ weight.T`` (h: (N, d), weight: (V, d)).

    The same value and gradients as ``cross_entropy_loss(h @ weight.T, target,
    eps, pad_id, "sum")`` for rows without padding (the training loop passes only
    real target tokens), computed in fp32 with one (N, V) buffer.
    Not under autocast: the training loop uses it in full precision only.
    """
    if h.dim() != 2 or target.shape != h.shape[:1]:
        raise ValueError(
            f"h must be (N, d) and target (N,); got {tuple(h.shape)} and "
            f"{tuple(target.shape)}"
        )
    return _ProjectedCrossEntropy.apply(h, weight, target, eps)
