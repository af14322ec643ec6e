"""What the stored notebooks say to a reader, checked without running them.

nbval (``pytest --nbval book``) re-executes every chapter and compares outputs;
these checks read the stored pages as the website shows them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
# An absolute path of the machine that executed the notebook (its checkout, the
# data mirror, a temporary file, a home directory).
MACHINE_PATH = re.compile(r"(?<![\w.~/:])/(?:work|tmp|root|home|Users|srv|mnt)/\S+")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _output_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        for kind, value in out.get("data", {}).items():
            if kind.startswith("text/") or kind.endswith("json"):
                parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def test_there_are_chapters() -> None:
    assert len(NOTEBOOKS) >= 15


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_stored_output_names_the_executing_machines_paths(path: Path) -> None:
    found = [
        (i, m.group(0))
        for i, cell in enumerate(_cells(path))
        for m in MACHINE_PATH.finditer(_output_text(cell))
    ]
    assert not found, f"{path.name}: cells with machine paths {found[:5]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_placeholder_text_reaches_the_reader(path: Path) -> None:
    placeholder = re.compile(
        r"(?i:\bpending\b|first edition|will be replaced)|\bTODO\b|\bTBD\b"
    )
    found = [
        (i, m.group(0))
        for i, cell in enumerate(_cells(path))
        for text in ("".join(cell["source"]), _output_text(cell))
        for m in placeholder.finditer(text)
    ]
    assert not found, f"{path.name}: {found[:5]}"


def test_the_machine_path_pattern() -> None:
    assert MACHINE_PATH.search("--data-mirror /work/shared/data")
    assert MACHINE_PATH.search("wrote /tmp/bench_dev.json")
    assert not MACHINE_PATH.search("see https://example.org/work/x and a/tmp/b")
    assert not MACHINE_PATH.search("book/data/table3.json and $AIAYN_DATA_MIRROR")
