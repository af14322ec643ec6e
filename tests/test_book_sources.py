"""Every source listing stored in the book still matches the package's code.

`aiayn.display.show_source` writes a link with the file and its line range, then
the code. Editing a shown module moves or changes those lines; nbval would
only notice when the chapter runs. This reads the stored outputs instead.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LISTING = re.compile(
    r"\[`aiayn/([^`]+)`, lines (\d+)-(\d+)\]\([^)]*\)\n\n```python\n(.*?)```", re.S
)


def _listings() -> list[tuple[str, int, str, int, int, str]]:
    found = []
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            for out in cell.get("outputs", []):
                text = "".join(out.get("data", {}).get("text/markdown", []))
                for m in LISTING.finditer(text):
                    a, b = int(m.group(2)), int(m.group(3))
                    found.append((path.name, i, m.group(1), a, b, m.group(4)))
    return found


LISTINGS = _listings()


def test_the_book_shows_source() -> None:
    assert len(LISTINGS) > 20  # the chapters show the package's code


@pytest.mark.parametrize(
    "notebook,cell,module,first,last,code",
    LISTINGS,
    ids=[f"{n}:{c}:{m}:{a}" for n, c, m, a, _, _ in LISTINGS],
)
def test_listing_matches_the_file(
    notebook: str, cell: int, module: str, first: int, last: int, code: str
) -> None:
    lines = (ROOT / "code" / "aiayn" / module).read_text().splitlines()
    now = textwrap.dedent("\n".join(lines[first - 1 : last])).strip()
    assert now == code.strip(), (
        f"{notebook} cell {cell} shows {module} lines {first}-{last} as they were; "
        "re-execute the chapter"
    )
