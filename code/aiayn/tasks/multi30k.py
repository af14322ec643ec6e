"""Multi30k translation (section 6.1's stand-in): sub-word pairs, judged by BLEU.

The tokenizer is one shared sub-word vocabulary trained on the source and target
sides of the training split (section 5.1: byte-pair encoding for English-German,
word pieces for English-French); a dev or test split is scored with sacreBLEU,
tokenised lowercased BLEU and chrF (`aiayn.metrics`).
"""

from __future__ import annotations

from typing import Any

from .. import multi30k
from ..config import TrainConfig
from ..metrics import evaluate_translations
from ..model import Transformer
from ..tokenizer import SubwordTokenizer, Tokenizer
from ..translate import translate
from . import register
from .base import Evaluation, Task, TaskData, first


@register
class Multi30kTask(Task):
    """``cfg.src_lang`` -> ``cfg.tgt_lang`` on Multi30k; dev is the ``val`` split."""

    name = "multi30k"
    splits = multi30k.SPLITS
    default_split = "test_2016_flickr"

    def build_tokenizer(self, cfg: TrainConfig, mirror: str | None) -> Tokenizer:
        pairs = self._train_text(cfg, mirror)
        corpus = [s for s, _ in pairs] + [t for _, t in pairs]
        return SubwordTokenizer.train(corpus, cfg.model.vocab_size, cfg.vocab_kind)

    def load_data(
        self, cfg: TrainConfig, tokenizer: Tokenizer, mirror: str | None
    ) -> TaskData:
        pairs = self._train_text(cfg, mirror)
        dev_text = first(
            multi30k.load_pairs("val", cfg.src_lang, cfg.tgt_lang, mirror=mirror),
            cfg.dev_limit,
        )
        src_ids = tokenizer.encode_batch([s for s, _ in pairs])
        tgt_ids = tokenizer.encode_batch([t for _, t in pairs])
        limit = min(cfg.max_sentence_len, cfg.model.max_len - 1)
        train = [
            (s, t)
            for s, t in zip(src_ids, tgt_ids, strict=True)
            if 0 < len(s) <= limit and 0 < len(t) <= limit
        ]
        dev_src = [s for s, _ in dev_text]
        dev_ref = [t for _, t in dev_text]
        dev = list(
            zip(
                tokenizer.encode_batch(dev_src),
                tokenizer.encode_batch(dev_ref),
                strict=True,
            )
        )
        return TaskData(cfg, tokenizer, train, dev, dev_src, dev_ref)

    def evaluate(
        self,
        model: Transformer,
        data: TaskData,
        beam_size: int,
        alpha: float,
        limit: int | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        src, ref = first(data.dev_src, limit), first(data.dev_ref, limit)
        result = self._score(
            model, data.tokenizer, data.cfg, src, ref, beam_size, alpha, progress
        )
        triples = list(zip(src, ref, result.outputs, strict=True))[:3]
        return {
            **result.scores,
            "examples": [{"src": s, "ref": r, "hyp": h} for s, r, h in triples],
        }

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
        pairs = first(
            multi30k.load_pairs(split, cfg.src_lang, cfg.tgt_lang, mirror=mirror),
            limit,
        )
        src, ref = [s for s, _ in pairs], [t for _, t in pairs]
        result = self._score(
            model, tokenizer, cfg, src, ref, beam_size, alpha, progress
        )
        result.scores.update(split=split, pair=f"{cfg.src_lang}-{cfg.tgt_lang}")
        return result

    @staticmethod
    def _train_text(cfg: TrainConfig, mirror: str | None) -> list[tuple[str, str]]:
        pairs = multi30k.load_pairs("train", cfg.src_lang, cfg.tgt_lang, mirror=mirror)
        return first(pairs, cfg.train_limit)

    @staticmethod
    def _score(
        model: Transformer,
        tokenizer: Tokenizer,
        cfg: TrainConfig,
        src: list[str],
        ref: list[str],
        beam_size: int,
        alpha: float,
        progress: bool,
    ) -> Evaluation:
        hyps = translate(
            model, tokenizer, src, beam_size, alpha, cfg.extra_len, progress=progress
        )
        return Evaluation(evaluate_translations(hyps, ref, cfg.tgt_lang), hyps)
