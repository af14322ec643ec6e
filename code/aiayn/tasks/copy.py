"""The copy task (chapter 5): write back the input sequence; judged by exact match."""

from __future__ import annotations

from typing import Any

from ..config import TrainConfig
from ..copy_task import copy_pairs
from ..model import Transformer
from ..tokenizer import SymbolTokenizer, Tokenizer
from ..translate import decode_ids
from . import register
from .base import Evaluation, Task, TaskData, first


@register
class CopyTask(Task):
    """Random symbol sequences; the held-out set shares no sequence with training."""

    name = "copy"
    splits = ("dev",)
    default_split = "dev"
    selection_metric = "exact_match"

    def build_tokenizer(self, cfg: TrainConfig, mirror: str | None) -> Tokenizer:
        return SymbolTokenizer(cfg.copy_symbols)

    def load_data(
        self, cfg: TrainConfig, tokenizer: Tokenizer, mirror: str | None
    ) -> TaskData:
        train = copy_pairs(cfg, cfg.copy_train_size, seed=cfg.seed)
        seen = {tuple(s) for s, _ in train}
        dev = copy_pairs(cfg, cfg.copy_test_size, seed=cfg.seed + 1, exclude=seen)
        return TaskData(cfg, tokenizer, train, dev)

    def evaluate(
        self,
        model: Transformer,
        data: TaskData,
        beam_size: int,
        alpha: float,
        limit: int | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        return self._score(model, data, beam_size, alpha, limit, progress).scores

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
        data = self.prepare(cfg, mirror, tokenizer)
        return self._score(model, data, beam_size, alpha, limit, progress)

    def _score(
        self,
        model: Transformer,
        data: TaskData,
        beam_size: int,
        alpha: float,
        limit: int | None,
        progress: bool,
    ) -> Evaluation:
        dev = first(data.dev, limit)
        out = decode_ids(
            model,
            [s for s, _ in dev],
            beam_size,
            alpha,
            data.cfg.extra_len,
            progress=progress,
        )
        exact = sum(o == t for o, (_, t) in zip(out, dev, strict=True))
        scores = {"exact_match": exact / max(len(dev), 1), "n": len(dev)}
        return Evaluation(scores, data.tokenizer.decode_batch(out))
