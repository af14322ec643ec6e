"""The Penn Treebank sample loader (raw .mrg text; trees are tested elsewhere)."""

from pathlib import Path

import pytest

from aiayn import ptb
from aiayn.errors import AiaynError

# The data mirror comes from conftest.py's `mirror` fixture (skipped without one);
# its autouse fixture isolates AIAYN_DATA_MIRROR and AIAYN_CACHE for every test.


def top_level_brackets(text: str) -> int:
    """How many bracketed expressions open at depth 0 (one per parsed sentence)."""
    depth = count = 0
    for c in text:
        if c == "(":
            count += depth == 0
            depth += 1
        elif c == ")":
            depth -= 1
            assert depth >= 0
    assert depth == 0
    return count


def test_load_files(mirror: Path, tmp_path: Path) -> None:
    files = ptb.load_files(mirror=mirror, cache_dir=tmp_path, progress=False)
    assert list(files) == [f"wsj_{i:04d}" for i in range(1, 200)]
    assert len(files) == ptb.N_FILES == 199
    first = files["wsj_0001"]
    assert first.lstrip().startswith("( (S")
    assert "(NNP Pierre) (NNP Vinken)" in first
    assert sum(top_level_brackets(t) for t in files.values()) == 3914
    assert (tmp_path / "ptb_sample" / "treebank.zip").is_file()


def test_licence_is_stated(mirror: Path) -> None:
    assert "non-commercial use only" in ptb.LICENSE
    assert "non-commercial use only" in (ptb.__doc__ or "")
    assert "10%" in (ptb.__doc__ or "")
    listed = (mirror / "ptb_sample/SHA256SUMS").read_text().split()
    assert listed == [ptb.SHA256, "treebank.zip"]


def test_missing_from_mirror(tmp_path: Path) -> None:
    with pytest.raises(AiaynError, match="ptb_sample/treebank.zip"):
        ptb.load_files(mirror=tmp_path, cache_dir=tmp_path / "cache")
