"""Tests for aiayn.visualise: sub-word attention merged into word attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aiayn import visualise
from aiayn.tokenizer import SubwordTokenizer


def _random_attention(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Rows that are distributions, like softmax output."""
    w = rng.random(shape)
    return w / w.sum(-1, keepdims=True)


def test_word_groups() -> None:
    pieces = ["the", " la", "w", " will", " ne", "ver", " ", "ig", "loo", " ."]
    assert visualise.word_groups(pieces) == [0, 1, 1, 2, 3, 3, 4, 4, 4, 5]
    assert visualise.word_groups(["▁a", "##b", "▁c"]) == [0, 0, 1]
    assert visualise.word_groups([" leading"]) == [0]  # the first opens word 0
    assert visualise.word_groups([]) == []


def test_merge_keeps_rows_distributions() -> None:
    rng = np.random.default_rng(0)
    w = _random_attention(rng, 2, 3, 7, 7)  # (N, h, T, T)
    groups = [0, 0, 1, 2, 2, 2, 3]
    merged = visualise.merge_pieces(w, groups, groups)
    assert merged.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(merged.sum(-1), 1.0, atol=1e-12)
    # rectangular, as encoder-decoder attention: target rows, source columns
    cross = _random_attention(rng, 5, 7)
    merged = visualise.merge_pieces(cross, [0, 1, 1, 2, 3], groups)
    assert merged.shape == (4, 4)
    np.testing.assert_allclose(merged.sum(-1), 1.0, atol=1e-12)


def test_one_piece_per_word_is_unchanged() -> None:
    rng = np.random.default_rng(1)
    w = _random_attention(rng, 4, 6, 6)
    groups = list(range(6))
    np.testing.assert_allclose(visualise.merge_pieces(w, groups, groups), w)


def test_merge_by_hand() -> None:
    # pieces "la", "w", "." : words "law" (pieces 0, 1) and "." (piece 2)
    w = np.array(
        [
            [0.5, 0.3, 0.2],
            [0.1, 0.1, 0.8],
            [0.4, 0.4, 0.2],
        ]
    )
    merged = visualise.merge_pieces(w, [0, 0, 1], [0, 0, 1])
    expected = np.array(
        [
            [(0.8 + 0.2) / 2, (0.2 + 0.8) / 2],  # mean of rows 0, 1
            [0.4 + 0.4, 0.2],  # columns 0 and 1 summed
        ]
    )
    np.testing.assert_allclose(merged, expected)


def test_causal_mask_survives_merging() -> None:
    rng = np.random.default_rng(2)
    T = 6
    w = _random_attention(rng, T, T) * np.tril(np.ones((T, T)))
    w /= w.sum(-1, keepdims=True)  # masked self-attention: lower triangular
    groups = [0, 1, 1, 2, 3, 3]
    merged = visualise.merge_pieces(w, groups, groups)
    assert np.allclose(np.triu(merged, 1), 0)  # no word sees a later word


@pytest.fixture(scope="module")
def tokenizer() -> SubwordTokenizer:
    text = ["a man in an orange hat .", "ein mann mit einem orangen hut ."] * 20
    return SubwordTokenizer.train(text, vocab_size=300, kind="bpe")


def test_words_spell_the_sentence(tokenizer: SubwordTokenizer) -> None:
    text = "a man in an orangefarbenen hat &apos;s ."
    ids = tokenizer.encode(text)
    labels, groups = visualise.words(tokenizer, ids)
    assert labels == ["a", "man", "in", "an", "orangefarbenen", "hat", "'s", "."]
    assert len(groups) == len(ids) and groups == sorted(groups)
    assert len(ids) > len(labels)  # some words were cut into pieces


def test_sentence_attention(tiny_model, tokenizer: SubwordTokenizer) -> None:
    model = tiny_model(vocab_size=tokenizer.vocab_size, n_layers=2, n_heads=2)
    sa = visualise.sentence_attention(model, tokenizer, "A man in a hat.")
    N, h = 2, 2
    S, T = len(sa.source), len(sa.target)
    assert sa.source[-1] == "</s>" and sa.target[-1] == "</s>"
    assert sa.target_in[0] == "<s>" and len(sa.target_in) == T
    assert sa.encoder.shape == (N, h, S, S)
    assert sa.decoder.shape == (N, h, T, T)
    assert sa.cross.shape == (N, h, T, S)
    for a in (sa.encoder, sa.decoder, sa.cross):
        np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)
    # row i may read target_in[: i + 2] (its own earlier pieces), never later
    assert np.allclose(np.triu(sa.decoder, 2), 0)
    attention = [m for m in model.modules() if hasattr(m, "store_weights")]
    assert not any(m.store_weights for m in attention)  # switched back off
    assert all(m.weights is None for m in attention)


def test_attention_maps_match_the_model(tiny_model) -> None:
    model = tiny_model(n_layers=2, n_heads=2)
    torch.manual_seed(0)
    src = torch.randint(4, model.cfg.vocab_size, (1, 5))
    tgt = torch.randint(4, model.cfg.vocab_size, (1, 4))
    maps = visualise.attention_maps(model, src, tgt)
    assert maps["encoder"].shape == (2, 2, 5, 5)
    assert maps["decoder"].shape == (2, 2, 4, 4)
    assert maps["cross"].shape == (2, 2, 4, 5)
    assert np.allclose(np.triu(maps["decoder"], 1), 0)  # the causal mask
    with torch.no_grad():
        fused = model(src, tgt)  # reading the weights changed nothing
        model.set_fused_attention(False)
        readable = model(src, tgt)
        model.set_fused_attention(True)
    torch.testing.assert_close(fused, readable, atol=1e-5, rtol=1e-5)


def test_attention_html_is_self_contained() -> None:
    w = _random_attention(np.random.default_rng(3), 2, 3, 3)
    page = visualise.attention_html(["a", "<b>", "c"], w, "fig-x")
    assert page.count('id="fig-x"') == 1 and "<script>" in page
    assert "&lt;b&gt;" in page  # labels are escaped
    assert "src=" not in page and "http" not in page  # nothing fetched
    assert page.count("<button") == 2
