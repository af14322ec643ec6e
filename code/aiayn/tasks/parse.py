"""English constituency parsing (section 6.3) as a task: data, decoding, F1.

> To evaluate if the Transformer can generalize to other tasks we performed
> experiments on English constituency parsing. ... During inference, we
> increased the maximum output length to input length + 300. We used a beam
> size of 21 and alpha = 0.3 for both WSJ only and the semi-supervised setting.

Data: the Penn Treebank sample (`aiayn.ptb`), split by file
(`parsing.split_by_file`): train wsj_0001-0159 (3,396 sentences), dev
wsj_0160-0179 (273), test wsj_0180-0199 (245). A pair is the words of a cleaned
tree (`parsing.clean`) and its linearisation (`parsing.linearize`), e.g.
``John has a dog .`` -> ``(S (NP XX )NP (VP XX (NP XX XX )NP )VP XX )S``.

Vocabularies (`tokenizer.ParseTokenizer`): two, not one. Source and target
share no symbol (words against 53 tree symbols), so a shared vocabulary would
only widen the softmax about a hundredfold, every decoder step scoring 5,000
words it can never output. Here the target embedding and the softmax are tied
(57 rows, section 3.4) and the source has its own embedding. The source is
whole words, not sub-words: the target has one ``XX`` per word, which the
decoder counts off against the source positions, and 3.4K sentences teach few
useful merges. Words seen once in training become shape classes
(`tokenizer.unknown_class`), so the unknown-word embeddings are trained too.
(The paper's WSJ-only model used a 16K-token vocabulary on 40K sentences.)

Decoding is the paper's: beam 21, alpha 0.3, at most input length + 300
tokens (``TrainConfig.extra_len``; the model's ``max_len`` must cover it).
`parsing.delinearize` turns each output into a tree over the sentence's words,
repairing what is ill-formed, and `parsing.evalb` scores it (``COLLINS.prm``)
over all sentences and those of at most 40 words, beside a right-branching
tree on the same sentences for scale.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import ptb
from ..config import TrainConfig
from ..errors import AiaynError
from ..model import Transformer
from ..parsing import (
    XX,
    Tree,
    clean,
    delinearize,
    evalb,
    linearize,
    parse_mrg,
    right_branching,
    split_by_file,
    to_string,
    words,
)
from ..tokenizer import UNK_ID, ParseTokenizer, Tokenizer
from ..translate import decode_ids
from . import register
from .base import Evaluation, Task, TaskData

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# The phrase labels of the Penn Treebank bracketing guidelines (Bies et al. 1995).
PHRASE_LABELS = (
    "ADJP", "ADVP", "CONJP", "FRAG", "INTJ", "LST", "NAC", "NP", "NX", "PP",
    "PRN", "PRT", "QP", "RRC", "S", "SBAR", "SBARQ", "SINV", "SQ", "UCP", "VP",
    "WHADJP", "WHADVP", "WHNP", "WHPP", "X",
)  # fmt: skip
TARGET_SYMBOLS = (  # 53: XX, then (L for each label, then )L
    XX,
    *(f"({label}" for label in PHRASE_LABELS),
    *(f"){label}" for label in PHRASE_LABELS),
)
MIN_COUNT = 2  # a source word seen fewer times in training is unknown


def load_trees(
    mirror: str | Path | None = None, progress: bool = False
) -> dict[str, list[Tree]]:
    """The cleaned trees of each split: train 3,396, dev 273, test 245."""
    files = ptb.load_files(mirror=mirror, progress=progress)
    return {
        split: [c for f in fids for t in parse_mrg(files[f]) if (c := clean(t))]
        for split, fids in split_by_file(list(files)).items()
    }


def predict(
    model: Transformer,
    tokenizer: ParseTokenizer,
    sentences: Sequence[Sequence[str]],
    beam_size: int = 21,
    alpha: float = 0.3,
    extra_len: int = 300,
    batch_tokens: int = 8000,
    progress: bool = False,
) -> list[list[str]]:
    """The linearised tree the model outputs for each sentence (a word list)."""
    sources = [tokenizer.encode(" ".join(s)) for s in sentences]
    outs = decode_ids(
        model, sources, beam_size, alpha, extra_len, batch_tokens, progress
    )
    return [tokenizer.decode(o).split() for o in outs]


def well_formed(symbols: Sequence[str], n_words: int) -> bool:
    """True if `symbols` needs no repair: one tree, matched labels, an XX per word."""
    stack: list[str] = []
    for i, s in enumerate(symbols):
        if s.startswith("("):
            stack.append(s[1:])
        elif s.startswith(")"):
            if not stack or stack.pop() != s[1:]:
                return False
            if not stack and i != len(symbols) - 1:
                return False  # a second tree follows
        elif s != XX or not stack:
            return False
    return bool(symbols) and not stack and list(symbols).count(XX) == n_words


def score(gold: list[Tree], pred: list[Tree]) -> dict[str, float]:
    """EVALB scores (COLLINS.prm) in percent, all and <= 40 words; right-branching."""
    full, short = evalb(gold, pred), evalb(gold, pred, max_len=40)
    rb = [right_branching(words(g)) for g in gold]
    return {
        "f1": full["f1"],
        "precision": full["precision"],
        "recall": full["recall"],
        "exact_match": full["exact_match"],
        "n": full["n"],
        "f1_40": short["f1"],
        "n_40": short["n"],
        "right_branching_f1": evalb(gold, rb)["f1"],
        "right_branching_f1_40": evalb(gold, rb, max_len=40)["f1"],
    }


def evaluate_trees(
    model: Transformer,
    tokenizer: ParseTokenizer,
    gold: list[Tree],
    beam_size: int = 21,
    alpha: float = 0.3,
    extra_len: int = 300,
    progress: bool = False,
) -> Evaluation:
    """Parse the words of `gold` and score the parses (outputs: bracketed trees)."""
    sentences = [words(g) for g in gold]
    t0 = time.perf_counter()
    symbols = predict(
        model, tokenizer, sentences, beam_size, alpha, extra_len, progress=progress
    )
    wall = time.perf_counter() - t0
    pred = [delinearize(s, w) for s, w in zip(symbols, sentences, strict=True)]
    ok = [well_formed(s, len(w)) for s, w in zip(symbols, sentences, strict=True)]
    result: dict[str, Any] = score(gold, pred)
    result.update(
        well_formed=100 * sum(ok) / len(ok),
        beam_size=beam_size,
        alpha=alpha,
        extra_len=extra_len,
        decode_wall_s=round(wall, 1),
    )
    result["examples"] = [
        {"words": " ".join(w), "gold": to_string(g), "pred": to_string(p)}
        for w, g, p in list(zip(sentences, gold, pred, strict=True))[:3]
    ]
    return Evaluation(result, [to_string(p) for p in pred])


@register
class ParseTask(Task):
    """Words in, linearised tree out; judged by EVALB F1 against the gold trees.

    Two vocabularies (see the module docstring): the tokenizer is built from the
    words of the training trees and the fixed target symbols, and ``extra`` holds
    the dev and test gold trees, since F1 is computed on trees, not on ids.
    """

    name = "parse"
    splits = ("dev", "test")
    default_split = "test"
    selection_metric = "f1"

    def build_tokenizer(self, cfg: TrainConfig, mirror: str | None) -> Tokenizer:
        trees = load_trees(mirror)["train"][: cfg.train_limit]  # [:None] keeps all
        return ParseTokenizer.train(
            [words(t) for t in trees], TARGET_SYMBOLS, MIN_COUNT
        )

    def configure(self, cfg: TrainConfig, tokenizer: Tokenizer) -> TrainConfig:
        assert isinstance(tokenizer, ParseTokenizer)
        model = replace(
            cfg.model,
            vocab_size=tokenizer.vocab_size,
            src_vocab_size=tokenizer.src_vocab_size,
        )
        return replace(cfg, model=model)

    def load_data(
        self, cfg: TrainConfig, tokenizer: Tokenizer, mirror: str | None
    ) -> TaskData:
        """Id pairs; ``extra`` holds the dev and test gold trees.

        Training pairs longer than ``model.max_len - 1`` (or with more than
        ``max_sentence_len`` words) are left out; dev pairs that do not fit are
        left out of the dev loss only, never out of the F1.
        """
        tok = _parse_tokenizer(tokenizer)
        trees = load_trees(mirror)
        limit = cfg.model.max_len - 1  # room for EOS (source) or BOS (target)

        def pairs(ts: list[Tree]) -> list[tuple[list[int], list[int]]]:
            out = [
                (
                    tok.encode(" ".join(words(t))),
                    tok.encode_target(" ".join(linearize(t))),
                )
                for t in ts
            ]
            if any(UNK_ID in tgt for _, tgt in out):
                raise AiaynError(
                    f"a tree has a label outside PHRASE_LABELS {PHRASE_LABELS}"
                )
            return [(s, t) for s, t in out if len(s) <= limit and len(t) <= limit]

        train_trees = trees["train"][: cfg.train_limit]
        train = [p for p in pairs(train_trees) if len(p[0]) <= cfg.max_sentence_len]
        dev = trees["dev"]
        return TaskData(
            cfg,
            tok,
            train,
            pairs(dev),
            dev_src=[" ".join(words(t)) for t in dev],
            dev_ref=[" ".join(linearize(t)) for t in dev],
            extra={"dev_trees": dev, "test_trees": trees["test"]},
        )

    def evaluate(
        self,
        model: Transformer,
        data: TaskData,
        beam_size: int,
        alpha: float,
        limit: int | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        gold = data.extra["dev_trees"][:limit]
        tok = _parse_tokenizer(data.tokenizer)
        result = evaluate_trees(
            model, tok, gold, beam_size, alpha, data.cfg.extra_len, progress
        )
        return {"split": "dev", **result.scores}

    def evaluate_split(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        cfg: TrainConfig,
        split: str,
        beam_size: int,
        alpha: float,
        limit: int | None = None,
        mirror: str | None = None,
        progress: bool = False,
    ) -> Evaluation:
        self.check_split(split)
        gold = load_trees(mirror)[split][:limit]
        tok = _parse_tokenizer(tokenizer)
        result = evaluate_trees(
            model, tok, gold, beam_size, alpha, cfg.extra_len, progress
        )
        result.scores = {"split": split, **result.scores}
        return result


def _parse_tokenizer(tokenizer: Tokenizer) -> ParseTokenizer:
    if not isinstance(tokenizer, ParseTokenizer):
        raise AiaynError(f"a parse task needs a ParseTokenizer, not {tokenizer}")
    return tokenizer


def draw_tree(tree: Tree, ax: Axes, fontsize: float = 8.0) -> None:
    """Draw `tree` top-down on matplotlib axes, its words along the bottom."""
    labels: list[tuple[float, float, str]] = []  # x, y, constituent or POS tag
    leaves: list[tuple[float, float, str]] = []  # x, y of its tag, word
    edges: list[tuple[float, float, float, float]] = []

    def place(node: Tree, level: int) -> float:
        if node.is_preterminal:
            x = float(len(leaves))
            leaves.append((x, -level, str(node.children[0])))
        else:
            xs = [place(c, level + 1) for c in node.children if isinstance(c, Tree)]
            x = (xs[0] + xs[-1]) / 2
            edges.extend((x, -level, cx, -level - 1) for cx in xs)
        labels.append((x, -level, node.label))
        return x

    place(tree, 0)
    bottom = min(y for _, y, _ in leaves) - 1  # the row of words
    box = {"fc": "white", "ec": "none", "pad": 0.5}
    for x, y, text in labels:
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, bbox=box)
    for x, y, word in leaves:
        ax.plot([x, x], [y, bottom], color="0.75", lw=0.6, ls=":", zorder=0)
        ax.text(
            x, bottom, word, ha="right", va="top", rotation=40,
            rotation_mode="anchor", fontsize=fontsize,
        )  # fmt: skip
    for x0, y0, x1, y1 in edges:
        ax.plot([x0, x1], [y0, y1], color="0.4", lw=0.8, zorder=0)
    ax.set_xlim(-1.5, max(len(leaves), 2) - 0.5)
    ax.set_ylim(bottom - 2.5, 0.6)
    ax.axis("off")
