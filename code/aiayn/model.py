"""The Transformer (section 3, Figure 1): encoder, decoder, embeddings, softmax.

"The encoder maps an input sequence of symbol representations (x_1, ..., x_n) to a
sequence of continuous representations z = (z_1, ..., z_n). Given z, the decoder
then generates an output sequence (y_1, ..., y_m) of symbols one element at a time.
At each step the model is auto-regressive, consuming the previously generated
symbols as additional input when generating the next."

``model(src, tgt_in)`` returns logits (B, T, vocab) for teacher forcing;
``model.encode`` and ``model.decode`` are the two halves for step-by-step decoding,
where ``decode`` takes a key/value cache so that each step costs one new position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import Cache, cache_rows
from .config import ModelConfig
from .embeddings import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
)
from .errors import AiaynError
from .layers import DecoderLayer, EncoderLayer
from .masks import padding_mask, target_mask

# One entry per decoder layer: {"self": Cache, "cross": Cache}.
DecoderCache = list[dict[str, Cache]]


class Transformer(nn.Module):
    """The encoder-decoder Transformer of Figure 1, configured by ModelConfig."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        src_vocab = cfg.vocab_size if cfg.shared_vocab else cfg.src_vocab_size
        assert src_vocab is not None
        self.tgt_embed = TokenEmbedding(
            cfg.vocab_size, cfg.d_model, cfg.scale_embeddings
        )
        self.own_src_embed: TokenEmbedding | None = None  # None: src uses tgt_embed
        if not (cfg.shared_vocab and cfg.tie_embeddings):
            self.own_src_embed = TokenEmbedding(
                src_vocab, cfg.d_model, cfg.scale_embeddings
            )
        pos_cls = (
            LearnedPositionalEmbedding
            if cfg.learned_positions
            else SinusoidalPositionalEncoding
        )
        self.src_pos = pos_cls(cfg.d_model, cfg.max_len)
        self.tgt_pos = self.src_pos if not cfg.learned_positions else None
        if self.tgt_pos is None:
            self.tgt_pos = pos_cls(cfg.d_model, cfg.max_len)
        self.dropout = nn.Dropout(cfg.dropout)  # on the sums of embeddings and PE
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        # Pre-norm stacks end with a LayerNorm; post-norm layers already end with one.
        self.enc_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.dec_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        if cfg.tie_embeddings:
            self.generator = None  # the pre-softmax weight is tgt_embed's matrix
        else:
            self.generator = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.check_inputs = True  # validate token ids (costs a sync on GPU)
        self._init_linear()

    def _init_linear(self) -> None:
        """Xavier-uniform weights and zero biases for every linear map."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def src_embed(self) -> TokenEmbedding:
        """The source embedding: with a shared vocabulary, the target's own matrix."""
        return self.own_src_embed if self.own_src_embed is not None else self.tgt_embed

    @property
    def output_weight(self) -> Tensor:
        """The pre-softmax linear transformation's weight: (vocab, d_model)."""
        return (
            self.generator.weight
            if self.generator is not None
            else self.tgt_embed.weight
        )

    def num_parameters(self) -> int:
        """Distinct trainable parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # -- input checks -----------------------------------------------------------
    def _check(self, tokens: Tensor, name: str, vocab: int) -> None:
        if tokens.dim() != 2:
            raise AiaynError(
                f"{name} must be a 2-D (batch, length) tensor of token ids, "
                f"got shape {tuple(tokens.shape)}"
            )
        if tokens.dtype != torch.long:
            raise AiaynError(f"{name} must hold int64 token ids, got {tokens.dtype}")
        if tokens.size(0) == 0 or tokens.size(1) == 0:
            raise AiaynError(f"{name} is empty (shape {tuple(tokens.shape)})")
        if tokens.size(1) > self.cfg.max_len:
            raise AiaynError(
                f"{name} has length {tokens.size(1)} but the model covers at most "
                f"max_len={self.cfg.max_len} positions; truncate or split the input"
            )
        if self.check_inputs:
            lo, hi = int(tokens.min()), int(tokens.max())
            if lo < 0 or hi >= vocab:
                raise AiaynError(
                    f"{name} holds token id {lo if lo < 0 else hi}, outside the "
                    f"vocabulary [0, {vocab - 1}]; was it encoded with this model's "
                    "tokenizer?"
                )

    # -- the two halves ---------------------------------------------------------
    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """src: (B, S) -> memory (B, S, d_model) and its padding mask (B, 1, 1, S)."""
        self._check(src, "src", self.src_embed.weight.size(0))
        src_mask = padding_mask(src, self.cfg.pad_id)  # (B, 1, 1, S)
        x = self.dropout(self.src_pos(self.src_embed(src)))  # (B, S, d_model)
        for layer in self.encoder:
            x = layer(x, src_mask)
        return self.enc_norm(x), src_mask

    def decode(
        self,
        tgt_in: Tensor,
        memory: Tensor,
        src_mask: Tensor,
        cache: DecoderCache | None = None,
        offset: int = 0,
        keep: Tensor | None = None,
        project: bool = True,
    ) -> Tensor:
        """Decoder input (B, T) -> logits (B, T, vocab).

        ``keep`` (B, T) bool: project only those positions, logits (N, vocab). The
        training loop passes the non-padding targets: the output projection and
        the loss are then not computed for padding that the loss would ignore.
        ``project=False`` returns the decoder's output before the pre-softmax
        projection, (B, T, d_model) or (N, d_model), for a loss that applies
        :attr:`output_weight` itself (``loss.projected_cross_entropy``).

        Without a cache, ``tgt_in`` is the whole shifted target (teacher forcing).
        With a cache (from :meth:`init_cache`), ``tgt_in`` holds only the new
        positions starting at ``offset``; earlier keys and values come from the cache.
        """
        self._check(tgt_in, "tgt_in", self.cfg.vocab_size)
        if offset + tgt_in.size(1) > self.cfg.max_len:
            raise AiaynError(
                f"decoding past max_len={self.cfg.max_len} positions; "
                "ask for a shorter maximum output length"
            )
        if cache is None:
            tgt_mask: Tensor | None = target_mask(tgt_in, self.cfg.pad_id)  # (B,1,T,T)
        elif tgt_in.size(1) == 1:
            tgt_mask = None  # one new position may attend to every cached one
        else:
            raise AiaynError("cached decoding takes one new position at a time")
        x = self.tgt_embed(tgt_in)  # (B, T, d_model)
        x = self.dropout(self.tgt_pos(x, offset))
        for i, layer in enumerate(self.decoder):
            x = layer(x, memory, src_mask, tgt_mask, cache[i] if cache else None)
        x = self.dec_norm(x)
        if keep is not None:
            x = x[keep]  # (N, d_model)
        if not project:
            return x
        return F.linear(x, self.output_weight)  # (B, T, vocab) or (N, vocab)

    def forward(
        self,
        src: Tensor,
        tgt_in: Tensor,
        keep: Tensor | None = None,
        project: bool = True,
    ) -> Tensor:
        """src: (B, S), tgt_in: (B, T) padded with pad_id -> logits (B, T, vocab).

        With ``keep`` (B, T) bool, only those positions: logits (N, vocab); with
        ``project=False``, the decoder output before the projection (see decode).
        """
        if src.dim() == 2 and tgt_in.dim() == 2 and src.size(0) != tgt_in.size(0):
            raise AiaynError(
                f"src and tgt_in batch sizes differ: {src.size(0)} vs {tgt_in.size(0)}"
            )
        memory, src_mask = self.encode(src)
        return self.decode(tgt_in, memory, src_mask, keep=keep, project=project)

    def init_cache(self) -> DecoderCache:
        """An empty key/value cache for step-by-step decoding."""
        return [{"self": {}, "cross": {}} for _ in self.decoder]

    def set_fused_attention(self, fused: bool) -> None:
        """Switch every attention layer between fused and readable attention."""
        for m in self.modules():
            if hasattr(m, "fused"):
                m.fused = fused


def reorder_cache(cache: DecoderCache, index: Tensor) -> None:
    """Keep cache rows ``index`` (B',) of the self-attention caches, in place.

    Beam search calls this after choosing which hypotheses survive a step. The
    encoder-decoder caches are the same for every beam of a sentence, so they stay.
    """
    for layer in cache:
        cache_rows(layer["self"], index)


def select_cache_rows(
    cache: DecoderCache, index: Tensor, cross: Tensor | None = None
) -> None:
    """Keep rows ``index`` (B',) of the self-attention caches and rows ``cross``
    (default ``index``) of the encoder-decoder ones.

    The searches call this when finished sentences leave the batch; beam search's
    encoder-decoder caches hold one row per sentence, not per hypothesis.
    """
    cross = index if cross is None else cross
    for layer in cache:
        cache_rows(layer["self"], index)
        for key in ("k", "v"):
            if key in layer["cross"]:
                layer["cross"][key] = layer["cross"][key].index_select(0, cross)
