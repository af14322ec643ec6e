"""Label smoothing (section 5.4).

"During training, we employed label smoothing of value eps_ls = 0.1. This hurts
perplexity, as the model learns to be more unsure, but improves accuracy and BLEU
score."

The smoothed target distribution puts 1 - eps + eps/V on the correct token and
eps/V on every token (PyTorch's convention, Szegedy et al. 2016); the loss is the
cross-entropy against it, averaged over the non-padding target positions.
:func:`label_smoothed_cross_entropy` writes this out for the book;
:func:`cross_entropy_loss` uses ``F.cross_entropy(label_smoothing=...)``, the fused
version the training loop runs, and a test shows they agree.
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
