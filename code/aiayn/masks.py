"""Masks (section 3.2.3): which positions each query may attend to.

Every mask here is boolean and broadcasts against attention scores of shape
(B, h, T_q, T_k); ``True`` means *may attend*, the convention of
``torch.nn.functional.scaled_dot_product_attention``. Three are needed:

- the **padding mask**: no query attends to a padding key, in the encoder's
  self-attention, the decoder's self-attention and the encoder-decoder attention;
- the **causal mask**: "We need to prevent leftward information flow in the decoder
  to preserve the auto-regressive property. We implement this inside of scaled
  dot-product attention by masking out (setting to -inf) all values in the input of
  the softmax which correspond to illegal connections."
- their conjunction, for the decoder's self-attention.
"""

from __future__ import annotations

import torch
from torch import Tensor


def padding_mask(tokens: Tensor, pad_id: int) -> Tensor:
    """(B, T) token ids -> (B, 1, 1, T): True where the key is a real token."""
    return (tokens != pad_id)[:, None, None, :]  # (B, 1, 1, T)


def causal_mask(size: int, device: torch.device | None = None) -> Tensor:
    """(1, 1, T, T): position i may attend to positions 0..i (lower triangle)."""
    ones = torch.ones(size, size, dtype=torch.bool, device=device)
    return torch.tril(ones)[None, None]  # (1, 1, T, T)


def target_mask(tgt: Tensor, pad_id: int) -> Tensor:
    """(B, T) decoder input -> (B, 1, T, T): causal and no padding keys."""
    return padding_mask(tgt, pad_id) & causal_mask(tgt.size(1), tgt.device)
