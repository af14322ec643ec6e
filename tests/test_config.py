"""ModelConfig and TrainConfig: the paper's sizes, validation, serialisation,
``--set`` overrides, and every named preset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from aiayn.checkpoint import load_model, read_config
from aiayn.config import ModelConfig, TrainConfig
from aiayn.errors import AiaynError
from aiayn.model import Transformer
from aiayn.presets import PRESETS, get_preset

ROOT = Path(__file__).resolve().parents[1]


def count_parameters(cfg: ModelConfig) -> int:
    """Parameters of the model ``cfg`` builds, without allocating any memory."""
    with torch.device("meta"):
        return Transformer(cfg).num_parameters()


@pytest.mark.parametrize(
    ("make", "paper"),
    [(ModelConfig.base, 65e6), (ModelConfig.big, 213e6)],
    ids=["base", "big"],
)
def test_parameter_counts_match_table_3(make: type, paper: float) -> None:
    cfg = make(vocab_size=37000)
    n = count_parameters(cfg)
    print(f"{make.__name__}: {n:,} parameters (paper: {paper / 1e6:.0f}M)")
    assert abs(n - paper) / paper < 0.04


def test_parameter_count_by_hand() -> None:
    """The base model's count, from the shapes of section 3 (tied embeddings)."""
    V, d, d_ff, N = 37000, 512, 2048, 6
    attention = 4 * (d * d + d)  # W^Q, W^K, W^V, W^O with biases (h*d_k = d)
    ffn = d * d_ff + d_ff + d_ff * d + d
    norm = 2 * d
    encoder = N * (attention + ffn + 2 * norm)
    decoder = N * (2 * attention + ffn + 3 * norm)
    assert count_parameters(ModelConfig.base()) == V * d + encoder + decoder


def test_untied_and_separate_vocab_counts() -> None:
    tied = count_parameters(ModelConfig.tiny())
    untied = count_parameters(ModelConfig.tiny(tie_embeddings=False))
    assert untied == tied + 2 * 16 * 32  # own source matrix and pre-softmax matrix
    sep = count_parameters(ModelConfig.tiny(src_vocab_size=40))
    assert sep == tied + 40 * 32  # a source matrix; target and softmax stay tied


def test_defaults_are_the_papers_base() -> None:
    cfg = ModelConfig()
    assert (cfg.d_model, cfg.d_ff, cfg.n_heads, cfg.n_layers) == (512, 2048, 8, 6)
    assert (cfg.dropout, cfg.label_smoothing) == (0.1, 0.1)
    assert not cfg.norm_first and not cfg.learned_positions
    assert cfg.tie_embeddings and cfg.scale_embeddings and cfg.shared_vocab
    big = ModelConfig.big()
    assert (big.d_model, big.d_ff, big.n_heads, big.dropout) == (1024, 4096, 16, 0.3)
    t = TrainConfig()
    assert (t.warmup, t.adam_betas, t.adam_eps) == (4000, (0.9, 0.98), 1e-9)
    assert (t.beam_size, t.alpha, t.extra_len, t.max_tokens) == (4, 0.6, 50, 25000)


def widths(cfg: ModelConfig) -> tuple[int, int]:
    """The per-head widths (d_k, d_v) the layers are built with."""
    return cfg.head_dim_k, cfg.head_dim_v


def test_d_k_default() -> None:
    assert (ModelConfig().d_k, ModelConfig().d_v) == (None, None)  # as asked
    assert widths(ModelConfig()) == (64, 64)  # 512 / 8
    assert widths(ModelConfig.big()) == (64, 64)  # 1024 / 16
    assert ModelConfig.tiny().head_dim_k == 8  # 32 / 4
    row_a = ModelConfig(n_heads=1, d_k=512, d_v=512)  # Table 3 row (A)
    assert widths(row_a) == (512, 512)
    row_b = ModelConfig(d_k=16)  # Table 3 row (B): d_v keeps its default
    assert widths(row_b) == (16, 64) and row_b.d_v is None


def test_default_d_k_follows_d_model_and_heads() -> None:
    """d_k = d_v = None stays d_model / h after ``replace``: h * d_k = d_model."""
    base = ModelConfig.base()
    assert widths(replace(base, d_model=128)) == (16, 16)  # 128 / 8, not 64
    assert widths(replace(base, n_heads=16)) == (32, 32)
    assert widths(replace(base, d_model=256, n_heads=4)) == (64, 64)
    for cfg in (replace(base, d_model=128), replace(ModelConfig.tiny(), d_model=64)):
        assert cfg.n_heads * cfg.head_dim_k == cfg.n_heads * cfg.head_dim_v
        assert cfg.n_heads * cfg.head_dim_k == cfg.d_model
    explicit = replace(ModelConfig(d_k=64, d_v=48), d_model=128)  # stays as asked
    assert widths(explicit) == (64, 48)
    with torch.device("meta"):
        layer = Transformer(replace(base, d_model=128)).encoder[0].self_attn
    assert (layer.d_k, layer.d_v) == (16, 16)
    assert layer.w_q.weight.shape == (8 * 16, 128)


def test_default_d_model_must_split_into_heads() -> None:
    with pytest.raises(AiaynError, match="d_model=100 is not a multiple of n_heads=8"):
        ModelConfig(d_model=100)
    assert widths(ModelConfig(d_model=100, d_k=12, d_v=20)) == (12, 20)  # explicit


def test_json_round_trip_keeps_a_default_d_k() -> None:
    cfg = TrainConfig(model=ModelConfig.tiny(d_v=6))
    d = json.loads(cfg.to_json())
    assert (d["model"]["d_k"], d["model"]["d_v"]) == (None, 6)
    back = TrainConfig.from_dict(d)
    assert back == cfg and (back.model.d_k, back.model.d_v) == (None, 6)
    resized = replace(back.model, d_model=64)  # d_k still follows d_model
    assert widths(resized) == (16, 6)


def test_an_explicit_d_k_in_a_saved_config_builds_the_same_model() -> None:
    """The shipped CPU checkpoints store "d_k": 64 at d_model 128 (h * d_k = 256)."""
    d = TrainConfig(model=ModelConfig(d_model=128, n_heads=4)).to_dict()
    d["model"].update(d_k=64, d_v=64)
    cfg = TrainConfig.from_dict(d).model
    assert widths(cfg) == (64, 64) and widths(replace(cfg, d_model=256)) == (64, 64)
    with torch.device("meta"):
        attn = Transformer(cfg).decoder[0].cross_attn
    assert attn.w_k.weight.shape == (4 * 64, 128)
    assert attn.w_o.weight.shape == (128, 4 * 64)


SHIPPED = sorted(p.parent.name for p in (ROOT / "checkpoints").glob("*/config.json"))


def test_the_book_ships_checkpoints() -> None:
    assert {"copy", "ptb_parse_ahead_cpu", "multi30k_tiny_cpu_en_de"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_with_their_widths(name: str) -> None:
    directory = ROOT / "checkpoints" / name
    stored = json.loads((directory / "config.json").read_text())["model"]
    cfg = read_config(directory).model
    derived = stored["d_model"] // stored["n_heads"]  # what None stands for
    want = tuple(derived if stored[k] is None else stored[k] for k in ("d_k", "d_v"))
    assert widths(cfg) == want
    load_model(directory)  # every weight's shape matches the rebuilt model


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vocab_size", 4),
        ("d_model", 0),
        ("d_ff", -1),
        ("n_heads", 0),
        ("n_layers", 0),
        ("d_k", 0),
        ("d_v", -3),
        ("max_len", 0),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("attention_dropout", 1.5),
        ("relu_dropout", 1.0),
        ("relu_dropout", -0.2),
        ("label_smoothing", -0.01),
    ],
)
def test_invalid_values_raise(field: str, value: float) -> None:
    with pytest.raises(AiaynError, match=f"{field}={value}"):
        ModelConfig(**{field: value})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(AiaynError) as err:
        ModelConfig(d_model=0, dropout=2.0)
    assert "d_model=0" in str(err.value) and "dropout=2.0" in str(err.value)


def test_round_trip_through_json() -> None:
    cfg = TrainConfig(
        name="x",
        model=ModelConfig.tiny(src_vocab_size=40, norm_first=True, d_k=12),
        adam_betas=(0.8, 0.9),
        train_limit=7,
        notes="a note",
    )
    d = json.loads(cfg.to_json())
    assert d["model"]["d_k"] == 12 and d["adam_betas"] == [0.8, 0.9]
    back = TrainConfig.from_dict(d)
    assert back == cfg
    assert isinstance(back.adam_betas, tuple) and isinstance(back.model, ModelConfig)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_rejects_unknown_fields() -> None:
    d = TrainConfig().to_dict()
    with pytest.raises(AiaynError, match="unknown TrainConfig fields \\['lr'\\]"):
        TrainConfig.from_dict({**d, "lr": 1.0})
    d["model"]["heads"] = 3
    with pytest.raises(AiaynError, match="unknown ModelConfig fields \\['heads'\\]"):
        TrainConfig.from_dict(d)


def test_overrides_are_parsed_by_type() -> None:
    cfg = TrainConfig().with_overrides(
        [
            "max_steps=10",
            "lr_factor=0.5",
            "name=run=2",  # only the first '=' separates the key
            "compile=true",
            "eval_bleu=0",
            "clip_grad_norm=1.5",
            "eval_max_sentences=none",
            "adam_betas=[0.9, 0.99]",
            "model.dropout=0.2",
            "model.norm_first=True",
            "model.src_vocab_size=100",
            "model.vocab_size=64",
        ]
    )
    assert cfg.max_steps == 10 and isinstance(cfg.max_steps, int)
    assert cfg.lr_factor == 0.5 and cfg.name == "run=2"
    assert cfg.compile is True and cfg.eval_bleu is False
    assert cfg.clip_grad_norm == 1.5 and cfg.eval_max_sentences is None
    assert cfg.adam_betas == (0.9, 0.99) and isinstance(cfg.adam_betas, tuple)
    assert cfg.model.dropout == 0.2 and cfg.model.norm_first is True
    assert (cfg.model.src_vocab_size, cfg.model.vocab_size) == (100, 64)
    assert TrainConfig().max_steps == 100000  # the original is unchanged
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_overriding_d_model_or_heads_moves_the_default_d_k() -> None:
    """d_k left at its default follows d_model / h; an explicit d_k stays."""
    cfg = TrainConfig().with_overrides(["model.d_model=256"])
    assert widths(cfg.model) == (32, 32)
    cfg = TrainConfig().with_overrides(["model.n_heads=16"])
    assert widths(cfg.model) == (32, 32)
    cfg = TrainConfig().with_overrides(["model.d_k=16", "model.d_model=256"])
    assert widths(cfg.model) == (16, 32)
    explicit = TrainConfig(model=ModelConfig(d_k=100, d_v=80))
    cfg = explicit.with_overrides(["model.d_model=256"])
    assert widths(cfg.model) == (100, 80)
    cfg = TrainConfig().with_overrides(["model.relu_dropout=0.1"])
    assert cfg.model.relu_dropout == 0.1


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("max_steps", "expects key=value"),
        ("max_step=3", "TrainConfig has no field 'max_step'"),
        ("model=3", "TrainConfig has no field 'model'"),
        ("model.heads=3", "ModelConfig has no field 'heads'"),
        ("max_steps=ten", "cannot read max_steps='ten'"),
        ("lr_factor=fast", "cannot read lr_factor='fast'"),
        ("compile=yes", "cannot read compile='yes'"),
        ("adam_betas=[0.9", "cannot read adam_betas="),
        ("model.dropout=1.5", "dropout=1.5"),
        ("model.n_layers=0", "n_layers=0"),
        ("parse_augment=-1", "parse_augment=-1"),
        ("parse_swap=0", "parse_swap=0"),
        ("parse_swap=1.5", "parse_swap=1.5"),
    ],
)
def test_bad_overrides_raise(item: str, match: str) -> None:
    with pytest.raises(AiaynError, match=match):
        TrainConfig().with_overrides([item])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_runs(name: str) -> None:
    cfg = get_preset(name)
    assert cfg.name == name and cfg.notes  # every preset says how it departs
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert cfg.max_steps > 0 and cfg.warmup > 0 and cfg.max_tokens > 0
    # The real architecture, with a small vocabulary so that it builds quickly.
    small = ModelConfig(**{**cfg.model.__dict__, "vocab_size": 20})
    torch.manual_seed(0)
    model = Transformer(small).eval()
    src = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
    tgt_in = torch.tensor([[1, 5, 6], [1, 8, 0]])
    with torch.no_grad():
        logits = model(src, tgt_in)
    assert logits.shape == (2, 3, 20) and torch.isfinite(logits).all()


def test_unknown_preset() -> None:
    with pytest.raises(AiaynError, match="unknown config 'nope'; choose one of"):
        get_preset("nope")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_heads_span_d_model(name: str) -> None:
    """h * d_k = d_model, as in every row of Table 3 but (A) and (B), unless the
    preset sets d_k and its notes declare its h * d_k."""
    cfg = get_preset(name)
    model = cfg.model
    span = model.n_heads * model.head_dim_k
    if span != model.d_model:
        assert model.d_k is not None and f"h*d_k={span}" in cfg.notes, cfg.notes
    assert model.n_heads * model.head_dim_v == span


@pytest.mark.parametrize("pair", ["en_de", "de_en", "en_fr"])
def test_cpu_presets_derive_d_k(pair: str) -> None:
    model = get_preset(f"multi30k_cpu_{pair}").model
    assert (model.d_k, model.d_v) == (None, None)
    assert widths(model) == (32, 32) and model.d_model == 128


def test_dropout_ramp_is_validated_and_round_trips() -> None:
    cfg = TrainConfig(dropout_ramp=(100, 400, 0.3))
    assert TrainConfig.from_dict(json.loads(cfg.to_json())).dropout_ramp == (
        100,
        400,
        0.3,
    )
    for bad in ((400, 100, 0.3), (0, 100, 1.0), (0, 100)):
        with pytest.raises(AiaynError, match="dropout_ramp"):
            TrainConfig(dropout_ramp=bad)
    assert TrainConfig().with_overrides(["dropout_ramp=[1, 2, 0.2]"]).dropout_ramp == (
        1,
        2,
        0.2,
    )
