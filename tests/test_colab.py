"""The Colab path: every notebook's first cell clones one address and installs it.

The address is ``_config.yml``'s ``repository.url`` (the site's buttons read it);
``tools/set_repository.py`` writes it everywhere. Colab itself cannot be reached
from here, so the last test runs the first cell's two commands as Colab would, on
a clone of this repository through a ``file://`` address: clone, install (a
regular install, no editable path), then import ``aiayn`` from that install and
load a shipped checkpoint from the clone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "set_repository", ROOT / "tools" / "set_repository.py"
)
assert _spec is not None and _spec.loader is not None
set_repository = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(set_repository)

TIMEOUT = 900  # a hang guard for git and pip (about 20 s on an idle machine)


def _toc_notebooks() -> list[Path]:
    toc = (ROOT / "_toc.yml").read_text()
    names = re.findall(r"file:\s*(\S+)", toc) + re.findall(r"root:\s*(\S+)", toc)
    return [ROOT / f"{n}.ipynb" for n in names if (ROOT / f"{n}.ipynb").is_file()]


def _colab_cell(nb_path: Path) -> dict:
    nb = json.loads(nb_path.read_text())
    return next(c for c in nb["cells"] if c["cell_type"] == "code")


def test_every_notebook_clones_the_configured_repository() -> None:
    url = set_repository.config_url(ROOT)
    notebooks = _toc_notebooks()
    assert len(notebooks) >= 10
    for path in notebooks:
        cell = _colab_cell(path)
        src = "".join(cell["source"])
        assert f'REPO = "{url}"' in src, path.name
        assert "hide-cell" in cell["metadata"].get("tags", []), path.name
        assert not cell.get("outputs"), path.name  # it does nothing off Colab
    assert f'REPO = "{url}"' in (ROOT / "CONTRIBUTING.md").read_text()
    from aiayn.display import REPOSITORY

    assert url == REPOSITORY


def test_set_repository_rewrites_every_place(tmp_path: Path) -> None:
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copy(ROOT / "CONTRIBUTING.md", tmp_path / "CONTRIBUTING.md")
    (tmp_path / "code" / "aiayn").mkdir(parents=True)
    shutil.copy(ROOT / "code/aiayn/display.py", tmp_path / "code/aiayn/display.py")
    (tmp_path / "book").mkdir()
    for path in _toc_notebooks()[:3]:
        shutil.copy(path, tmp_path / "book" / path.name)
    fork = "https://github.com/someone/aiayn-fork"
    changed = set_repository.set_repository(tmp_path, fork)
    assert len(changed) == 6  # the config, three notebooks, display.py, the guide
    assert f'REPOSITORY = "{fork}"' in (tmp_path / "code/aiayn/display.py").read_text()
    assert set_repository.config_url(tmp_path) == fork
    for path in (tmp_path / "book").glob("*.ipynb"):
        assert f'REPO = "{fork}"' in "".join(_colab_cell(path)["source"])
    assert set_repository.set_repository(tmp_path, fork) == []  # idempotent
    with pytest.raises(SystemExit, match="not a repository address"):
        set_repository.set_repository(tmp_path, 'https://x"; rm -rf /')


def _colab_commands(url: str, content: Path) -> list[str]:
    """The shell lines of the first cell, as Colab would run them here."""
    src = "".join(_colab_cell(ROOT / "book" / "05_training.ipynb")["source"])
    lines = [ln.strip() for ln in src.splitlines()]
    shell = [ln[1:] for ln in lines if ln.startswith("![")]
    pip = [ln for ln in lines if ln.startswith("%pip install")]
    assert len(shell) == 1 and len(pip) == 1, src
    clone = shell[0].replace("{REPO}", url).replace("/content", str(content))
    install = pip[0].replace("/content", str(content))
    return [clone, install]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_colab_install_path_works_from_a_clone(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone_cmd, pip_cmd = _colab_commands(f"file://{ROOT}", tmp_path)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(clone_cmd, shell=True, check=True, timeout=TIMEOUT, env=env)
    clone = tmp_path / "aiayn"
    assert (clone / "checkpoints" / "copy" / "model.safetensors").is_file()
    # %pip install -q CLONE, into a folder of its own (not this environment);
    # dependencies are this environment's (Colab has torch preinstalled).
    target = tmp_path / "site"
    args = pip_cmd.split()[2:]  # after "%pip install"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target",
         str(target), *args],
        check=True, timeout=TIMEOUT, env=env, capture_output=True,
    )  # fmt: skip
    check = (
        "import sys; sys.path.insert(0, sys.argv[1]); import aiayn, os; "
        "assert aiayn.__file__.startswith(sys.argv[1]), aiayn.__file__; "
        "from aiayn.checkpoint import load_model; "
        "m = load_model(os.path.join(os.environ['AIAYN_HOME'], 'checkpoints', "
        "'copy')); print(m.num_parameters())"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, str(target)],
        env={**env, "AIAYN_HOME": str(clone)},
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0
