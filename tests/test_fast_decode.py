"""The searches' fast decoding step (aiayn.fast_decode) against ``model.decode``.

The fast step must compute exactly what the readable ``decode`` computes: the
same logits, bit for bit, at every step of a cached decode, for every variant of
the model (post-norm and pre-norm, sinusoidal and learned positions, tied and
untied output weights, d_k other than d_model / h), and with beam search's
shared encoder-decoder rows; and the searches must return the same outputs with
it and without it. Where it would not compute the same thing, the searches must
fall back to ``decode``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from aiayn.decoding import beam_search, greedy_decode
from aiayn.errors import AiaynError
from aiayn.fast_decode import DecodeStep, decode_step, fast_path_applies
from aiayn.model import Transformer

TinyModel = Callable[..., Transformer]  # conftest.py's tiny_model factory
PAD, BOS, EOS = 0, 1, 2

VARIANTS = {
    "post-norm": {},
    "pre-norm": {"norm_first": True},
    "learned positions": {"learned_positions": True},
    "untied": {"tie_embeddings": False, "scale_embeddings": False},
    "wide heads": {"d_k": 24, "d_v": 12},
}


def sources(batch: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    """Random sources with some padding at the end of each row: (batch, length)."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, vocab, (batch, length), generator=g)
    for b in range(batch):
        src[b, length - b % 3 :] = PAD
    return src


def sharpened(model: Transformer, scale: float) -> Transformer:
    """Scale the output weights so that the next-token distributions are peaky
    (an untrained model's are flat), without replacing ``decode``."""
    with torch.no_grad():
        model.output_weight.mul_(scale)
    return model


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fast_step_equals_decode_bit_for_bit(
    tiny_model: TinyModel, variant: str
) -> None:
    model = tiny_model(3, **VARIANTS[variant])
    V = model.cfg.vocab_size
    src = sources(5, 9, V, seed=1)
    memory, src_mask = model.encode(src)
    fast, slow = DecodeStep(model), model.init_cache()
    fast_cache = model.init_cache()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for t in range(12):
            tokens = torch.randint(3, V, (5, 1), generator=g)
            want = model.decode(tokens, memory, src_mask, slow, offset=t)
            got = fast(tokens, memory, src_mask, fast_cache, t)
            assert got.shape == want.shape == (5, 1, V)
            assert torch.equal(got, want), (variant, t)
    assert fast_path_applies(model)


def test_fast_step_with_rows_sharing_a_sentence(tiny_model: TinyModel) -> None:
    """Beam search's layout: K hypothesis rows per memory row."""
    model = tiny_model(4)
    V, K = model.cfg.vocab_size, 3
    memory, src_mask = model.encode(sources(4, 7, V, seed=5))
    fast, caches = DecodeStep(model), (model.init_cache(), model.init_cache())
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for t in range(6):
            tokens = torch.randint(3, V, (4 * K, 1), generator=g)
            want = model.decode(tokens, memory, src_mask, caches[0], offset=t)
            got = fast(tokens, memory, src_mask, caches[1], t)
            assert torch.equal(got, want), t


@pytest.mark.parametrize("variant", ["post-norm", "pre-norm"])
@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_searches_return_the_same_with_and_without(
    tiny_model: TinyModel, variant: str, search: str
) -> None:
    lengths_seen = set()
    for seed in range(3):
        model = sharpened(tiny_model(seed, **VARIANTS[variant]), 8.0)
        src = sources(6, 8, model.cfg.vocab_size, seed)
        outs = []
        for fast in (False, True):
            if search == "greedy":
                outs.append(greedy_decode(model, src, extra_len=6, fast=fast))
            else:
                outs.append(beam_search(model, src, 4, 0.6, extra_len=6, fast=fast))
        assert outs[0] == outs[1]
        lengths_seen |= {len(y) for y in outs[1]}
    assert len(lengths_seen) > 1  # not every output runs to the limit


def test_fast_path_only_where_it_computes_the_same(tiny_model: TinyModel) -> None:
    model = tiny_model(0)
    assert fast_path_applies(model)
    assert isinstance(decode_step(model), DecodeStep)
    assert not isinstance(decode_step(model, fast=False), DecodeStep)

    model.train()
    assert not fast_path_applies(model)  # dropout would be skipped
    model.eval()

    attn = model.decoder[1].cross_attn
    for flag, value in (("store_weights", True), ("fused", False)):
        setattr(attn, flag, value)
        assert not fast_path_applies(model), flag
        setattr(attn, flag, not value)
    assert fast_path_applies(model)

    handle = model.decoder[0].feed_forward.register_forward_hook(lambda *a: None)
    assert not fast_path_applies(model)  # the hook would not run
    handle.remove()

    model.decode = lambda *a, **k: None  # type: ignore[method-assign]
    assert not fast_path_applies(model)  # a wrapper set on the instance


def test_searches_fall_back_when_weights_are_stored(tiny_model: TinyModel) -> None:
    """Storing attention weights (the book's figures) still works in a search."""
    model = tiny_model(1)
    src = sources(2, 5, model.cfg.vocab_size, seed=0)
    want = greedy_decode(model, src, extra_len=3)
    for m in model.modules():
        if hasattr(m, "store_weights"):
            m.store_weights = True
    assert greedy_decode(model, src, extra_len=3) == want
    assert model.decoder[0].cross_attn.weights is not None


def test_fast_step_refuses_what_decode_refuses(tiny_model: TinyModel) -> None:
    model = tiny_model(0, max_len=8)
    memory, src_mask = model.encode(sources(2, 4, model.cfg.vocab_size, seed=0))
    step, cache = DecodeStep(model), model.init_cache()
    with pytest.raises(AiaynError, match="max_len=8"):
        step(torch.full((2, 1), BOS), memory, src_mask, cache, 8)
    with pytest.raises(AiaynError, match="one new position"):
        step(torch.full((2, 2), BOS), memory, src_mask, cache, 0)
