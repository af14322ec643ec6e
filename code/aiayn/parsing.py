"""English constituency parsing as translation (section 6.3): trees and EVALB.

The paper parses the WSJ Penn Treebank as sequence to sequence, following Vinyals
et al. 2015, "Grammar as a Foreign Language": the source is the sentence's words,
the target the depth-first linearised tree with POS tags normalised to ``XX``:

    John has a dog .  ->  (S (NP XX )NP (VP XX (NP XX XX )NP )VP XX )S

Here: reading ``.mrg`` files (:func:`parse_mrg`), preprocessing (:func:`clean`),
a split by file (:func:`split_by_file`), linearisation and its repairing inverse
(:func:`linearize`, :func:`delinearize`), labelled bracket scoring as EVALB does
with ``COLLINS.prm`` (:func:`brackets`, :func:`evalb`), and two baselines for
scale (:func:`right_branching`, :func:`shape_baseline`). ``COLLINS.prm`` says:

    DELETE_LABEL TOP -NONE- , : `` '' .     EQ_LABEL ADVP PRT     CUTOFF_LEN 40

Deleted POS tags drop their word before span positions are counted, brackets
left with no words vanish, function tags are cut at the first ``-`` or ``=``,
and brackets match as a multiset of (label, start, end).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from .errors import AiaynError

XX = "XX"  # Vinyals et al.: "we normalized POS tags" to a single tag
PUNCT = frozenset({",", ":", "``", "''", "."})  # COLLINS.prm DELETE_LABEL, POS tags
ROOTS = frozenset({"", "TOP"})  # wrapper labels: never a bracket
EQ_LABEL = {"PRT": "ADVP"}  # COLLINS.prm EQ_LABEL ADVP PRT
_TOKEN = re.compile(r"\(|\)|[^\s()]+")


@dataclass
class Tree:
    """A constituent; a preterminal (POS tag) has exactly one child, its word."""

    label: str
    children: list[Tree | str] = field(default_factory=list)

    @property
    def is_preterminal(self) -> bool:
        return len(self.children) == 1 and isinstance(self.children[0], str)


def parse_mrg(text: str) -> list[Tree]:
    """Every top-level bracketed tree in `text` (``.mrg`` wraps each in ``( ...)``)."""
    trees: list[Tree] = []
    stack: list[Tree] = []
    tokens = _TOKEN.findall(text)
    for i, tok in enumerate(tokens):
        if tok == "(":
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ")"
            node = Tree("" if nxt in ("(", ")") else nxt)
            if stack:
                stack[-1].children.append(node)
            stack.append(node)
        elif tok == ")":
            if not stack:
                raise AiaynError(f"unbalanced ')' at token {i}; is this a .mrg file?")
            node = stack.pop()
            if any(isinstance(c, str) for c in node.children) and not (
                node.is_preterminal
            ):
                raise AiaynError(f"({node.label} ...) mixes words and brackets")
            if not stack:
                trees.append(node)
        elif i == 0 or tokens[i - 1] != "(":  # a word (the one after "(" is a label)
            if not stack:
                raise AiaynError(f"word {tok!r} outside any bracket")
            stack[-1].children.append(tok)
    if stack:
        raise AiaynError(f"{len(stack)} bracket(s) left open at end of text")
    return trees


def clean(tree: Tree) -> Tree | None:
    """The tree the parser learns and is scored on (None if nothing is left).

    1. Empty elements go: ``-NONE-`` preterminals (traces, null complementisers),
       then every constituent left with no children (as EVALB's DELETE_LABEL).
    2. Function tags and indices go from phrase labels, cut at the first ``-`` or
       ``=`` as EVALB does: NP-SBJ-1 -> NP, PP-LOC=2 -> PP. POS tags are kept as
       they are (-LRB-, -RRB-, PRP$). An ambiguous label keeps its first choice:
       ADVP|PRT -> ADVP (once in the sample).
    3. The root wrapper ``( ...)`` (or TOP) around a single phrase is collapsed
       (it always is one in the sample); around several it stays, as TOP.
    4. Unary chains are kept: EVALB counts both brackets of (S (VP ...)).
    """
    if tree.is_preterminal:
        return None if tree.label == "-NONE-" else Tree(tree.label, list(tree.children))
    kids = [k for c in tree.children if isinstance(c, Tree) and (k := clean(c))]
    if not kids:
        return None
    if tree.label in ROOTS and len(kids) == 1 and not kids[0].is_preterminal:
        return kids[0]
    label = tree.label or "TOP"
    if label[0] != "-":
        label = re.split(r"[-=]", label, maxsplit=1)[0].split("|")[0]
    return Tree(label, kids)


def split_by_file(file_ids: list[str]) -> dict[str, list[str]]:
    """Deterministic split of the sample's files, like WSJ sections.

    wsj_0001-0159 train, wsj_0160-0179 dev, wsj_0180-0199 test.
    """
    out: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for fid in sorted(file_ids):
        m = re.fullmatch(r"wsj_(\d{4})", fid)
        if not m:
            raise AiaynError(f"file id {fid!r} is not like 'wsj_0001'")
        n = int(m.group(1))
        out["train" if n <= 159 else "dev" if n <= 179 else "test"].append(fid)
    return out


def _walk(tree: Tree) -> Iterator[tuple[str, Tree]]:
    """Depth-first ("open" | "leaf" | "close", node) events, without recursion."""
    stack: list[tuple[Tree | str, bool]] = [(tree, False)]
    while stack:
        node, done = stack.pop()
        if isinstance(node, str):
            raise AiaynError(f"word {node!r} must sit under a POS tag")
        if done:
            yield "close", node
        elif node.is_preterminal:
            yield "leaf", node
        else:
            yield "open", node
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(node.children))


def words(tree: Tree) -> list[str]:
    """The sentence: the words at the leaves, in order."""
    return [str(n.children[0]) for e, n in _walk(tree) if e == "leaf"]


def pos_tags(tree: Tree) -> list[str]:
    """The POS tag of each word."""
    return [n.label for e, n in _walk(tree) if e == "leaf"]


OPEN_CLASS_TAGS = frozenset({
    "CD", "FW", "JJ", "JJR", "JJS", "NN", "NNP", "NNPS", "NNS", "RB", "RBR", "RBS",
    "VB", "VBD", "VBG", "VBN", "VBP", "VBZ",
})  # fmt: skip


def swap_words(trees: list[Tree], copies: int, p: float, seed: int = 0) -> list[Tree]:
    """`copies` new versions of `trees`, open-class words swapped (not in the paper).

    Data augmentation for a small treebank: in each copy every word whose POS tag
    is open-class (nouns, verbs, adjectives, adverbs, numbers: `OPEN_CLASS_TAGS`)
    is replaced, with probability `p`, by a word drawn from every occurrence of
    that tag in `trees` (so by frequency). The brackets stay as they are: the
    parser sees the same structures over many more words, and the rare words it
    will meet as unknown shape classes. Closed-class words (determiners,
    prepositions, conjunctions, ...) decide structure and are never swapped.
    Deterministic for a given `seed`; `trees` are not modified.
    """
    pool: dict[str, list[str]] = {}
    for tree in trees:
        for e, n in _walk(tree):
            if e == "leaf" and n.label in OPEN_CLASS_TAGS:
                pool.setdefault(n.label, []).append(str(n.children[0]))
    rng = random.Random(seed)

    def copy(node: Tree) -> Tree:
        if node.is_preterminal:
            word = str(node.children[0])
            if node.label in pool and rng.random() < p:
                word = rng.choice(pool[node.label])
            return Tree(node.label, [word])
        return Tree(node.label, [copy(c) for c in node.children if isinstance(c, Tree)])

    return [copy(t) for _ in range(copies) for t in trees]


def linearize(tree: Tree, tags: bool = False) -> list[str]:
    """Vinyals et al.'s target sequence: "(S", "(NP", "XX", ")NP", ..., ")S".

    With `tags`, each word's POS tag stands in its place instead of ``XX``:
    "(S", "(NP", "NNP", ")NP", ... (Vinyals et al. normalise the tags away).
    """
    names = {"open": "({}", "leaf": "{}" if tags else XX, "close": "){}"}
    return [names[e].format(n.label) for e, n in _walk(tree)]


def to_string(tree: Tree) -> str:
    """One-line PTB bracket format: (S (NP (NNP John)) (VP (VBZ runs)))."""
    out: list[str] = []
    for e, n in _walk(tree):
        sep = " " if out else ""
        if e == "open":
            out.append(f"{sep}({n.label}")
        elif e == "leaf":
            out.append(f"{sep}({n.label} {n.children[0]})")
        else:
            out.append(")")
    return "".join(out)


def delinearize(
    tokens: list[str], words: list[str], pos: list[str] | None = None, root: str = "S"
) -> Tree:
    """A well-formed tree over exactly `words`, from a possibly broken prediction.

    Repairs, in reading order: a ``(L`` opens constituent L (a bare ``(`` is
    dropped); any ``)``-token closes the innermost open constituent whatever its
    label (a mismatched label is ignored), and is dropped if none is open; every
    other token (``XX``) takes the next word, and is dropped once the words run
    out. At the end, words no ``XX`` took go, in order, under the innermost
    constituent still open (else the last top-level one), and all open
    constituents are closed. Constituents with no words are removed. If the
    result is not a single phrase, it is wrapped in `root`. POS tags come from
    `pos` (the gold tags, so EVALB can find punctuation), else from the leaf
    tokens themselves (``XX``, or the tags a model trained with tagged leaves
    wrote; words no token took get ``XX``).
    """
    if not words:
        raise AiaynError("delinearize needs at least one word to build a tree over")
    if pos is not None and len(pos) != len(words):
        raise AiaynError(f"{len(pos)} POS tags for {len(words)} words")
    tags = list(pos) if pos is not None else [XX] * len(words)
    top = Tree(root)  # virtual root; its children are the top-level constituents
    stack, i = [top], 0

    def close() -> None:
        node = stack.pop()
        if not node.children:  # no words: drop it (it is its parent's last child)
            stack[-1].children.pop()

    for tok in tokens:
        if tok.startswith("(") and len(tok) > 1:
            node = Tree(tok[1:])
            stack[-1].children.append(node)
            stack.append(node)
        elif tok.startswith(")"):
            if len(stack) > 1:
                close()
        elif tok != "(" and i < len(words):
            tag = tags[i] if pos is not None else tok
            stack[-1].children.append(Tree(tag, [words[i]]))
            i += 1
    last = top.children[-1] if top.children else None
    if len(stack) == 1 and isinstance(last, Tree) and not last.is_preterminal:
        stack.append(last)  # all closed: leftover words join the last phrase
    stack[-1].children.extend(Tree(tags[j], [words[j]]) for j in range(i, len(words)))
    while len(stack) > 1:
        close()
    only = top.children[0] if len(top.children) == 1 else None
    return only if isinstance(only, Tree) and not only.is_preterminal else top


def _spans(
    tree: Tree, keep: list[bool], collins: bool
) -> Counter[tuple[str, int, int]]:
    """Labelled spans, counting only the words where `keep` is True."""
    out: Counter[tuple[str, int, int]] = Counter()
    starts: list[int] = []
    w = pos = 0  # w: index over all words; pos: over kept words
    for e, n in _walk(tree):
        if e == "open":
            starts.append(pos)
        elif e == "leaf":
            pos += keep[w]
            w += 1
        else:
            start, label = starts.pop(), n.label
            if collins and label and label[0] != "-":
                label = re.split(r"[-=]", label, maxsplit=1)[0]
                label = EQ_LABEL.get(label, label)
            if label not in ROOTS and pos > start:
                out[label, start, pos] += 1
    return out


def brackets(tree: Tree, collins: bool = True) -> Counter[tuple[str, int, int]]:
    """The (label, start, end) brackets EVALB scores; preterminals never count.

    With `collins` (COLLINS.prm): words tagged -NONE- , : `` '' . are deleted
    before positions are counted, labels lose function tags, PRT counts as ADVP.
    Without: every word counts and labels are taken as they are. Either way the
    root wrapper ('' or TOP) and brackets over no words are not counted.
    """
    keep = [not (collins and (t in PUNCT or t == "-NONE-")) for t in pos_tags(tree)]
    return _spans(tree, keep, collins)


def evalb(
    gold: list[Tree], pred: list[Tree], max_len: int | None = None
) -> dict[str, float]:
    """Corpus labelled bracket scores in percent, as EVALB's summary (COLLINS.prm).

    Brackets are pooled over sentences (micro average), so F1 = 2PR / (P + R).
    `max_len` keeps sentences of at most that many words (EVALB's second summary
    uses 40; the length counts punctuation, not -NONE-). Punctuation is found
    from the gold POS tags for both trees: the predicted tags are not scored.
    """
    if len(gold) != len(pred):
        raise AiaynError(f"{len(gold)} gold trees but {len(pred)} predicted")
    matched = n_gold = n_pred = exact = n = 0
    for k, (g, p) in enumerate(zip(gold, pred, strict=True)):
        ws, tags = words(g), pos_tags(g)
        if words(p) != ws:
            raise AiaynError(f"sentence {k}: predicted words differ from gold")
        if max_len is not None and sum(t != "-NONE-" for t in tags) > max_len:
            continue
        keep = [t not in PUNCT and t != "-NONE-" for t in tags]
        bg, bp = _spans(g, keep, True), _spans(p, keep, True)
        m = sum((bg & bp).values())  # multiset intersection, as EVALB matches
        matched, n_gold, n_pred = matched + m, n_gold + bg.total(), n_pred + bp.total()
        exact += m == bg.total() == bp.total()
        n += 1
    precision = 100 * matched / n_pred if n_pred else 0.0
    recall = 100 * matched / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "exact_match": 100 * exact / n if n else 0.0,
        "n": n,
        "matched": matched,
        "gold_brackets": n_gold,
        "pred_brackets": n_pred,
    }


def most_frequent_shapes(trees: list[Tree]) -> dict[int, list[str]]:
    """A learned baseline: for each sentence length, the commonest linearised tree.

    The shape is the tree without its words (``linearize``, POS tags as ``XX``);
    ties go to the shape seen first. :func:`shape_baseline` applies it.
    """
    counts: dict[int, Counter[tuple[str, ...]]] = {}
    first: dict[tuple[str, ...], int] = {}
    for k, tree in enumerate(trees):
        shape = tuple(linearize(tree))
        counts.setdefault(len(words(tree)), Counter())[shape] += 1
        first.setdefault(shape, k)
    return {
        n: list(max(c, key=lambda sh: (c[sh], -first[sh])))
        for n, c in sorted(counts.items())
    }


def shape_baseline(shapes: dict[int, list[str]], words: list[str]) -> Tree:
    """The commonest training tree of this many words, over `words`.

    A length never seen in training falls back to :func:`right_branching`.
    """
    shape = shapes.get(len(words))
    return delinearize(shape, words) if shape else right_branching(words)


def right_branching(words: list[str], pos: list[str] | None = None) -> Tree:
    """Baseline: (S w1 (VP w2 (NP w3 ... (NP w_n-1 w_n)))), for scale.

    Every suffix of two or more words is a constituent; the whole sentence is S,
    the suffix after the first word (the subject's head, usually) VP, and every
    shorter suffix NP, the commonest label. Tags from `pos`, else ``XX``.
    """
    if not words:
        raise AiaynError("right_branching needs at least one word")
    tags = pos if pos is not None else [XX] * len(words)
    leaves = [Tree(t, [w]) for t, w in zip(tags, words, strict=True)]
    node = leaves[-1]
    for j in range(len(leaves) - 2, -1, -1):
        node = Tree("S" if j == 0 else "VP" if j == 1 else "NP", [leaves[j], node])
    return Tree("S", [node]) if node.is_preterminal else node
