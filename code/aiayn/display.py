"""Show the package's own source, and its model cards, in the book.

The book imports, it never redefines: a chapter shows the real code of what it
explains with :func:`show_source`, which renders ``inspect.getsource(obj)`` as a
highlighted Python block captioned with its file and line numbers, linked to the
repository. :func:`show_model_cards` gathers the results sections of the shipped
checkpoints' model cards (``checkpoints/<name>/README.md``).

IPython is imported only when something is rendered, so ``import aiayn`` does
not need it.
"""

from __future__ import annotations

import inspect
import re
import shlex
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from IPython.display import Markdown

REPOSITORY = "https://github.com/aiayn-book/aiayn"
PACKAGE_DIR = Path(__file__).resolve().parent  # .../code/aiayn
NO_CHECKPOINT = "no shipped checkpoint yet"


def source_location(obj: Any) -> tuple[str, int, int]:
    """(path shown to the reader, first line, last line) of ``obj``'s source."""
    file = inspect.getsourcefile(obj)
    if file is None:
        raise TypeError(f"no Python source file for {obj!r}")
    lines, start = inspect.getsourcelines(obj)
    start = max(start, 1)  # modules report line 0
    path = Path(file).resolve()
    try:
        shown = path.relative_to(PACKAGE_DIR.parent).as_posix()  # aiayn/x.py
    except ValueError:
        shown = path.name
    return shown, start, start + len(lines) - 1


def source_markdown(obj: Any) -> str:
    """Markdown for ``obj``'s source: a caption line, then a python code block."""
    shown, first, last = source_location(obj)
    code = textwrap.dedent(inspect.getsource(obj)).rstrip("\n")  # methods indent
    longest = max((len(m) for m in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)  # longer than any backtick run in the code
    caption = f"`{shown}`, lines {first}-{last}"
    if shown.startswith("aiayn/"):
        url = f"{REPOSITORY}/blob/main/code/{shown}#L{first}-L{last}"
        caption = f"[{caption}]({url})"
    return f"{caption}\n\n{fence}python\n{code}\n{fence}\n"


def show_source(obj: Any) -> Markdown:
    """Render the source of a function, class, method or module in a notebook."""
    from IPython.display import Markdown

    return Markdown(source_markdown(obj))


def show_sources(*objs: Any) -> Markdown:
    """Render several sources, one captioned block after another."""
    from IPython.display import Markdown

    return Markdown("\n".join(source_markdown(obj) for obj in objs))


_PATH_OPTIONS = {"--data-mirror": "$AIAYN_DATA_MIRROR", "--out": "<file>"}


def portable_command(command: str, root: Path | None = None) -> str:
    """`command` without the absolute paths of the machine that ran it.

    A path inside the repository (`root`, default: this checkout) becomes
    relative to it; any other absolute path becomes a placeholder: the data
    mirror ``$AIAYN_DATA_MIRROR``, an output outside the repository ``<file>``,
    anything else ``<path>``. Used on recorded commands before the book shows
    them, so a page never names the directories of whoever executed it.
    """
    root = (PACKAGE_DIR.parents[1] if root is None else Path(root)).resolve()
    words = shlex.split(command)
    out = []
    for i, word in enumerate(words):
        option, value = "", word
        if word.startswith("--") and "=" in word:
            option, value = word.split("=", 1)
        flag = option or (words[i - 1] if i else "")
        shown = shlex.quote(value)
        if value.startswith("/"):
            path = Path(value)
            if path.is_relative_to(root):
                shown = shlex.quote(path.relative_to(root).as_posix() or ".")
            else:
                shown = _PATH_OPTIONS.get(flag, "<path>")
        out.append(f"{option}={shown}" if option else shown)
    return " ".join(out)


def _results_section(card: str) -> str:
    """The '## Results' section of a model card, or the card without its title."""
    lines = card.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"##\s+results\b", line.strip(), flags=re.IGNORECASE):
            end = next(
                (j for j in range(i + 1, len(lines)) if re.match(r"##?\s", lines[j])),
                len(lines),
            )
            return "\n".join(lines[i + 1 : end]).strip()
    return "\n".join(ln for ln in lines if not ln.startswith("# ")).strip()


def model_cards_markdown(checkpoints: Path) -> str:
    """Results of every model card ``checkpoints/<name>/README.md``, as Markdown.

    Headings inside a card become bold lines, so that a notebook output never
    adds headings to the page it is shown on.
    """
    cards = sorted(Path(checkpoints).glob("*/README.md"))
    if not cards:
        return NO_CHECKPOINT
    parts = []
    for card in cards:
        body = _results_section(card.read_text(encoding="utf-8"))
        body = re.sub(r"^#+\s+(.*)$", r"**\1**", body, flags=re.MULTILINE)
        source = f"checkpoints/{card.parent.name}/README.md"
        parts.append(f"**{card.parent.name}** (from `{source}`)\n\n{body}\n")
    return "\n".join(parts)


def show_model_cards(checkpoints: Path) -> Markdown:
    """Render :func:`model_cards_markdown` in a notebook."""
    from IPython.display import Markdown

    return Markdown(model_cards_markdown(checkpoints))
