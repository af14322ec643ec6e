"""Encoder and decoder stacks (section 3.1): the layers and their residual wiring.

"We employ a residual connection around each of the two sub-layers, followed by
layer normalization. That is, the output of each sub-layer is
LayerNorm(x + Sublayer(x))" (post-norm, the paper's default). "We apply dropout to
the output of each sub-layer, before it is added to the sub-layer input and
normalized." With ``norm_first`` the layer computes x + Sublayer(LayerNorm(x))
instead (pre-norm, Xiong et al. 2020), and the stacks end with a final LayerNorm.

The decoder "inserts a third sub-layer, which performs multi-head attention over the
output of the encoder stack."
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from .attention import Cache, MultiHeadAttention
from .config import ModelConfig
from .feed_forward import PositionwiseFeedForward


class SublayerConnection(nn.Module):
    """Residual connection, dropout and layer norm around one sublayer."""

    def __init__(self, d_model: int, dropout: float, norm_first: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        """x: (B, T, d_model) -> (B, T, d_model)."""
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))  # pre-norm
        return self.norm(x + self.dropout(sublayer(x)))  # post-norm (the paper)


def _attention(cfg: ModelConfig) -> MultiHeadAttention:
    return MultiHeadAttention(
        cfg.d_model,
        cfg.n_heads,
        cfg.head_dim_k,
        cfg.head_dim_v,
        cfg.attention_dropout,
    )


def _feed_forward(cfg: ModelConfig) -> PositionwiseFeedForward:
    return PositionwiseFeedForward(cfg.d_model, cfg.d_ff, cfg.relu_dropout)


class EncoderLayer(nn.Module):
    """Self-attention, then the feed-forward network, each wrapped as above."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.self_attn = _attention(cfg)
        self.feed_forward = _feed_forward(cfg)
        self.sublayers = nn.ModuleList(
            SublayerConnection(cfg.d_model, cfg.dropout, cfg.norm_first)
            for _ in range(2)
        )

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        """x: (B, S, d_model), src_mask: (B, 1, 1, S) -> (B, S, d_model)."""
        x = self.sublayers[0](x, lambda y: self.self_attn(y, y, src_mask))
        return self.sublayers[1](x, self.feed_forward)


class DecoderLayer(nn.Module):
    """Masked self-attention, encoder-decoder attention, then feed-forward."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.self_attn = _attention(cfg)
        self.cross_attn = _attention(cfg)
        self.feed_forward = _feed_forward(cfg)
        self.sublayers = nn.ModuleList(
            SublayerConnection(cfg.d_model, cfg.dropout, cfg.norm_first)
            for _ in range(3)
        )

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        src_mask: Tensor,
        tgt_mask: Tensor | None,
        cache: dict[str, Cache] | None = None,
    ) -> Tensor:
        """x: (B, T, d_model), memory: (B, S, d_model) -> (B, T, d_model).

        ``cache`` holds this layer's {"self": ..., "cross": ...} key/value caches
        during step-by-step decoding (then x is the newest position only).
        """
        self_cache = cache["self"] if cache is not None else None
        cross_cache = cache["cross"] if cache is not None else None
        x = self.sublayers[0](
            x, lambda y: self.self_attn(y, y, tgt_mask, cache=self_cache)
        )
        x = self.sublayers[1](
            x,
            lambda y: self.cross_attn(
                y, memory, src_mask, cache=cross_cache, static_kv=True
            ),
        )
        return self.sublayers[2](x, self.feed_forward)
