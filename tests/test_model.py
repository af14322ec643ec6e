"""The Transformer (section 3): shapes, the auto-regressive property, padding,
incremental decoding, shared weights (3.4), embeddings and positions (3.4, 3.5),
and helpful errors for bad input."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiayn.embeddings import TokenEmbedding, sinusoidal_encoding
from aiayn.errors import AiaynError
from aiayn.feed_forward import PositionwiseFeedForward
from aiayn.model import Transformer, reorder_cache

TinyModel = Callable[..., Transformer]  # conftest.py's tiny_model factory
V = 16  # ModelConfig.tiny's vocabulary: 0 pad, 1 bos, 2 eos, 3 unk, 4..15 words
SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def random_batch(
    lengths: list[int], g: torch.Generator, start: int | None = None, vocab: int = V
) -> torch.Tensor:
    """(B, max length) padded with 0: word ids, ending in EOS (``start=None``) or
    starting with ``start`` (a decoder input)."""
    rows = []
    for n in lengths:
        words = torch.randint(4, vocab, (n - 1,), generator=g).tolist()
        rows.append(words + [2] if start is None else [start] + words)
    out = torch.zeros(len(rows), max(lengths), dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, : len(row)] = torch.tensor(row)
    return out


def pad_right(x: torch.Tensor, extra: int) -> torch.Tensor:
    return torch.cat([x, x.new_zeros(x.size(0), extra)], dim=1)


def test_logits_shape(tiny_model: TinyModel) -> None:
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    src, tgt_in = random_batch([5, 3, 7], g), random_batch([4, 6, 2], g, start=1)
    logits = model(src, tgt_in)
    assert logits.shape == (3, 6, V) and logits.dtype == torch.float32
    memory, src_mask = model.encode(src)
    assert memory.shape == (3, 7, 32) and src_mask.shape == (3, 1, 1, 7)
    torch.testing.assert_close(model.decode(tgt_in, memory, src_mask), logits)


@SETTINGS
@given(
    seed=st.integers(0, 3),
    S=st.integers(1, 8),
    T=st.integers(1, 8),
    norm_first=st.booleans(),
)
def test_no_logit_sees_the_future(
    tiny_model: TinyModel, seed: int, S: int, T: int, norm_first: bool
) -> None:
    """Changing decoder input t changes the logits at t and none before t."""
    model = tiny_model(seed, norm_first=norm_first)
    g = torch.Generator().manual_seed(seed)
    src, tgt_in = random_batch([S, S], g), random_batch([T, T], g, start=1)
    with torch.no_grad():
        logits = model(src, tgt_in)
        for t in range(T):
            changed = tgt_in.clone()
            changed[:, t] = 4 + (changed[:, t] - 3) % (V - 4)  # another word
            assert (changed[:, t] != tgt_in[:, t]).all()
            new = model(src, changed)
            torch.testing.assert_close(new[:, :t], logits[:, :t], rtol=0, atol=1e-6)
            assert (new[:, t] - logits[:, t]).abs().amax() > 1e-4


def test_decoder_sees_the_source(tiny_model: TinyModel) -> None:
    """The converse check: every logit depends on the source."""
    model = tiny_model()
    g = torch.Generator().manual_seed(1)
    src, tgt_in = random_batch([6], g), random_batch([5], g, start=1)
    changed = src.clone()
    changed[0, 0] = 4 + (changed[0, 0] - 3) % (V - 4)
    with torch.no_grad():
        diff = (model(src, tgt_in) - model(changed, tgt_in)).abs().amax(dim=-1)
    assert (diff > 1e-4).all()


@pytest.mark.parametrize(
    "overrides",
    [{}, {"norm_first": True}, {"learned_positions": True}],
    ids=["post-norm", "pre-norm", "learned-positions"],
)
def test_padding_changes_no_real_logit(
    tiny_model: TinyModel, overrides: dict[str, bool]
) -> None:
    model = tiny_model(3, **overrides)
    g = torch.Generator().manual_seed(3)
    src = random_batch([6, 2, 4], g)
    tgt_in = random_batch([3, 5, 1], g, start=1)
    real = (tgt_in != 0)[..., None]  # (B, T, 1) real decoder positions
    with torch.no_grad():
        logits = model(src, tgt_in)
        more_src = model(pad_right(src, 5), tgt_in)
        more_tgt = model(src, pad_right(tgt_in, 4))[:, : tgt_in.size(1)]
        for b in range(3):  # each sentence alone, without any padding
            s, t = int((src[b] != 0).sum()), int((tgt_in[b] != 0).sum())
            alone = model(src[b : b + 1, :s], tgt_in[b : b + 1, :t])
            torch.testing.assert_close(alone[0], logits[b, :t], rtol=0, atol=1e-5)
    torch.testing.assert_close(more_src, logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(more_tgt * real, logits * real, rtol=0, atol=1e-5)


def test_encoder_and_cross_attention_ignore_padding(tiny_model: TinyModel) -> None:
    model = tiny_model(4)
    g = torch.Generator().manual_seed(4)
    src, tgt_in = random_batch([7, 3], g), random_batch([4, 4], g, start=1)
    with torch.no_grad():
        memory, src_mask = model.encode(src)
        longer, _ = model.encode(pad_right(src, 3))
        real = (src != 0)[..., None]  # (B, S, 1)
        torch.testing.assert_close(
            longer[:, :7] * real, memory * real, atol=1e-5, rtol=0
        )
        # Whatever the encoder wrote at padded positions, the decoder never reads it.
        noisy = torch.where(real, memory, 100 * torch.randn(memory.shape, generator=g))
        assert not torch.equal(noisy, memory)
        torch.testing.assert_close(
            model.decode(tgt_in, noisy, src_mask),
            model.decode(tgt_in, memory, src_mask),
            rtol=0,
            atol=1e-5,
        )


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"norm_first": True},
        {"learned_positions": True},
        {"tie_embeddings": False, "src_vocab_size": 20},
        {"d_k": 12, "d_v": 4},
    ],
    ids=["post-norm", "pre-norm", "learned-positions", "untied", "d_k-12"],
)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "readable"])
def test_cached_decoding_equals_full_forward(
    tiny_model: TinyModel, overrides: dict[str, object], fused: bool
) -> None:
    model = tiny_model(5, **overrides)
    model.set_fused_attention(fused)
    g = torch.Generator().manual_seed(5)
    src = random_batch([6, 3, 8], g)
    tgt_in = random_batch([9, 9, 9], g, start=1)
    with torch.no_grad():
        full = model(src, tgt_in)  # (B, T, V), teacher forcing
        memory, src_mask = model.encode(src)
        cache = model.init_cache()
        assert len(cache) == 2 and cache[0] == {"self": {}, "cross": {}}
        for t in range(tgt_in.size(1)):
            step = model.decode(tgt_in[:, t : t + 1], memory, src_mask, cache, t)
            assert step.shape == (3, 1, V)
            torch.testing.assert_close(step[:, 0], full[:, t], rtol=0, atol=1e-5)
            h, d_k = model.cfg.n_heads, model.cfg.head_dim_k
            assert cache[1]["self"]["k"].shape == (3, h, t + 1, d_k)
            assert cache[1]["cross"]["k"].shape == (3, h, 8, d_k)


def test_reorder_cache_follows_the_chosen_rows(tiny_model: TinyModel) -> None:
    """After reorder_cache(index), decoding continues the hypotheses in ``index``."""
    model = tiny_model(6)
    g = torch.Generator().manual_seed(6)
    src = random_batch([5], g).repeat(3, 1)  # beams of one sentence share it
    tgt_in = random_batch([6, 6, 6], g, start=1)
    index = torch.tensor([2, 2, 0])
    with torch.no_grad():
        memory, src_mask = model.encode(src)
        cache = model.init_cache()
        for t in range(3):
            model.decode(tgt_in[:, t : t + 1], memory, src_mask, cache, t)
        reorder_cache(cache, index)
        mixed = torch.cat([tgt_in[index, :3], tgt_in[:, 3:]], dim=1)  # new rows
        full = model.decode(mixed, memory, src_mask)
        for t in range(3, 6):
            step = model.decode(mixed[:, t : t + 1], memory, src_mask, cache, t)
            torch.testing.assert_close(step[:, 0], full[:, t], rtol=0, atol=1e-5)


def test_cached_decoding_limits(tiny_model: TinyModel) -> None:
    model = tiny_model(max_len=8)
    src = torch.tensor([[5, 6, 2]])
    memory, src_mask = model.encode(src)
    with pytest.raises(AiaynError, match="one new position at a time"):
        model.decode(torch.tensor([[1, 5]]), memory, src_mask, model.init_cache())
    with pytest.raises(AiaynError, match="decoding past max_len=8"):
        model.decode(torch.tensor([[5]]), memory, src_mask, model.init_cache(), 8)


def test_weight_tying(tiny_model: TinyModel) -> None:
    tied = tiny_model()
    assert tied.src_embed.weight is tied.tgt_embed.weight is tied.output_weight
    assert tied.generator is None and tied.own_src_embed is None
    n_matrices = sum(p.shape == (V, 32) for p in tied.parameters())
    assert n_matrices == 1
    untied = tiny_model(tie_embeddings=False)
    weights = [untied.src_embed.weight, untied.tgt_embed.weight, untied.output_weight]
    assert len({w.data_ptr() for w in weights}) == 3
    assert sum(p.shape == (V, 32) for p in untied.parameters()) == 3
    assert untied.num_parameters() == tied.num_parameters() + 2 * V * 32


def test_tied_gradients_accumulate_in_one_matrix(tiny_model: TinyModel) -> None:
    model = tiny_model()
    src, tgt_in = torch.tensor([[5, 6, 2]]), torch.tensor([[1, 7, 8]])
    model(src, tgt_in).sum().backward()
    grad = model.tgt_embed.weight.grad
    assert grad is not None and model.output_weight.grad is grad
    assert grad[12].abs().sum() > 0  # used only by the softmax: still trained


def test_separate_source_vocabulary(tiny_model: TinyModel) -> None:
    model = tiny_model(src_vocab_size=40)
    assert not model.cfg.shared_vocab
    assert model.src_embed.weight.shape == (40, 32)
    assert model.tgt_embed.weight is model.output_weight  # target side still tied
    src = torch.tensor([[39, 20, 2], [30, 2, 0]])  # ids only the source has
    logits = model(src, torch.tensor([[1, 5], [1, 6]]))
    assert logits.shape == (2, 2, V)
    with pytest.raises(AiaynError, match="src holds token id 40"):
        model(torch.tensor([[40, 2]]), torch.tensor([[1]]))
    with pytest.raises(AiaynError, match="tgt_in holds token id 16"):
        model(torch.tensor([[39, 2]]), torch.tensor([[1, 16]]))
    same = tiny_model(src_vocab_size=V)  # equal sizes: one shared vocabulary
    assert same.cfg.shared_vocab and same.src_embed is same.tgt_embed


def test_embeddings_are_scaled_by_sqrt_d_model(tiny_model: TinyModel) -> None:
    emb = TokenEmbedding(V, 32)
    tokens = torch.tensor([[4, 5, 0]])
    torch.testing.assert_close(emb(tokens), emb.weight[tokens] * math.sqrt(32))
    plain = TokenEmbedding(V, 32, scale=False)
    torch.testing.assert_close(plain(tokens), plain.weight[tokens])
    # Initialised with std d_model^-1/2, so scaled embeddings have unit variance.
    big = TokenEmbedding(4000, 64)
    assert abs(big(torch.arange(4000)[None]).std().item() - 1.0) < 0.02
    # In the model: the encoder's input is sqrt(d_model) E[src] + PE (then dropout).
    model = tiny_model()
    seen: list[torch.Tensor] = []
    model.dropout.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    src = torch.tensor([[7, 8, 9, 2]])
    model.encode(src)
    pe = sinusoidal_encoding(64, 32)[:4]
    torch.testing.assert_close(
        seen[0][0], model.src_embed.weight[src[0]] * 32**0.5 + pe
    )
    unscaled = tiny_model(scale_embeddings=False)
    assert unscaled.src_embed.scale == 1.0 and model.src_embed.scale == 32**0.5


def test_sinusoidal_encoding_is_the_formula() -> None:
    pe = sinusoidal_encoding(50, 8)
    assert pe.shape == (50, 8)
    for pos in (0, 1, 7, 49):
        for i in range(4):
            angle = pos / 10000 ** (2 * i / 8)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)
    # "for any fixed offset k, PE_pos+k can be represented as a linear function of
    # PE_pos": each (sin, cos) pair turns by a rotation that depends on k only.
    k = 3
    for i in range(4):
        w = 1 / 10000 ** (2 * i / 8)
        c, s = math.cos(k * w), math.sin(k * w)
        rot = torch.tensor([[c, -s], [s, c]])  # (sin a, cos a) -> (sin, cos)(a + kw)
        pair = pe[:, 2 * i : 2 * i + 2]  # (L, 2): (sin, cos)
        torch.testing.assert_close(pair[:-k] @ rot, pair[k:], atol=1e-4, rtol=0)


def test_positions_shared_or_learned(tiny_model: TinyModel) -> None:
    fixed = tiny_model()
    assert fixed.src_pos is fixed.tgt_pos
    assert not any("pos" in n for n, _ in fixed.named_parameters())
    learned = tiny_model(learned_positions=True)
    assert learned.src_pos is not learned.tgt_pos
    names = {n for n, _ in learned.named_parameters() if "pos" in n}
    assert names == {"src_pos.embedding.weight", "tgt_pos.embedding.weight"}


def test_feed_forward_is_equation_2() -> None:
    torch.manual_seed(0)
    ffn = PositionwiseFeedForward(8, 20)
    x = torch.randn(2, 3, 8)
    w1, b1, w2, b2 = ffn.w_1.weight, ffn.w_1.bias, ffn.w_2.weight, ffn.w_2.bias
    expected = torch.clamp(x @ w1.T + b1, min=0) @ w2.T + b2
    torch.testing.assert_close(ffn(x), expected)
    torch.testing.assert_close(ffn(x[:, 1:2]), ffn(x)[:, 1:2])  # position-wise


def test_dropout_only_in_training(tiny_model: TinyModel) -> None:
    model = tiny_model(dropout=0.3)
    src, tgt_in = torch.tensor([[5, 6, 7, 2]]), torch.tensor([[1, 5, 6]])
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(src, tgt_in), model(src, tgt_in))
        model.train()
        assert not torch.allclose(model(src, tgt_in), model(src, tgt_in))


def test_fused_and_readable_attention_agree(tiny_model: TinyModel) -> None:
    model = tiny_model(7, norm_first=True).double()
    g = torch.Generator().manual_seed(7)
    src, tgt_in = random_batch([6, 4], g), random_batch([5, 3], g, start=1)

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        logits = model(src, tgt_in)
        logits.logsumexp(-1).sum().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    fused, fused_grads = run()
    model.set_fused_attention(False)
    assert not any(getattr(m, "fused", False) for m in model.modules())
    readable, readable_grads = run()
    torch.testing.assert_close(readable, fused, rtol=1e-10, atol=1e-10)
    for a, b in zip(readable_grads, fused_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    # The stored cross-attention weights: (B, h, T, S), nothing on padded sources.
    cross = model.decoder[0].cross_attn
    cross.store_weights = True
    model(src, tgt_in)
    assert cross.weights.shape == (2, 4, 5, 6)
    assert (cross.weights[1, :, :, 4:] == 0).all()


def test_bad_input_raises_helpful_errors(tiny_model: TinyModel) -> None:
    model = tiny_model()
    src, tgt = torch.tensor([[5, 6, 2]]), torch.tensor([[1, 5]])
    cases = [
        ((torch.tensor([[5, -1, 2]]), tgt), "src holds token id -1, outside the "),
        ((torch.tensor([[5, 16, 2]]), tgt), r"token id 16, outside the vocabulary"),
        ((src, torch.tensor([[1, 99]])), "tgt_in holds token id 99"),
        ((src.float(), tgt), "src must hold int64 token ids, got torch.float32"),
        ((src, tgt.int()), "tgt_in must hold int64 token ids, got torch.int32"),
        ((src[0], tgt), r"src must be a 2-D \(batch, length\) tensor .* shape \(3,\)"),
        ((src, tgt[0]), "tgt_in must be a 2-D"),
        ((src[:, :0], tgt), r"src is empty \(shape \(1, 0\)\)"),
        ((src[:0], tgt[:0]), r"src is empty \(shape \(0, 3\)\)"),
        ((src, tgt[:, :0]), "tgt_in is empty"),
        ((torch.full((1, 65), 5), tgt), "length 65 but .* max_len=64 .* truncate"),
        ((src, torch.full((1, 65), 5)), "tgt_in has length 65"),
        ((src.repeat(2, 1), tgt), "batch sizes differ: 2 vs 1"),
    ]
    for args, match in cases:
        with pytest.raises(AiaynError, match=match):
            model(*args)
    assert "tokenizer" in _message(model, torch.tensor([[5, 16, 2]]), tgt)
    model(torch.full((1, 64), 5), torch.full((1, 64), 5))  # max_len itself is fine


def _message(model: Transformer, src: torch.Tensor, tgt: torch.Tensor) -> str:
    with pytest.raises(AiaynError) as err:
        model(src, tgt)
    return str(err.value)


def test_models_are_reproducible(tiny_model: TinyModel) -> None:
    a, b = tiny_model(11), tiny_model(11)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    c = tiny_model(12)
    assert not torch.equal(a.tgt_embed.weight, c.tgt_embed.weight)


def test_projecting_only_kept_positions_equals_selecting_rows(
    tiny_model: TinyModel,
) -> None:
    """forward(src, tgt_in, keep) is forward(src, tgt_in)[keep], values and grads.

    The training loop passes keep = (tgt_out != pad) so that the output projection
    and the loss skip padding: the same loss and the same gradient."""
    from aiayn.loss import cross_entropy_loss

    g = torch.Generator().manual_seed(3)
    src = random_batch([5, 3, 4], g)
    tgt_out = random_batch([4, 2, 5], g)
    tgt_in = torch.where(tgt_out == 0, 0, torch.roll(tgt_out, 1, dims=1))
    tgt_in[:, 0] = 1
    keep = tgt_out != 0
    grads, logits_of = [], {}
    for rows in (False, True):
        model = tiny_model(seed=1)
        logits = model(src, tgt_in, keep if rows else None)
        logits_of[rows] = logits.detach()
        target = tgt_out[keep] if rows else tgt_out
        cross_entropy_loss(logits, target, 0.1, 0, "sum").backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert logits_of[True].shape == (int(keep.sum()), V)
    torch.testing.assert_close(logits_of[True], logits_of[False][keep])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
