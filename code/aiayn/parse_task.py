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

from . import ptb
from .config import TrainConfig
from .errors import AiaynError
from .model import Transformer
from .parsing import (
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
from .tasks import TaskData
from .tokenizer import UNK_ID, ParseTokenizer
from .translate import decode_ids

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


def prepare_parse(
    cfg: TrainConfig, out_dir: Path | None = None, mirror: str | None = None
) -> TaskData:
    """Vocabularies and id pairs; ``extra`` holds the dev and test gold trees.

    The tokenizer is saved into ``out_dir`` when one is given. Training pairs
    longer than ``model.max_len - 1`` (or with more than ``max_sentence_len``
    words) are left out; dev pairs that do not fit are left out of the dev loss
    only, never out of the F1.
    """
    trees = load_trees(mirror)
    train_trees = trees["train"][: cfg.train_limit]  # [:None] keeps all
    sentences = [words(t) for t in train_trees]
    tok = ParseTokenizer.train(sentences, TARGET_SYMBOLS, MIN_COUNT)
    model = replace(
        cfg.model, vocab_size=tok.vocab_size, src_vocab_size=tok.src_vocab_size
    )
    cfg = replace(cfg, model=model)

    def pairs(ts: list[Tree]) -> list[tuple[list[int], list[int]]]:
        out = [
            (tok.encode(" ".join(words(t))), tok.encode_target(" ".join(linearize(t))))
            for t in ts
        ]
        if any(UNK_ID in tgt for _, tgt in out):
            raise AiaynError(
                f"a tree has a label outside PHRASE_LABELS {PHRASE_LABELS}"
            )
        limit = model.max_len - 1  # room for EOS (source) or BOS (target)
        return [(s, t) for s, t in out if len(s) <= limit and len(t) <= limit]

    train = [p for p in pairs(train_trees) if len(p[0]) <= cfg.max_sentence_len]
    dev = trees["dev"]
    data = TaskData(
        cfg,
        tok,
        train,
        pairs(dev),
        dev_src=[" ".join(words(t)) for t in dev],
        dev_ref=[" ".join(linearize(t)) for t in dev],
        extra={"dev_trees": dev, "test_trees": trees["test"]},
    )
    if out_dir is not None:
        tok.save(Path(out_dir))
    return data


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
) -> dict[str, Any]:
    """Parse the words of `gold` and score the parses against it."""
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
    return result


def evaluate_parse(
    model: Transformer,
    data: TaskData,
    beam_size: int | None = None,
    alpha: float | None = None,
    limit: int | None = None,
    progress: bool = False,
    split: str = "dev",
) -> dict[str, Any]:
    """F1 on the first `limit` sentences of `split` ("dev" or "test")."""
    cfg = data.cfg
    if not isinstance(data.tokenizer, ParseTokenizer):
        raise AiaynError(f"a parse task needs a ParseTokenizer, not {data.tokenizer}")
    if f"{split}_trees" not in data.extra:
        raise AiaynError(f"no {split!r} trees: use 'dev' or 'test'")
    gold = data.extra[f"{split}_trees"][:limit]
    result = evaluate_trees(
        model,
        data.tokenizer,
        gold,
        cfg.beam_size if beam_size is None else beam_size,
        cfg.alpha if alpha is None else alpha,
        cfg.extra_len,
        progress,
    )
    return {"split": split, **result}


def evaluate_checkpoint(
    directory: Path,
    split: str = "test",
    beam_size: int | None = None,
    alpha: float | None = None,
    limit: int | None = None,
    mirror: str | None = None,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score a saved parser on `split`, with its own decoding settings by default."""
    import torch

    from .checkpoint import load_model, read_config
    from .tokenizer import load_tokenizer
    from .train import device_info

    cfg, tok = read_config(directory), load_tokenizer(directory)
    if cfg.task != "parse" or not isinstance(tok, ParseTokenizer):
        raise AiaynError(f"{directory} holds a {cfg.task!r} model, not a parser")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_model(directory, dev)
    gold = load_trees(mirror)[split][:limit]
    beam = cfg.beam_size if beam_size is None else beam_size
    alpha = cfg.alpha if alpha is None else alpha
    result = evaluate_trees(model, tok, gold, beam, alpha, cfg.extra_len, progress)
    return {"split": split, **result, "device": device_info(dev),
            "torch": torch.__version__}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m aiayn.parse_task --checkpoint DIR [--split test]``: F1 to JSON."""
    import argparse
    import json
    import shlex
    import sys

    from .checkpoint import atomic_write

    p = argparse.ArgumentParser(prog="python -m aiayn.parse_task")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--split", default="test", choices=("dev", "test"))
    p.add_argument("--beam", type=int, help="default: the checkpoint's (21)")
    p.add_argument("--alpha", type=float, help="default: the checkpoint's (0.3)")
    p.add_argument("--limit", type=int, help="only the first N sentences")
    p.add_argument("--device")
    p.add_argument("--data-mirror")
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    try:
        result = evaluate_checkpoint(
            args.checkpoint, args.split, args.beam, args.alpha, args.limit,
            args.data_mirror, args.device, progress=True,
        )  # fmt: skip
    except AiaynError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result["command"] = "python -m aiayn.parse_task " + shlex.join(argv)
    text = json.dumps(result, indent=2)
    atomic_write(args.checkpoint / f"eval_{args.split}.json", text)
    print(text)
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
