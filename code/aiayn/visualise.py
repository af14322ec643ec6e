"""Attention visualisations (the paper's appendix, Figures 3-5).

The paper draws the weights softmax(Q K^T / sqrt(d_k)) of equation 1 for single
heads of its encoder's self-attention. This module reads them out of a trained
model for one sentence and its translation (:func:`sentence_attention`): the
encoder's self-attention, the decoder's masked self-attention and the
encoder-decoder attention, each (layers, heads, queries, keys).

The model reads sub-word pieces, the reader reads words. :func:`merge_pieces`
turns a piece-by-piece map into a word-by-word one in the usual way: attention
*from* a word is the mean of the rows of its pieces, attention *to* a word is
the sum of the columns of its pieces, so that every row is still a
distribution over words.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .decoding import beam_search, eval_mode
from .model import Transformer
from .multi30k import preprocess
from .tokenizer import Tokenizer

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def word_groups(pieces: Sequence[str]) -> list[int]:
    """The word (0, 1, ...) each sub-word piece belongs to.

    A piece opens a new word if it starts with whitespace (byte-level BPE
    decodes a word-initial piece as ``" word"``) or with WordPiece's ``▁``;
    the first piece always opens word 0.
    """
    groups: list[int] = []
    for i, piece in enumerate(pieces):
        new = i == 0 or piece[:1].isspace() or piece.startswith("▁")
        groups.append(groups[-1] + new if groups else 0)
    return groups


def merge_pieces(
    weights: np.ndarray, row_groups: Sequence[int], col_groups: Sequence[int]
) -> np.ndarray:
    """(..., T_q, T_k) piece attention -> (..., W_q, W_k) word attention.

    ``row_groups[i]`` is the word of query piece i, ``col_groups[j]`` that of
    key piece j (as :func:`word_groups` returns them). A word's row is the mean
    of its pieces' rows (attention *from* the word); a word's column is the
    sum of its pieces' columns (attention *to* the word), so rows that summed
    to 1 still do.
    """
    rows, cols = np.asarray(row_groups), np.asarray(col_groups)
    n_rows, n_cols = rows.max() + 1, cols.max() + 1
    to_rows = np.zeros((n_rows, len(rows)))  # (W_q, T_q): mean over pieces
    to_rows[rows, np.arange(len(rows))] = 1.0
    to_rows /= to_rows.sum(1, keepdims=True)
    to_cols = np.zeros((len(cols), n_cols))  # (T_k, W_k): sum over pieces
    to_cols[np.arange(len(cols)), cols] = 1.0
    return to_rows @ np.asarray(weights, dtype=np.float64) @ to_cols


def words(tokenizer: Tokenizer, ids: Sequence[int]) -> tuple[list[str], list[int]]:
    """The words that token ``ids`` spell, and the word of each id.

    Moses escapes (``&apos;``) are shown as the characters they stand for.
    """
    groups = word_groups([tokenizer.decode([i]) for i in ids])
    spelt = [
        tokenizer.decode([i for i, g in zip(ids, groups, strict=True) if g == w])
        for w in range(max(groups, default=-1) + 1)
    ]
    return [html.unescape(w.strip()) for w in spelt], groups


def attention_maps(
    model: Transformer, src: torch.Tensor, tgt_in: torch.Tensor
) -> dict[str, np.ndarray]:
    """Every layer's and head's weights for one sentence pair (batch of 1).

    Returns ``"encoder"`` (N, h, S, S), ``"decoder"`` (N, h, T, T), lower
    triangular, and ``"cross"`` (N, h, T, S): rows are queries, columns keys.
    """
    layers = {
        "encoder": [layer.self_attn for layer in model.encoder],
        "decoder": [layer.self_attn for layer in model.decoder],
        "cross": [layer.cross_attn for layer in model.decoder],
    }
    modules = [m for ms in layers.values() for m in ms]
    try:
        for m in modules:
            m.store_weights = True  # the readable path, which keeps the weights
        with torch.no_grad(), eval_mode(model):
            model(src, tgt_in)
        return {
            kind: torch.stack([m.weights[0] for m in ms]).cpu().numpy()
            for kind, ms in layers.items()
        }  # each (N, h, T_q, T_k)
    finally:
        for m in modules:
            m.store_weights, m.weights = False, None


@dataclass
class SentenceAttention:
    """One sentence, the model's translation, and its attention between words."""

    source: list[str]  # the source words, then "</s>"
    target: list[str]  # the words the decoder wrote, then "</s>" (its rows)
    target_in: list[str]  # "<s>", then those words: what the decoder reads
    translation: str  # the translation, as the model writes it
    encoder: np.ndarray  # (N, h, source, source)
    decoder: np.ndarray  # (N, h, target, target_in), masked: see below
    cross: np.ndarray  # (N, h, target, source)


def sentence_attention(
    model: Transformer,
    tokenizer: Tokenizer,
    sentence: str,
    lang: str = "en",
    preprocessing: str = "raw",
    beam_size: int = 4,
    alpha: float = 0.6,
) -> SentenceAttention:
    """Preprocess and translate ``sentence``, and read its attention, by word.

    Decoder row i is the step that wrote target word i: it reads ``<s>`` and
    the words before it (columns 0..i of ``target_in``) and, for a word of
    several pieces, its own earlier pieces (column i + 1); never a later word.
    """
    text = preprocess([sentence], lang, preprocessing)[0]
    cfg = model.cfg
    device = next(model.parameters()).device
    ids = tokenizer.encode(text)
    src = torch.tensor([ids + [cfg.eos_id]], device=device)  # (1, S)
    out = beam_search(model, src, beam_size, alpha)[0]
    tgt_in = torch.tensor([[cfg.bos_id] + out], device=device)  # (1, T)
    maps = attention_maps(model, src, tgt_in)
    src_words, src_groups = words(tokenizer, ids)
    tgt_words, tgt_groups = words(tokenizer, out)
    src_groups = [*src_groups, len(src_words)]  # "</s>" is a word of its own
    rows = [*tgt_groups, len(tgt_words)]  # the step that writes "</s>"
    cols = [0, *(g + 1 for g in tgt_groups)]  # "<s>", then the words
    return SentenceAttention(
        source=[*src_words, "</s>"],
        target=[*tgt_words, "</s>"],
        target_in=["<s>", *tgt_words],
        translation=tokenizer.decode(out),
        encoder=merge_pieces(maps["encoder"], src_groups, src_groups),
        decoder=merge_pieces(maps["decoder"], rows, cols),
        cross=merge_pieces(maps["cross"], rows, src_groups),
    )


def plot_lines(
    ax: Axes,
    labels: Sequence[str],
    weights: np.ndarray,
    queries: Sequence[int] | None = None,
    heads: Sequence[int] = (0,),
    colors: Sequence[str] = ("C0",),
    n_rows: int | None = None,
) -> None:
    """The paper's style: lines from query words (left) to the words (right).

    ``weights`` (h, W, W); one colour per head; a line's opacity is its weight
    (weights under 0.02 are not drawn). ``queries``: the rows to draw; by
    default all of them (the "full attentions"), otherwise only those words
    are written on the left, in bold. ``n_rows``: room for that many words, so
    that panels of sentences of different lengths line up.
    """
    n = len(labels)
    full = queries is None
    queries = range(n) if queries is None else queries
    for h, color in zip(heads, colors, strict=True):
        for q in queries:
            for k in range(n):
                alpha = float(weights[h, q, k])
                if alpha > 0.02:
                    ax.plot([0, 1], [-q, -k], color=color, alpha=alpha, lw=2)
    for y, label in enumerate(labels):
        if full or y in queries:
            weight = "normal" if full else "bold"
            ax.text(
                -0.03, -y, label, ha="right", va="center", fontsize=8, weight=weight
            )
        ax.text(1.03, -y, label, ha="left", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(-(n_rows or n) + 0.5, 0.5)  # one row per word in every panel
    ax.axis("off")


def plot_heatmap(
    ax: Axes,
    weights: np.ndarray,
    rows: Sequence[str],
    cols: Sequence[str],
    vmax: float = 1.0,
    cmap: str = "Blues",
) -> None:
    """One (W_q, W_k) map with a word on every row and column."""
    ax.imshow(weights, cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.tick_params(length=0)


_SCRIPT = """
(function () {
  var root = document.getElementById("%(id)s");
  var data = JSON.parse(root.getAttribute("data-attention"));
  var head = 0;
  var words = root.querySelectorAll(".aiayn-word");
  var buttons = root.querySelectorAll("button");
  var note = root.querySelector(".aiayn-note");
  function show(q) {
    words.forEach(function (w, k) {
      var a = q === null ? 0 : data.weights[head][q][k];
      w.style.backgroundColor = "rgba(31, 119, 180, " + a + ")";
      w.style.outline = k === q ? "2px solid #d62728" : "none";
    });
    note.textContent = q === null ? data.hint : data.labels[q] + ": head " +
      head + ", " + data.top[head][q];
  }
  words.forEach(function (w, q) {
    w.addEventListener("mouseenter", function () { show(q); });
    w.addEventListener("focus", function () { show(q); });
  });
  buttons.forEach(function (b, h) {
    b.addEventListener("click", function () {
      head = h;
      buttons.forEach(function (c, i) { c.style.fontWeight = i === h ?
        "bold" : "normal"; });
      show(null);
    });
  });
  show(null);
})();
"""


def attention_html(labels: Sequence[str], weights: np.ndarray, uid: str) -> str:
    """Self-contained HTML (inline script, no external files) to explore a map.

    Hover a word to shade every word by the attention it receives from it;
    buttons choose the head. ``weights`` is (h, W, W); ``uid`` must be unique
    on the page.
    """
    w = np.round(np.asarray(weights, dtype=np.float64), 2)
    top = [
        [
            ", ".join(f"{labels[k]} {w[h, q, k]:.2f}" for k in np.argsort(-w[h, q])[:3])
            for q in range(len(labels))
        ]
        for h in range(len(w))
    ]
    data = {
        "weights": w.tolist(),
        "labels": list(labels),
        "top": top,
        "hint": "Hover over (or tab to) a word to see where it attends.",
    }
    buttons = "".join(
        f'<button type="button" style="margin-right:4px;font-weight:'
        f'{"bold" if h == 0 else "normal"}">head {h}</button>'
        for h in range(len(w))
    )
    spans = " ".join(
        f'<span class="aiayn-word" tabindex="0" style="padding:1px 2px;'
        f'border-radius:3px;cursor:default">{html.escape(label)}</span>'
        for label in labels
    )
    attr = html.escape(json.dumps(data), quote=True)
    return (
        f'<div id="{uid}" data-attention="{attr}" style="line-height:2">'
        f"<div>{buttons}</div><div>{spans}</div>"
        '<div class="aiayn-note" style="font-size:90%;color:#555"></div>'
        f"<script>{_SCRIPT % {'id': uid}}</script></div>"
    )
