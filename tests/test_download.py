"""fetch(): mirrors (directory, http, file://), the cache, and every way a download
can fail without leaving anything half-written in the cache. All offline: the
only server is a loopback one started here."""

import hashlib
import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest

from aiayn import download
from aiayn.download import cache_dir, fetch, sha256_file
from aiayn.errors import AiaynError

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB: several chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()
REL = "toy/data.bin"

Respond = Callable[[str], tuple[bytes, int] | None]  # path -> (body, Content-Length)


# conftest.py's autouse fixture removes AIAYN_DATA_MIRROR and sets AIAYN_CACHE to
# tmp_path / "env-cache" for every test.


@pytest.fixture
def toy_mirror(tmp_path: Path) -> Path:
    """A mirror directory holding only REL (not the shared data mirror)."""
    root = tmp_path / "mirror"
    (root / "toy").mkdir(parents=True)
    (root / REL).write_bytes(PAYLOAD)
    return root


def closed_port_url() -> str:
    """A loopback URL on which nothing listens: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{REL}"


def files_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@contextmanager
def serve(respond: Respond) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server; yields (base URL, paths requested so far)."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            found = respond(self.path)
            if found is None:
                self.send_error(404)
                return
            body, length = found
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)  # HTTP/1.0: the connection closes after this

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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


def serving(body: bytes, length: int | None = None) -> Respond:
    def respond(path: str) -> tuple[bytes, int] | None:
        if path != f"/{REL}":
            return None
        return body, len(body) if length is None else length

    return respond


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(PAYLOAD)
    assert sha256_file(path) == SHA
    assert sha256_file(str(path)) == SHA


def test_cache_dir_from_env_or_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert cache_dir() == tmp_path / "env-cache"
    monkeypatch.delenv("AIAYN_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "aiayn"


@pytest.mark.parametrize("as_str", [False, True])
def test_mirror_directory(toy_mirror: Path, tmp_path: Path, as_str: bool) -> None:
    cache = tmp_path / "cache"
    src = str(toy_mirror) if as_str else toy_mirror
    path = fetch(REL, SHA, closed_port_url(), mirror=src, cache_dir=cache)
    assert path == cache / REL
    assert path.read_bytes() == PAYLOAD
    assert files_in(cache) == [path]  # no temp file left beside it


def test_env_mirror_and_env_cache(
    monkeypatch: pytest.MonkeyPatch, toy_mirror: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIAYN_DATA_MIRROR", str(toy_mirror))
    path = fetch(REL, SHA.upper(), closed_port_url(), progress=False)
    assert path == tmp_path / "env-cache" / REL
    assert path.read_bytes() == PAYLOAD


def test_file_url_mirror(toy_mirror: Path, tmp_path: Path) -> None:
    path = fetch(
        REL, SHA, closed_port_url(), mirror=toy_mirror.as_uri(), cache_dir=tmp_path
    )
    assert path.read_bytes() == PAYLOAD


def test_http_mirror_then_cache_hit(tmp_path: Path) -> None:
    with serve(serving(PAYLOAD)) as (base, seen):
        path = fetch(REL, SHA, closed_port_url(), mirror=base + "/", cache_dir=tmp_path)
        assert seen == [f"/{REL}"]
        assert path.read_bytes() == PAYLOAD
        again = fetch(REL, SHA, closed_port_url(), mirror=base, cache_dir=tmp_path)
        assert again == path
        assert seen == [f"/{REL}"]  # served from the cache: no new request


def test_canonical_url_when_no_mirror(tmp_path: Path) -> None:
    with serve(serving(PAYLOAD)) as (base, seen):
        path = fetch(REL, SHA, f"{base}/{REL}", cache_dir=tmp_path)
    assert seen == [f"/{REL}"]
    assert path.read_bytes() == PAYLOAD


def test_corrupted_transfer(tmp_path: Path) -> None:
    bad = bytearray(PAYLOAD)
    bad[1000] ^= 0xFF
    with serve(serving(bytes(bad))) as (base, _):
        with pytest.raises(AiaynError) as err:
            fetch(REL, SHA, closed_port_url(), mirror=base, cache_dir=tmp_path)
    msg = str(err.value)
    assert "Checksum mismatch" in msg and REL in msg
    assert SHA in msg and hashlib.sha256(bad).hexdigest() in msg
    assert files_in(tmp_path) == []


def test_interrupted_transfer(tmp_path: Path) -> None:
    respond = serving(PAYLOAD[:5000], length=len(PAYLOAD))  # then closes
    with serve(respond) as (base, _):
        with pytest.raises(AiaynError, match="Incomplete download") as err:
            fetch(REL, SHA, closed_port_url(), mirror=base, cache_dir=tmp_path)
    assert f"expected {len(PAYLOAD)} bytes" in str(err.value)
    assert "got 5000" in str(err.value)
    assert files_in(tmp_path) == []


def test_interrupted_copy_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, toy_mirror: Path, tmp_path: Path
) -> None:
    def broken_copy(stream: BinaryIO, out: BinaryIO, *args: object) -> None:
        out.write(stream.read(100))
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "_copy", broken_copy)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        fetch(REL, SHA, closed_port_url(), mirror=toy_mirror, cache_dir=cache)
    assert files_in(cache) == []


def test_corrupted_cache_is_refetched(tmp_path: Path) -> None:
    with serve(serving(PAYLOAD)) as (base, seen):
        path = fetch(REL, SHA, closed_port_url(), mirror=base, cache_dir=tmp_path)
        path.write_bytes(b"rotten bits")
        again = fetch(REL, SHA, closed_port_url(), mirror=base, cache_dir=tmp_path)
        assert seen == [f"/{REL}", f"/{REL}"]
    assert again == path
    assert again.read_bytes() == PAYLOAD


def test_file_placed_in_cache_is_used_offline(tmp_path: Path) -> None:
    (tmp_path / "toy").mkdir()
    (tmp_path / REL).write_bytes(PAYLOAD)
    assert fetch(REL, SHA, closed_port_url(), cache_dir=tmp_path) == tmp_path / REL


def test_offline_without_mirror(tmp_path: Path) -> None:
    url = closed_port_url()
    with pytest.raises(AiaynError) as err:
        fetch(REL, SHA, url, cache_dir=tmp_path)
    msg = str(err.value)
    assert REL in msg and url in msg
    assert "AIAYN_DATA_MIRROR" in msg and "--data-mirror" in msg
    assert str(tmp_path / REL) in msg  # where to place the file by hand
    assert files_in(tmp_path) == []


def test_timeout(tmp_path: Path) -> None:
    with socket.socket() as s:  # accepts connections (backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        base = f"http://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(AiaynError, match="timed out"):
            fetch(
                REL,
                SHA,
                closed_port_url(),
                mirror=base,
                cache_dir=tmp_path,
                timeout=0.3,
            )
    assert files_in(tmp_path) == []


def test_http_404(tmp_path: Path) -> None:
    with serve(lambda path: None) as (base, _):
        with pytest.raises(AiaynError, match="404"):
            fetch(REL, SHA, closed_port_url(), mirror=base, cache_dir=tmp_path)
    assert files_in(tmp_path) == []


def test_mirror_directory_without_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AiaynError, match="not in the data mirror") as err:
        fetch(REL, SHA, closed_port_url(), mirror=empty, cache_dir=tmp_path / "c")
    assert str(empty / REL) in str(err.value)
    with pytest.raises(AiaynError, match="not a directory"):
        fetch(REL, SHA, closed_port_url(), mirror=tmp_path / "nope", cache_dir=empty)
    assert files_in(tmp_path) == []


def test_mirror_directory_with_a_bad_copy(toy_mirror: Path, tmp_path: Path) -> None:
    (toy_mirror / REL).write_bytes(PAYLOAD[:-1] + b"!")
    cache = tmp_path / "cache"
    with pytest.raises(AiaynError, match="Checksum mismatch"):
        fetch(REL, SHA, closed_port_url(), mirror=toy_mirror, cache_dir=cache)
    assert files_in(cache) == []


@pytest.mark.parametrize("rel", ["", "/etc/passwd", "../escape.bin"])
def test_relpath_must_stay_inside(rel: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        fetch(rel, SHA, closed_port_url(), cache_dir=tmp_path)
