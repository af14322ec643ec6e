"""Tests for aiayn.display: the book shows the package's real source."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from aiayn import display


class _Local:
    """A class defined outside the package, with a method."""

    def method(self) -> int:
        return 1


def test_show_source_renders_real_source_and_location() -> None:
    md = display.show_source(display.source_markdown)
    text = md.data
    lines, start = inspect.getsourcelines(display.source_markdown)
    assert "def source_markdown(obj: Any) -> str:" in text
    assert lines[-1].strip() in text  # the whole body, to its last line
    assert f"`aiayn/display.py`, lines {start}-{start + len(lines) - 1}" in text
    assert f"display.py#L{start}-L{start + len(lines) - 1}" in text  # repo link
    assert "```python\n" in text and text.rstrip().endswith("```")


def test_show_source_of_method_is_dedented_and_outside_package_unlinked() -> None:
    text = display.source_markdown(_Local.method)
    assert "\ndef method(self) -> int:\n" in text  # dedented from the class body
    assert text.startswith("`test_display.py`, lines ")  # file name, no link
    assert "](" not in text.splitlines()[0]


def test_fence_is_longer_than_backticks_in_source(tmp_path: Path) -> None:
    namespace: dict[str, object] = {}
    path = tmp_path / "fence_example.py"
    src = 'def f() -> str:\n    return "````"\n'
    path.write_text(src, encoding="utf-8")
    exec(compile(src, str(path), "exec"), namespace)
    text = display.source_markdown(namespace["f"])
    assert text.startswith("`fence_example.py`, lines 1-2\n")
    assert "`````python\n" in text  # five backticks beat the four in the code


def test_show_sources_concatenates_in_order() -> None:
    text = display.show_sources(display.show_source, display.show_sources).data
    first = text.index("def show_source(")
    second = text.index("def show_sources(")
    assert first < second
    assert text.count("`aiayn/display.py`, lines") == 2


def test_show_source_rejects_builtins() -> None:
    with pytest.raises(TypeError):
        display.show_source(len)


def test_model_cards(tmp_path: Path) -> None:
    assert display.model_cards_markdown(tmp_path) == display.NO_CHECKPOINT
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "README.md").write_text(
        "# base\n\nTrained on X.\n\n## Results\n\n| BLEU |\n|---|\n| 1.0 |\n"
        "\n### Notes\n\nsmall\n\n## Files\n\nmodel.safetensors\n",
        encoding="utf-8",
    )
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "README.md").write_text("# copy\n\nNo results.\n")
    text = display.show_model_cards(tmp_path).data
    assert text.index("**base**") < text.index("**copy**")
    assert "| 1.0 |" in text and "**Notes**" in text  # heading made bold
    assert "model.safetensors" not in text  # the next ## section is cut
    assert "Trained on X." not in text  # only the results section
    assert "No results." in text  # a card without one is shown whole
    assert "\n#" not in text and not text.startswith("#")


def test_display_import_does_not_import_ipython() -> None:
    code = (
        "import sys, aiayn; before = 'IPython' in sys.modules; "
        "import aiayn.display; print(before, 'IPython' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    before, after = out.stdout.split()
    assert after == before  # aiayn.display adds no IPython import


def test_portable_command_hides_the_machines_paths(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    cmd = (
        f"python -m aiayn train --out {root}/runs/x --data-mirror /srv/data "
        f"--set 'notes=a b' --out=/tmp/y.json {root} /etc/passwd"
    )
    assert display.portable_command(cmd, root) == (
        "python -m aiayn train --out runs/x --data-mirror $AIAYN_DATA_MIRROR "
        "--set 'notes=a b' --out=<file> . <path>"
    )
    same = "python -m aiayn evaluate --checkpoint checkpoints/copy --limit 3"
    assert display.portable_command(same, root) == same
