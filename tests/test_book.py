"""The website: ``jupyter-book build`` with warnings as errors, then every chapter
loaded in headless Chromium (tests/browser/check_site.py: the page renders, the math
is typeset, the images load, the console shows no errors)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    jb = BIN / "jupyter-book"
    if not jb.exists():
        pytest.skip("jupyter-book is not installed (pip install -e '.[book]')")
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run(
        [
            str(jb),
            "build",
            str(REPO),
            "-W",
            "-n",
            "--keep-going",
            "--path-output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return out / "_build" / "html"


def test_book_builds_without_warnings(site: Path) -> None:
    assert (site / "index.html").is_file()
    chapters = [p for p in (site / "book").glob("*.html")]
    assert len(chapters) >= 15


def test_every_chapter_renders_in_chromium(site: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not (os.path.exists(chromium) and shutil.which("chromedriver")):
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium and chromium-driver (.ci/run)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    shots = Path(os.environ.get("AIAYN_SCREENSHOTS", tmp_path / "screenshots"))
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "browser" / "check_site.py"),
            "--site",
            str(site),
            "--screenshots",
            str(shots),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
