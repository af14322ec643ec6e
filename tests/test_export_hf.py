"""Export to Hugging Face (export_hf.py): same logits, tokens and translations."""

import dataclasses
import os
import random
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed: pip install 'aiayn[hf]'"
)

from aiayn import ModelConfig, Transformer  # noqa: E402
from aiayn import export_hf as ex  # noqa: E402
from aiayn.batching import encode_sources  # noqa: E402
from aiayn.checkpoint import load_model, read_config  # noqa: E402
from aiayn.decoding import beam_search, greedy_decode, length_penalty  # noqa: E402
from aiayn.embeddings import sinusoidal_encoding  # noqa: E402
from aiayn.errors import AiaynError  # noqa: E402
from aiayn.tokenizer import SubwordTokenizer, SymbolTokenizer, load_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STRANGE = [
    "A man rides a bike.",
    "  Zwei\tjunge   Männer\u00a0 stehen\n",
    "e\u0301 café naïve 🙂 日本語 <s> </s> <unk>",
    "",
]


def _tiny(**kw: object) -> Transformer:
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(vocab_size=37, d_model=32, n_heads=4, **kw)
    return Transformer(cfg).eval()


def _padded_batch(cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Three sources of lengths 8, 5, 3 (EOS last) and targets of 6, 4, 2."""
    g = torch.Generator().manual_seed(1)
    src = torch.zeros(3, 8, dtype=torch.long)  # (B, S)
    tgt = torch.zeros(3, 6, dtype=torch.long)  # (B, T)
    for b, (s, t) in enumerate([(8, 6), (5, 4), (3, 2)]):
        src_vocab = cfg.src_vocab_size or cfg.vocab_size
        src[b, :s] = torch.randint(4, src_vocab, (s,), generator=g)
        src[b, s - 1] = cfg.eos_id
        tgt[b, :t] = torch.randint(4, cfg.vocab_size, (t,), generator=g)
        tgt[b, 0] = cfg.bos_id
    return src, tgt


def _marian_logits(hf, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf(
            input_ids=src,
            attention_mask=src != 0,
            decoder_input_ids=tgt,
            decoder_attention_mask=tgt != 0,
        ).logits


def test_permutation_turns_our_sinusoids_into_marians() -> None:
    d = 16
    emb = transformers.models.marian.modeling_marian.MarianSinusoidalPositionalEmbedding
    marian = emb(50, d).create_weight()  # (50, d): sines, then cosines
    ours = sinusoidal_encoding(50, d)  # (50, d): interleaved
    perm = ex.position_permutation(d)
    assert sorted(perm.tolist()) == list(range(d))
    assert torch.allclose(ours[:, perm], marian, atol=1e-6)
    assert not torch.allclose(ours, marian, atol=1e-2)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"tie_embeddings": False},
        {"src_vocab_size": 29},
        {"scale_embeddings": False},
    ],
    ids=["tied", "untied", "own-source-vocab", "unscaled"],
)
def test_saved_marian_gives_our_logits(kw: dict, tmp_path: Path) -> None:
    model = _tiny(**kw)
    ex.to_marian(model).save_pretrained(tmp_path)
    hf = transformers.MarianMTModel.from_pretrained(tmp_path).eval()
    src, tgt = _padded_batch(model.cfg)
    with torch.no_grad():
        ours = model(src, tgt)  # (B, T, V)
    theirs = _marian_logits(hf, src, tgt)
    assert theirs.shape == ours.shape
    real = tgt != 0  # every position, padding included, must match; check both
    assert torch.allclose(ours[real], theirs[real], atol=1e-4)
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert float(hf.final_logits_bias.abs().max()) == 0.0


def test_without_the_permutation_logits_differ(monkeypatch) -> None:
    model = _tiny()
    monkeypatch.setattr(ex, "position_permutation", lambda d: torch.arange(d))
    hf = ex.to_marian(model)
    src, tgt = _padded_batch(model.cfg)
    with torch.no_grad():
        diff = (model(src, tgt) - _marian_logits(hf, src, tgt)).abs().max()
    assert diff > 1e-2
    with pytest.raises(AiaynError, match="differ"):
        ex.check_logits(model, hf)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"norm_first": True}, "post-norm"),
        ({"learned_positions": True}, "sinusoids"),
        ({"d_k": 4}, "d_model / h"),
    ],
)
def test_what_marian_cannot_hold_is_refused(kw: dict, message: str) -> None:
    with pytest.raises(AiaynError, match=message):
        ex.marian_config(ModelConfig.tiny(vocab_size=37, **kw))


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_subword_tokenizer_encodes_and_decodes_like_ours(kind: str) -> None:
    texts = ["Ein Mann fährt Fahrrad.", "A man rides a bike.", "Zwei Hunde spielen."]
    ours = SubwordTokenizer.train(texts * 20, 300, kind)
    hf = ex.hf_tokenizer(ours)
    for text in STRANGE:
        ids = hf(text)["input_ids"]
        assert ids == ours.encode(text) + [2], text  # the source ends in EOS
        assert hf.decode(ids, skip_special_tokens=True) == ours.decode(ids), text


def test_symbol_tokenizer_becomes_word_level() -> None:
    ours = SymbolTokenizer(10)
    hf = ex.hf_tokenizer(ours)
    assert hf("3 1 4 1 5")["input_ids"] == ours.encode("3 1 4 1 5") + [2]
    assert hf.decode([7, 5, 8, 2], skip_special_tokens=True) == "3 1 4"
    assert hf.pad_token_id == 0 and hf.eos_token_id == 2


# -- a trained copy model ------------------------------------------------------


@pytest.fixture(scope="module")
def copy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped copy model, or one trained here (300 steps, shorter inputs)."""
    shipped = ROOT / "checkpoints" / "copy"
    if (shipped / "model.safetensors").is_file():
        return shipped
    from aiayn.presets import get_preset
    from aiayn.train import train

    cfg = get_preset("copy").with_overrides(
        [
            "max_steps=300",
            "eval_every=300",
            "save_every=300",
            "average_last=1",
            "eval_bleu=false",
            "copy_test_size=50",
            "copy_train_size=5000",
            "copy_max_len=8",
        ]
    )  # about 15 s on two idle cores; copies ~90% of held-out sequences
    out = tmp_path_factory.mktemp("copy")
    train(cfg, out, progress=False, device="cpu")
    return out


@pytest.fixture(scope="module")
def exported(copy_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hf") / "copy_hf"
    summary = ex.export_hf(copy_model, out)
    assert summary["max_abs_logit_diff"] < 1e-3 and summary["tokenizer"]
    return out


def _copy_inputs(n: int = 6) -> list[list[int]]:
    rng = random.Random(7)
    lengths = [rng.randint(4, 8) for _ in range(n)]
    return [[4 + rng.randrange(10) for _ in range(k)] for k in lengths]


def _generate(hf, ids: list[int], extra_len: int, **kw: object) -> list[int]:
    """HF generate for one source, cut like ours: no BOS, EOS or padding."""
    src = encode_sources([ids], 0, 2)  # (1, S)
    out = hf.generate(
        input_ids=src,
        attention_mask=src != 0,
        do_sample=False,
        max_length=1 + src.size(1) + extra_len,  # our limit, plus the start token
        **kw,
    )[0].tolist()[1:]
    return out[: out.index(2)] if 2 in out else [t for t in out if t != 0]


@torch.no_grad()
def _our_score(
    model: Transformer, ids: list[int], out: list[int], alpha: float, limit: int
) -> float:
    """What our beam search maximises: log P(Y | X) / ((5 + |Y|) / 6)^alpha."""
    src = encode_sources([ids], 0, 2)  # (1, S)
    y = out + [2] if len(out) < limit else out  # at the limit, no EOS
    tgt_in = torch.tensor([[1] + y[:-1]])  # (1, |Y|)
    logp = model(src, tgt_in).float().log_softmax(-1)[0]  # (|Y|, V)
    total = logp.gather(1, torch.tensor(y)[:, None]).sum()
    return float(total / length_penalty(len(y), alpha))


def test_export_writes_a_loadable_directory(exported: Path, copy_model: Path) -> None:
    names = {p.name for p in exported.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
    } <= names
    hf = transformers.MarianMTModel.from_pretrained(exported)
    gen = hf.generation_config
    assert (gen.decoder_start_token_id, gen.eos_token_id, gen.pad_token_id) == (1, 2, 0)
    assert gen.forced_eos_token_id is None and sorted(gen.suppress_tokens) == [0, 1]
    with pytest.raises(AiaynError, match="not empty"):
        ex.export_hf(copy_model, exported)
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]


def test_greedy_generate_is_our_greedy_search(exported: Path, copy_model: Path) -> None:
    hf = transformers.MarianMTModel.from_pretrained(exported).eval()
    model = load_model(copy_model)
    for ids in _copy_inputs():
        ours = greedy_decode(model, encode_sources([ids], 0, 2), extra_len=5)[0]
        assert _generate(hf, ids, 5, num_beams=1) == ours


@pytest.mark.parametrize(
    "alpha, early_stopping, min_identical",
    [(0.0, "never", 3), (0.6, "never", 3), (0.6, True, 0)],
    ids=["alpha0-never", "alpha0.6-never", "alpha0.6-early"],
)
def test_beam_generate_never_beats_our_beam_search(
    exported: Path,
    copy_model: Path,
    alpha: float,
    early_stopping: object,
    min_identical: int,
) -> None:
    """Same live beams; ours finishes from a superset of generate's candidates.

    Both keep the K best unfinished of the 2K best extensions alive, so the
    live beams are the same at every step. A finished hypothesis counts for
    ours among all 2K candidates (tensor2tensor), for generate only among the
    best K, and ours stops only when no live beam can still win. So under our
    objective (GNMT penalty) ours scores at least as well as generate's output;
    with alpha = 0 the objectives coincide and the outputs differ only when
    ours found a strictly better hypothesis. With "never" most outputs of a
    trained copy model are identical; early_stopping=True stops as soon as K
    hypotheses have finished, which on a confident model are often K poor
    early ones, so there only the inequality is checked.
    """
    hf = transformers.MarianMTModel.from_pretrained(exported).eval()
    model = load_model(copy_model)
    extra, identical = 5, 0
    for ids in _copy_inputs():
        limit = len(ids) + 1 + extra
        ours = beam_search(model, encode_sources([ids], 0, 2), 4, alpha, None, extra)[0]
        theirs = _generate(
            hf,
            ids,
            extra,
            num_beams=4,
            length_penalty=alpha,
            early_stopping=early_stopping,
        )
        mine = _our_score(model, ids, ours, alpha, limit)
        assert mine >= _our_score(model, ids, theirs, alpha, limit) - 1e-4
        if alpha == 0.0 and theirs != ours:
            assert mine > _our_score(model, ids, theirs, alpha, limit) + 1e-6
        identical += theirs == ours
    assert identical >= min_identical


def test_text_in_text_out_through_transformers(
    exported: Path, copy_model: Path
) -> None:
    from aiayn.translate import translate

    tok = transformers.AutoTokenizer.from_pretrained(exported)
    assert tok("3 1 4")["input_ids"] == [7, 5, 8, 2]  # EOS appended, as ours
    hf = transformers.MarianMTModel.from_pretrained(exported).eval()
    model, ours_tok = load_model(copy_model), load_tokenizer(copy_model)
    extra = read_config(copy_model).extra_len
    rng = random.Random(3)  # one length, so one length limit fits the batch
    texts = [" ".join(str(rng.randrange(10)) for _ in range(8)) for _ in range(6)]
    batch = tok(texts, return_tensors="pt", padding=True)
    out = hf.generate(
        **batch, num_beams=1, max_new_tokens=batch["input_ids"].size(1) + extra
    )
    theirs = tok.batch_decode(out, skip_special_tokens=True)
    assert theirs == translate(model, ours_tok, texts, beam_size=1, extra_len=extra)
    copied = sum(a == b for a, b in zip(theirs, texts, strict=True))
    assert copied >= 1, "the copy model should copy at least one input"


# -- a real translation model ----------------------------------------------------


SHIPPED = "multi30k_tiny_cpu_en_de"  # the shipped Transformer-Tiny, lc.norm.tok


def _translator() -> Path | None:
    """$AIAYN_EXPORT_TEST_MODEL, else the shipped CPU en-de model, if present."""
    env = os.environ.get("AIAYN_EXPORT_TEST_MODEL")
    for d in [Path(env)] if env else [ROOT / "checkpoints" / SHIPPED]:
        if (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file():
            return d
    return None


@pytest.mark.skipif(_translator() is None, reason=f"no shipped {SHIPPED}")
def test_real_translator_translates_alike(tmp_path: Path) -> None:
    """Greedy: the same German text. Beam 4: never better than ours (see above).

    The shipped model has d_k = d_model / h, so it must have a Marian twin."""
    from aiayn.translate import translate

    path = _translator()
    assert path is not None
    ex.marian_config(read_config(path).model)  # raises if it has no twin
    ex.export_hf(path, tmp_path / "hf")
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    hf = transformers.MarianMTModel.from_pretrained(tmp_path / "hf").eval()
    model, ours_tok = load_model(path), load_tokenizer(path)
    sentences = [  # as the model reads them (lc.norm.tok): the same ids either way
        "a man rides a bike .",
        "two dogs play in the snow .",
        "a little girl in a pink dress is climbing stairs .",
    ]
    greedy = translate(model, ours_tok, sentences, beam_size=1)
    for text, want in zip(sentences, greedy, strict=True):
        ids = tok([text])["input_ids"][0][:-1]  # without the EOS
        assert ids == ours_tok.encode(text)
        got = tok.decode(_generate(hf, ids, 50, num_beams=1))
        assert got == want
        for alpha in (0.0, 0.6):
            ours = beam_search(model, encode_sources([ids], 0, 2), 4, alpha)[0]
            theirs = _generate(hf, ids, 50, num_beams=4, length_penalty=alpha)
            limit = len(ids) + 1 + 50
            mine = _our_score(model, ids, ours, alpha, limit)
            assert mine >= _our_score(model, ids, theirs, alpha, limit) - 1e-4


def test_every_model_field_is_mapped() -> None:
    """A new ModelConfig field must be mapped in marian_config (or listed here)."""
    mapped = {
        "vocab_size",
        "src_vocab_size",
        "d_model",
        "d_ff",
        "n_heads",
        "n_layers",
        "d_k",
        "d_v",
        "dropout",
        "attention_dropout",
        "relu_dropout",
        "max_len",
        "pad_id",
        "bos_id",
        "eos_id",
        "norm_first",
        "learned_positions",
        "tie_embeddings",
        "scale_embeddings",
    }
    training_only = {"label_smoothing"}
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    assert fields == mapped | training_only
