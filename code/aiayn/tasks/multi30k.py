"""Multi30k translation (section 6.1's stand-in): sub-word pairs, judged by BLEU.

The tokenizer is one shared sub-word vocabulary trained on the source and target
sides of the training split (section 5.1: byte-pair encoding for English-German,
word pieces for English-French); a dev or test split is scored with sacreBLEU,
tokenised lowercased BLEU and chrF (`aiayn.metrics`).

``TrainConfig.preprocessing`` chooses the text the model reads and writes: the
raw cased sentences, or the literature's ``lc.norm.tok`` (`multi30k.preprocess`).
Either way a model is fed raw text and judged on raw references: its input is
preprocessed and its output turned back into plain text (`multi30k.postprocess`)
before scoring, so every model of this task is scored by the same code.
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
    selection_metric = "tok_bleu"

    def build_tokenizer(self, cfg: TrainConfig, mirror: str | None) -> Tokenizer:
        pairs = self._train_text(cfg, mirror)
        corpus = [s for s, _ in pairs] + [t for _, t in pairs]
        return SubwordTokenizer.train(corpus, cfg.model.vocab_size, cfg.vocab_kind)

    def load_data(
        self, cfg: TrainConfig, tokenizer: Tokenizer, mirror: str | None
    ) -> TaskData:
        pairs = self._train_text(cfg, mirror)
        raw_dev = multi30k.load_pairs("val", cfg.src_lang, cfg.tgt_lang, mirror=mirror)
        raw_dev = first(raw_dev, cfg.dev_limit)
        dev_text = self._prepared(cfg, raw_dev)
        src_ids = tokenizer.encode_batch([s for s, _ in pairs])
        tgt_ids = tokenizer.encode_batch([t for _, t in pairs])
        limit = min(cfg.max_sentence_len, cfg.model.max_len - 1)
        train = [
            (s, t)
            for s, t in zip(src_ids, tgt_ids, strict=True)
            if 0 < len(s) <= limit and 0 < len(t) <= limit
        ]
        dev = list(
            zip(
                tokenizer.encode_batch([s for s, _ in dev_text]),
                tokenizer.encode_batch([t for _, t in dev_text]),
                strict=True,
            )
        )
        dev_src = [s for s, _ in raw_dev]  # raw text: translate() preprocesses
        dev_ref = [t for _, t in raw_dev]
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
        )  # raw text, scored as raw text
        src, ref = [s for s, _ in pairs], [t for _, t in pairs]
        result = self._score(
            model, tokenizer, cfg, src, ref, beam_size, alpha, progress
        )
        result.scores.update(split=split, pair=f"{cfg.src_lang}-{cfg.tgt_lang}")
        return result

    def translate(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        cfg: TrainConfig,
        sentences: list[str],
        beam_size: int,
        alpha: float,
        batch_tokens: int = 4000,
        progress: bool = False,
    ) -> list[str]:
        """Raw sentences in, plain-text translations out (preprocessed as trained)."""
        kind = cfg.preprocessing
        src = multi30k.preprocess(sentences, cfg.src_lang, kind)
        out = translate(
            model, tokenizer, src, beam_size, alpha, cfg.extra_len, batch_tokens,
            progress,
        )  # fmt: skip
        return multi30k.postprocess(out, cfg.tgt_lang, kind)

    @classmethod
    def _train_text(cls, cfg: TrainConfig, mirror: str | None) -> list[tuple[str, str]]:
        pairs = multi30k.load_pairs("train", cfg.src_lang, cfg.tgt_lang, mirror=mirror)
        return cls._prepared(cfg, first(pairs, cfg.train_limit))

    @staticmethod
    def _prepared(
        cfg: TrainConfig, pairs: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """``pairs`` as the model reads them (``cfg.preprocessing``)."""
        kind = cfg.preprocessing
        src = multi30k.preprocess([s for s, _ in pairs], cfg.src_lang, kind)
        tgt = multi30k.preprocess([t for _, t in pairs], cfg.tgt_lang, kind)
        return list(zip(src, tgt, strict=True))

    def _score(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        cfg: TrainConfig,
        src: list[str],
        ref: list[str],
        beam_size: int,
        alpha: float,
        progress: bool,
    ) -> Evaluation:
        """Translate raw ``src`` and score it against the raw references."""
        hyps = self.translate(
            model, tokenizer, cfg, src, beam_size, alpha, progress=progress
        )
        lowercase = cfg.preprocessing == "lc.norm.tok"
        scores = evaluate_translations(hyps, ref, cfg.tgt_lang, lowercase)
        return Evaluation({**scores, "preprocessing": cfg.preprocessing}, hyps)
