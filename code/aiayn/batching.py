"""Batching by token count (section 5.1).

"Sentence pairs were batched together by approximate sequence length. Each training
batch contained a set of sentence pairs containing approximately 25000 source tokens
and 25000 target tokens."

:func:`token_batches` sorts pairs by length (ties broken at random each epoch), cuts
the sorted list into batches whose padded source and padded target each hold at
most ``max_tokens`` tokens, and shuffles the order of the batches. Every pair lands
in exactly one batch per epoch. :func:`collate` pads a batch into tensors: the
source ends in EOS, the decoder input starts with BOS, the decoder output (the
labels) ends in EOS.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Pair = tuple[list[int], list[int]]  # (source ids, target ids), no BOS/EOS


@dataclass
class Batch:
    """One padded batch. Shapes: src (B, S), tgt_in (B, T), tgt_out (B, T)."""

    src: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    n_tgt_tokens: int  # non-padding labels, for normalising the loss
    n_src_tokens: int

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.src.to(device, non_blocking=True),
            self.tgt_in.to(device, non_blocking=True),
            self.tgt_out.to(device, non_blocking=True),
            self.n_tgt_tokens,
            self.n_src_tokens,
        )


def token_batches(
    pairs: Sequence[Pair], max_tokens: int, seed: int = 0, shuffle: bool = True
) -> list[list[int]]:
    """Indices of ``pairs`` grouped into batches of about ``max_tokens`` tokens.

    A batch's cost is counted with padding: n_pairs * longest source (EOS included)
    and n_pairs * longest target (BOS included) must both stay within max_tokens.
    A single pair longer than max_tokens still gets a batch of its own.
    """
    rng = random.Random(seed)
    tiebreak = [rng.random() for _ in pairs] if shuffle else [0.0] * len(pairs)
    order = sorted(
        range(len(pairs)),
        key=lambda i: (len(pairs[i][0]), len(pairs[i][1]), tiebreak[i]),
    )
    batches: list[list[int]] = []
    cur: list[int] = []
    s_max = t_max = 0
    for i in order:
        s, t = len(pairs[i][0]) + 1, len(pairs[i][1]) + 1
        ns, nt = max(s_max, s), max(t_max, t)
        if cur and (len(cur) + 1) * max(ns, nt) > max_tokens:
            batches.append(cur)
            cur, ns, nt = [], s, t
        cur.append(i)
        s_max, t_max = ns, nt
    if cur:
        batches.append(cur)
    if shuffle:
        rng.shuffle(batches)
    return batches


def collate(pairs: Sequence[Pair], pad_id: int, bos_id: int, eos_id: int) -> Batch:
    """Pad a list of pairs into a :class:`Batch`."""
    B = len(pairs)
    src = encode_sources([s for s, _ in pairs], pad_id, eos_id)  # (B, S)
    T = max(len(t) for _, t in pairs) + 1  # + BOS (input) or EOS (output)
    tgt_in = torch.full((B, T), pad_id, dtype=torch.long)
    tgt_out = torch.full((B, T), pad_id, dtype=torch.long)
    for b, (_, t) in enumerate(pairs):
        tgt_in[b, : len(t) + 1] = torch.tensor([bos_id] + t)
        tgt_out[b, : len(t) + 1] = torch.tensor(t + [eos_id])
    n_tgt = sum(len(t) + 1 for _, t in pairs)
    n_src = sum(len(s) + 1 for s, _ in pairs)
    return Batch(src, tgt_in, tgt_out, n_tgt, n_src)


def encode_sources(sources: Sequence[list[int]], pad_id: int, eos_id: int) -> Tensor:
    """Pad source id lists (each + EOS) into (B, S) for decoding."""
    S = max(len(s) for s in sources) + 1
    src = torch.full((len(sources), S), pad_id, dtype=torch.long)
    for b, s in enumerate(sources):
        src[b, : len(s) + 1] = torch.tensor(s + [eos_id])
    return src


def batch_stream(
    pairs: Sequence[Pair], max_tokens: int, seed: int, start_epoch: int = 0
) -> Iterator[tuple[int, list[int]]]:
    """Endless (epoch, batch indices), reshuffled every epoch with seed + epoch."""
    epoch = start_epoch
    while True:
        for batch in token_batches(pairs, max_tokens, seed=seed + epoch):
            yield epoch, batch
        epoch += 1
