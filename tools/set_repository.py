"""Point the book at another repository (a fork): one address, every place.

The repository's address lives in ``_config.yml`` (``repository.url``): the site's
repository and launch buttons read it there. The first cell of every notebook
clones the same address on Colab, CONTRIBUTING.md shows that cell verbatim, and
``aiayn.display.REPOSITORY`` links the source shown in the book (re-execute the
notebooks after a change, since their stored outputs hold those links). This
script rewrites all four, and ``tests/test_colab.py`` checks that they agree. ::

    python tools/set_repository.py https://github.com/YOU/aiayn
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO_LINE = re.compile(r'^REPO = "[^"]*"$', re.M)
CONFIG_URL = re.compile(r"^(repository:\n(?:[ \t]+.*\n)*?[ \t]+url:[ \t]*)(\S+)", re.M)


def config_url(root: Path) -> str:
    """``repository.url`` of ``root/_config.yml``."""
    m = CONFIG_URL.search((root / "_config.yml").read_text())
    if m is None:
        raise SystemExit(f"{root / '_config.yml'} has no repository.url")
    return m.group(2)


def set_repository(root: Path, url: str) -> list[Path]:
    """Write ``url`` into _config.yml, every notebook's Colab cell,
    aiayn/display.py and CONTRIBUTING.md; the files changed."""
    if not re.fullmatch(r"(https|file)://[^\s\"'{}]+", url):
        raise SystemExit(
            f"not a repository address: {url!r} (https://... or file://...)"
        )
    changed = []
    config = root / "_config.yml"
    text = config.read_text()
    new = CONFIG_URL.sub(lambda m: m.group(1) + url, text, count=1)
    if new != text:
        config.write_text(new)
        changed.append(config)
    line = f'REPO = "{url}"'
    for nb_path in sorted((root / "book").glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        hit = False
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "code" and REPO_LINE.search(src):
                fixed = REPO_LINE.sub(line, src)
                if fixed != src:
                    cell["source"] = fixed.splitlines(keepends=True)
                    hit = True
                break  # only the Colab cell, the first that sets REPO
        if hit:
            nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(nb_path)
    display = root / "code" / "aiayn" / "display.py"
    if display.is_file():
        text = display.read_text()
        new = re.sub(
            r'^REPOSITORY = "[^"]*"$', f'REPOSITORY = "{url}"', text, flags=re.M
        )
        if new != text:
            display.write_text(new)
            changed.append(display)
    guide = root / "CONTRIBUTING.md"
    if guide.is_file():
        text = guide.read_text()
        new = REPO_LINE.sub(line, text)
        if new != text:
            guide.write_text(new)
            changed.append(guide)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="the repository to clone on Colab, e.g. a fork")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = ap.parse_args(argv)
    for path in set_repository(args.root, args.url):
        print(f"updated {path.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
