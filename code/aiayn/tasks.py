"""What to train on: the copy task, Multi30k translation, parsing.

:func:`prepare` turns a TrainConfig into token-id pairs and a tokenizer (training a
sub-word vocabulary on the training split where the task has real text, and saving
it into the run directory so every checkpoint is self-contained);
:func:`evaluate` scores a model on the held-out data the way the task is judged:
exact match for the copy task, BLEU (section 6.1) for translation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .batching import Pair
from .config import TrainConfig
from .errors import AiaynError
from .model import Transformer
from .tokenizer import SubwordTokenizer, SymbolTokenizer, Tokenizer
from .translate import decode_ids, translate

TASKS = ("copy", "multi30k", "parse")


@dataclass
class TaskData:
    """Everything training needs: tokenizer, id pairs, and raw dev text."""

    cfg: TrainConfig  # with model.vocab_size set to the tokenizer's
    tokenizer: Tokenizer
    train: list[Pair]
    dev: list[Pair]
    dev_src: list[str] = field(default_factory=list)  # raw text, for BLEU
    dev_ref: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific, e.g. trees


def prepare(
    cfg: TrainConfig, out_dir: Path | None = None, mirror: str | None = None
) -> TaskData:
    """Build the data for ``cfg.task``; saves the tokenizer into ``out_dir``."""
    if cfg.task == "copy":
        data = _prepare_copy(cfg)
    elif cfg.task == "multi30k":
        data = _prepare_multi30k(cfg, out_dir, mirror)
    elif cfg.task == "parse":
        from .parse_task import prepare_parse

        data = prepare_parse(cfg, out_dir, mirror)
    else:
        raise AiaynError(f"unknown task {cfg.task!r}; known tasks: {TASKS}")
    if out_dir is not None:
        data.tokenizer.save(Path(out_dir))
    return data


def _prepare_copy(cfg: TrainConfig) -> TaskData:
    from .copy_task import copy_pairs

    tok = SymbolTokenizer(cfg.copy_symbols)
    cfg = replace(cfg, model=replace(cfg.model, vocab_size=tok.vocab_size))
    train = copy_pairs(cfg, cfg.copy_train_size, seed=cfg.seed)
    seen = {tuple(s) for s, _ in train}
    dev = copy_pairs(cfg, cfg.copy_test_size, seed=cfg.seed + 1, exclude=seen)
    return TaskData(cfg, tok, train, dev)


def _prepare_multi30k(
    cfg: TrainConfig, out_dir: Path | None, mirror: str | None
) -> TaskData:
    from . import multi30k

    train_text = multi30k.load_pairs("train", cfg.src_lang, cfg.tgt_lang, mirror=mirror)
    dev_text = multi30k.load_pairs("val", cfg.src_lang, cfg.tgt_lang, mirror=mirror)
    if cfg.train_limit is not None:
        train_text = train_text[: cfg.train_limit]
    if cfg.dev_limit is not None:
        dev_text = dev_text[: cfg.dev_limit]
    corpus = [s for s, _ in train_text] + [t for _, t in train_text]
    tok = SubwordTokenizer.train(corpus, cfg.model.vocab_size, cfg.vocab_kind)
    cfg = replace(cfg, model=replace(cfg.model, vocab_size=tok.vocab_size))
    src_ids = tok.encode_batch([s for s, _ in train_text])
    tgt_ids = tok.encode_batch([t for _, t in train_text])
    limit = min(cfg.max_sentence_len, cfg.model.max_len - 1)
    train = [
        (s, t)
        for s, t in zip(src_ids, tgt_ids, strict=True)
        if 0 < len(s) <= limit and 0 < len(t) <= limit
    ]
    dev_src = [s for s, _ in dev_text]
    dev_ref = [t for _, t in dev_text]
    dev = list(zip(tok.encode_batch(dev_src), tok.encode_batch(dev_ref), strict=True))
    return TaskData(cfg, tok, train, dev, dev_src, dev_ref)


def evaluate(
    model: Transformer,
    data: TaskData,
    beam_size: int | None = None,
    alpha: float | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Decode the dev set and score it as the task is judged."""
    cfg = data.cfg
    beam = cfg.beam_size if beam_size is None else beam_size
    alpha = cfg.alpha if alpha is None else alpha
    if cfg.task == "copy":
        dev = data.dev[:limit] if limit else data.dev
        out = decode_ids(
            model, [s for s, _ in dev], beam, alpha, cfg.extra_len, progress=progress
        )
        exact = sum(o == t for o, (_, t) in zip(out, dev, strict=True))
        return {"exact_match": exact / len(dev), "n": len(dev)}
    if cfg.task == "parse":
        from .parse_task import evaluate_parse

        return evaluate_parse(model, data, beam, alpha, limit, progress)
    from .metrics import evaluate_translations

    src = data.dev_src[:limit] if limit else data.dev_src
    ref = data.dev_ref[:limit] if limit else data.dev_ref
    hyps = translate(
        model, data.tokenizer, src, beam, alpha, cfg.extra_len, progress=progress
    )
    result = evaluate_translations(hyps, ref, cfg.tgt_lang)
    triples = list(zip(src, ref, hyps, strict=True))[:3]
    result["examples"] = [{"src": s, "ref": r, "hyp": h} for s, r, h in triples]
    return result
