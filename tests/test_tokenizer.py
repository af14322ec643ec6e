"""Sub-word vocabularies (section 5.1): ids, round trips, save/load, errors."""

import json
import os
import random
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiayn import multi30k
from aiayn import tokenizer as tk
from aiayn.errors import AiaynError
from aiayn.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    ParseTokenizer,
    SubwordTokenizer,
    SymbolTokenizer,
    Tokenizer,
    load_tokenizer,
    normalize,
)


def _find_mirror() -> Path:
    env = os.environ.get("AIAYN_DATA_MIRROR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


MIRROR = _find_mirror()
needs_mirror = pytest.mark.skipif(
    not (MIRROR / "multi30k").is_dir(),
    reason=f"no data mirror at {MIRROR} (set AIAYN_DATA_MIRROR)",
)
VOCAB = 8000  # small enough to train in about a second, big enough to compress
# Text the training data never shows: emoji, CJK, control and odd spaces.
STRANGE = "Ein 🙂👍🏽 日本語 \x00\x07 tab\there ℌ e\u0301 \u200b<s> </s> <unk> <pad>"
any_text = st.one_of(
    st.text(),
    st.text(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)),
    st.text(st.characters(max_codepoint=0x1F)),  # control characters
    st.lists(
        st.sampled_from(["<s>", "</s>", "<unk>", "<pad>", "##", "▁", " ", "a"])
    ).map("".join),
)


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    cache = tmp_path_factory.mktemp("cache")
    return {
        lang: multi30k.load(
            "train", lang, mirror=MIRROR, cache_dir=cache, progress=False
        )
        for lang in ("en", "de", "fr")
    }


@pytest.fixture(scope="module")
def bpe(train: dict[str, list[str]]) -> SubwordTokenizer:
    """Shared English-German byte-level BPE, as for WMT 2014 en-de."""
    return SubwordTokenizer.train(train["en"] + train["de"], VOCAB, "bpe")


@pytest.fixture(scope="module")
def wordpiece(train: dict[str, list[str]]) -> SubwordTokenizer:
    """English-French word pieces, as for WMT 2014 en-fr."""
    return SubwordTokenizer.train(train["en"] + train["fr"], VOCAB, "wordpiece")


# --- normalize ---------------------------------------------------------------


def test_normalize_examples() -> None:
    assert normalize("  Hello,\t World!\n") == "Hello, World!"  # case, punct kept
    assert normalize("Cafe\u0301  au\u00a0lait") == "Caf\u00e9 au lait"  # NFC, nbsp
    assert normalize("a\ud800b") == "a\ufffdb"  # lone surrogate
    assert normalize(" \n\t ") == ""


@given(st.text())
def test_normalize_is_idempotent_and_has_single_spaces(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip() and "  " not in once
    assert all(c == " " or not c.isspace() for c in once)


# --- SymbolTokenizer -----------------------------------------------------------


def test_symbols_encode_decode() -> None:
    tok = SymbolTokenizer(10)
    assert tok.vocab_size == 14
    assert isinstance(tok, Tokenizer)
    assert tok.encode("3 7 1") == [7, 11, 5]
    assert tok.encode(" 0   9 ") == [4, 13]
    assert tok.decode([7, 11, 5]) == "3 7 1"
    assert tok.decode([BOS_ID, 7, 11, 5, EOS_ID, PAD_ID, PAD_ID]) == "3 7 1"
    assert tok.encode_batch(["1", "2 2"]) == [[5], [6, 6]]
    assert tok.decode_batch([[5], [6, 6]]) == ["1", "2 2"]


@given(
    st.integers(1, 50).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n - 1)))
    )
)
def test_symbols_round_trip(case: tuple[int, list[int]]) -> None:
    n, symbols = case
    tok = SymbolTokenizer(n)
    text = " ".join(map(str, symbols))
    ids = tok.encode(text)
    assert all(4 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


@pytest.mark.parametrize("bad", ["10", "-1", "x", "3.0", "\u0663", "+2"])
def test_symbols_reject_bad_tokens(bad: str) -> None:
    with pytest.raises(AiaynError) as err:
        SymbolTokenizer(10).encode(f"1 {bad} 2")
    assert repr(bad) in str(err.value) and "0..9" in str(err.value)


def test_symbols_reject_bad_ids_and_sizes() -> None:
    with pytest.raises(AiaynError, match="outside the vocabulary"):
        SymbolTokenizer(10).decode([4, 14])
    with pytest.raises(AiaynError, match="outside the vocabulary"):
        SymbolTokenizer(10).decode([-1])
    for n in (0, -3, True, 2.0):
        with pytest.raises(AiaynError, match="n_symbols"):
            SymbolTokenizer(n)  # type: ignore[arg-type]


# --- sub-word tokenizers on Multi30k --------------------------------------------


@needs_mirror
@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_special_ids_and_size(kind: str, request: pytest.FixtureRequest) -> None:
    tok: SubwordTokenizer = request.getfixturevalue(kind)
    assert isinstance(tok, Tokenizer)
    for i, token in zip(
        (PAD_ID, BOS_ID, EOS_ID, UNK_ID), tk.SPECIAL_TOKENS, strict=True
    ):
        assert tok.hf.token_to_id(token) == i
    assert abs(tok.vocab_size - VOCAB) < 100
    assert BOS_ID not in tok.encode("<s> x </s>")  # markup in text stays text


@needs_mirror
@pytest.mark.parametrize(("kind", "langs"), [("bpe", "en de"), ("wordpiece", "en fr")])
def test_round_trip_every_training_sentence(
    kind: str, langs: str, train: dict[str, list[str]], request: pytest.FixtureRequest
) -> None:
    tok: SubwordTokenizer = request.getfixturevalue(kind)
    for lang in langs.split():
        sentences = train[lang]
        ids = tok.encode_batch(sentences)
        assert all(i >= 4 for x in ids for i in x)  # no unk, no specials
        decoded = tok.decode_batch(ids)
        bad = [
            (s, d) for s, d in zip(sentences, decoded, strict=True) if d != normalize(s)
        ]
        assert not bad, f"{len(bad)} {lang} sentences differ, e.g. {bad[:3]}"
        # Sub-words compress: fewer pieces than characters, not far above words.
        n_words = sum(len(s.split()) for s in sentences)
        assert n_words <= sum(map(len, ids)) < 1.5 * n_words
        for s, x in zip(sentences[:50], ids[:50], strict=True):
            assert tok.encode(s) == x and tok.decode(x) == normalize(s)


@needs_mirror
def test_bpe_pieces_are_readable(bpe: SubwordTokenizer) -> None:
    pieces = bpe.tokenize("Zwei junge Männer")
    assert "".join(pieces) == "Zwei junge Männer"
    assert len(pieces) >= 3


@needs_mirror
@settings(max_examples=300, deadline=None)
@given(text=any_text)
@example(text=STRANGE)
def test_bpe_encodes_any_string_exactly(bpe: SubwordTokenizer, text: str) -> None:
    ids = bpe.encode(text)
    assert all(4 <= i < bpe.vocab_size for i in ids)  # no pad/bos/eos, no unk
    assert bpe.decode(ids) == normalize(text)


@needs_mirror
@settings(max_examples=300, deadline=None)
@given(text=any_text)
@example(text=STRANGE)
def test_wordpiece_encodes_any_string(wordpiece: SubwordTokenizer, text: str) -> None:
    ids = wordpiece.encode(text)
    assert all(i == UNK_ID or 4 <= i < wordpiece.vocab_size for i in ids)
    assert len(ids) >= len(normalize(text).split())  # at least one id per word


@needs_mirror
def test_wordpiece_unknown_character_makes_word_unk(
    wordpiece: SubwordTokenizer, train: dict[str, list[str]]
) -> None:
    assert not any("☃" in s for s in train["en"] + train["fr"])
    ids = wordpiece.encode("a x☃y b")
    assert ids == [wordpiece.encode("a")[0], UNK_ID, wordpiece.encode("b")[0]]
    assert wordpiece.decode(ids) == "a b"  # decode drops <unk>


@needs_mirror
def test_subword_rejects_bad_ids_and_arguments(bpe: SubwordTokenizer) -> None:
    with pytest.raises(AiaynError, match="outside the vocabulary"):
        bpe.decode([5, bpe.vocab_size])
    with pytest.raises(AiaynError, match="outside the vocabulary"):
        bpe.decode_batch([[5], [-1]])
    with pytest.raises(AiaynError, match="kind"):
        SubwordTokenizer.train(["a b"], 100, "sentencepiece")  # type: ignore[arg-type]
    with pytest.raises(AiaynError, match="no sentences"):
        SubwordTokenizer.train([], 100, "bpe")
    with pytest.raises(AiaynError, match="vocab_size"):
        SubwordTokenizer.train(["a b"], 4, "wordpiece")


# --- determinism -------------------------------------------------------------


def _synthetic(n: int = 300, seed: int = 0) -> list[str]:
    """Random words over 20 letters: many pairs tie in count, as in issue 1794."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrst"
    return [
        " ".join(
            "".join(rng.choice(letters) for _ in range(rng.randint(2, 6)))
            for _ in range(8)
        )
        for _ in range(n)
    ]


def _pieces(tok: SubwordTokenizer) -> list[str]:
    return [tok.hf.id_to_token(i) for i in range(tok.vocab_size)]


def _assert_trains_the_same(texts: list[str], vocab_size: int, kind: str) -> None:
    first = SubwordTokenizer.train(texts, vocab_size, kind)
    for again in (texts, texts[::-1], texts):  # the order of texts does not matter
        other = SubwordTokenizer.train(again, vocab_size, kind)
        assert _pieces(other) == _pieces(first)  # id by id
        assert other.hf.to_str() == first.hf.to_str()  # merges, config: all of it


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_training_is_deterministic_on_ties(kind: str) -> None:
    # Hugging Face's WordPieceTrainer gave a different vocabulary on every run here.
    _assert_trains_the_same(_synthetic(), 300, kind)


@needs_mirror
@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_training_is_deterministic_on_multi30k(
    kind: str, train: dict[str, list[str]]
) -> None:
    texts = train["en"][:3000] + train["fr" if kind == "wordpiece" else "de"][:3000]
    _assert_trains_the_same(texts, 2000, kind)


def test_word_pieces_mark_continuations() -> None:
    tok = SubwordTokenizer.train(_synthetic(), 300, "wordpiece")
    pieces = _pieces(tok)[4:]
    assert "▁" in pieces  # every word starts with it
    for p in pieces:  # a piece starts a word or continues one, never both
        assert p.startswith("▁") != p.startswith("##"), p
        assert "▁" not in p[1:], p
    assert len(set(pieces)) == len(pieces)
    for word in ("abc", "qrstqrst", "t"):
        first, *rest = tok.tokenize(word)
        assert first.startswith("▁") and all(t.startswith("##") for t in rest)
        assert first + "".join(t[2:] for t in rest) == "▁" + word
    assert tok.decode(tok.encode("qa rst ab")) == "qa rst ab"


# --- save / load ---------------------------------------------------------------


@needs_mirror
@pytest.mark.parametrize("kind", ["symbols", "bpe", "wordpiece"])
def test_save_load_round_trip(
    kind: str,
    tmp_path: Path,
    train: dict[str, list[str]],
    request: pytest.FixtureRequest,
) -> None:
    if kind == "symbols":
        tok: Tokenizer = SymbolTokenizer(12)
        texts = ["3 7 1", "11 0", ""]
    else:
        tok = request.getfixturevalue(kind)
        texts = train["en"][:200] + train["fr" if kind == "wordpiece" else "de"][:200]
        texts += [STRANGE, ""]
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is type(tok)
    assert loaded.vocab_size == tok.vocab_size
    ids = tok.encode_batch(texts)
    assert loaded.encode_batch(texts) == ids
    assert loaded.decode_batch(ids) == tok.decode_batch(ids)
    if isinstance(tok, SubwordTokenizer):
        assert loaded.kind == tok.kind
        files = {"tokenizer.json", "tokenizer_meta.json"}
        assert (
            json.loads((tmp_path / "tokenizer_meta.json").read_text())["kind"] == kind
        )
    else:
        files = {"tokenizer.json"}
        assert json.loads((tmp_path / "tokenizer.json").read_text()) == {
            "type": "symbols",
            "n_symbols": 12,
        }
    assert {p.name for p in tmp_path.iterdir()} == files  # no temp files left


def _restorable(kind: str) -> Tokenizer:
    texts = _synthetic()
    if kind == "symbols":
        return SymbolTokenizer(10)
    if kind == "parse":
        return ParseTokenizer.train([t.split() for t in texts], ["XX", "(S", ")S"])
    return SubwordTokenizer.train(texts, 300, kind)


@pytest.mark.parametrize("kind", ["symbols", "bpe", "wordpiece", "parse"])
def test_load_tokenizer_restores_every_kind_exactly(kind: str, tmp_path: Path) -> None:
    tok = _restorable(kind)
    tok.save(tmp_path / "a")
    loaded = load_tokenizer(tmp_path / "a")
    assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
    texts = ["3 7 1 0 9", ""] if kind == "symbols" else [*_synthetic(50, 1), STRANGE]
    ids = tok.encode_batch(texts)
    assert loaded.encode_batch(texts) == ids
    everything = [list(range(loaded.vocab_size))]  # parse: source in, target out
    assert loaded.decode_batch(everything) == tok.decode_batch(everything)
    if isinstance(tok, SubwordTokenizer):
        assert _pieces(loaded) == _pieces(tok) and loaded.kind == tok.kind
    if isinstance(tok, ParseTokenizer):
        assert (loaded.source, loaded.target) == (tok.source, tok.target)
        assert loaded.encode_target("(S XX )S") == tok.encode_target("(S XX )S")
    loaded.save(tmp_path / "b")  # saving what was loaded writes the same bytes
    for f in (tmp_path / "a").iterdir():
        assert (tmp_path / "b" / f.name).read_bytes() == f.read_bytes()


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SymbolTokenizer(5).save(tmp_path)
    before = (tmp_path / "tokenizer.json").read_text()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(tk.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        SymbolTokenizer(7).save(tmp_path)
    assert (tmp_path / "tokenizer.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]


def test_load_missing_or_corrupt_symbols(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    with pytest.raises(AiaynError, match="tokenizer.json not found"):
        load_tokenizer(tmp_path)
    cases = {
        '{"type": "symbols", "n_sym': "corrupt",
        "[1, 2]": "JSON object",
        '{"type": "symbols", "n_symbols": "7"}': "n_symbols",
        '{"type": "symbols", "n_symbols": 0}': "n_symbols",
        '{"type": "mystery"}': "neither",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(AiaynError, match=message) as err:
            load_tokenizer(tmp_path)
        assert "tokenizer.json" in str(err.value)
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(AiaynError, match="corrupt"):
        load_tokenizer(tmp_path)


@needs_mirror
def test_load_missing_or_corrupt_subword(tmp_path: Path, bpe: SubwordTokenizer) -> None:
    bpe.save(tmp_path)
    path, meta_path = tmp_path / "tokenizer.json", tmp_path / "tokenizer_meta.json"
    text, meta = path.read_text(), json.loads(meta_path.read_text())

    meta_path.unlink()
    with pytest.raises(AiaynError, match="tokenizer_meta.json not found"):
        load_tokenizer(tmp_path)
    for bad, message in [
        ({**meta, "tokenizer_sha256": "0" * 64}, "does not belong"),
        ({**meta, "kind": "unigram"}, "unknown kind"),
        ({**meta, "normalization": "nfkc"}, "normalization"),
    ]:
        meta_path.write_text(json.dumps(bad))
        with pytest.raises(AiaynError, match=message):
            load_tokenizer(tmp_path)

    path.write_text(text[: len(text) // 2])  # a half-written file
    with pytest.raises(AiaynError, match="corrupt"):
        load_tokenizer(tmp_path)

    broken = json.dumps({**json.loads(text), "model": {"type": "Nonsense"}})
    path.write_text(broken)
    meta_path.write_text(
        json.dumps(
            {**meta, "tokenizer_sha256": tk.hashlib.sha256(broken.encode()).hexdigest()}
        )
    )
    with pytest.raises(AiaynError, match="not a valid Hugging Face tokenizer"):
        load_tokenizer(tmp_path)
