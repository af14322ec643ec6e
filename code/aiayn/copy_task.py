"""The copy task: a toy that shows the whole machine works, in minutes on a CPU.

The model reads a random sequence of symbols and must write the same sequence. It
needs every part of the Transformer (the encoder to read, attention across to look
back at the source, the causal decoder to write one symbol at a time) and no real
data, so it is the first thing to train (The Annotated Transformer does the same).
Symbols 0..n-1 are token ids 4..n+3 (after pad, bos, eos, unk); the training and
held-out sets are drawn with different seeds and share no sequence.

Training the ``copy`` preset takes minutes on a 2-core CPU; the shipped run's
``checkpoints/copy/metrics.json`` records its wall time and device, and chapter 5
shows them.
"""

from __future__ import annotations

import random

from .batching import Pair
from .config import ModelConfig, TrainConfig
from .tokenizer import SymbolTokenizer


def copy_pairs(
    cfg: TrainConfig, n: int, seed: int, exclude: set | None = None
) -> list[Pair]:
    """``n`` distinct random (sequence, same sequence) pairs."""
    rng = random.Random(seed)
    first = SymbolTokenizer(cfg.copy_symbols).encode("0")[0]  # id of symbol 0
    seen: set[tuple[int, ...]] = set(exclude or ())
    pairs: list[Pair] = []
    while len(pairs) < n:
        length = rng.randint(cfg.copy_min_len, cfg.copy_max_len)
        seq = tuple(first + rng.randrange(cfg.copy_symbols) for _ in range(length))
        if seq in seen:
            continue
        seen.add(seq)
        pairs.append((list(seq), list(seq)))
    return pairs


def copy_config() -> TrainConfig:
    """The ``copy`` preset: a 2-layer model that learns to copy exactly.

    1400 steps, minutes on a 2-core CPU (the shipped run records its wall time).
    """
    n_symbols = 10
    return TrainConfig(
        name="copy",
        task="copy",
        model=ModelConfig.tiny(
            vocab_size=n_symbols + 4,
            d_model=64,
            d_ff=128,
            n_heads=4,
            n_layers=2,
            label_smoothing=0.0,
        ),
        copy_symbols=n_symbols,
        max_tokens=1024,
        max_steps=1400,
        warmup=100,
        lr_factor=0.5,
        eval_every=700,
        save_every=200,
        keep_checkpoints=3,
        average_last=3,
        beam_size=1,
        extra_len=2,
        notes="toy task: tiny model, no dropout or label smoothing, half the paper's "
        "learning rate, greedy decoding, the last 3 checkpoints averaged",
    )
