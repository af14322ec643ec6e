"""Multi30k, the small translation corpus that stands in for WMT 2014 here.

Section 5.1 of the paper trains on WMT 2014 English-German (about 4.5 million
sentence pairs) and English-French (36 million). That does not fit a laptop or a
test suite, so this reproduction trains end to end on Multi30k (Elliott et al.
2016, "Multi30K: Multilingual English-German Image Descriptions"), the WMT 2016
multimodal translation task 1: image captions, 29,000 training sentences aligned
line by line across English, German, French and Czech.

Files come from https://github.com/multi30k/dataset (``data/task1/raw/``), are
checked against the sha256 table below and cached by `aiayn.download.fetch`;
a mirror holds them as ``multi30k/<split>.<lang>.gz``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from .config import PREPROCESSING
from .download import fetch
from .errors import AiaynError

BASE_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
SPLITS = (
    "train",
    "val",
    "test_2016_flickr",
    "test_2017_flickr",
    "test_2017_mscoco",
    "test_2018_flickr",
)
LANGS = ("en", "de", "fr", "cs")

# sha256 of every published file; a split/lang pair not listed was not published.
SHA256: dict[str, str] = {
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "test_2016_flickr.cs.gz": (
        "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1"
    ),
    "test_2016_flickr.de.gz": (
        "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8"
    ),
    "test_2016_flickr.en.gz": (
        "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9"
    ),
    "test_2016_flickr.fr.gz": (
        "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90"
    ),
    "test_2017_flickr.de.gz": (
        "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee"
    ),
    "test_2017_flickr.en.gz": (
        "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074"
    ),
    "test_2017_flickr.fr.gz": (
        "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496"
    ),
    "test_2017_mscoco.de.gz": (
        "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338"
    ),
    "test_2017_mscoco.en.gz": (
        "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58"
    ),
    "test_2017_mscoco.fr.gz": (
        "754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0"
    ),
    "test_2018_flickr.cs.gz": (
        "7d0a9db904f94c554a8c58049a9f3a5357c27f46cc3d710d70cb0b4a2585b8c2"
    ),
    "test_2018_flickr.de.gz": (
        "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608"
    ),
    "test_2018_flickr.en.gz": (
        "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d"
    ),
    "test_2018_flickr.fr.gz": (
        "fb2b83fcceb937a4f7e3e93c1c51c22aba92f1e342391e6b5ba392b16a920501"
    ),
}
# Sentences per split, from the dataset's documentation (same in every language).
LINE_COUNTS: dict[str, int] = {"train": 29000, "val": 1014, "test_2016_flickr": 1000}


def available() -> dict[str, tuple[str, ...]]:
    """Split -> the languages published for it (those with a checksum)."""
    return {
        split: tuple(lang for lang in LANGS if f"{split}.{lang}.gz" in SHA256)
        for split in SPLITS
    }


def _filename(split: str, lang: str) -> str:
    """`split.lang.gz`, or AiaynError listing what exists."""
    published = available()
    listing = "; ".join(f"{s}: {', '.join(ls)}" for s, ls in published.items())
    if split not in published:
        raise AiaynError(
            f"Unknown Multi30k split {split!r}. Splits: {', '.join(SPLITS)}."
        )
    if lang not in published[split]:
        raise AiaynError(
            f"Multi30k has no {split!r} file in language {lang!r}. "
            f"Published: {listing}."
        )
    return f"{split}.{lang}.gz"


def load(
    split: str,
    lang: str,
    *,
    mirror: str | Path | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> list[str]:
    """The sentences of one split in one language, one per line, in file order."""
    name = _filename(split, lang)
    path = fetch(
        f"multi30k/{name}",
        SHA256[name],
        BASE_URL + name,
        mirror=mirror,
        cache_dir=cache_dir,
        progress=progress,
    )
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    lines = text.split("\n")  # not splitlines(): it also splits on U+2028 etc.
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it opens no new one
    expected = LINE_COUNTS.get(split)
    if expected is not None and len(lines) != expected:
        raise AiaynError(
            f"multi30k/{name} has {len(lines)} lines, expected {expected}, although "
            "its checksum matched: aiayn.multi30k's tables disagree; please report."
        )
    return lines


def preprocess(lines: list[str], lang: str, kind: str = "raw") -> list[str]:
    """``lines`` as the Multi30k literature reads them.

    ``raw``: unchanged, cased, as published (the sub-word tokenizer does the rest).
    ``lc.norm.tok``: the official ``*.lc.norm.tok.*`` files of the Multi30k
    repository, rebuilt from the raw text: lowercased, Moses punctuation
    normalisation, Moses tokenisation with XML escaping (``'`` becomes
    ``&apos;``), as in the dataset's ``lowercase.perl | normalize-punctuation.perl
    | tokenizer.perl`` pipeline; sacremoses is the Python port of those scripts.
    """
    if kind == "raw":
        return list(lines)
    if kind != "lc.norm.tok":
        raise AiaynError(
            f"unknown preprocessing {kind!r}; choose one of {', '.join(PREPROCESSING)}"
        )
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    normalizer, tokenizer = MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)
    return [
        tokenizer.tokenize(normalizer.normalize(line.lower()), escape=True,
                           return_str=True)
        for line in lines
    ]  # fmt: skip


def postprocess(lines: list[str], lang: str, kind: str = "raw") -> list[str]:
    """Model output back to plain text: ``lc.norm.tok`` is Moses-detokenised and
    unescaped (``&apos;`` becomes ``'``), so it is scored against the raw references
    like any other output; its case stays lower."""
    if kind == "raw":
        return list(lines)
    preprocess([], lang, kind)  # the same check of ``kind``
    from sacremoses import MosesDetokenizer

    detokenizer = MosesDetokenizer(lang=lang)
    return [detokenizer.detokenize(line.split(), unescape=True) for line in lines]


def load_pairs(
    split: str,
    src_lang: str,
    tgt_lang: str,
    *,
    mirror: str | Path | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    preprocessing: str = "raw",
) -> list[tuple[str, str]]:
    """Aligned (source, target) sentence pairs of one split, preprocessed."""
    for lang in (src_lang, tgt_lang):
        _filename(split, lang)  # fail on a bad pair before fetching anything
    kw = {"mirror": mirror, "cache_dir": cache_dir, "progress": progress}
    src = preprocess(load(split, src_lang, **kw), src_lang, preprocessing)
    tgt = preprocess(load(split, tgt_lang, **kw), tgt_lang, preprocessing)
    if len(src) != len(tgt):
        raise AiaynError(
            f"Multi30k {split}: {len(src)} {src_lang} lines but {len(tgt)} "
            f"{tgt_lang} lines; the files are not aligned."
        )
    return list(zip(src, tgt, strict=True))
