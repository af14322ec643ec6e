"""Serve MathJax 3 from the built site instead of a CDN.

Sphinx loads MathJax from jsDelivr by default, so a page read offline (or on a
machine that reaches only package registries, like our CI) shows raw TeX. This
extension copies MathJax's browser build into ``_build/html/_static/mathjax``
and points ``mathjax_path`` at it.

Where the files come from, first match wins:

1. the directory in the environment variable ``AIAYN_MATHJAX_DIR`` (an ``es5``
   folder of MathJax 3, e.g. ``node_modules/mathjax/es5`` after
   ``npm install mathjax@3``);
2. the PyPI package ``django-static-mathjax`` (MathJax 3.2.2; importable as
   ``mathjax``, it needs no Django), listed in the ``book`` extra.

If neither is there the build warns (and so fails under ``-W``) instead of
silently falling back to the CDN.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

TARGET = "mathjax"  # folder under _static
ENTRY = "tex-mml-chtml.js"  # the same combined component Sphinx loads from the CDN
# Components that tex-mml-chtml.js may load on demand (fonts, TeX packages,
# the accessibility menu); the other combined bundles are not needed.
PARTS = ("a11y", "adaptors", "input", "output", "sre", "ui")


def find_mathjax() -> Path | None:
    """Return a MathJax 3 ``es5`` directory, or None if none is installed."""
    env = os.environ.get("AIAYN_MATHJAX_DIR")
    candidates = [Path(env)] if env else []
    spec = importlib.util.find_spec("mathjax")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "static" / "mathjax" / "es5")
    for path in candidates:
        if (path / ENTRY).is_file():
            return path
    return None


def set_path(app: Sphinx, config: Config) -> None:
    """Point ``mathjax_path`` at the local copy unless the user chose one."""
    from sphinx.ext.mathjax import MATHJAX_URL

    source = find_mathjax()
    app.aiayn_mathjax_dir = source  # type: ignore[attr-defined]
    if source is None:
        logger.warning(
            "local_mathjax: no MathJax 3 found; pages will load it from a CDN. "
            "Install the book extra (pip install -e '.[book]', which brings "
            "django-static-mathjax) or set AIAYN_MATHJAX_DIR to a MathJax 3 "
            "es5 directory.",
            type="aiayn",
            subtype="mathjax",
        )
        return
    if config.mathjax_path == MATHJAX_URL:
        config.mathjax_path = f"{TARGET}/{ENTRY}"  # relative to _static


def copy_files(app: Sphinx, exception: Exception | None) -> None:
    """Copy the MathJax files into ``_static/mathjax`` after an HTML build."""
    source = getattr(app, "aiayn_mathjax_dir", None)
    if exception is not None or source is None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / TARGET
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / ENTRY, target / ENTRY)
    for part in PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
    for name in ("LICENSE", "../LICENSE"):
        if (source / name).is_file():
            shutil.copy2(source / name, target / "LICENSE")
            break


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("config-inited", set_path, priority=900)
    app.connect("build-finished", copy_files)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
