"""Files the package writes atomically get the user's umask, not tempfile's 0600.

Covers `aiayn.download` (the cache and its temp-file helpers) and the tokenizer
files; checkpoints are checked in test_checkpoint.py.
"""

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiayn.download import fetch, temp_dir_beside, temp_file_beside
from aiayn.tokenizer import ParseTokenizer, SubwordTokenizer, SymbolTokenizer

PAYLOAD = b"some bytes\n" * 100


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=["022", "077", "002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_temp_file_and_dir_take_the_umask(tmp_path: Path, umask: int) -> None:
    fd, path = temp_file_beside(tmp_path / "x.json")
    os.close(fd)
    folder = temp_dir_beside(tmp_path / "step_1")
    assert path.parent == folder.parent == tmp_path
    assert path.name.startswith(".x.json.") and folder.name.startswith(".step_1.")
    assert _mode(path) == 0o666 & ~umask and path.stat().st_size == 0
    assert _mode(folder) == 0o777 & ~umask and not any(folder.iterdir())
    fd2, other = temp_file_beside(tmp_path / "x.json")  # a fresh name each time
    os.close(fd2)
    assert other != path


def test_download_cache_takes_the_umask(tmp_path: Path, umask: int) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "a.bin").write_bytes(PAYLOAD)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    got = fetch(
        "toy/a.bin", sha, "https://example.invalid/a.bin",
        mirror=mirror, cache_dir=tmp_path / "cache", progress=False,
    )  # fmt: skip
    assert got.read_bytes() == PAYLOAD
    assert _mode(got) == 0o666 & ~umask  # was always 0644
    assert _mode(got.parent) == 0o777 & ~umask
    assert [p.name for p in got.parent.iterdir()] == ["a.bin"]  # no temp file


def test_tokenizer_files_take_the_umask(tmp_path: Path, umask: int) -> None:
    texts = ["ab abc b", "ca bc a"]
    tokenizers = {
        "symbols": SymbolTokenizer(5),
        "subword": SubwordTokenizer.train(texts, 30, "wordpiece"),
        "parse": ParseTokenizer.train([t.split() for t in texts], ["XX"]),
    }
    for name, tok in tokenizers.items():
        tok.save(tmp_path / name)
        files = sorted((tmp_path / name).iterdir())
        assert files and all(_mode(f) == 0o666 & ~umask for f in files), name
        assert _mode(tmp_path / name) == 0o777 & ~umask
