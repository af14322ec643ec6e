"""Decoding (section 6.1): greedy search, beam search with GNMT's length penalty,
and the maximum output length "input length + 50".

The central tests enumerate every output of at most L tokens, score each (by
teacher forcing a tiny random Transformer, or from a random table of next-token
distributions), and check that a beam as wide as the search space returns the
best one, and that narrower beams and greedy search never beat it.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable

import pytest
import torch
from torch import nn

from aiayn.attention import cache_append
from aiayn.batching import encode_sources
from aiayn.config import ModelConfig
from aiayn.decoding import beam_search, greedy_decode, length_penalty, top_per_row
from aiayn.errors import AiaynError
from aiayn.model import Transformer

TinyModel = Callable[..., Transformer]  # conftest.py's tiny_model factory
PAD, BOS, EOS = 0, 1, 2


def sharpen(
    model: Transformer, scale: float = 1.0, bias: dict[int, float] | None = None
) -> Transformer:
    """Make ``model.decode`` return ``scale * logits + bias``, in place.

    An untrained model's next-token distributions are nearly flat; scaling the
    logits makes them peaky, so that the searches' choices matter. ``bias`` pushes
    chosen tokens up or down (e.g. EOS far down: a model that never ends).
    """
    decode = model.decode  # the bound method, before the instance attribute hides it

    def sharpened(*args: object, **kwargs: object) -> torch.Tensor:
        logits = decode(*args, **kwargs) * scale  # (B, T, V)
        for token, b in (bias or {}).items():
            logits[..., token] += b
        return logits

    model.decode = sharpened  # type: ignore[method-assign]
    return model


def sources(lengths: list[int], vocab: int, seed: int) -> torch.Tensor:
    """Random source sentences of these lengths (before EOS), padded: (B, S)."""
    g = torch.Generator().manual_seed(seed)
    ids = [torch.randint(4, vocab, (n,), generator=g).tolist() for n in lengths]
    return encode_sources(ids, PAD, EOS)


# -- exhaustive search on a tiny vocabulary --------------------------------------
VOCAB = 7  # pad, bos, eos, unk and 3 words: 5 tokens can be emitted (EOS included)
WORDS = [3, 4, 5, 6]  # every emit-able token but EOS
L = 3  # the maximum output length


def every_output() -> list[list[int]]:
    """All outputs of at most L tokens: complete ones end in EOS (which counts in
    their length); truncated ones are exactly L tokens without EOS."""
    complete = [
        [*words, EOS] for n in range(L) for words in itertools.product(WORDS, repeat=n)
    ]
    truncated = [list(words) for words in itertools.product(WORDS, repeat=L)]
    return complete + truncated


def scores(
    model: Transformer,
    src: torch.Tensor,
    outputs: list[list[int]],
    alpha: float,
    T: int = L,
) -> torch.Tensor:
    """GNMT score of each output (at most T tokens) for one source (1, S), by
    teacher forcing: sum of log p(token | prefix, source) / ((5 + length) / 6)^alpha.
    """
    N = len(outputs)
    tgt_in = torch.full((N, T), PAD)  # [BOS, y_1, ..., y_{n-1}], padded: (N, T)
    labels = torch.full((N, T), PAD)  # [y_1, ..., y_n], padded: (N, T)
    for i, y in enumerate(outputs):
        tgt_in[i, : len(y)] = torch.tensor([BOS, *y[:-1]])
        labels[i, : len(y)] = torch.tensor(y)
    with torch.no_grad():
        memory, src_mask = model.encode(src)  # (1, S, d), (1, 1, 1, S)
        logits = model.decode(
            tgt_in, memory.expand(N, -1, -1), src_mask.expand(N, -1, -1, -1)
        )  # (N, T, V)
    logp = logits.log_softmax(-1).gather(-1, labels[..., None])[..., 0]  # (N, T)
    total = logp.masked_fill(labels == PAD, 0.0).sum(-1)  # (N,)
    lengths = torch.tensor([len(y) for y in outputs])
    return total / length_penalty(lengths, alpha)


def as_returned(y: list[int]) -> list[int]:
    return y[:-1] if y[-1] == EOS else y  # searches return outputs without EOS


def peaky(make: TinyModel, seed: int, norm_first: bool) -> Transformer:
    """A random model over VOCAB whose next-token distributions are uneven enough
    that greedy search misses the best output and alpha changes it (see below)."""
    model = make(seed, vocab_size=VOCAB, norm_first=norm_first)
    if norm_first:
        return sharpen(model, scale=1.5, bias={EOS: 0.5})
    return sharpen(model, scale=4.0)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_wide_beam_finds_the_best_output(
    tiny_model: TinyModel, seed: int, alpha: float, norm_first: bool
) -> None:
    model = peaky(tiny_model, seed, norm_first)
    outputs = every_output()
    assert len(outputs) == 1 + 4 + 16 + 64
    src = sources([3, 5], VOCAB, seed)  # two sentences in one batch
    found = beam_search(model, src, beam_size=5**L, alpha=alpha, max_len=L)
    narrow = beam_search(model, src, beam_size=2, alpha=alpha, max_len=L)
    for b in range(2):
        s = scores(model, src[b : b + 1], outputs, alpha)
        by_output = {
            tuple(as_returned(y)): float(v) for y, v in zip(outputs, s, strict=True)
        }
        assert len(by_output) == len(outputs)  # returned forms are unambiguous
        best = float(s.max())
        assert by_output[tuple(found[b])] == pytest.approx(best, abs=1e-4)
        assert by_output[tuple(narrow[b])] <= best + 1e-4  # a beam can only miss


def test_exhaustive_search_is_not_trivial(tiny_model: TinyModel) -> None:
    """In the cases above greedy search sometimes misses the best output, the
    winner is sometimes complete and sometimes cut at L, and alpha matters."""
    outputs = every_output()
    winners: dict[float, list[tuple[int, ...]]] = {0.0: [], 1.0: []}
    greedy_missed = 0
    for seed in range(4):
        model = peaky(tiny_model, seed, norm_first=True)
        src = sources([3, 5], VOCAB, seed)
        greedy = greedy_decode(model, src, max_len=L)
        for b in range(2):
            for alpha in winners:
                s = scores(model, src[b : b + 1], outputs, alpha)
                winners[alpha].append(tuple(outputs[int(s.argmax())]))
            greedy_missed += as_returned(list(winners[0.0][-1])) != greedy[b]
    every = winners[0.0] + winners[1.0]
    assert any(y[-1] == EOS for y in every) and any(y[-1] != EOS for y in every)
    assert winners[0.0] != winners[1.0]  # the length penalty changes some winner
    assert greedy_missed > 0


class TableModel(nn.Module):
    """A stand-in for the Transformer whose next-token logits are a fixed random
    function of (source, prefix), temperature ``1 / scale``: every prefix gets its
    own distribution, so lengths compete closely and alpha often decides the
    winner. It is a module (the searches switch its mode) that speaks the
    interface they use (cfg, encode, init_cache, decode with a cache); the prefix
    lives in the self-attention cache, so beam search's ``reorder_cache`` must keep
    it right."""

    def __init__(self, seed: int, scale: float = 2.0) -> None:
        super().__init__()
        self.cfg = ModelConfig.tiny(vocab_size=VOCAB)
        self.seed, self.scale = seed, scale

    def logits(self, src: tuple[int, ...], prefix: tuple[int, ...]) -> torch.Tensor:
        key = zlib.crc32(repr((self.seed, src, prefix)).encode())
        return self.scale * torch.randn(
            VOCAB, generator=torch.Generator().manual_seed(key)
        )

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return src[..., None].float(), (src != PAD)[:, None, None, :]

    def init_cache(self) -> list[dict[str, dict[str, torch.Tensor]]]:
        return [{"self": {}, "cross": {}}]

    def decode(
        self,
        token: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
        cache: list[dict[str, dict[str, torch.Tensor]]],
        offset: int,
    ) -> torch.Tensor:
        c = cache[0]["self"]  # the model's own cache, so that the searches'
        # reordering of it is tested: the prefix as keys (B, 1, t + 1, 1)
        ids = token.float()[:, None, :, None]  # (B, 1, 1, 1)
        prefix = cache_append(c, ids, ids)[0][:, 0, :, 0].long()  # (B, t + 1)
        assert prefix.size(1) == offset + 1
        # memory: one row per g consecutive token rows (beam search's hypotheses)
        memory = memory.repeat_interleave(token.size(0) // memory.size(0), dim=0)
        rows = [
            self.logits(tuple(m[:, 0].long().tolist()), tuple(p.tolist()))
            for m, p in zip(memory, prefix, strict=True)
        ]
        return torch.stack(rows)[:, None]  # (B, 1, V)

    def score(self, src: torch.Tensor, y: list[int], alpha: float) -> float:
        """GNMT score of the output y (EOS included if complete) for src (S,)."""
        key, prefix, total = tuple(src.tolist()), (BOS,), 0.0
        for tok in y:
            total += float(self.logits(key, prefix).log_softmax(-1)[tok])
            prefix += (tok,)
        return total / float(length_penalty(len(y), alpha))


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_wide_beam_is_exact_on_random_tables(alpha: float) -> None:
    outputs = every_output()
    winners = []
    for seed in range(8):
        model = TableModel(seed)
        src = sources([2, 4], VOCAB, seed)
        found = beam_search(model, src, beam_size=5**L, alpha=alpha, max_len=L)
        narrow = beam_search(model, src, beam_size=3, alpha=alpha, max_len=L)
        greedy = greedy_decode(model, src, max_len=L)
        for b in range(2):
            s = {tuple(as_returned(y)): model.score(src[b], y, alpha) for y in outputs}
            best = max(s.values())
            winners.append(max(s, key=s.get))
            assert s[tuple(found[b])] == pytest.approx(best, abs=1e-5)
            assert s[tuple(narrow[b])] <= best + 1e-5
            assert s[tuple(greedy[b])] <= best + 1e-5
    assert len({len(y) for y in winners}) == L + 1  # every length from 0 to L wins


def test_alpha_decides_on_random_tables() -> None:
    changed = 0
    for seed in range(8):
        model = TableModel(seed)
        src = sources([2, 4], VOCAB, seed)
        a0 = beam_search(model, src, beam_size=5**L, alpha=0.0, max_len=L)
        a1 = beam_search(model, src, beam_size=5**L, alpha=1.0, max_len=L)
        changed += sum(x != y for x, y in zip(a0, a1, strict=True))
        for b in range(2):  # a larger alpha never prefers a shorter output
            assert len(a1[b]) >= len(a0[b])
    assert changed > 0


def gnmt_score(
    model: Transformer, src: torch.Tensor, y: list[int], limit: int, alpha: float
) -> float:
    """Score of a returned output y for one source (1, S): shorter than ``limit``
    means it ended with EOS (which then counts), else it was cut at the limit."""
    full = y + [EOS] if len(y) < limit else y
    return float(scores(model, src, [full], alpha, T=len(full))[0])


def test_beam_of_one_is_at_least_greedy(tiny_model: TinyModel) -> None:
    """A beam of one follows greedy search's path and can only do better.

    It is not always the same output, even with alpha = 0: like tensor2tensor
    (and the paper), beam search finishes an EOS candidate found anywhere among
    the 2K best extensions, so with K = 1 an EOS that is the *second* best token
    ends a hypothesis that greedy search never considers, and it wins if its
    log-probability beats what the greedy path goes on to collect. With alpha > 0
    there is a second reason: once EOS is the best token, the beam keeps the best
    non-EOS continuation alive while it could still win after dividing by a larger
    length penalty, and it sometimes does. Either way the beam's output scores at
    least as well as greedy search's, which is what is asserted here.
    """
    same = different = 0
    for seed in range(5):
        model = sharpen(tiny_model(seed, vocab_size=12), scale=3.0, bias={EOS: 1.0})
        src = sources([2, 5, 9, 4], 12, seed)
        greedy = greedy_decode(model, src)
        for alpha in (0.0, 0.6):
            beam = beam_search(model, src, beam_size=1, alpha=alpha)
            for b, (g, y) in enumerate(zip(greedy, beam, strict=True)):
                limit = int((src[b] != PAD).sum()) + 50
                g_score = gnmt_score(model, src[b : b + 1], g, limit, alpha)
                y_score = gnmt_score(model, src[b : b + 1], y, limit, alpha)
                if y == g:
                    same += 1
                else:  # different only to be better
                    assert y_score > g_score + 1e-4, (seed, alpha, b)
                    different += 1
    assert same > 0 and different > 0  # both happen in these cases


def test_beam_of_one_is_greedy_when_eos_never_competes(tiny_model: TinyModel) -> None:
    """Without EOS both follow the best token at every step: the same outputs."""
    for seed in range(3):
        model = sharpen(tiny_model(seed), scale=3.0, bias={EOS: -1e9})
        src = sources([2, 5, 9, 4], 16, seed)
        greedy = greedy_decode(model, src)
        for alpha in (0.0, 0.6):
            assert beam_search(model, src, beam_size=1, alpha=alpha) == greedy
        assert greedy != beam_search(model, src, beam_size=4, alpha=0.0)


def test_outputs_hold_no_special_tokens(tiny_model: TinyModel) -> None:
    """PAD and BOS are never emitted, even by a model that prefers them; EOS ends
    the output and is not part of it."""
    model = sharpen(tiny_model(0), scale=2.0, bias={PAD: 5.0, BOS: 5.0, EOS: 1.0})
    src = sources([1, 4, 7, 10], 16, 0)
    results = [greedy_decode(model, src)]
    results += [
        beam_search(model, src, beam_size=k, alpha=a)
        for k, a in [(1, 0.6), (4, 0.0), (4, 0.6), (8, 1.0)]
    ]
    lengths = set()
    for outputs in results:
        assert len(outputs) == 4
        for y in outputs:
            assert all(3 <= t < 16 for t in y), y
            lengths.add(len(y))
    assert len(lengths) > 1  # some outputs ended early, at EOS


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_maximum_output_length(tiny_model: TinyModel, search: str) -> None:
    """A model that never emits EOS writes input length + 50 tokens (EOS of the
    input included), capped by the positions the model has (max_len - 1 after BOS)."""
    model = sharpen(tiny_model(1, max_len=80), bias={EOS: -1e9})

    def decode(src: torch.Tensor, **kw: int) -> list[list[int]]:
        if search == "greedy":
            return greedy_decode(model, src, **kw)
        return beam_search(model, src, beam_size=3, alpha=0.6, **kw)

    src = sources([2, 6, 40], 16, 1)  # 3, 7 and 41 tokens with EOS
    assert [len(y) for y in decode(src)] == [53, 57, 79]  # 91 capped at 79
    assert [len(y) for y in decode(src, extra_len=5)] == [8, 12, 46]
    assert [len(y) for y in decode(src, max_len=4)] == [4, 4, 4]
    assert [len(y) for y in decode(src, max_len=500)] == [79, 79, 79]
    assert all(EOS not in y for y in decode(src))


def test_length_penalty_values() -> None:
    assert length_penalty(1, 0.6).item() == pytest.approx(1.0)  # ((5 + 1) / 6)^a
    assert length_penalty(7, 0.6).item() == pytest.approx(2.0**0.6)
    assert length_penalty(13, 1.0).item() == pytest.approx(3.0)
    assert length_penalty(100, 0.0).item() == 1.0  # alpha 0: no penalty
    lp = length_penalty(torch.tensor([1, 7, 19]), 0.5)
    torch.testing.assert_close(lp, torch.tensor([1.0, 2**0.5, 2.0]))
    assert (length_penalty(torch.arange(1, 50), 0.6).diff() > 0).all()


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_batched_equals_one_by_one(tiny_model: TinyModel, search: str) -> None:
    model = sharpen(tiny_model(2), scale=3.0, bias={EOS: 1.5})
    lengths = [1, 7, 3, 12, 5]
    src = sources(lengths, 16, 2)  # padded to the longest

    def decode(x: torch.Tensor) -> list[list[int]]:
        if search == "greedy":
            return greedy_decode(model, x)
        return beam_search(model, x, beam_size=4, alpha=0.6)

    batched = decode(src)
    alone = [decode(src[b : b + 1, : n + 1])[0] for b, n in enumerate(lengths)]
    assert batched == alone
    assert len({len(y) for y in batched}) > 1  # they stopped at different steps


def count_rows(model: nn.Module, calls: list[int]) -> nn.Module:
    """Make ``model.decode`` append the rows it decodes at each step to ``calls``."""
    decode = model.decode

    def counted(tgt_in: torch.Tensor, *args: object, **kw: object) -> torch.Tensor:
        calls.append(tgt_in.size(0))  # rows decoded at this step
        return decode(tgt_in, *args, **kw)

    model.decode = counted  # type: ignore[method-assign]
    return model


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_finished_sentences_leaving_the_batch_change_nothing(
    tiny_model: TinyModel, search: str
) -> None:
    """shrink=True (drop finished sentences) against the plain loop (False)."""
    calls: list[int] = []
    for seed in range(4):
        model = sharpen(tiny_model(seed), scale=3.0, bias={EOS: 1.0 + seed / 2})
        count_rows(model, calls)
        src = sources([1, 9, 3, 14, 5, 2, 8], 16, seed)
        for beam in [1] if search == "greedy" else [2, 5]:
            outs = {}
            for shrink in (False, True):
                calls.clear()
                if search == "greedy":
                    outs[shrink] = greedy_decode(model, src, shrink=shrink)
                else:
                    outs[shrink] = beam_search(model, src, beam, 0.6, shrink=shrink)
                outs[shrink, "rows"] = list(calls)
            assert outs[True] == outs[False]
            full, shrunk = outs[False, "rows"], outs[True, "rows"]
            assert full[0] == src.size(0)  # step 0: one row per sentence (BOS)
            assert set(full[1:]) == {src.size(0) * beam}  # every row, every step
            later = shrunk[1:]
            assert shrunk[:2] == full[:2] and sorted(later, reverse=True) == later
            if len({len(y) for y in outs[True]}) > 1:  # stopped at different steps
                assert sum(shrunk) < sum(full)


def test_decoding_switches_dropout_off(tiny_model: TinyModel) -> None:
    model = tiny_model(dropout=0.3).train()  # decoding must not use dropout
    src = sources([4, 6], 16, 3)
    first = beam_search(model, src, beam_size=3)
    assert beam_search(model, src, beam_size=3) == first
    assert greedy_decode(model, src) == greedy_decode(model, src)
    assert greedy_decode(model, src) == greedy_decode(model.eval(), src)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_decoding_restores_the_training_mode(
    tiny_model: TinyModel, search: str
) -> None:
    """Decoding mid-training leaves every module in the mode it found it."""
    model = tiny_model(dropout=0.3).train()
    model.encoder[0].eval()  # a mixed state (e.g. a frozen layer) survives too
    before = {name: m.training for name, m in model.named_modules()}
    seen: list[bool] = []
    model.decoder[0].register_forward_pre_hook(lambda m, args: seen.append(m.training))
    src = sources([4, 6], 16, 3)
    decode = greedy_decode if search == "greedy" else beam_search
    decode(model, src)
    assert seen and not any(seen)  # it decoded in evaluation mode
    assert {name: m.training for name, m in model.named_modules()} == before
    assert model.training and not model.encoder[0].training
    model.eval()  # and evaluation mode stays evaluation mode
    decode(model, src)
    assert not any(m.training for m in model.modules())


def test_decoding_restores_the_mode_after_an_error(tiny_model: TinyModel) -> None:
    model = tiny_model().train()
    with pytest.raises(AiaynError):
        greedy_decode(model, torch.tensor([[5, 99, 2]]))  # 99: outside the vocab
    assert model.training
    with pytest.raises(AiaynError):
        beam_search(model, torch.tensor([[5, 99, 2]]))
    assert model.training


@pytest.mark.parametrize("V", [7, 100, 1000, 10007])
def test_top_per_row_equals_topk(V: int) -> None:
    """Chunk maxima first, then the k best of the best chunks: the same values as
    one topk over the row, and the same columns (distinct values), with a ragged
    last chunk (V = 10,007), rows of -inf and a small V (plain topk)."""
    g = torch.Generator().manual_seed(V)
    x = torch.randn(9, V, generator=g)
    x[2] = float("-inf")  # a dead hypothesis
    x[3, : V // 2] = float("-inf")  # a constraint forbids half the vocabulary
    x[4, -1] = 50.0  # the best entry in the tail
    k = min(8, V)
    values, cols = top_per_row(x, k)
    want_values, want_cols = x.topk(k, dim=1)
    assert torch.equal(values, want_values)
    finite = torch.isfinite(want_values).all(dim=1)
    assert torch.equal(cols[finite], want_cols[finite])
    assert torch.equal(x.gather(1, cols), values)


def test_heuristic_stop_saves_steps_and_never_scores_higher() -> None:
    """stop="heuristic" (generate's kind of rule) against the exact rule.

    Both searches take the same steps until the heuristic one stops; the exact
    one may go on and only ever replaces its best finished output by a better
    one. So the heuristic decodes no more rows, and its outputs score no higher.
    """
    calls: list[int] = []
    fewer = differ = 0
    for seed in range(40):
        model = count_rows(TableModel(seed, scale=3.0), calls)  # lengths compete
        src = sources([2, 4, 3], VOCAB, seed)
        outs, rows = {}, {}
        for stop in ("exact", "heuristic"):
            calls.clear()
            outs[stop] = beam_search(model, src, 3, 0.6, max_len=10, stop=stop)
            rows[stop] = sum(calls)
        assert rows["heuristic"] <= rows["exact"]
        fewer += rows["heuristic"] < rows["exact"]
        for b, (exact, heuristic) in enumerate(
            zip(outs["exact"], outs["heuristic"], strict=True)
        ):
            if exact != heuristic:
                differ += 1
                full = [y + [EOS] if len(y) < 10 else y for y in (exact, heuristic)]
                assert model.score(src[b], full[1], 0.6) < model.score(
                    src[b], full[0], 0.6
                )  # the exact search found a better output
    assert fewer > 0 and differ > 0  # the heuristic stops earlier, and can miss


def test_unknown_stop_rule_is_refused(tiny_model: TinyModel) -> None:
    with pytest.raises(AiaynError, match="stop='never'"):
        beam_search(tiny_model(0), sources([3], 16, 0), stop="never")
