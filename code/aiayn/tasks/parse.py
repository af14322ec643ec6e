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
over all sentences and those of at most 40 words, beside two baselines on the
same sentences for scale: a right-branching tree, and the commonest training
tree of the sentence's length (`parsing.shape_baseline`).

Options that are not in the paper, all off by default:

- ``TrainConfig.parse_leaves = "pos"``: each word's target symbol is its POS tag
  instead of ``XX`` (97 tree symbols instead of 53), so the decoder also tags the
  sentence, a per-word task that ties each leaf to its source word.
- ``TrainConfig.parse_leaves = "word"``: each leaf is the word itself, in one
  vocabulary shared by source and target (``ParseTokenizer(shared=True)``, the
  paper's single vocabulary, here of whole words): the decoder reads the words
  it has placed so far, so it need not count leaves to know where it is in the
  sentence. Outputs are written with ``XX`` leaves for `parsing.delinearize`.
- ``TrainConfig.parse_leaves = "ahead"``: word leaves one word ahead: the
  target starts with the first word, and each leaf holds the word *after* the
  one it stands for (``XX`` for the last), so the decoder has read the next word
  before it writes the brackets in front of it (`target_sequence`).
- ``TrainConfig.parse_augment``: extra copies of the training trees with
  open-class words swapped for other training words of the same tag
  (`parsing.swap_words`).
- ``TrainConfig.constrained_decoding``: the search (`TreeConstraint`) only
  writes well-formed trees with one leaf per word, so no output needs repair
  (with word leaves, the leaf it allows is the next word of the sentence).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .. import ptb
from ..config import TrainConfig
from ..errors import AiaynError
from ..model import Transformer
from ..parsing import (
    ROOTS,
    XX,
    Tree,
    brackets,
    clean,
    delinearize,
    evalb,
    linearize,
    most_frequent_shapes,
    parse_mrg,
    right_branching,
    shape_baseline,
    split_by_file,
    swap_words,
    to_string,
    words,
)
from ..tokenizer import (
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    ParseTokenizer,
    Tokenizer,
)
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
POS_TAGS = (  # the 45 tags of the Penn Treebank (Marcus et al. 1993), as the sample
    "#", "$", "''", ",", "-LRB-", "-RRB-", ".", ":", "CC", "CD", "DT", "EX", "FW",
    "IN", "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNP", "NNPS", "NNS", "PDT", "POS",
    "PRP", "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG",
    "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB", "``",
)  # fmt: skip
MIN_COUNT = 2  # a source word seen fewer times in training is unknown


def target_symbols(leaves: str = XX) -> tuple[str, ...]:
    """The tree symbols: the leaf (``XX``, or the 45 POS tags), then the brackets.

    Word leaves come from the vocabulary of words: only the 52 brackets here.
    """
    if leaves == XX:
        return TARGET_SYMBOLS
    if leaves == "pos":
        return (*POS_TAGS, *TARGET_SYMBOLS[1:])
    if leaves == "word":
        return TARGET_SYMBOLS[1:]
    if leaves == "ahead":  # words, and XX for the leaf after the last word
        return TARGET_SYMBOLS
    raise AiaynError(f"parse_leaves={leaves!r} (one of XX, pos, word, ahead)")


def target_sequence(tree: Tree, leaves: str = XX) -> list[str]:
    """The linearisation the model learns: `parsing.linearize` with `leaves`.

    ``"word"``: each leaf is the word it covers, "(S", "(NP", "John", ")NP", ...

    ``"ahead"``: the first word, then the tree with each leaf holding the word
    *after* the one it covers, and ``XX`` for the last word's leaf:
    ``John has a dog .`` -> "John (S (NP has )NP (VP a (NP dog . )NP )VP XX )S".
    The decoder has read a word before it writes the brackets that open in front
    of it (or close behind the word before it): with ``"word"`` leaves it has to
    find that next word in the source by position, one further than the last it
    copied. The brackets are those of the tree, in the same order.
    """
    if leaves not in ("word", "ahead"):
        return linearize(tree, leaves == "pos")
    ws = words(tree)
    if leaves == "word":
        it = iter(ws)
        return [s if is_bracket(s) else next(it) for s in linearize(tree)]
    after = iter([*ws[1:], XX])
    return [ws[0], *(s if is_bracket(s) else next(after) for s in linearize(tree))]


def is_bracket(symbol: str) -> bool:
    """True for ``(L`` and ``)L``; every other tree symbol is a leaf."""
    return len(symbol) > 1 and symbol[0] in "()"


class TreeConstraint:
    """Beam or greedy search that only writes well-formed trees (not in the paper).

    A `aiayn.decoding.Constraint` over the target vocabulary of a
    `ParseTokenizer`. Each hypothesis carries its stack of open labels, whether
    the innermost one has a word yet, and how many leaves it has written. Allowed:

    - ``(L`` to open the root, or inside it, while words remain;
    - a leaf (``XX`` or a tag) inside a constituent, while words remain;
    - ``)L`` only for the innermost open L once it holds a word (the root only
      once every word has its leaf);
    - EOS only after the root closes.

    A token is also allowed only if what must follow it (a leaf for each
    remaining word, a ``)`` for each open constituent, EOS) fits in the output
    length limit, so every hypothesis can finish. Sentences are the source rows
    without padding and EOS: one source id per word, as `ParseTokenizer` writes.
    Unary chains stay possible (the treebank has them); the length limit bounds
    them. If the limit leaves no room for a tree at all, the output is empty.
    With a `shared` tokenizer (word leaves) the one leaf allowed is the next
    word of the sentence, so the search only decides the brackets. With leaves
    one word ahead (``tokenizer.ahead``) the first token is the sentence's first
    word, each leaf then is the word after the one it stands for, and the last
    leaf is ``XX``.
    """

    def __init__(self, tokenizer: ParseTokenizer, max_depth: int = 128) -> None:
        target = tokenizer.target
        labels = sorted({s[1:] for s in target if is_bracket(s)})
        number = {label: i + 1 for i, label in enumerate(labels)}  # 0: none
        n_special = len(SPECIAL_TOKENS)
        self.open_label = torch.tensor(
            [number[s[1:]] if is_bracket(s) and s[0] == "(" else 0 for s in target]
        )  # (V,)
        self.close_label = torch.tensor(
            [number[s[1:]] if is_bracket(s) and s[0] == ")" else 0 for s in target]
        )  # (V,)
        self.is_leaf = torch.tensor(
            [i >= n_special and not is_bracket(s) for i, s in enumerate(target)]
        )  # (V,)
        self.word_leaves = tokenizer.shared
        self.ahead = tokenizer.ahead
        self.xx_id = tokenizer.target.index(XX) if self.ahead else None
        if self.word_leaves:  # a word of no class is <unk>, a leaf like any word
            self.is_leaf[UNK_ID] = True
        self.max_depth = max_depth

    def begin(self, src: Tensor, k: int) -> None:
        device = src.device
        real = (src != PAD_ID) & (src != EOS_ID)
        self.n = real.sum(dim=1).repeat_interleave(k)  # (N,) words per row
        self.src = src.repeat_interleave(k, dim=0)  # (N, S): word leaves follow it
        N, D = self.n.numel(), self.max_depth
        self.count = torch.zeros(N, dtype=torch.long, device=device)  # leaves so far
        self.depth = torch.zeros(N, dtype=torch.long, device=device)  # open brackets
        self.started = torch.zeros(N, dtype=torch.bool, device=device)
        # leaves ahead: every row writes the first word before the tree
        self.primed = not self.ahead
        self.stack = torch.zeros(N, D, dtype=torch.long, device=device)  # labels
        self.has_word = torch.zeros(N, D, dtype=torch.bool, device=device)
        self.open_label = self.open_label.to(device)
        self.close_label = self.close_label.to(device)
        self.is_leaf = self.is_leaf.to(device)

    def _top(self) -> tuple[Tensor, Tensor]:
        """(N,) label and has-a-word flag of each row's innermost open bracket."""
        i = (self.depth - 1).clamp(min=0)[:, None]
        return self.stack.gather(1, i)[:, 0], self.has_word.gather(1, i)[:, 0]

    def allowed(self, t: int, limits: Tensor) -> Tensor:
        left = limits - t - 1  # tokens that may follow this one
        todo = self.n - self.count  # words still without a leaf
        d = self.depth
        top, top_has_word = self._top()
        leaf = (d > 0) & (todo > 0) & (todo - 1 + d + 1 <= left)
        open_ = (
            (todo > 0) & ((d > 0) | ~self.started) & (d < self.max_depth)
            & (todo + d + 2 <= left)
        )  # fmt: skip
        close = (d > 0) & top_has_word & ((d > 1) | (todo == 0)) & (todo + d <= left)
        if self.word_leaves:  # the next word, and no other, is the leaf
            leaves = leaf.new_zeros(leaf.numel(), self.is_leaf.numel())  # (N, V)
            leaves.scatter_(1, self._next_word(), leaf[:, None])
        else:
            leaves = leaf[:, None] & self.is_leaf
        mask = leaves | (open_[:, None] & (self.open_label > 0))
        mask |= close[:, None] & (self.close_label == top[:, None]) & (top[:, None] > 0)
        mask[:, EOS_ID] = (d == 0) & self.started & (todo == 0)
        if not self.primed:  # before the tree: the first word, and nothing else
            return mask.new_zeros(mask.shape).scatter_(1, self._next_word(), True)
        return mask

    def rescore(self, logp: Tensor) -> Tensor:
        """(N, V) log-probabilities; with word leaves, the next word's is any word's.

        The sentence fixes which word comes next, so the search should weigh
        "a leaf here" against a bracket by the probability of writing some word,
        not of guessing this one; the tree's score is the decoder's over brackets
        and leaf positions. Without word leaves, `logp` is returned as it is.
        """
        if not self.word_leaves:
            return logp
        any_word = logp.masked_fill(~self.is_leaf, float("-inf")).logsumexp(dim=1)
        return logp.scatter(1, self._next_word(), any_word[:, None])

    def _next_word(self) -> Tensor:
        """(N, 1) source id of each row's next word (word leaves).

        One word ahead: the word after the next leaf's (``XX`` after the last).
        """
        last = self.src.size(1) - 1
        if not self.ahead:
            return self.src.gather(1, self.count.clamp(max=last)[:, None])
        i = self.count + self.primed  # the first word comes before the tree
        word = self.src.gather(1, i.clamp(max=last)[:, None])
        return torch.where(i[:, None] < self.n[:, None], word, self.xx_id)

    def select(self, index: Tensor) -> None:
        for name in ("n", "src", "count", "depth", "started", "stack", "has_word"):
            setattr(self, name, getattr(self, name).index_select(0, index))

    def advance(self, tokens: Tensor) -> None:
        r = torch.arange(tokens.numel(), device=tokens.device)
        d = self.depth
        leaf = self.is_leaf[tokens] & (d > 0)
        opened = self.open_label[tokens]
        is_open = (opened > 0) & (d < self.max_depth)
        is_close = (self.close_label[tokens] > 0) & (d > 0)
        self.count += leaf
        self.has_word[r[leaf], d[leaf] - 1] = True
        self.stack[r[is_open], d[is_open]] = opened[is_open]
        self.has_word[r[is_open], d[is_open]] = False
        parent = is_close & (d > 1)  # a closed constituent gives its parent a word
        self.has_word[r[parent], d[parent] - 2] = True
        self.started |= is_open
        self.depth = d + is_open - is_close.long()
        self.primed = True  # (the first word changed nothing above: depth 0)


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
    constrained: bool = False,
) -> list[list[str]]:
    """The linearised tree the model outputs for each sentence (a word list).

    With `constrained`, the search writes only well-formed trees (`TreeConstraint`).
    """
    sources = [tokenizer.encode(" ".join(s)) for s in sentences]
    constraint = TreeConstraint(tokenizer) if constrained else None
    outs = decode_ids(
        model, sources, beam_size, alpha, extra_len, batch_tokens, progress,
        constraint,
    )  # fmt: skip
    symbols = [tokenizer.decode(o).split() for o in outs]
    if tokenizer.ahead:  # the first word stands before the tree
        symbols = [o[1:] if o and not is_bracket(o[0]) else o for o in symbols]
    if tokenizer.shared:  # word leaves: XX, as delinearize and well_formed read
        symbols = [[s if is_bracket(s) else XX for s in o] for o in symbols]
    return symbols


def well_formed(symbols: Sequence[str], n_words: int) -> bool:
    """True if `symbols` needs no repair: one tree, matched labels, a leaf per word.

    A leaf is any symbol but a bracket (``XX``, or a POS tag); no bracket may be
    empty of words (`delinearize` would drop it).
    """
    stack: list[bool] = []  # per open bracket: has it a word yet
    labels: list[str] = []
    leaves = 0
    for i, s in enumerate(symbols):
        if is_bracket(s) and s[0] == "(":
            stack.append(False)
            labels.append(s[1:])
        elif is_bracket(s):
            if not stack or labels.pop() != s[1:] or not stack.pop():
                return False
            if stack:
                stack[-1] = True
            elif i != len(symbols) - 1:
                return False  # a second tree follows
        elif not stack or s == "(":
            return False
        else:
            stack[-1] = True
            leaves += 1
    return bool(symbols) and not stack and leaves == n_words


def score(
    gold: list[Tree], pred: list[Tree], shapes: dict[int, list[str]] | None = None
) -> dict[str, float]:
    """EVALB scores (COLLINS.prm) in percent, all and <= 40 words, and baselines.

    Right-branching always; the commonest training shape per length if `shapes`
    (`parsing.most_frequent_shapes` of the training trees) is given.
    """
    full, short = evalb(gold, pred), evalb(gold, pred, max_len=40)
    rb = [right_branching(words(g)) for g in gold]
    baselines: dict[str, float] = {}
    if shapes is not None:
        sb = [shape_baseline(shapes, words(g)) for g in gold]
        baselines = {
            "shape_baseline_f1": evalb(gold, sb)["f1"],
            "shape_baseline_f1_40": evalb(gold, sb, max_len=40)["f1"],
        }
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
        **baselines,
    }


def evaluate_trees(
    model: Transformer,
    tokenizer: ParseTokenizer,
    gold: list[Tree],
    beam_size: int = 21,
    alpha: float = 0.3,
    extra_len: int = 300,
    progress: bool = False,
    constrained: bool = False,
    shapes: dict[int, list[str]] | None = None,
) -> Evaluation:
    """Parse the words of `gold` and score the parses (outputs: bracketed trees).

    ``well_formed`` is the percentage of outputs that needed no repair.
    """
    sentences = [words(g) for g in gold]
    t0 = time.perf_counter()
    symbols = predict(
        model, tokenizer, sentences, beam_size, alpha, extra_len,
        progress=progress, constrained=constrained,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    pred = [delinearize(s, w) for s, w in zip(symbols, sentences, strict=True)]
    ok = [well_formed(s, len(w)) for s, w in zip(symbols, sentences, strict=True)]
    result: dict[str, Any] = score(gold, pred, shapes)
    result.update(
        well_formed=100 * sum(ok) / len(ok),
        beam_size=beam_size,
        alpha=alpha,
        extra_len=extra_len,
        constrained=constrained,
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
    paper_decoding = (21, 0.3)  # section 6.3
    selection_beams = (1, 4, 8, 21)
    selection_alphas = (0.3, 0.6, 1.0)

    def build_tokenizer(self, cfg: TrainConfig, mirror: str | None) -> Tokenizer:
        trees = load_trees(mirror)["train"][: cfg.train_limit]  # [:None] keeps all
        return ParseTokenizer.train(
            [words(t) for t in trees], target_symbols(cfg.parse_leaves), MIN_COUNT,
            shared=cfg.parse_leaves in ("word", "ahead"),
        )  # fmt: skip

    def configure(self, cfg: TrainConfig, tokenizer: Tokenizer) -> TrainConfig:
        assert isinstance(tokenizer, ParseTokenizer)
        model = replace(
            cfg.model,
            vocab_size=tokenizer.vocab_size,
            src_vocab_size=None if tokenizer.shared else tokenizer.src_vocab_size,
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
        tags = cfg.parse_leaves == "pos"
        leaves = cfg.parse_leaves

        def pairs(ts: list[Tree]) -> list[tuple[list[int], list[int]]]:
            out = [
                (
                    tok.encode(" ".join(words(t))),
                    tok.encode_target(" ".join(target_sequence(t, leaves))),
                )
                for t in ts
            ]
            if any(tgt.count(UNK_ID) > src.count(UNK_ID) for src, tgt in out):
                # (a word leaf may be unknown, as it is in the source; no symbol)
                raise AiaynError(
                    f"a tree has a label outside PHRASE_LABELS {PHRASE_LABELS}"
                    + (f" or a tag outside POS_TAGS {POS_TAGS}" if tags else "")
                    + f"; is the tokenizer's target vocabulary for {cfg.parse_leaves}?"
                )
            return [(s, t) for s, t in out if len(s) <= limit and len(t) <= limit]

        train_trees = trees["train"][: cfg.train_limit]
        augmented = swap_words(train_trees, cfg.parse_augment, cfg.parse_swap, cfg.seed)
        train = [
            p
            for p in pairs(train_trees + augmented)
            if len(p[0]) <= cfg.max_sentence_len
        ]
        dev = trees["dev"]
        return TaskData(
            cfg,
            tok,
            train,
            pairs(dev),
            dev_src=[" ".join(words(t)) for t in dev],
            dev_ref=[" ".join(target_sequence(t, leaves)) for t in dev],
            extra={
                "dev_trees": dev,
                "test_trees": trees["test"],
                "shapes": most_frequent_shapes(train_trees),  # the model's data
            },
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
            model, tok, gold, beam_size, alpha, data.cfg.extra_len, progress,
            data.cfg.constrained_decoding, data.extra["shapes"],
        )  # fmt: skip
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
        trees = load_trees(mirror)
        gold = trees[split][:limit]
        tok = _parse_tokenizer(tokenizer)
        result = evaluate_trees(
            model, tok, gold, beam_size, alpha, cfg.extra_len, progress,
            cfg.constrained_decoding,
            most_frequent_shapes(trees["train"][: cfg.train_limit]),
        )  # fmt: skip
        result.scores = {"split": split, **result.scores}
        return result


def _parse_tokenizer(tokenizer: Tokenizer) -> ParseTokenizer:
    if not isinstance(tokenizer, ParseTokenizer):
        raise AiaynError(f"a parse task needs a ParseTokenizer, not {tokenizer}")
    return tokenizer


def draw_tree(
    tree: Tree, ax: Axes, fontsize: float = 8.0, gold: Tree | None = None
) -> None:
    """Draw `tree` top-down on matplotlib axes, its words along the bottom.

    With `gold` (a tree over the same words), every constituent of `tree` whose
    (label, first word, last word) is not a constituent of `gold` is drawn in
    red: the brackets a parser got wrong, as plain spans over all words (EVALB's
    punctuation rules aside).
    """
    labels: list[tuple[float, float, str, bool]] = []  # x, y, label, wrong
    leaves: list[tuple[float, float, str]] = []  # x, y of its tag, word
    edges: list[tuple[float, float, float, float]] = []
    right = brackets(gold, collins=False) if gold is not None else None

    def place(node: Tree, level: int) -> tuple[float, int, int]:
        """x of the node, and the span of words under it."""
        if node.is_preterminal:
            x = float(len(leaves))
            leaves.append((x, -level, str(node.children[0])))
            labels.append((x, -level, node.label, False))
            return x, int(x), int(x) + 1
        kids = [place(c, level + 1) for c in node.children if isinstance(c, Tree)]
        x = (kids[0][0] + kids[-1][0]) / 2
        start, end = kids[0][1], kids[-1][2]
        edges.extend((x, -level, cx, -level - 1) for cx, _, _ in kids)
        wrong = (
            right is not None
            and node.label not in ROOTS
            and (right[node.label, start, end] == 0)
        )
        labels.append((x, -level, node.label, wrong))
        return x, start, end

    place(tree, 0)
    bottom = min(y for _, y, _ in leaves) - 1  # the row of words
    for x, y, text, wrong in labels:
        box = {"fc": "#fde0dc" if wrong else "white", "ec": "none", "pad": 0.5}
        ax.text(
            x, y, text, ha="center", va="center", fontsize=fontsize, bbox=box,
            color="#c62828" if wrong else "black",
        )  # fmt: skip
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
