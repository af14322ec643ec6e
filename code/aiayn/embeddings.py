"""Embeddings and softmax (section 3.4) and positional encoding (section 3.5).

"We use learned embeddings to convert the input tokens and output tokens to vectors
of dimension d_model. ... In our model, we share the same weight matrix between the
two embedding layers and the pre-softmax linear transformation ... In the embedding
layers, we multiply those weights by sqrt(d_model)."

"Since our model contains no recurrence and no convolution ... we add 'positional
encodings' to the input embeddings at the bottoms of the encoder and decoder stacks":

    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

Table 3 row (E) replaces them with learned positional embeddings
(:class:`LearnedPositionalEmbedding`), "nearly identical results".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TokenEmbedding(nn.Module):
    """Token ids -> vectors, multiplied by sqrt(d_model) (the paper's scale)."""

    def __init__(self, vocab_size: int, d_model: int, scale: bool = True) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        # Normal(0, d_model^-1/2): after the sqrt(d_model) scale, unit variance; the
        # same matrix is the pre-softmax weight when tied (fairseq's initialisation).
        nn.init.normal_(self.embedding.weight, mean=0.0, std=d_model**-0.5)
        self.scale = math.sqrt(d_model) if scale else 1.0

    @property
    def weight(self) -> Tensor:
        return self.embedding.weight  # (vocab, d_model)

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, T) int64 -> (B, T, d_model)."""
        return self.embedding(tokens) * self.scale


def sinusoidal_encoding(max_len: int, d_model: int) -> Tensor:
    """The table of sinusoids: (max_len, d_model), rows are positions."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (L, 1)
    i2 = torch.arange(0, d_model, 2, dtype=torch.float64)  # (d_model/2,) = 2i
    angle = pos / (10000.0 ** (i2 / d_model))  # (L, d_model/2), in float64:
    pe = torch.zeros(max_len, d_model)  # float32 sin differs between CPUs
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoids of section 3.5 (no parameters)."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model), False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x: (B, T, d_model); position of x[:, 0] is ``offset`` (for decoding)."""
        return x + self.pe[offset : offset + x.size(1)]  # (T, d_model) broadcasts


class LearnedPositionalEmbedding(nn.Module):
    """Table 3 (E): one learned vector per position instead of the sinusoids."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, mean=0.0, std=d_model**-0.5)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        pos = torch.arange(offset, offset + x.size(1), device=x.device)  # (T,)
        return x + self.embedding(pos)  # (T, d_model) broadcasts over B
