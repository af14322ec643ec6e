"""Batching by approximate length (section 5.1) and padding a batch."""

from __future__ import annotations

import random
import statistics

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aiayn.batching import Pair, batch_stream, collate, encode_sources, token_batches

PAD, BOS, EOS = 0, 1, 2
SETTINGS = settings(max_examples=80, deadline=None, derandomize=True)


def make_pairs(lengths: list[tuple[int, int]]) -> list[Pair]:
    return [([5] * s, [6] * t) for s, t in lengths]


def padded_cost(pairs: list[Pair], batch: list[int]) -> int:
    """Tokens of the padded batch on its larger side (source + EOS, BOS + target)."""
    longest = max(max(len(pairs[i][0]), len(pairs[i][1])) + 1 for i in batch)
    return len(batch) * longest


lengths_st = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=60)


@SETTINGS
@given(
    lengths=lengths_st,
    max_tokens=st.integers(1, 300),
    seed=st.integers(0, 100),
    shuffle=st.booleans(),
)
def test_every_pair_once_within_budget(
    lengths: list[tuple[int, int]], max_tokens: int, seed: int, shuffle: bool
) -> None:
    pairs = make_pairs(lengths)
    batches = token_batches(pairs, max_tokens, seed=seed, shuffle=shuffle)
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))
    assert all(batches)  # no empty batch
    for b in batches:
        if len(b) > 1:  # a single pair over the budget gets a batch of its own
            assert padded_cost(pairs, b) <= max_tokens


@SETTINGS
@given(lengths=lengths_st, max_tokens=st.integers(1, 300))
def test_batches_are_full(lengths: list[tuple[int, int]], max_tokens: int) -> None:
    """Unshuffled, batches follow the length order, and each is cut only when the
    next pair would break the budget."""
    pairs = make_pairs(lengths)
    batches = token_batches(pairs, max_tokens, shuffle=False)
    order = [i for b in batches for i in b]
    keys = [(len(pairs[i][0]), len(pairs[i][1])) for i in order]
    assert keys == sorted(keys)
    for b, nxt in zip(batches, batches[1:], strict=False):
        assert padded_cost(pairs, b + nxt[:1]) > max_tokens


def realistic_pairs(n: int, seed: int) -> list[Pair]:
    """Sentence pairs with Multi30k-like lengths: targets track their sources."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        s = max(1, int(rng.gauss(13, 5)))
        t = max(1, int(s * rng.uniform(0.8, 1.3)))
        pairs.append(([7] * s, [8] * t))
    return pairs


def mean_spread(pairs: list[Pair], batches: list[list[int]]) -> float:
    """Mean over batches of (longest - shortest source) in the batch."""
    spreads = [
        max(len(pairs[i][0]) for i in b) - min(len(pairs[i][0]) for i in b)
        for b in batches
    ]
    return statistics.mean(spreads)


def test_similar_lengths_are_grouped() -> None:
    pairs = realistic_pairs(3000, seed=0)
    batches = token_batches(pairs, max_tokens=500, seed=0)
    # Random batching with the same batch sizes, for comparison.
    rng = random.Random(0)
    perm = list(range(len(pairs)))
    rng.shuffle(perm)
    random_batches, start = [], 0
    for b in batches:
        random_batches.append(perm[start : start + len(b)])
        start += len(b)
    assert mean_spread(pairs, batches) < 0.1 * mean_spread(pairs, random_batches)
    # So little is padding: real tokens over padded tokens, target side.
    real = sum(len(pairs[i][1]) + 1 for b in batches for i in b)
    padded = sum(len(b) * max(len(pairs[i][1]) + 1 for i in b) for b in batches)
    assert real / padded > 0.9


def test_shuffling_is_seeded() -> None:
    pairs = realistic_pairs(500, seed=1)
    a = token_batches(pairs, 400, seed=1)
    assert a == token_batches(pairs, 400, seed=1)  # deterministic
    b = token_batches(pairs, 400, seed=2)
    assert a != b  # another epoch, another order
    assert sorted(map(sorted, a)) != sorted(map(sorted, b))  # and other groups
    first_lengths = [len(pairs[x[0]][0]) for x in a]
    assert first_lengths != sorted(first_lengths)  # batches come in random order
    unshuffled = token_batches(pairs, 400, seed=1, shuffle=False)
    assert unshuffled == token_batches(pairs, 400, seed=2, shuffle=False)


def test_batch_stream_reshuffles_each_epoch() -> None:
    pairs = realistic_pairs(200, seed=3)
    stream = batch_stream(pairs, 300, seed=5)
    n = len(token_batches(pairs, 300, seed=5))
    epochs = [[next(stream) for _ in range(n)] for _ in range(2)]
    assert [e for e, _ in epochs[0]] == [0] * n and epochs[1][0][0] == 1
    assert [b for _, b in epochs[0]] == token_batches(pairs, 300, seed=5)
    assert [b for _, b in epochs[1]] == token_batches(pairs, 300, seed=6)
    resumed = batch_stream(pairs, 300, seed=5, start_epoch=1)
    assert next(resumed) == epochs[1][0]


def test_collate() -> None:
    pairs = [([10, 11, 12], [20, 21]), ([13], [22, 23, 24, 25]), ([14, 15], [26])]
    batch = collate(pairs, PAD, BOS, EOS)
    assert batch.src.tolist() == [
        [10, 11, 12, EOS],
        [13, EOS, PAD, PAD],
        [14, 15, EOS, PAD],
    ]
    assert batch.tgt_in.tolist() == [
        [BOS, 20, 21, PAD, PAD],
        [BOS, 22, 23, 24, 25],
        [BOS, 26, PAD, PAD, PAD],
    ]
    assert batch.tgt_out.tolist() == [
        [20, 21, EOS, PAD, PAD],
        [22, 23, 24, 25, EOS],
        [26, EOS, PAD, PAD, PAD],
    ]
    assert batch.n_tgt_tokens == 3 + 5 + 2 == int((batch.tgt_out != PAD).sum())
    assert batch.n_src_tokens == 4 + 2 + 3 == int((batch.src != PAD).sum())
    for t in (batch.src, batch.tgt_in, batch.tgt_out):
        assert t.dtype == torch.long
    # The decoder input is the output shifted right by one, BOS first.
    real = batch.tgt_in != PAD
    assert torch.equal(
        batch.tgt_in[:, 1:][real[:, 1:]], batch.tgt_out[:, :-1][real[:, 1:]]
    )
    moved = batch.to("cpu")
    assert torch.equal(moved.src, batch.src) and moved.n_tgt_tokens == 10


@SETTINGS
@given(lengths=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1))
def test_collate_shapes(lengths: list[tuple[int, int]]) -> None:
    pairs = [(list(range(4, 4 + s)), list(range(4, 4 + t))) for s, t in lengths]
    batch = collate(pairs, PAD, BOS, EOS)
    B, S, T = len(pairs), max(s for s, _ in lengths) + 1, max(t for _, t in lengths) + 1
    assert batch.src.shape == (B, S) and batch.tgt_in.shape == batch.tgt_out.shape
    assert batch.tgt_in.shape == (B, T)
    for b, (s, t) in enumerate(lengths):
        assert batch.src[b, s] == EOS and (batch.src[b, s + 1 :] == PAD).all()
        assert batch.tgt_in[b, 0] == BOS and batch.tgt_out[b, t] == EOS
        assert (batch.tgt_in[b, t + 1 :] == PAD).all()
    assert (batch.tgt_in == EOS).sum() == 0 and (batch.tgt_out == BOS).sum() == 0
    assert batch.n_tgt_tokens == sum(t + 1 for _, t in lengths)


def test_encode_sources() -> None:
    src = encode_sources([[5, 6], [], [7, 8, 9]], PAD, EOS)
    assert src.tolist() == [[5, 6, EOS, PAD], [EOS, PAD, PAD, PAD], [7, 8, 9, EOS]]
