"""The Penn Treebank sample that section 6.3 (English constituency parsing) uses.

The paper trains on the WSJ portion of the Penn Treebank (about 40K training
sentences), which is licensed by the LDC. This reproduction uses the free 10%
sample distributed with NLTK: files wsj_0001 to wsj_0199, 3,914 parsed
sentences. Its licence, from NLTK's ``treebank.xml``:

    This is a 10% fragment of Penn Treebank, (C) LDC 1995. It is made available
    under fair use for the purposes of illustrating NLTK tools for tokenizing,
    tagging, chunking and parsing. This data is for non-commercial use only.

This module only fetches the zip (checked against its sha256, cached by
`aiayn.download.fetch`; a mirror holds it as ``ptb_sample/treebank.zip``) and
returns the raw bracketed ``.mrg`` text; `aiayn.parsing` reads the trees.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from .download import fetch
from .errors import AiaynError

URL = (
    "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/"
    "treebank.zip"
)
SHA256 = "9da92d76c3666cfb6cddeaed0f7e86b344cce0f0928a286d439e555f19c37399"
RELPATH = "ptb_sample/treebank.zip"
LICENSE = (
    "This is a 10% fragment of Penn Treebank, (C) LDC 1995. It is made available "
    "under fair use for the purposes of illustrating NLTK tools for tokenizing, "
    "tagging, chunking and parsing. This data is for non-commercial use only."
)
N_FILES = 199  # wsj_0001 .. wsj_0199
_COMBINED = "treebank/combined/"  # parsed and tagged trees, one .mrg per WSJ file


def load_files(
    *,
    mirror: str | Path | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, str]:
    """File id ('wsj_0001') -> raw .mrg text of treebank/combined/, in id order."""
    path = fetch(
        RELPATH, SHA256, URL, mirror=mirror, cache_dir=cache_dir, progress=progress
    )
    with zipfile.ZipFile(path) as zf:
        names = sorted(
            n for n in zf.namelist() if n.startswith(_COMBINED) and n.endswith(".mrg")
        )
        files = {PurePosixPath(n).stem: zf.read(n).decode("ascii") for n in names}
    if len(files) != N_FILES:
        raise AiaynError(
            f"{path} holds {len(files)} .mrg files under {_COMBINED}, expected "
            f"{N_FILES}, although its checksum matched; please report."
        )
    return files
