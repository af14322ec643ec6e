"""Multi30k loading from the shared data mirror (directory and loopback http)."""

import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from aiayn import multi30k
from aiayn.errors import AiaynError

MIRRORED = [(s, lang) for s in multi30k.LINE_COUNTS for lang in multi30k.LANGS]
# The data mirror comes from conftest.py's `mirror` fixture (skipped without one);
# its autouse fixture isolates AIAYN_DATA_MIRROR and AIAYN_CACHE for every test.


@contextmanager
def serve_mirror(root: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``root`` over loopback http; yields (base URL, paths requested)."""
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_checksums_match_the_mirror_list(mirror: Path) -> None:
    listed = dict(
        reversed(line.split()) for line in (mirror / "multi30k/SHA256SUMS").open()
    )
    assert listed  # the mirror's list is not empty
    for name, sha in listed.items():
        assert multi30k.SHA256[name] == sha


def test_available_pairs() -> None:
    published = multi30k.available()
    assert tuple(published) == multi30k.SPLITS
    assert published["train"] == ("en", "de", "fr", "cs")
    assert published["test_2017_mscoco"] == ("en", "de", "fr")
    assert published["test_2017_flickr"] == ("en", "de", "fr")
    assert published["test_2018_flickr"] == ("en", "de", "fr", "cs")
    assert sum(len(v) for v in published.values()) == len(multi30k.SHA256) == 22


@pytest.mark.parametrize(("split", "lang"), MIRRORED)
def test_load_from_mirror_directory(
    split: str, lang: str, mirror: Path, tmp_path: Path
) -> None:
    lines = multi30k.load(
        split, lang, mirror=mirror, cache_dir=tmp_path, progress=False
    )
    assert len(lines) == multi30k.LINE_COUNTS[split]
    assert all(isinstance(x, str) and x.strip() and "\n" not in x for x in lines)
    assert (tmp_path / "multi30k" / f"{split}.{lang}.gz").is_file()


def test_known_first_lines(mirror: Path, tmp_path: Path) -> None:
    pairs = multi30k.load_pairs("val", "en", "de", mirror=mirror, cache_dir=tmp_path)
    assert len(pairs) == 1014
    assert pairs[0] == (
        "A group of men are loading cotton onto a truck",
        "Eine Gruppe von Männern lädt Baumwolle auf einen Lastwagen",
    )
    assert pairs[1][0] == "A man sleeping in a green room on a couch."


def test_content_is_kept(mirror: Path, tmp_path: Path) -> None:
    fr = multi30k.load("val", "fr", mirror=mirror, cache_dir=tmp_path)
    assert any(x != x.strip() for x in fr)  # only the newline is stripped


@pytest.mark.parametrize("split", list(multi30k.LINE_COUNTS))
def test_pairs_are_aligned(split: str, mirror: Path, tmp_path: Path) -> None:
    pairs = multi30k.load_pairs(split, "de", "en", mirror=mirror, cache_dir=tmp_path)
    assert len(pairs) == multi30k.LINE_COUNTS[split]
    assert all(len(p) == 2 and p[0] and p[1] for p in pairs)


def test_http_mirror_and_cache_hit(mirror: Path, tmp_path: Path) -> None:
    with serve_mirror(mirror) as (base, seen):
        lines = multi30k.load("val", "de", mirror=base, cache_dir=tmp_path)
        assert len(lines) == 1014
        assert seen == ["/multi30k/val.de.gz"]
        again = multi30k.load("val", "de", mirror=base, cache_dir=tmp_path)
        assert again == lines
        assert seen == ["/multi30k/val.de.gz"]  # from the cache this time


def test_env_mirror_and_env_cache(
    monkeypatch: pytest.MonkeyPatch, mirror: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIAYN_DATA_MIRROR", str(mirror))
    assert len(multi30k.load("test_2016_flickr", "cs")) == 1000
    assert (tmp_path / "env-cache/multi30k/test_2016_flickr.cs.gz").is_file()


def test_offline_without_mirror(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens
    monkeypatch.setattr(multi30k, "BASE_URL", f"http://127.0.0.1:{port}/raw/")
    with pytest.raises(AiaynError) as err:
        multi30k.load("val", "de", cache_dir=tmp_path)
    msg = str(err.value)
    assert "multi30k/val.de.gz" in msg
    assert f"http://127.0.0.1:{port}/raw/val.de.gz" in msg
    assert "AIAYN_DATA_MIRROR" in msg
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_split_not_in_mirror(mirror: Path, tmp_path: Path) -> None:
    with pytest.raises(AiaynError, match="not in the data mirror") as err:
        multi30k.load("test_2018_flickr", "en", mirror=mirror, cache_dir=tmp_path)
    assert "multi30k/test_2018_flickr.en.gz" in str(err.value)


def test_unknown_split_or_language() -> None:
    with pytest.raises(AiaynError, match="Unknown Multi30k split 'test'") as err:
        multi30k.load("test", "en")
    assert "test_2016_flickr" in str(err.value)
    with pytest.raises(AiaynError, match="test_2017_mscoco: en, de, fr;"):
        multi30k.load("test_2017_mscoco", "cs")
    with pytest.raises(AiaynError, match="language 'ja'"):
        multi30k.load_pairs("train", "en", "ja")


def test_lc_norm_tok_rebuilds_the_official_preprocessing() -> None:
    """Lowercase, Moses punctuation normalisation, Moses tokens, XML escaping."""
    from aiayn.multi30k import preprocess

    en = preprocess(["A boy sits on a woman's shoulders."], "en", "lc.norm.tok")
    assert en == ["a boy sits on a woman &apos;s shoulders ."]
    fr = preprocess(["Un groupe d'hommes chargent du coton."], "fr", "lc.norm.tok")
    assert fr == ["un groupe d&apos; hommes chargent du coton ."]
    de = preprocess(["Ein Mann  schläft (im Zelt)."], "de", "lc.norm.tok")
    assert de == ["ein mann schläft ( im zelt ) ."]
    raw = ["A Man sleeps."]
    assert preprocess(raw, "en") == raw and preprocess(raw, "en", "raw") is not raw
    with pytest.raises(AiaynError, match="unknown preprocessing 'bpe'"):
        preprocess(raw, "en", "bpe")
