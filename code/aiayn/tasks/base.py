"""The interface every task implements, after fairseq's ``FairseqTask``.

A task knows its data and how a model is judged on it; the training loop
(`aiayn.train`) receives one and never asks which it is. A task:

* builds its tokenizer from the training split (:meth:`Task.build_tokenizer`);
  the loop trains it once, saves it into the run directory, and loads that saved
  copy on ``--resume`` and on every DDP rank but the first, so one run always
  uses one vocabulary;
* turns the data into token-id pairs with that tokenizer (:meth:`Task.load_data`);
* decodes and scores a model the way the task is judged (:meth:`Task.evaluate`
  on the dev data in memory, :meth:`Task.evaluate_split` on any named split).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ..batching import Pair
from ..config import TrainConfig
from ..errors import AiaynError
from ..model import Transformer
from ..tokenizer import Tokenizer


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


@dataclass
class Evaluation:
    """The scores of one split, and what the model produced for each input."""

    scores: dict[str, Any]
    outputs: list[str]  # one line per input: a translation, a sequence, a tree


class Task(ABC):
    """What to train on and how a model is judged; registered under :attr:`name`."""

    name: ClassVar[str]  # the value of TrainConfig.task
    splits: ClassVar[tuple[str, ...]]  # what evaluate_split accepts
    default_split: ClassVar[str]  # what `python -m aiayn evaluate` scores
    selection_metric: ClassVar[str]  # the dev score that `select` maximises
    # The paper's decoding for this task (section 6.1: beam 4, alpha 0.6), tried
    # first by `select`, and the grid it searches by default.
    paper_decoding: ClassVar[tuple[int, float]] = (4, 0.6)
    selection_beams: ClassVar[tuple[int, ...]] = (1, 4, 5, 8)
    selection_alphas: ClassVar[tuple[float, ...]] = (0.6, 0.8, 1.0, 1.2)

    @abstractmethod
    def build_tokenizer(self, cfg: TrainConfig, mirror: str | None) -> Tokenizer:
        """A tokenizer built from the task's training data (or its symbols)."""

    @abstractmethod
    def load_data(
        self, cfg: TrainConfig, tokenizer: Tokenizer, mirror: str | None
    ) -> TaskData:
        """Training and dev pairs encoded with ``tokenizer``."""

    @abstractmethod
    def evaluate(
        self,
        model: Transformer,
        data: TaskData,
        beam_size: int,
        alpha: float,
        limit: int | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        """Decode the dev data of ``data`` and score it as the task is judged."""

    @abstractmethod
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
        """Decode and score the named split (one of :attr:`splits`)."""

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
        """The model's output for each input line (``python -m aiayn translate``)."""
        from ..translate import translate

        return translate(
            model, tokenizer, sentences, beam_size, alpha, cfg.extra_len,
            batch_tokens, progress,
        )  # fmt: skip

    def configure(self, cfg: TrainConfig, tokenizer: Tokenizer) -> TrainConfig:
        """``cfg`` with the model's vocabulary sizes taken from ``tokenizer``."""
        return replace(cfg, model=replace(cfg.model, vocab_size=tokenizer.vocab_size))

    def prepare(
        self,
        cfg: TrainConfig,
        mirror: str | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> TaskData:
        """Data and tokenizer for ``cfg``; pass ``tokenizer`` to reuse a saved one."""
        if cfg.task != self.name:
            raise AiaynError(
                f"config {cfg.name!r} is for task {cfg.task!r}, not {self.name!r}"
            )
        tok = self.build_tokenizer(cfg, mirror) if tokenizer is None else tokenizer
        cfg = self.configure(cfg, tok)
        return self.load_data(cfg, tok, mirror)

    def check_split(self, split: str) -> None:
        """AiaynError unless ``split`` is one this task can evaluate."""
        if split not in self.splits:
            raise AiaynError(
                f"the {self.name} task has no split {split!r}; "
                f"choose one of {', '.join(self.splits)}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def first(items: Sequence[Any], limit: int | None) -> list[Any]:
    """The first ``limit`` items (all with None)."""
    return list(items[:limit]) if limit is not None else list(items)
