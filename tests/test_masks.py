"""Masks (section 3.2.3): shapes, values, and how they combine."""

from __future__ import annotations

import torch

from aiayn.masks import causal_mask, padding_mask, target_mask


def test_padding_mask() -> None:
    tokens = torch.tensor([[5, 6, 2, 0, 0], [7, 2, 0, 0, 0], [4, 5, 6, 7, 2]])
    m = padding_mask(tokens, pad_id=0)
    assert m.shape == (3, 1, 1, 5) and m.dtype == torch.bool
    expected = torch.tensor(
        [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool
    )
    assert torch.equal(m[:, 0, 0], expected)
    assert torch.equal(padding_mask(tokens, pad_id=7)[:, 0, 0], tokens != 7)


def test_causal_mask() -> None:
    m = causal_mask(4)
    assert m.shape == (1, 1, 4, 4) and m.dtype == torch.bool
    expected = torch.tensor(
        [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool
    )
    assert torch.equal(m[0, 0], expected)
    for i in range(4):  # query i sees keys 0..i and nothing after
        assert m[0, 0, i, : i + 1].all() and not m[0, 0, i, i + 1 :].any()
    assert causal_mask(1).tolist() == [[[[True]]]]


def test_target_mask_is_causal_and_padding() -> None:
    tgt = torch.tensor([[1, 5, 6, 0], [1, 7, 0, 0]])
    m = target_mask(tgt, pad_id=0)
    assert m.shape == (2, 1, 4, 4) and m.dtype == torch.bool
    assert torch.equal(m, padding_mask(tgt, 0) & causal_mask(4))
    assert m[0, 0].tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, False],  # the padding query still sees the real keys
    ]
    assert m[1, 0].tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, False, False],
        [True, True, False, False],
    ]
    assert m[:, 0].any(dim=-1).all()  # no query is left without a key


def test_masks_broadcast_against_scores() -> None:
    B, h, T = 2, 3, 4
    scores = torch.zeros(B, h, T, T)
    tgt = torch.tensor([[1, 5, 6, 0], [1, 7, 0, 0]])
    assert scores.masked_fill(~target_mask(tgt, 0), 1.0).shape == (B, h, T, T)
    src = torch.tensor([[5, 2, 0], [5, 6, 2]])
    cross = torch.zeros(B, h, T, 3)  # decoder queries, encoder keys
    filled = cross.masked_fill(~padding_mask(src, 0), 1.0)
    assert filled[0, :, :, 2].eq(1).all() and filled[1].eq(0).all()
