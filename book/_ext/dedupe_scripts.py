"""Drop duplicate <script> tags from every page (a Sphinx 7.4 bug).

Sphinx 7.4 adds the inline scripts that extensions register after the builder
starts (sphinx-thebe's ``const THEBE_JS_URL = ...``, sphinx-togglebutton's
``var togglebuttonSelector = ...``) twice, once named ``None`` and once ``''``,
which its own de-duplication treats as different. The second ``const``
declaration is a JavaScript SyntaxError in the browser console of every page.
Jupyter Book 1 pins Sphinx 7, so the fix lives here: before each page is
rendered, keep the first of any scripts that are equal up to that name.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _key(script: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    name = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return str(name), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def dedupe(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    """Remove repeated entries from the page's ``script_files`` in place."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("html-page-context", dedupe, priority=900)  # after others add
    return {"parallel_read_safe": True, "parallel_write_safe": True}
