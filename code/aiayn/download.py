"""Fetch a public data file once, verify its sha256, and cache it.

Not a paper concept: this is the plumbing behind the data of section 5.1
(Multi30k stands in for WMT 2014, see `aiayn.multi30k`) and section 6.3 (the
Penn Treebank sample, see `aiayn.ptb`). Every file is named by a path relative
to a data root (e.g. ``multi30k/train.de.gz``), a sha256 and a canonical URL.

Source, in order: the ``mirror`` argument, else env ``AIAYN_DATA_MIRROR``, else
the canonical URL. A mirror is a local directory or a base URL (``http://``,
``https://``, ``file://``) holding the file at ``<mirror>/<relpath>``. The cache
is env ``AIAYN_CACHE`` or ``~/.cache/aiayn``, laid out the same way. Bytes go
to a temp file beside the target and are moved into place (``os.replace``)
only once their checksum matches, so the cache never holds half a file.
Cached files get the mode a plain ``open`` gives (0666 less the umask), and so
does every file that `temp_file_beside` and `temp_dir_beside` start.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import AiaynError

MIRROR_ENV = "AIAYN_DATA_MIRROR"
CACHE_ENV = "AIAYN_CACHE"
DEFAULT_TIMEOUT = 30.0  # seconds without data before a download is given up
CHUNK = 1 << 16  # bytes per read
_URL_SCHEMES = ("http://", "https://", "file://")
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL  # a new file, never an old one
_TEMP_FLAGS |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)

log = logging.getLogger(__name__)


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")


def temp_file_beside(target: Path) -> tuple[int, Path]:
    """A new empty file next to `target`, open for writing: (descriptor, path).

    Like `tempfile.mkstemp`, but with the mode a plain ``open`` gives, 0666
    less the umask (mkstemp's is 0600), so renaming it onto `target` leaves
    the file as shared as any other the user writes.
    """
    target = Path(target)
    for _ in range(100):
        path = _temp_name(target)
        try:
            return os.open(path, _TEMP_FLAGS, 0o666), path  # the umask applies
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def temp_dir_beside(target: Path) -> Path:
    """A new empty folder next to `target`, mode 0777 less the umask (mkdtemp: 0700)."""
    target = Path(target)
    for _ in range(100):
        path = _temp_name(target)
        try:
            path.mkdir(0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def _cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "aiayn"


def cache_dir() -> Path:
    """The cache root: env AIAYN_CACHE, else ~/.cache/aiayn (not created here)."""
    return _cache_root()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _how_to_provide(relpath: str, url: str, dest: Path, sha256: str) -> str:
    return (
        f"canonical URL: {url}\n"
        "To provide the file without the internet, do one of:\n"
        f"  - set {MIRROR_ENV} to a directory (or base URL) that contains "
        f"{relpath}\n"
        "  - pass mirror=<dir or URL> (CLI: --data-mirror <dir or URL>)\n"
        f"  - place the file yourself at {dest} (its sha256 must be {sha256})"
    )


def _is_local(mirror: str | Path | None) -> bool:
    return mirror is not None and not str(mirror).startswith(_URL_SCHEMES)


def _source(relpath: str, url: str, mirror: str | Path | None) -> str:
    """Where the file will be read from: a local path or a URL."""
    if mirror is None:
        return url
    if _is_local(mirror):
        return str(Path(mirror).expanduser() / relpath)
    return str(mirror).rstrip("/") + "/" + urllib.parse.quote(relpath)


@contextmanager
def _open_source(
    relpath: str, url: str, mirror: str | Path | None, timeout: float
) -> Iterator[tuple[BinaryIO, int | None]]:
    """Yield (stream, expected size in bytes or None)."""
    if _is_local(mirror):
        root = Path(mirror).expanduser()
        path = root / relpath
        if not root.is_dir():
            raise AiaynError(
                f"Data mirror {root} is not a directory (needed for {relpath}). "
                f"Point mirror= or {MIRROR_ENV} at the folder that holds "
                f"{PurePosixPath(relpath).parts[0]}/."
            )
        if not path.is_file():
            raise AiaynError(
                f"{relpath} is not in the data mirror {root} (looked for {path}). "
                f"Add the file there (from {url}), or unset {MIRROR_ENV} / drop "
                "mirror= to download it from its canonical URL."
            )
        with open(path, "rb") as f:
            yield f, path.stat().st_size
        return
    src = _source(relpath, url, mirror)
    request = urllib.request.Request(src, headers={"User-Agent": "aiayn"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        yield response, int(length) if length is not None else None


def _copy(
    stream: BinaryIO, out: BinaryIO, total: int | None, desc: str, progress: bool
) -> tuple[int, str]:
    """Copy in chunks; return (bytes copied, hex sha256)."""
    from tqdm.auto import tqdm  # here, so that importing the file helpers is quiet

    digest = hashlib.sha256()
    n = 0
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=not progress,
        leave=False,
    ) as bar:
        while chunk := stream.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            n += len(chunk)
            bar.update(len(chunk))
    return n, digest.hexdigest()


def fetch(
    relpath: str,
    sha256: str,
    url: str,
    *,
    mirror: str | Path | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Return the path of a cached copy of `relpath` whose sha256 is `sha256`.

    Reuses a verified cached file; otherwise copies it from `mirror` (or env
    AIAYN_DATA_MIRROR, or the canonical `url`) and verifies it first.
    Raises AiaynError when the file cannot be had or does not verify.
    """
    parts = PurePosixPath(relpath).parts
    if not parts or PurePosixPath(relpath).is_absolute() or ".." in parts:
        raise ValueError(f"relpath must be a relative path inside the root: {relpath}")
    sha256 = sha256.lower()
    root = Path(cache_dir).expanduser() if cache_dir is not None else _cache_root()
    dest = root / relpath
    if dest.is_file():
        got = sha256_file(dest)
        if got == sha256:
            return dest
        log.warning(
            "cached %s has sha256 %s, expected %s; re-fetching", dest, got, sha256
        )
        dest.unlink()
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or None
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(dest)
    src = _source(relpath, url, mirror)
    try:
        with os.fdopen(fd, "wb") as out:
            with _open_source(relpath, url, mirror, timeout) as (stream, total):
                n, got = _copy(stream, out, total, relpath, progress)
        if total is not None and n != total:
            raise AiaynError(
                f"Incomplete download of {relpath} from {src}: expected {total} "
                f"bytes (Content-Length), got {n}. The partial file was discarded; "
                "retry, or provide the file another way.\n"
                + _how_to_provide(relpath, url, dest, sha256)
            )
        if got != sha256:
            raise AiaynError(
                f"Checksum mismatch for {relpath} from {src}: expected sha256 "
                f"{sha256}, got {got}. The file was discarded (nothing cached). "
                "It was corrupted in transit or the source changed; retry, or "
                "point the mirror at a verified copy.\n"
                + _how_to_provide(relpath, url, dest, sha256)
            )
        os.replace(tmp, dest)
    except (OSError, http.client.HTTPException) as e:
        tmp.unlink(missing_ok=True)
        plain_url_error = isinstance(e, urllib.error.URLError) and not isinstance(
            e, urllib.error.HTTPError
        )
        reason = e.reason if plain_url_error else e
        raise AiaynError(
            f"Could not fetch {relpath} from {src} ({type(e).__name__}: {reason}). "
            "This machine may be offline, or the source unreachable or without "
            "the file.\n" + _how_to_provide(relpath, url, dest, sha256)
        ) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
