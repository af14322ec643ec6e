"""Hyperparameters (sections 3, 5 and 6 of the paper) in two typed dataclasses.

:class:`ModelConfig` holds what defines the network; its defaults are the paper's
base model (Table 3, first row): N=6, d_model=512, d_ff=2048, h=8, d_k=d_v=64,
P_drop=0.1, eps_ls=0.1. :class:`TrainConfig` holds how it is trained and evaluated:
Adam (beta1=0.9, beta2=0.98, eps=1e-9), warmup_steps=4000, batches of about 25,000
source and 25,000 target tokens, beam 4 with length penalty 0.6, and checkpoint
averaging. Every departure from the paper is a named field whose default is the
paper's choice, so a preset that departs says so in one line.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import AiaynError

AMP_CHOICES = ("auto", "fp32", "bf16", "fp16")  # TrainConfig.amp
VOCAB_KINDS = ("bpe", "wordpiece")  # TrainConfig.vocab_kind
PREPROCESSING = ("raw", "lc.norm.tok")  # TrainConfig.preprocessing (aiayn.multi30k)
# TrainConfig.parse_leaves (aiayn.tasks.parse)
PARSE_LEAVES = ("XX", "pos", "word", "ahead")


@dataclass
class ModelConfig:
    """The Transformer's architecture. Defaults are the paper's base model.

    ``d_k`` and ``d_v`` store what was asked for: None (the default) means
    d_model / h, the paper's h * d_k = d_model, and follows any later change of
    d_model or n_heads. :attr:`head_dim_k` and :attr:`head_dim_v` are the widths
    the layers are built with.
    """

    vocab_size: int = 37000  # shared source-target BPE vocabulary (section 5.1)
    src_vocab_size: int | None = None  # None: the source shares the target's
    d_model: int = 512  # width of every sublayer output and embedding
    d_ff: int = 2048  # inner width of the position-wise feed-forward network
    n_heads: int = 8  # h, parallel attention heads
    n_layers: int = 6  # N, identical layers in the encoder and in the decoder
    d_k: int | None = None  # per-head query/key width; None: d_model / n_heads
    d_v: int | None = None  # per-head value width; None: d_model / n_heads
    dropout: float = 0.1  # P_drop: sublayer outputs and embedding sums
    attention_dropout: float = 0.0  # not in the paper (tensor2tensor's option)
    relu_dropout: float = 0.0  # on the FFN's ReLU; not in the paper (tensor2tensor)
    label_smoothing: float = 0.1  # eps_ls (section 5.4)
    max_len: int = 256  # longest sequence the positional encoding covers
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    norm_first: bool = False  # pre-norm (Xiong et al. 2020); the paper is post-norm
    learned_positions: bool = False  # Table 3 (E); the paper uses sinusoids
    tie_embeddings: bool = True  # share embeddings and pre-softmax weights (3.4)
    scale_embeddings: bool = True  # multiply embeddings by sqrt(d_model) (3.4)

    def __post_init__(self) -> None:
        problems = []
        if self.vocab_size < 5:
            problems.append(f"vocab_size={self.vocab_size} (needs >= 5)")
        for name in ("d_model", "d_ff", "n_heads", "n_layers", "max_len"):
            if getattr(self, name) <= 0:
                problems.append(f"{name}={getattr(self, name)} (must be positive)")
        for name in ("d_k", "d_v"):  # None is d_model / n_heads
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                problems.append(f"{name}={getattr(self, name)} (must be positive)")
        derived = self.d_k is None or self.d_v is None
        if derived and self.n_heads > 0 and self.d_model % self.n_heads:
            problems.append(
                f"d_model={self.d_model} is not a multiple of n_heads={self.n_heads} "
                "(d_k or d_v is None, meaning d_model / n_heads; set them)"
            )
        for name in ("dropout", "attention_dropout", "relu_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name}={getattr(self, name)} (must be in [0, 1))")
        if problems:
            raise AiaynError("invalid ModelConfig: " + ", ".join(problems))

    @property
    def head_dim_k(self) -> int:
        """d_k as built: the query/key width of one head (d_model / h if None)."""
        return self.d_k if self.d_k is not None else self.d_model // self.n_heads

    @property
    def head_dim_v(self) -> int:
        """d_v as built: the value width of one head (d_model / h if None)."""
        return self.d_v if self.d_v is not None else self.d_model // self.n_heads

    @property
    def shared_vocab(self) -> bool:
        """True when source and target use one vocabulary (the paper's setting)."""
        return self.src_vocab_size is None or self.src_vocab_size == self.vocab_size

    @classmethod
    def base(cls, vocab_size: int = 37000, **overrides: Any) -> ModelConfig:
        """The paper's base model (Table 3): about 65M parameters at 37k vocab."""
        return cls(vocab_size=vocab_size, **overrides)

    @classmethod
    def big(cls, vocab_size: int = 37000, **overrides: Any) -> ModelConfig:
        """The paper's big model (Table 3): about 213M parameters at 37k vocab."""
        kw: dict[str, Any] = dict(d_model=1024, d_ff=4096, n_heads=16, dropout=0.3)
        return cls(vocab_size=vocab_size, **{**kw, **overrides})

    @classmethod
    def tiny(cls, vocab_size: int = 16, **overrides: Any) -> ModelConfig:
        """A toy model for tests and the copy task (seconds on a CPU)."""
        kw: dict[str, Any] = dict(
            d_model=32, d_ff=64, n_heads=4, n_layers=2, dropout=0.0, max_len=64
        )
        return cls(vocab_size=vocab_size, **{**kw, **overrides})


@dataclass
class TrainConfig:
    """How a model is trained and evaluated. Defaults follow sections 5 and 6."""

    name: str = "custom"
    task: str = "copy"  # "copy", "multi30k" or "parse": what data to train on
    model: ModelConfig = field(default_factory=ModelConfig)
    # data
    src_lang: str = "en"
    tgt_lang: str = "de"
    vocab_kind: str = "bpe"  # "bpe" (en-de, shared) or "wordpiece" (en-fr)
    preprocessing: str = "raw"  # cased "raw" text or the literature's "lc.norm.tok"
    max_sentence_len: int = 100  # training pairs longer than this are left out
    train_limit: int | None = None  # use only the first N training pairs
    dev_limit: int | None = None  # use only the first N dev pairs (small budgets)
    # copy task
    copy_symbols: int = 10  # symbols 0..copy_symbols-1
    copy_min_len: int = 4
    copy_max_len: int = 12
    copy_train_size: int = 20000  # distinct random sequences per epoch
    copy_test_size: int = 500
    # parsing (section 6.3)
    parse_leaves: str = "XX"  # each word's target symbol: Vinyals et al.'s "XX",
    # its POS tag ("pos": the target also tags the sentence), or the word itself
    # ("word": one vocabulary for source and target), or the word after it ("ahead":
    # the decoder reads the next word before the brackets in front of it); the
    # last three not in the paper
    constrained_decoding: bool = False  # parse: search only well-formed trees with
    # one leaf per word (not in the paper; without it, parsing.delinearize repairs)
    parse_augment: int = 0  # parse: this many extra copies of the training trees,
    # each open-class word swapped with probability parse_swap for a training word
    # of the same POS tag (not in the paper: data augmentation for a small treebank)
    parse_swap: float = 0.3
    # optimisation (section 5.3)
    max_tokens: int = 25000  # padded source and target tokens per optimizer step
    # (the paper's "25000 source and 25000 target tokens" per batch), split evenly
    # over the world_size * accum micro-batches of a step
    accum: int = 1  # micro-batches per optimizer step (emulates larger batches)
    max_steps: int = 100000  # the base model trains for 100k steps
    warmup: int = 4000  # warmup_steps
    lr_factor: float = 1.0  # multiplies the paper's schedule (1.0 = the paper)
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-9
    clip_grad_norm: float | None = None  # not in the paper
    fused_adam: bool | None = None  # None: fused Adam where the model is on CUDA
    # (the fused CPU kernel is 4x faster at d_model 128 but rounds differently)
    fused_loss: bool = True  # projection and loss in one function in fp32
    # (loss.projected_cross_entropy; False: F.linear, then F.cross_entropy)
    dropout_ramp: tuple[int, int, float] | None = None  # (a, b, p): residual and
    # embedding dropout rise linearly from model.dropout at step a to p at step b
    # (not in the paper: little dropout while the model learns, more once it fits)
    max_minutes: float | None = None  # also stop (checkpoint, average, finish)
    # at the first step that ends past this much training wall time, counted over
    # resumes; not in the paper: a fixed-time budget, as on a shared 2-core CPU
    seed: int = 1234
    amp: str = "auto"  # "auto": bf16 (or fp16+scaler) on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the model
    # checkpoints and evaluation (section 6.1)
    eval_every: int = 1000
    save_every: int = 1000
    keep_checkpoints: int = 5
    average_last: int = 5  # the paper averages 5 (base) or 20 (big) checkpoints
    eval_bleu: bool = True  # decode the dev set at each evaluation
    eval_max_sentences: int | None = None  # decode only this many dev sentences
    beam_size: int = 4
    alpha: float = 0.6  # GNMT length penalty exponent
    extra_len: int = 50  # maximum output length = input length + extra_len
    notes: str = ""  # one line on why this preset departs from the paper

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """AiaynError listing every value the training loop cannot run with."""
        problems = []
        at_least_one = (
            "max_steps accum max_tokens warmup eval_every save_every "
            "keep_checkpoints average_last beam_size max_sentence_len copy_symbols "
            "copy_min_len copy_train_size copy_test_size"
        ).split()
        for name in at_least_one:  # 0 divides by zero, hangs or keeps nothing
            if not getattr(self, name) >= 1:
                problems.append(f"{name}={getattr(self, name)} (must be >= 1)")
        for name in ("train_limit", "dev_limit", "eval_max_sentences"):
            value = getattr(self, name)
            if value is not None and not value >= 1:
                problems.append(f"{name}={value} (must be >= 1, or none for all)")
        if not self.copy_max_len >= self.copy_min_len:
            problems.append(
                f"copy_max_len={self.copy_max_len} (must be >= copy_min_len="
                f"{self.copy_min_len})"
            )
        if not self.extra_len >= 0:
            problems.append(f"extra_len={self.extra_len} (must be >= 0)")
        if not self.alpha >= 0:  # beam search's early stop assumes alpha >= 0
            problems.append(f"alpha={self.alpha} (must be >= 0)")
        for name in ("lr_factor", "adam_eps"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}={getattr(self, name)} (must be > 0)")
        betas = self.adam_betas
        numbers = all(isinstance(b, int | float) for b in betas)
        if len(betas) != 2 or not numbers or not all(0 <= b < 1 for b in betas):
            problems.append(f"adam_betas={list(betas)} (two values in [0, 1))")
        if self.max_minutes is not None and not self.max_minutes > 0:
            problems.append(f"max_minutes={self.max_minutes} (must be > 0, or none)")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            problems.append(
                f"clip_grad_norm={self.clip_grad_norm} (must be > 0, or none)"
            )
        ramp = self.dropout_ramp
        if ramp is not None and not (
            len(ramp) == 3
            and all(isinstance(v, int | float) for v in ramp)
            and 0 <= ramp[0] < ramp[1]
            and 0 <= ramp[2] < 1
        ):
            problems.append(
                f"dropout_ramp={list(ramp)} (three values [a, b, p] with "
                "0 <= a < b steps and 0 <= p < 1, or none)"
            )
        if self.amp not in AMP_CHOICES:
            problems.append(f"amp={self.amp!r} (one of {', '.join(AMP_CHOICES)})")
        if self.preprocessing not in PREPROCESSING:
            problems.append(
                f"preprocessing={self.preprocessing!r} (one of "
                f"{', '.join(PREPROCESSING)})"
            )
        if not (isinstance(self.parse_augment, int) and self.parse_augment >= 0):
            problems.append(f"parse_augment={self.parse_augment!r} (an integer >= 0)")
        if not 0 < self.parse_swap <= 1:
            problems.append(f"parse_swap={self.parse_swap!r} (must be in (0, 1])")
        if self.parse_leaves not in PARSE_LEAVES:
            problems.append(
                f"parse_leaves={self.parse_leaves!r} (one of {', '.join(PARSE_LEAVES)})"
            )
        if self.vocab_kind not in VOCAB_KINDS:
            problems.append(
                f"vocab_kind={self.vocab_kind!r} (one of {', '.join(VOCAB_KINDS)})"
            )
        if not isinstance(self.model, ModelConfig):
            problems.append(f"model={self.model!r} (must be a ModelConfig)")
        if problems:
            listed = ", ".join(problems)
            raise AiaynError(
                f"invalid TrainConfig {self.name!r}: {listed}; fix the preset or "
                "the --set value"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (nested for the model)."""
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict`; unknown keys are an error."""
        d = dict(d)
        model = ModelConfig(**_known(ModelConfig, d.pop("model", {})))
        kw = _known(cls, d)
        for name in ("adam_betas", "dropout_ramp"):
            if kw.get(name) is not None:
                kw[name] = tuple(kw[name])
        return cls(model=model, **kw)

    def with_overrides(self, assignments: list[str]) -> TrainConfig:
        """Apply ``key=value`` strings: ``max_steps=200``, ``model.dropout=0.3``."""
        model: dict[str, Any] = {}  # both configs are validated once, at the end
        top: dict[str, Any] = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            if not sep:
                raise AiaynError(f"--set expects key=value, got {item!r}")
            if key.startswith("model."):
                sub = key.removeprefix("model.")
                model[sub] = _parse_field(ModelConfig, sub, raw)
            else:
                top[key] = _parse_field(TrainConfig, key, raw)
        return replace(self, model=replace(self.model, **model), **top)


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise AiaynError(
            f"unknown {cls.__name__} fields {unknown}; known fields: {sorted(names)}"
        )
    return d


def _parse_field(cls: type, name: str, raw: str) -> Any:
    """Parse ``raw`` as the type of field ``name`` of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    if name not in hints or name == "model":
        known = sorted(f.name for f in dataclasses.fields(cls) if f.name != "model")
        raise AiaynError(f"{cls.__name__} has no field {name!r}; known: {known}")
    typ = hints[name]
    args = typing.get_args(typ)
    optional = isinstance(typ, types.UnionType) and type(None) in args
    if optional and raw.lower() in ("none", "null"):
        return None
    base = next((a for a in args if a is not type(None)), typ) if optional else typ
    try:
        if base is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if base in (int, float, str):
            return base(raw)
        return (typing.get_origin(base) or base)(json.loads(raw))  # tuple[...]
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise AiaynError(f"cannot read {name}={raw!r} as {typ}: {e}") from None
