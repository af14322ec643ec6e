"""Attention (section 3.2): the readable equation 1 against PyTorch's fused kernel,
and multi-head attention's fused and readable paths against each other."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from aiayn.attention import (
    MultiHeadAttention,
    cache_append,
    cache_rows,
    scaled_dot_product_attention,
)

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


def make_mask(kind: str, B: int, h: int, Tq: int, Tk: int, seed: int) -> torch.Tensor:
    """A boolean mask (True = may attend) with at least one True per query row,
    except for kind "empty": random, with whole rows of False (no key allowed)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "empty":  # (B, h, Tq, Tk): about half the rows see nothing
        m = torch.rand(B, h, Tq, Tk, generator=g) < 0.5
        return m & (torch.rand(B, h, Tq, 1, generator=g) < 0.5)
    if kind == "padding":  # (B, 1, 1, Tk): each sentence has 1..Tk real keys
        lengths = torch.randint(1, Tk + 1, (B,), generator=g)
        return (torch.arange(Tk)[None, :] < lengths[:, None])[:, None, None, :]
    if kind == "causal":  # (1, 1, Tq, Tk): query i sees keys 0..i
        return torch.ones(Tq, Tk, dtype=torch.bool).tril()[None, None]
    m = torch.rand(B, h, Tq, Tk, generator=g) < 0.5  # random, (B, h, Tq, Tk)
    keep = torch.randint(0, Tk, (B, h, Tq, 1), generator=g)
    return m.scatter(-1, keep, True)  # one allowed key per row at least


def qkv(
    B: int, h: int, Tq: int, Tk: int, d_k: int, d_v: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(B, h, Tq, d_k), (B, h, Tk, d_k), (B, h, Tk, d_v)]
    return tuple(
        torch.randn(s, generator=g, dtype=torch.float64).requires_grad_()
        for s in shapes
    )


@SETTINGS
@given(
    B=st.integers(1, 3),
    h=st.integers(1, 3),
    Tq=st.integers(1, 6),
    Tk=st.integers(1, 6),
    d_k=st.integers(1, 8),
    d_v=st.integers(1, 8),
    kind=st.sampled_from(["none", "padding", "causal", "random", "empty"]),
    seed=st.integers(0, 2**16),
)
def test_readable_equals_fused(
    B: int, h: int, Tq: int, Tk: int, d_k: int, d_v: int, kind: str, seed: int
) -> None:
    mask = None if kind == "none" else make_mask(kind, B, h, Tq, Tk, seed)
    q, k, v = qkv(B, h, Tq, Tk, d_k, d_v, seed)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == (B, h, Tq, d_v) and weights.shape == (B, h, Tq, Tk)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)

    # Gradients with respect to q, k and v agree too.
    g = torch.randn(out.shape, dtype=torch.float64)
    grads = torch.autograd.grad((out * g).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * g).sum(), (q, k, v))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)

    # Weights are distributions over the allowed keys (all 0 where none is).
    seen = torch.ones(B, h, Tq, dtype=torch.bool)
    if mask is not None:
        seen = mask.any(-1).expand(B, h, Tq)
    torch.testing.assert_close(weights.sum(-1), seen.double())
    assert (weights >= 0).all() and torch.isfinite(out).all()
    if mask is not None:
        assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()


def test_weights_by_hand() -> None:
    """One query, two keys: softmax of the scaled dot products, written out."""
    q = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])  # (1, 1, 4), d_k = 4
    k = torch.tensor([[[2.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]])  # (1, 2, 4)
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, 2, 2)
    out, weights = scaled_dot_product_attention(q, k, v)
    s = torch.tensor([2.0, 0.0]) / math.sqrt(4)  # scores / sqrt(d_k)
    expected = s.softmax(-1)
    torch.testing.assert_close(weights[0, 0], expected)
    torch.testing.assert_close(out[0, 0], expected)  # v is the identity
    mask = torch.tensor([[[False, True]]])
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert weights[0, 0].tolist() == [0.0, 1.0] and out[0, 0].tolist() == [0.0, 1.0]


def test_a_fully_masked_row_gives_zero_like_the_fused_kernel() -> None:
    """A query that may see no key: output 0 and weights 0 (not NaN), as fused."""
    q, k, v = qkv(2, 2, 3, 4, 5, 6, seed=3)
    allowed = [[True, True, False, True], [False] * 4]  # sentence 1: all padding
    mask = torch.tensor(allowed)[:, None, None, :]  # (B, 1, 1, T_k)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert (out[1] == 0).all() and (weights[1] == 0).all()
    assert (ref[1] == 0).all()  # what the fused kernel does
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(2, 3).double())
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.sum(), (q, k, v))
    for a, b in zip(grads, ref_grads, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_multi_head_all_padding_sentence_is_finite_on_both_paths() -> None:
    """An all-padding key sentence: readable and fused multi-head attention agree."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).double()
    x = torch.randn(2, 3, 16, dtype=torch.float64)
    mem = torch.randn(2, 5, 16, dtype=torch.float64)
    mask = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    mask[0, ..., 3:] = False  # sentence 0: two padding keys
    mask[1] = False  # sentence 1: only padding
    fused_out, fused_grads = mha_grads(mha, x, mem, mask)
    mha.fused = False
    readable_out, readable_grads = mha_grads(mha, x, mem, mask)
    assert torch.isfinite(readable_out).all()
    torch.testing.assert_close(readable_out, fused_out, rtol=1e-10, atol=1e-10)
    for name, grad in fused_grads.items():
        assert torch.isfinite(readable_grads[name]).all(), name
        torch.testing.assert_close(readable_grads[name], grad, rtol=1e-9, atol=1e-9)


def mha_grads(
    mha: MultiHeadAttention, x: torch.Tensor, mem: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    mha.zero_grad()
    out = mha(x, mem, mask)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in mha.named_parameters()}


@pytest.mark.parametrize(
    ("d_model", "h", "d_k", "d_v"),
    [(32, 4, None, None), (32, 4, 16, 12), (24, 1, None, None), (30, 5, 7, 3)],
)
@pytest.mark.parametrize("kind", ["padding", "causal", "random"])
def test_multi_head_fused_equals_readable(
    d_model: int, h: int, d_k: int | None, d_v: int | None, kind: str
) -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model, h, d_k, d_v).double()
    B, Tq, Tk = 3, 5, 5 if kind == "causal" else 7
    x = torch.randn(B, Tq, d_model, dtype=torch.float64)
    mem = x if kind == "causal" else torch.randn(B, Tk, d_model).double()
    mask = make_mask(kind, B, h, Tq, Tk, seed=1)

    assert mha.fused and not mha.store_weights
    fused_out, fused_grads = mha_grads(mha, x, mem, mask)
    assert mha.weights is None
    mha.fused = False
    readable_out, readable_grads = mha_grads(mha, x, mem, mask)
    mha.fused, mha.store_weights = True, True  # store_weights forces readable
    stored_out, stored_grads = mha_grads(mha, x, mem, mask)

    assert fused_out.shape == (B, Tq, d_model)
    torch.testing.assert_close(readable_out, fused_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(stored_out, fused_out, rtol=1e-10, atol=1e-10)
    assert set(fused_grads) == {
        f"w_{n}.{p}" for n in "qkvo" for p in ("weight", "bias")
    }
    for name, grad in fused_grads.items():
        assert grad.abs().sum() > 0, name  # every parameter takes part
        torch.testing.assert_close(readable_grads[name], grad, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(stored_grads[name], grad, rtol=1e-9, atol=1e-9)

    w = mha.weights
    assert w is not None and w.shape == (B, h, Tq, Tk) and not w.requires_grad
    torch.testing.assert_close(w.sum(-1), torch.ones(B, h, Tq).double())
    assert (w.masked_select(~mask.expand_as(w)) == 0).all()


def test_projection_sizes_follow_d_k_and_d_v() -> None:
    """Table 3 row (B): d_k = 16 with d_model = 32 and h = 4 (not 32 / 4 = 8)."""
    mha = MultiHeadAttention(d_model=32, n_heads=4, d_k=16, d_v=12)
    assert mha.w_q.weight.shape == (4 * 16, 32) and mha.w_k.weight.shape == (64, 32)
    assert mha.w_v.weight.shape == (4 * 12, 32) and mha.w_o.weight.shape == (32, 48)
    default = MultiHeadAttention(d_model=32, n_heads=4)
    assert (default.d_k, default.d_v) == (8, 8)
    default.store_weights = True
    out = default(torch.randn(2, 3, 32), torch.randn(2, 6, 32))
    assert out.shape == (2, 3, 32) and default.weights.shape == (2, 4, 3, 6)


def test_heads_are_independent() -> None:
    """Changing head 0's value projection changes only head 0's part of the concat."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=16, n_heads=4)
    seen: list[torch.Tensor] = []
    mha.w_o.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        mha(x, x)
        mha.w_v.weight[:4] += 1.0  # rows of head 0 (d_v = 4)
        mha(x, x)
    before, after = seen  # (B, T, h * d_v) concatenations
    assert not torch.allclose(before[..., :4], after[..., :4])
    torch.testing.assert_close(before[..., 4:], after[..., 4:])


def test_attention_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=16, n_heads=2, attention_dropout=0.5)
    x = torch.randn(2, 6, 16)
    mha.eval()
    for fused in (True, False):
        mha.fused = fused
        torch.testing.assert_close(mha(x, x), mha(x, x))
    mha.train()
    for fused in (True, False):
        mha.fused = fused
        assert not torch.allclose(mha(x, x), mha(x, x))


def test_cache_append_and_rows_match_cat_and_index_select() -> None:
    """The buffered self-attention cache against the plain one (torch.cat per step,
    index_select per reorder), with d_v != d_k, through growth past the first
    capacity, beam-style reorders (same rows) and sentences leaving (fewer rows)."""
    g = torch.Generator().manual_seed(3)
    B, h, d_k, d_v = 6, 2, 4, 3
    cache: dict[str, torch.Tensor] = {}
    ref_k, ref_v = torch.empty(B, h, 0, d_k), torch.empty(B, h, 0, d_v)
    for t in range(40):  # capacity 16, then 34, then 70
        k = torch.randn(B, h, 1, d_k, generator=g)
        v = torch.randn(B, h, 1, d_v, generator=g)
        got_k, got_v = cache_append(cache, k, v)
        ref_k, ref_v = torch.cat([ref_k, k], 2), torch.cat([ref_v, v], 2)
        assert torch.equal(got_k, ref_k) and torch.equal(got_v, ref_v)
        if t % 3 == 0:  # reorder, some rows twice
            index = torch.randint(0, B, (B,), generator=g)
            cache_rows(cache, index)
            ref_k, ref_v = ref_k[index], ref_v[index]
        if t == 30:  # two sentences leave
            index = torch.tensor([0, 2, 3, 5])
            cache_rows(cache, index)
            ref_k, ref_v, B = ref_k[index], ref_v[index], 4
        assert torch.equal(cache["k"], ref_k) and torch.equal(cache["v"], ref_v)
    assert cache["k_buf"].shape == (70, 4, h * d_k)
    assert cache["v_buf"].shape == (70, 4, h * d_v)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "readable"])
def test_grouped_queries_equal_repeated_keys(fused: bool) -> None:
    """Key/value rows shared by g consecutive query rows (beam search's encoder-
    decoder attention) give what repeating each key/value row g times gives."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    mha.fused = fused
    B, g, S = 3, 4, 7
    query, memory = torch.randn(B * g, 2, 16), torch.randn(B, S, 16)
    mask = torch.ones(B, 1, 1, S, dtype=torch.bool)
    mask[1, ..., 5:] = False  # a shorter sentence
    with torch.no_grad():
        grouped = mha(query, memory, mask)
        repeated = mha(
            query, memory.repeat_interleave(g, 0), mask.repeat_interleave(g, 0)
        )
    torch.testing.assert_close(grouped, repeated, rtol=0, atol=1e-6)


def test_fused_attention_on_cache_views_is_bit_identical() -> None:
    """The cache hands attention strided views of its time-major buffers; the
    fused kernel gives exactly what it gives on contiguous copies (the appendix
    says so, and beam search's outputs depend on it)."""
    g = torch.Generator().manual_seed(4)
    B, h, d = 8, 4, 32
    cache: dict[str, torch.Tensor] = {}
    for _ in range(13):
        k, v = (
            torch.randn(B, h, 1, d, generator=g),
            torch.randn(B, h, 1, d, generator=g),
        )
        keys, values = cache_append(cache, k, v)
    assert not keys.is_contiguous()
    q = torch.randn(B, h, 1, d, generator=g)
    on_views = F.scaled_dot_product_attention(q, keys, values)
    on_copies = F.scaled_dot_product_attention(
        q, keys.contiguous(), values.contiguous()
    )
    assert torch.equal(on_views, on_copies)
