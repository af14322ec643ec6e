"""Decoding (section 6.1): greedy search and beam search with a length penalty.

"We used beam search with a beam size of 4 and length penalty alpha = 0.6. ... We
set the maximum output length during inference to input length + 50, but terminate
early when possible."

The length penalty is GNMT's (Wu et al. 2016): a finished hypothesis Y is scored
log P(Y | X) / lp(Y) with lp(Y) = ((5 + |Y|) / 6)^alpha, where |Y| counts the
generated tokens including the end-of-sentence token. Both searches are batched
over sentences and use the decoder's key/value cache, so each step runs the decoder
on one new position only. Neither ever emits padding or beginning-of-sentence.

Both return, for each source sentence, its output token ids without BOS and EOS.
Both accept a `Constraint` (not in the paper): an object that says, before each
step, which tokens each hypothesis may take next, and follows the tokens chosen.
Parsing uses one to allow only well-formed trees (`aiayn.tasks.parse`); tokens it
forbids get log-probability -inf, the others keep the model's own. They decode in
evaluation mode (no dropout) and leave the model in the mode they
found it, so decoding in the middle of training keeps training's dropout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import Tensor, nn

from .errors import AiaynError
from .fast_decode import decode_step
from .model import Transformer, reorder_cache, select_cache_rows


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluation mode inside the block; every submodule's own mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


class Constraint(Protocol):
    """Which next tokens each hypothesis may take; stateful, one per decode call.

    ``begin(src, k)`` is called once with the (B, S) source batch and the number of
    hypotheses per sentence (1 for greedy search, the beam size for beam search);
    hypothesis row ``b * k + j`` belongs to sentence b. Before step t,
    ``allowed(t, limits)`` returns a (rows, V) boolean mask (``limits``: (rows,)
    the most tokens each row may generate, EOS included). ``select(index)``
    keeps rows ``index`` in that order (beam search reorders its hypotheses;
    both searches drop finished sentences), and ``advance(tokens)`` says that
    each row took ``tokens[row]``.
    """

    def begin(self, src: Tensor, k: int) -> None: ...

    def allowed(self, t: int, limits: Tensor) -> Tensor: ...

    def select(self, index: Tensor) -> None: ...

    def advance(self, tokens: Tensor) -> None: ...


def length_penalty(length: Tensor | int, alpha: float) -> Tensor:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^alpha."""
    return ((5.0 + torch.as_tensor(length, dtype=torch.float32)) / 6.0) ** alpha


def _output_limits(
    model: Transformer, src: Tensor, max_len: int | None, extra_len: int
) -> Tensor:
    """Per sentence, the most tokens to generate: input length + 50 by default."""
    cfg = model.cfg
    if max_len is not None:
        limits = torch.full((src.size(0),), max_len, device=src.device)
    else:
        limits = (src != cfg.pad_id).sum(dim=1) + extra_len  # (B,)
    return limits.clamp(min=1, max=cfg.max_len - 1)  # BOS takes one position


def _log_probs(logits: Tensor, model: Transformer) -> Tensor:
    """(N, V) logits -> log-probabilities, with PAD and BOS made impossible."""
    logp = logits.float().log_softmax(dim=-1)
    logp[:, model.cfg.pad_id] = float("-inf")
    logp[:, model.cfg.bos_id] = float("-inf")
    return logp


@torch.no_grad()
def greedy_decode(
    model: Transformer,
    src: Tensor,
    max_len: int | None = None,
    extra_len: int = 50,
    constraint: Constraint | None = None,
    shrink: bool = True,
    fast: bool = True,
) -> list[list[int]]:
    """Pick the most probable next token (that `constraint` allows) until EOS.

    With `shrink` (the default), a sentence that has finished leaves the batch:
    later steps run the decoder on the unfinished ones only. Each row is computed
    on its own, so the outputs are the same either way. `fast` (the default)
    runs each step with `aiayn.fast_decode` instead of ``model.decode``: the same
    computation without module calls, the same outputs.
    """
    with eval_mode(model):
        return _greedy_decode(model, src, max_len, extra_len, constraint, shrink, fast)


def _greedy_decode(
    model: Transformer,
    src: Tensor,
    max_len: int | None,
    extra_len: int,
    constraint: Constraint | None,
    shrink: bool = True,
    fast: bool = True,
) -> list[list[int]]:
    cfg = model.cfg
    step = decode_step(model, fast)  # model.decode, or the same without modules
    B, device = src.size(0), src.device
    limits = _output_limits(model, src, max_len, extra_len)  # (B,)
    L = int(limits.max())
    memory, src_mask = model.encode(src)  # (B, S, d_model), (B, 1, 1, S)
    cache = model.init_cache()
    out = torch.full((B, L), cfg.pad_id, dtype=torch.long, device=device)
    rows = torch.arange(B, device=device)  # the sentence of each row still decoded
    done = torch.zeros(B, dtype=torch.bool, device=device)  # per row
    token = torch.full((B, 1), cfg.bos_id, dtype=torch.long, device=device)
    if constraint is not None:
        constraint.begin(src, 1)
    for t in range(L):
        logits = step(token, memory, src_mask, cache, t)  # (b, 1, V)
        if constraint is not None:
            logp = _log_probs(logits[:, -1], model)  # (b, V)
            allowed = constraint.allowed(t, limits[rows])
            logp = _rescored(constraint, logp).masked_fill(~allowed, float("-inf"))
        else:  # log_softmax keeps the order of the logits: take their argmax
            logp = logits[:, -1].float()  # (b, V)
            logp[:, [cfg.pad_id, cfg.bos_id]] = float("-inf")
        nxt = logp.argmax(dim=-1).masked_fill(done, cfg.pad_id)  # (b,)
        if constraint is not None:
            constraint.advance(nxt)
        out[rows, t] = nxt
        done |= (nxt == cfg.eos_id) | (t + 1 >= limits[rows])
        if bool(done.all()):
            break
        if shrink and bool(done.any()):
            keep = (~done).nonzero()[:, 0]  # (b',) rows that go on
            rows, nxt, done = rows[keep], nxt[keep], done[keep]
            memory, src_mask = memory[keep], src_mask[keep]
            select_cache_rows(cache, keep)
            if constraint is not None:
                constraint.select(keep)
        token = nxt[:, None]  # (b, 1)
    return [_strip(s, cfg.eos_id, cfg.pad_id) for s in out.tolist()]


def _rescored(constraint: Constraint, logp: Tensor) -> Tensor:
    """``constraint.rescore(logp)`` if the constraint has one, else ``logp``.

    `Constraint` may also rescore the (rows, V) log-probabilities before its mask
    applies (`aiayn.tasks.parse.TreeConstraint` does, with word leaves).
    """
    rescore = getattr(constraint, "rescore", None)
    return logp if rescore is None else rescore(logp)


def _strip(seq: list[int], eos_id: int, pad_id: int) -> list[int]:
    """Cut at the first EOS and drop padding."""
    if eos_id in seq:
        seq = seq[: seq.index(eos_id)]
    return [t for t in seq if t != pad_id]


STOP_RULES = ("exact", "heuristic")  # beam_search's rules for ending a sentence


@torch.no_grad()
def beam_search(
    model: Transformer,
    src: Tensor,
    beam_size: int = 4,
    alpha: float = 0.6,
    max_len: int | None = None,
    extra_len: int = 50,
    constraint: Constraint | None = None,
    shrink: bool = True,
    stop: str = "exact",
    fast: bool = True,
) -> list[list[int]]:
    """Beam search with GNMT's length penalty; returns the best hypothesis each.

    At each step every live hypothesis is extended by every token; of the 2K best
    extensions (K = beam_size), those ending in EOS are finished hypotheses, and the
    K best of the rest stay alive. A hypothesis that reaches the length limit is
    finished as it stands. A sentence stops when no live hypothesis can still beat
    its best finished one: with alpha >= 0 the best a live hypothesis can reach is
    its log-probability divided by lp(limit), since log-probabilities only fall.
    With `shrink` (the default) a stopped sentence leaves the batch, and its K
    rows are no longer decoded (same outputs, less work). With a `constraint`,
    only the tokens it allows are candidates.

    ``stop="exact"`` (the default) is the rule above, tensor2tensor's. Not in
    the paper, ``stop="heuristic"`` is the kind of rule `transformers`'
    ``generate`` uses by default: a sentence stops once its best live
    hypothesis, scored at its *current* length, cannot beat its best finished
    one. It saves steps and may miss a longer hypothesis that would have won;
    ``bench/fair.py`` uses it to compare like with like. `fast` as in
    `greedy_decode`.
    """
    if stop not in STOP_RULES:
        raise AiaynError(f"stop={stop!r}: choose one of {', '.join(STOP_RULES)}")
    with eval_mode(model):
        return _beam_search(
            model, src, beam_size, alpha, max_len, extra_len, constraint, shrink,
            stop, fast,
        )  # fmt: skip


def _beam_search(
    model: Transformer,
    src: Tensor,
    beam_size: int,
    alpha: float,
    max_len: int | None,
    extra_len: int,
    constraint: Constraint | None = None,
    shrink: bool = True,
    stop: str = "exact",
    fast: bool = True,
) -> list[list[int]]:
    cfg = model.cfg
    step = decode_step(model, fast)  # model.decode, or the same without modules
    B, K, device = src.size(0), beam_size, src.device
    limits = _output_limits(model, src, max_len, extra_len)  # (B,)
    L = int(limits.max())
    # One memory row per sentence: the decoder's encoder-decoder attention lets
    # the K hypotheses of a sentence (consecutive rows) share its keys and values.
    memory, src_mask = model.encode(src)  # (B, S, d), (B, 1, 1, S)
    cache = model.init_cache()

    # Per sentence still decoded (b of them, b = B at first): `sent` is its index.
    sent = torch.arange(B, device=device)  # (b,)
    lim = limits  # (b,)
    alive_seq = torch.full((B, K, 1), cfg.bos_id, dtype=torch.long, device=device)
    alive_logp = torch.full((B, K), float("-inf"), device=device)
    alive_logp[:, 0] = 0.0  # only one real hypothesis at the start
    done = torch.zeros(B, dtype=torch.bool, device=device)  # (b,)
    # Per sentence of the batch, whether decoded or not: its best finished output.
    best_score = torch.full((B,), float("-inf"), device=device)
    best_seq = torch.full((B, L + 1), cfg.pad_id, dtype=torch.long, device=device)
    n_cand = min(2 * K, K * cfg.vocab_size)
    if constraint is not None:
        constraint.begin(src, K)

    for t in range(L):
        b = sent.numel()
        token = alive_seq[:, :, -1].reshape(b * K, 1)  # (b*K, 1)
        if t == 0:  # K copies of BOS: decode one row per sentence, cache it once
            logits = step(token[::K], memory, src_mask, cache, 0)
            logits = logits.repeat_interleave(K, dim=0)  # (b*K, 1, V)
        else:
            logits = step(token, memory, src_mask, cache, t)
        logp = _log_probs(logits[:, -1], model)  # (b*K, V)
        if constraint is not None:
            allowed = constraint.allowed(t, lim.repeat_interleave(K))
            logp = _rescored(constraint, logp).masked_fill(~allowed, float("-inf"))
        # The 2K best extensions of a sentence are among the 2K best of each row.
        row_logp, row_tok = top_per_row(logp, min(n_cand, logp.size(1)))  # (b*K, c)
        c = row_logp.size(1)
        cand = (alive_logp[:, :, None] + row_logp.view(b, K, c)).view(b, K * c)
        cand_logp, cand_idx = cand.topk(n_cand, dim=1)  # (b, 2K)
        beam = cand_idx // c  # (b, 2K) which live hypothesis
        tok = row_tok.view(b, K * c).gather(1, cand_idx)  # (b, 2K) which token
        prefix = alive_seq.gather(1, beam[:, :, None].expand(-1, -1, t + 1))
        cand_seq = torch.cat([prefix, tok[:, :, None]], dim=2)  # (b, 2K, t+2)

        # Finished candidates: ending in EOS, or reaching the sentence's limit.
        count = t + 1  # generated tokens, EOS included
        at_limit = (count >= lim)[:, None]  # (b, 1)
        is_eos = tok == cfg.eos_id  # (b, 2K)
        fin = (is_eos | at_limit) & torch.isfinite(cand_logp) & ~done[:, None]
        fin_score = torch.where(
            fin, cand_logp / length_penalty(count, alpha), float("-inf")
        )  # (b, 2K)
        top_fin, top_j = fin_score.max(dim=1)  # (b,)
        better = top_fin > best_score[sent]  # (b,)
        if bool(better.any()):
            best_score[sent[better]] = top_fin[better]
            chosen = cand_seq[torch.arange(b, device=device), top_j]  # (b, t+2)
            chosen = chosen.masked_fill(chosen == cfg.eos_id, cfg.pad_id)
            best_seq[sent[better], : t + 2] = chosen[better]
            best_seq[sent[better], t + 2 :] = cfg.pad_id

        # The K best candidates that did not end in EOS stay alive.
        live_logp = cand_logp.masked_fill(is_eos, float("-inf"))  # (b, 2K)
        alive_logp, keep = live_logp.topk(K, dim=1)  # (b, K)
        alive_seq = cand_seq.gather(1, keep[:, :, None].expand(-1, -1, t + 2))
        src_beam = beam.gather(1, keep)  # (b, K) rows they came from
        flat = (torch.arange(b, device=device)[:, None] * K + src_beam).view(-1)
        # (b*K,) rows of the self-attention caches (after step 0: one a sentence)
        reorder_cache(cache, flat if t else flat // K)
        if constraint is not None:
            constraint.select(flat)
            constraint.advance(alive_seq[:, :, -1].reshape(-1))

        # Stop a sentence once no live hypothesis can overtake its best (at any
        # length up to the limit; "heuristic": at its current length).
        at = lim if stop == "exact" else count
        bound = alive_logp[:, 0] / length_penalty(at, alpha)  # (b,)
        done |= at_limit[:, 0] | (best_score[sent] >= bound)
        if bool(done.all()):
            break
        if shrink and bool(done.any()):
            go_on = (~done).nonzero()[:, 0]  # (b',) sentences still decoded
            rows = (go_on[:, None] * K + torch.arange(K, device=device)).view(-1)
            sent, lim, done = sent[go_on], lim[go_on], done[go_on]
            alive_seq, alive_logp = alive_seq[go_on], alive_logp[go_on]
            memory, src_mask = memory[go_on], src_mask[go_on]
            select_cache_rows(cache, rows, cross=go_on)
            if constraint is not None:
                constraint.select(rows)
    return [_strip(s[1:], cfg.eos_id, cfg.pad_id) for s in best_seq.tolist()]


def top_per_row(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``x.topk(k, dim=1)`` of a wide (R, V) ``x``, in two cheaper passes.

    The columns fall into chunks of about sqrt(V); the k largest entries of a row
    lie in the k chunks with the largest maxima (each such entry lifts its chunk's
    maximum to at least the k-th largest value), so a row's k best are found among
    k * sqrt(V) gathered entries. One maximum per chunk is a fast vectorised
    reduction, where ``topk`` over a whole 10,000-wide row is slow on a CPU
    (``bench/fair.py --previous`` measures the searches with and without it
    among this change's others). Equal values may come in another order than
    ``topk``'s.
    """
    R, V = x.shape
    C = max(1, int(V**0.5))  # chunk width
    n = V // C  # whole chunks; the last V - n*C columns are a ragged tail
    if n <= 2 * k:
        return x.topk(k, dim=1)
    x = x.contiguous()
    chunks = x.as_strided((R, n, C), (V, C, 1))  # (R, n, C) a view, no copy
    best = chunks.amax(dim=2).topk(k, dim=1).indices  # (R, k) chunks
    cols = (best[:, :, None] * C + torch.arange(C, device=x.device)).view(R, k * C)
    if n * C < V:
        tail = torch.arange(n * C, V, device=x.device).expand(R, -1)
        cols = torch.cat([cols, tail], dim=1)
    values, j = x.gather(1, cols).topk(k, dim=1)  # (R, k)
    return values, cols.gather(1, j)
