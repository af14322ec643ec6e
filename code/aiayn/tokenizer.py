"""Sub-word vocabularies (section 5.1, Training Data and Batching).

> Sentences were encoded using byte-pair encoding [3], which has a shared
> source-target vocabulary of about 37000 tokens. For English-French, we used
> the significantly larger WMT 2014 English-French dataset consisting of 36M
> sentences and split tokens into a 32000 word-piece vocabulary [38].

Four tokenizers share one interface, `Tokenizer`, and the ids
pad=0, bos=1, eos=2, unk=3 (``encode`` adds no BOS/EOS; batching does that).

- `SymbolTokenizer`: the toy copy task; ``"3 7 1"`` is symbols 3, 7, 1.
- `SubwordTokenizer` kind ``"bpe"`` (English-German, [3]): one byte-level BPE
  vocabulary for source and target. Text is UTF-8 bytes before any merge, so
  every string (any script, emoji, control characters) encodes with no
  ``<unk>`` and decodes back exactly.
- `SubwordTokenizer` kind ``"wordpiece"`` (English-French, [38]): greedy
  longest-match word pieces. As in [38], ``▁`` marks the start of a word;
  continuation pieces carry ``##``. The two markers make detokenization
  unambiguous. Word pieces cannot fall back to bytes: a word with a character
  outside the training alphabet (or longer than 99 characters) becomes one
  ``<unk>``, which ``decode`` drops. Unlike [38], the vocabulary is grown by
  BPE merges (as Hugging Face's WordPieceTrainer does, see `_word_pieces`),
  not by language-model likelihood, and a literal ``▁`` in the text reads as
  a space.
- `ParseTokenizer` (constituency parsing, section 6.3): whole words in, tree
  symbols out, two vocabularies; rare words fall back to a class by shape.

Both sub-word kinds see `normalize`'d text, so ``decode(encode(x)) ==
normalize(x)``; this holds for every string under BPE and for every training
sentence under WordPiece (the test suite checks all of Multi30k's train set).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from .download import temp_file_beside
from .errors import AiaynError
from .parsing import XX

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")  # in id order
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "tokenizer_meta.json"  # our metadata beside a Hugging Face file
NORMALIZATION = "nfc+collapse_whitespace+strip"  # names `normalize` in metadata
Kind = Literal["bpe", "wordpiece"]
_SURROGATE = re.compile("[\ud800-\udfff]")


def normalize(text: str) -> str:
    """Unicode NFC, each run of whitespace to one space, none at either end.

    Case and punctuation are kept. Lone surrogates (a Python ``str`` can hold
    them, UTF-8 cannot) become U+FFFD. Sub-word ``decode`` returns this form.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFC", _SURROGATE.sub("\ufffd", text))
    return " ".join(text.split())


@runtime_checkable
class Tokenizer(Protocol):
    """What the data pipeline, the decoder and the CLI need from a vocabulary."""

    @property
    def vocab_size(self) -> int: ...
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...
    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]: ...
    def save(self, directory: Path) -> None: ...


def _checked_ids(ids: Sequence[int], vocab_size: int) -> list[int]:
    """`ids` as plain ints, or AiaynError if one is outside the vocabulary."""
    out = [int(i) for i in ids]
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise AiaynError(
            f"token id {bad[0]} is outside the vocabulary (0..{vocab_size - 1}); "
            "were these ids made with a different tokenizer?"
        )
    return out


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temp file in the same directory.

    The file gets the mode a plain ``open`` gives (0666 less the umask).
    """
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class SymbolTokenizer:
    """Copy-task symbols 0..n_symbols-1, written ``"3 7 1"``, as ids 4..n_symbols+3."""

    def __init__(self, n_symbols: int) -> None:
        if isinstance(n_symbols, bool) or not isinstance(n_symbols, int):
            raise AiaynError(f"n_symbols must be an int, got {n_symbols!r}")
        if n_symbols < 1:
            raise AiaynError(f"n_symbols must be at least 1, got {n_symbols}")
        self.n_symbols = n_symbols

    @property
    def vocab_size(self) -> int:
        return self.n_symbols + len(SPECIAL_TOKENS)

    def encode(self, text: str) -> list[int]:
        ids = []
        for token in text.split():
            if (
                not (token.isascii() and token.isdigit())
                or int(token) >= self.n_symbols
            ):
                raise AiaynError(
                    f"symbol {token!r} is not an integer in 0..{self.n_symbols - 1}; "
                    "write copy-task input as space-separated symbols, e.g. '3 7 1'"
                )
            ids.append(int(token) + len(SPECIAL_TOKENS))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        ids = _checked_ids(ids, self.vocab_size)
        n_special = len(SPECIAL_TOKENS)
        return " ".join(str(i - n_special) for i in ids if i >= n_special)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"type": "symbols", "n_symbols": self.n_symbols}
        _write_atomic(directory / TOKENIZER_FILE, json.dumps(meta) + "\n")

    def __repr__(self) -> str:
        return f"SymbolTokenizer(n_symbols={self.n_symbols})"


def _untrained(kind: Kind, vocab_size: int) -> tuple[HFTokenizer, trainers.Trainer]:
    """An empty BPE tokenizer for `kind` and the trainer that fills it.

    Both kinds train BPE merges; WordPiece then renames them (`_word_pieces`).
    """
    hf = HFTokenizer(models.BPE(unk_token="<unk>"))
    if kind == "bpe":
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()  # all 256 bytes
    else:
        marker = {"replacement": "▁", "prepend_scheme": "always", "split": True}
        hf.pre_tokenizer = pre_tokenizers.Metaspace(**marker)  # "a b" -> "▁a", "▁b"
        alphabet = []  # the characters seen, sorted by code point
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        show_progress=False,
    )  # no continuing_subword_prefix: see `_word_pieces`
    return hf, trainer


def _word_pieces(bpe: HFTokenizer) -> HFTokenizer:
    """The WordPiece tokenizer of a BPE trained on ``▁``-marked words, same ids.

    Hugging Face's WordPieceTrainer is this BPE training with the prefix ``##``
    on every piece inside a word, then ``WordPiece::from_bpe``. It creates the
    ``##`` pieces in hash-map order, so their ids, and the merges that equal
    counts tie-break by id, change from run to run (huggingface/tokenizers
    issue 1794). Here every word starts with ``▁``, so a piece without a
    leading ``▁`` is inside a word: the same merges, counted alike, are learned
    without the prefix (every id then deterministic) and renamed ``##`` after.
    Unlike Hugging Face's, the vocabulary keeps no bare copy of each character
    (no word starts with one), so those ids go to merges instead.
    """
    n = len(SPECIAL_TOKENS)
    vocab = {
        p if i < n or p.startswith("▁") else f"##{p}": i
        for p, i in bpe.get_vocab(with_added_tokens=False).items()
    }
    hf = HFTokenizer(models.WordPiece(vocab, unk_token="<unk>"))  # "##" continues
    hf.pre_tokenizer = bpe.pre_tokenizer
    # ["▁a", "##b", "▁c"] -> ["▁a", "b", " ▁c"] -> "ab c"
    wordpiece = decoders.WordPiece(prefix="##", cleanup=False)
    hf.decoder = decoders.Sequence([wordpiece, decoders.Replace("▁", "")])
    hf.add_special_tokens(list(SPECIAL_TOKENS))
    return hf


class SubwordTokenizer:
    """A trained Hugging Face BPE or WordPiece vocabulary behind `Tokenizer`."""

    def __init__(self, hf: HFTokenizer, kind: Kind) -> None:
        found = [hf.id_to_token(i) for i in range(len(SPECIAL_TOKENS))]
        if found != list(SPECIAL_TOKENS):
            raise AiaynError(
                f"ids 0..3 must be {list(SPECIAL_TOKENS)}, this vocabulary has {found}"
            )
        hf.encode_special_tokens = True  # the text "<s>" is text, never BOS
        self.hf = hf
        self.kind = kind

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, kind: Kind
    ) -> SubwordTokenizer:
        """Learn a vocabulary of about `vocab_size` entries from `texts`.

        BPE never has fewer than 260 (4 special tokens and 256 bytes). Training
        is deterministic: the same texts, in any order, give the same
        ``tokenizer.json`` byte for byte, in any process and with any number of
        threads (checked with tokenizers 0.23 and 1 or 2 threads).
        """
        if kind not in ("bpe", "wordpiece"):
            raise AiaynError(f"kind must be 'bpe' or 'wordpiece', got {kind!r}")
        if vocab_size <= len(SPECIAL_TOKENS):
            raise AiaynError(f"vocab_size must exceed 4, got {vocab_size}")
        hf, trainer = _untrained(kind, vocab_size)
        count = 0

        def sentences() -> Iterator[str]:
            nonlocal count
            for text in texts:
                count += 1
                yield normalize(text)

        hf.train_from_iterator(sentences(), trainer)
        if count == 0:
            raise AiaynError("cannot train a tokenizer on no sentences")
        return cls(hf if kind == "bpe" else _word_pieces(hf), kind)

    @property
    def vocab_size(self) -> int:
        """The trained size (the `vocab_size` asked for is a target)."""
        return self.hf.get_vocab_size(with_added_tokens=True)

    def tokenize(self, text: str) -> list[str]:
        """The sub-word pieces of `text`, for display.

        WordPiece pieces are shown as stored (``▁`` starts a word, ``##``
        continues one); BPE pieces as the text they stand for (``" junge"``),
        not in the byte alphabet they are stored in (``"Ġjunge"``).
        """
        tokens = self.hf.encode(normalize(text), add_special_tokens=False).tokens
        if self.kind == "bpe":
            return [self.hf.decoder.decode([t]) for t in tokens]
        return tokens

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(normalize(text), add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        ids = _checked_ids(ids, self.vocab_size)
        return self.hf.decode(ids, skip_special_tokens=True)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        texts = [normalize(t) for t in texts]
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        batch = [_checked_ids(ids, self.vocab_size) for ids in batch]
        return self.hf.decode_batch(batch, skip_special_tokens=True)

    def save(self, directory: Path) -> None:
        """Write the Hugging Face ``tokenizer.json`` and our ``tokenizer_meta.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        text = self.hf.to_str()
        meta = {
            "type": "subword",
            "kind": self.kind,
            "normalization": NORMALIZATION,
            "tokenizer_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }
        _write_atomic(directory / TOKENIZER_FILE, text)
        _write_atomic(directory / META_FILE, json.dumps(meta, indent=2) + "\n")

    def __repr__(self) -> str:
        return f"SubwordTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"


_UNK_SUFFIXES = ("ing", "ed", "ly", "ion", "er", "est", "al", "ive", "able", "s")
_UNK_SHAPES = ("", "-hyphen", *(f"-{s}" for s in _UNK_SUFFIXES))
UNK_CLASSES = (  # what `unknown_class` returns, plain "<unk>" (UNK_ID) aside
    "<unk-num>",
    *(f"<unk{c}{s}>" for c in ("", "-Cap") for s in _UNK_SHAPES if c or s),
)


def unknown_class(word: str) -> str:
    """The class a word outside the vocabulary falls back to, by its shape.

    After the Berkeley parser's unknown-word signatures, simplified: a digit
    (``<unk-num>``), else a capital first letter (``-Cap``) and an inner hyphen
    (``-hyphen``) or a common English suffix (``-ing``, ``-ly``, ``-s`` ...).
    A word with none of these is plain ``<unk>``.
    """
    if any(c.isdigit() for c in word):
        return "<unk-num>"
    cap = "-Cap" if word[:1].isupper() else ""
    if "-" in word[1:-1]:
        return f"<unk{cap}-hyphen>"
    low = word.lower()
    suffix = next(
        (s for s in _UNK_SUFFIXES if low.endswith(s) and len(low) > len(s) + 2), None
    )
    return f"<unk{cap}-{suffix}>" if suffix else f"<unk{cap}>"


class ParseTokenizer:
    """Parsing (section 6.3): words in, linearised-tree symbols out.

    Two vocabularies, each starting with the special ids 0-3. The source holds
    the shape classes of `unknown_class`, then the training words (those seen
    `min_count` times or more); any other word becomes its class. The target
    holds the tree symbols (for the Penn Treebank ``XX``, and ``(L`` and ``)L``
    for each phrase label L). ``encode`` reads a sentence of space-separated
    words; ``decode`` writes space-separated symbols. ``vocab_size`` is the
    target's (the softmax), ``src_vocab_size`` the source's.

    A `shared` tokenizer (``train(..., shared=True)``, for leaves that are the
    words themselves) has one vocabulary: the target is the source followed by
    the tree symbols, so a word has the same id on both sides and the model can
    share one embedding; a target word outside the vocabulary becomes its class.
    If its tree symbols also hold ``XX``, the leaves are one word ahead
    (``ahead``, see `aiayn.tasks.parse.target_sequence`).
    """

    def __init__(self, source: Sequence[str], target: Sequence[str]) -> None:
        n = len(SPECIAL_TOKENS)
        for name, vocab in (("source", source), ("target", target)):
            if tuple(vocab[:n]) != SPECIAL_TOKENS or len(set(vocab)) != len(vocab):
                raise AiaynError(
                    f"the {name} vocabulary must start with {list(SPECIAL_TOKENS)} "
                    "and hold no duplicates"
                )
        if missing := set(UNK_CLASSES) - set(source):
            raise AiaynError(f"the source vocabulary lacks {sorted(missing)}")
        self.source, self.target = list(source), list(target)
        n_src = len(self.source)  # shared: every source id means the same word
        self.shared = len(self.target) > n_src and self.target[:n_src] == self.source
        # Leaves one word ahead (parse_leaves="ahead"): a shared vocabulary whose
        # tree symbols hold the leaf XX, written for the leaf after the last word.
        self.ahead = self.shared and XX in self.target[n_src:]
        # Text never maps to pad/bos/eos: a literal "<pad>" word is an unknown word.
        self._src = {w: i for i, w in enumerate(self.source) if i >= n}
        self._src["<unk>"] = UNK_ID
        self._tgt = {s: i for i, s in enumerate(self.target) if i >= n}

    @classmethod
    def train(
        cls,
        sentences: Iterable[Sequence[str]],
        symbols: Sequence[str],
        min_count: int = 2,
        shared: bool = False,
    ) -> ParseTokenizer:
        """Keep the words of `sentences` seen at least `min_count` times.

        With `shared`, the target vocabulary is the source's, then `symbols`.
        """
        counts = Counter(w for s in sentences for w in s)
        reserved = {*SPECIAL_TOKENS, *UNK_CLASSES}
        kept = sorted(
            (w for w, c in counts.items() if c >= min_count and w not in reserved),
            key=lambda w: (-counts[w], w),
        )  # frequent words first, ties alphabetical: deterministic
        source = [*SPECIAL_TOKENS, *UNK_CLASSES, *kept]
        if shared:
            return cls(source, [*source, *symbols])
        return cls(source, [*SPECIAL_TOKENS, *symbols])

    @property
    def vocab_size(self) -> int:
        return len(self.target)

    @property
    def src_vocab_size(self) -> int:
        return len(self.source)

    def tokenize(self, text: str) -> list[str]:
        """Each word as the model sees it: itself, or its unknown-word class."""
        return [self.source[i] for i in self.encode(text)]

    def encode(self, text: str) -> list[int]:
        src = self._src
        return [
            src[w] if w in src else src.get(unknown_class(w), UNK_ID)
            for w in text.split()
        ]

    def encode_target(self, text: str) -> list[int]:
        """Space-separated tree symbols to target ids (unknown ones to UNK_ID).

        In a `shared` vocabulary a symbol that is no target symbol is a word,
        encoded as the source encodes it (itself, or its unknown-word class).
        """
        if self.shared:
            return [
                self._tgt[s] if s in self._tgt else self.encode(s)[0]
                for s in text.split()
            ]
        return [self._tgt.get(s, UNK_ID) for s in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        ids = _checked_ids(ids, self.vocab_size)
        n = len(SPECIAL_TOKENS)
        unk = UNK_ID if self.shared else n  # a shared target writes unknown words
        return " ".join(self.target[i] for i in ids if i >= n or i == unk)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        obj = {"type": "parse", "source": self.source, "target": self.target}
        _write_atomic(directory / TOKENIZER_FILE, json.dumps(obj) + "\n")

    def __repr__(self) -> str:
        return (
            f"ParseTokenizer(src_vocab_size={self.src_vocab_size}, "
            f"vocab_size={self.vocab_size})"
        )


def _read_json(path: Path, hint: str) -> tuple[str, dict]:
    """The text of `path` and its JSON object, or AiaynError naming the file."""
    if not path.is_file():
        raise AiaynError(f"{path} not found; {hint}")
    try:
        text = path.read_text(encoding="utf-8")
        obj = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AiaynError(f"{path} is unreadable or corrupt ({e}); {hint}") from e
    if not isinstance(obj, dict):
        raise AiaynError(f"{path} does not hold a JSON object; {hint}")
    return text, obj


def load_tokenizer(directory: Path) -> Tokenizer:
    """The tokenizer that `save` wrote into `directory`."""
    directory = Path(directory)
    path, meta_path = directory / TOKENIZER_FILE, directory / META_FILE
    hint = "train the tokenizer again (e.g. rerun training) to rewrite it"
    text, obj = _read_json(path, hint)
    if obj.get("type") == "symbols":
        n = obj.get("n_symbols")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise AiaynError(f"{path}: n_symbols must be a positive int, got {n!r}")
        return SymbolTokenizer(n)
    if obj.get("type") == "parse":
        source, target = obj.get("source"), obj.get("target")
        for name, v in (("source", source), ("target", target)):
            if not (isinstance(v, list) and all(isinstance(w, str) for w in v)):
                raise AiaynError(f"{path}: {name} must be a list of strings; {hint}")
        return ParseTokenizer(source, target)
    if "model" not in obj:
        raise AiaynError(f"{path} is neither a symbol nor a sub-word tokenizer; {hint}")
    _, meta = _read_json(meta_path, hint)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if meta.get("tokenizer_sha256") != digest:
        raise AiaynError(f"{meta_path} does not belong to {path} (sha256); {hint}")
    if meta.get("kind") not in ("bpe", "wordpiece"):
        raise AiaynError(f"{meta_path}: unknown kind {meta.get('kind')!r}; {hint}")
    if meta.get("normalization") != NORMALIZATION:
        raise AiaynError(
            f"{meta_path}: normalization {meta.get('normalization')!r} is not this "
            f"version's {NORMALIZATION!r}; {hint}"
        )
    try:
        hf = HFTokenizer.from_str(text)
    except Exception as e:  # the Rust parser raises plain Exception
        raise AiaynError(f"{path} is not a valid Hugging Face tokenizer ({e})") from e
    return SubwordTokenizer(hf, meta["kind"])
