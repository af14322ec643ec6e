"""Attention (section 3.2): scaled dot-product and multi-head attention.

Scaled dot-product attention (equation 1):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Multi-head attention runs h of them in parallel on learned projections:

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

:func:`scaled_dot_product_attention` is the readable version: it returns the
attention weights too, for the book's figures. :class:`MultiHeadAttention` calls the
fused ``torch.nn.functional.scaled_dot_product_attention`` on the hot path (training
and decoding) unless ``store_weights`` is set; a test shows the two agree in values
and gradients. It also keeps a key/value cache for step-by-step decoding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A per-layer cache for incremental decoding: {"k": (B, h, t, d_k), "v": ...}
# (self-attention: views of time-major buffers, see cache_append).
Cache = dict[str, Tensor]


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout: nn.Module | None = None,
) -> tuple[Tensor, Tensor]:
    """Equation 1, written out. Returns (output, attention weights).

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v);
    mask: boolean, broadcastable to (..., T_q, T_k), True where attending is allowed.
    A query that may attend to no key (a row of padding) gets weights 0 and output
    0, as in the fused kernel, rather than softmax's 0 / 0 = NaN.
    """
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # (..., T_q, T_k), rows sum to 1
    if mask is not None:
        empty = ~mask.any(dim=-1, keepdim=True)  # (..., T_q, 1) no key allowed
        weights = weights.masked_fill(empty, 0.0)  # NaN rows -> 0
    if dropout is not None:
        weights = dropout(weights)
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


class MultiHeadAttention(nn.Module):
    """h heads of scaled dot-product attention over learned projections (3.2.2)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_k: int | None = None,
        d_v: int | None = None,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.h = n_heads
        self.d_k = d_k if d_k is not None else d_model // n_heads
        self.d_v = d_v if d_v is not None else d_model // n_heads
        self.w_q = nn.Linear(d_model, n_heads * self.d_k)  # all h W_i^Q at once
        self.w_k = nn.Linear(d_model, n_heads * self.d_k)
        self.w_v = nn.Linear(d_model, n_heads * self.d_v)
        self.w_o = nn.Linear(n_heads * self.d_v, d_model)  # W^O
        self.attention_dropout = attention_dropout
        self.dropout = nn.Dropout(attention_dropout)
        self.fused = True  # use F.scaled_dot_product_attention
        # ...except for one query on a CPU (each step of cached decoding), where
        # matmul-softmax-matmul is faster (bench/decode_paths.py)
        self.plain_single_query = False  # off until the benchmark says it wins
        self.store_weights = False  # keep the last weights (forces readable path)
        self.weights: Tensor | None = None

    def _split(self, x: Tensor, d: int) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.h, d).transpose(1, 2)  # (B, h, T, d)

    def forward(
        self,
        query: Tensor,
        key_value: Tensor,
        mask: Tensor | None = None,
        cache: Cache | None = None,
        static_kv: bool = False,
    ) -> Tensor:
        """query: (B, T_q, d_model), key_value: (B, T_k, d_model) -> (B, T_q, d_model).

        With a ``cache``, self-attention (``static_kv=False``) appends this step's
        keys and values to the cached ones; encoder-decoder attention
        (``static_kv=True``) projects the encoder output once and reuses it.
        ``key_value`` may have one row per g consecutive query rows (beam search's
        g hypotheses of a sentence): they attend to its keys as g * T_q queries.
        """
        q = self._split(self.w_q(query), self.d_k)  # (B, h, T_q, d_k)
        if cache is not None and static_kv and "k" in cache:
            k, v = cache["k"], cache["v"]  # (B, h, T_k, d_k), (B, h, T_k, d_v)
        else:
            k = self._split(self.w_k(key_value), self.d_k)  # (B, h, T_k, d_k)
            v = self._split(self.w_v(key_value), self.d_v)  # (B, h, T_k, d_v)
            if cache is not None and not static_kv:
                k, v = cache_append(cache, k, v)  # (B, h, t + T_k, d_k), ...
            elif cache is not None:
                cache["k"], cache["v"] = k, v
        g = q.size(0) // k.size(0)  # query rows per key row
        if g > 1:  # (B*g, h, T_q, d_k) -> (B, h, g*T_q, d_k)
            q = q.unflatten(0, (-1, g)).transpose(1, 2).flatten(2, 3)
        plain = self.plain_single_query and q.size(2) == 1 and not q.is_cuda
        if self.fused and not self.store_weights and not (plain and not self.training):
            p = self.attention_dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask, self.dropout)
            if g > 1:
                weights = weights.unflatten(2, (g, -1)).transpose(1, 2).flatten(0, 1)
            self.weights = weights.detach() if self.store_weights else None
        if g > 1:  # (B, h, g*T_q, d_v) -> (B*g, h, T_q, d_v)
            out = out.unflatten(2, (g, -1)).transpose(1, 2).flatten(0, 1)
        B, _, T_q, _ = out.shape
        out = out.transpose(1, 2).reshape(B, T_q, self.h * self.d_v)  # (B, T_q, h*d_v)
        return self.w_o(out)  # (B, T_q, d_model)


def cache_append(cache: Cache, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Append new keys and values (B, h, T, d) to a self-attention cache.

    Returns every position's so far, (B, h, t + T, d). They are views of
    time-major buffers ``cache["k_buf"]`` (capacity, B, h * d), which double when
    full: a step writes its own position instead of copying the whole prefix
    (``torch.cat`` would), and `cache_rows` moves whole prefixes at once.
    """
    t, T = cache["k"].size(2) if "k" in cache else 0, k.size(2)
    if "k_buf" not in cache or t + T > cache["k_buf"].size(0):
        for name, new in (("k", k), ("v", v)):
            width = new.size(1) * new.size(3)  # h * d
            buf = new.new_empty((max(16, 2 * (t + T)), new.size(0), width))
            if t:
                buf[:t] = cache[name + "_buf"][:t]
            cache[name + "_buf"] = buf  # (capacity, B, h * d)
            cache.pop(name + "_spare", None)
    for name, new in (("k", k), ("v", v)):
        cache[name + "_buf"][t : t + T] = new.permute(2, 0, 1, 3).flatten(2)
    _views(cache, t + T, k.size(1))
    return cache["k"], cache["v"]


def _views(cache: Cache, t: int, h: int) -> None:
    """Point ``cache["k"]`` and ``cache["v"]`` (B, h, t, d) at the buffers' prefix."""
    for name in ("k", "v"):
        prefix = cache[name + "_buf"][:t]  # (t, B, h * d)
        cache[name] = prefix.unflatten(2, (h, -1)).permute(1, 2, 0, 3)


def cache_rows(cache: Cache, index: Tensor) -> None:
    """Keep rows ``index`` (B',) of a self-attention cache, in that order.

    Beam search reorders its hypotheses every step (B' = B): the prefixes are
    gathered into a spare buffer, which then swaps with the live one.
    """
    if "k" not in cache:
        return
    _, h, t, _ = cache["k"].shape
    for name in ("k", "v"):
        buf = cache[name + "_buf"]
        if index.numel() == buf.size(1):
            spare = cache.get(name + "_spare")
            spare = torch.empty_like(buf) if spare is None else spare
            torch.index_select(buf[:t], 1, index, out=spare[:t])
            cache[name + "_buf"], cache[name + "_spare"] = spare, buf
        else:  # fewer rows (finished sentences leave the batch)
            cache[name + "_buf"] = buf.index_select(1, index)
            cache.pop(name + "_spare", None)
    _views(cache, t, h)
