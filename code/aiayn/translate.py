"""Translating raw text: tokenise, batch by length, beam search, detokenise.

Used by evaluation (BLEU on a whole test set) and by ``python -m aiayn translate``.
Sentences are sorted by length and cut into batches of about ``batch_tokens``
source tokens, decoded, and put back in their original order. An empty sentence
translates to an empty string; one longer than the model covers is truncated with a
warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from .batching import encode_sources
from .decoding import Constraint, beam_search, greedy_decode
from .model import Transformer
from .tokenizer import Tokenizer


def decode_ids(
    model: Transformer,
    sources: Sequence[list[int]],
    beam_size: int = 4,
    alpha: float = 0.6,
    extra_len: int = 50,
    batch_tokens: int = 4000,
    progress: bool = False,
    constraint: Constraint | None = None,
    shrink: bool = True,
) -> list[list[int]]:
    """Decode source id lists (no EOS); beam_size 1 means greedy search.

    A `constraint` (see `aiayn.decoding.Constraint`) is begun afresh per batch;
    `shrink` is the searches' (finished sentences leave the batch).
    """
    cfg = model.cfg
    device = next(model.parameters()).device
    limit = cfg.max_len - 1  # room for the EOS appended to every source
    outputs: list[list[int]] = [[] for _ in sources]
    order = sorted(
        (i for i, s in enumerate(sources) if s), key=lambda i: len(sources[i])
    )
    batches, cur = [], []
    for i in order:
        n = min(len(sources[i]), limit) + 1
        if cur and (len(cur) + 1) * n * max(beam_size, 1) > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    truncated = 0
    for batch in tqdm(batches, desc="decoding", disable=not progress, leave=False):
        ids = []
        for i in batch:
            truncated += len(sources[i]) > limit
            ids.append(sources[i][:limit])
        src = encode_sources(ids, cfg.pad_id, cfg.eos_id).to(device)  # (B, S)
        with torch.autocast(device.type, enabled=False):
            if beam_size <= 1:
                out = greedy_decode(
                    model, src, extra_len=extra_len, constraint=constraint,
                    shrink=shrink,
                )  # fmt: skip
            else:
                out = beam_search(
                    model, src, beam_size, alpha, extra_len=extra_len,
                    constraint=constraint, shrink=shrink,
                )  # fmt: skip
        for i, o in zip(batch, out, strict=True):
            outputs[i] = o
    if truncated:
        warnings.warn(
            f"{truncated} input(s) longer than the model's {limit} source tokens "
            "were truncated",
            stacklevel=2,
        )
    return outputs


def translate(
    model: Transformer,
    tokenizer: Tokenizer,
    sentences: Sequence[str],
    beam_size: int = 4,
    alpha: float = 0.6,
    extra_len: int = 50,
    batch_tokens: int = 4000,
    progress: bool = False,
) -> list[str]:
    """Raw sentences in, detokenised translations out, in the same order."""
    sources = tokenizer.encode_batch([s.strip() for s in sentences])
    outs = decode_ids(
        model, sources, beam_size, alpha, extra_len, batch_tokens, progress
    )
    return [
        tokenizer.decode(o) if s.strip() else ""
        for s, o in zip(sentences, outs, strict=True)
    ]
