"""Shared fixtures: the data mirror, an isolated environment, tiny models.

Every test runs with ``AIAYN_CACHE`` pointing at its own temporary directory and
without ``AIAYN_DATA_MIRROR``, so nothing reads or writes ``~/.cache`` and the
caller's environment cannot change a result. A test that asks for ``mirror`` gets
the shared data mirror (``AIAYN_DATA_MIRROR`` or ``../shared/data`` beside the
repository, where CI clones it) as an argument and in ``AIAYN_DATA_MIRROR``; it is
skipped when there is no mirror.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from aiayn.config import ModelConfig
from aiayn.model import Transformer


def _find_mirror() -> Path:
    env = os.environ.get("AIAYN_DATA_MIRROR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


MIRROR = _find_mirror()  # read once, before any test removes the variable
torch.set_num_threads(1)  # the models here are tiny: threads only add overhead
# Under pytest-xdist each worker gets its share of the cores, and so do the
# notebook kernels and command-line subprocesses it starts (they inherit
# OMP_NUM_THREADS): two workers of two threads each on two cores would fight.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers))
    )


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No mirror from the environment; a cache that is never ~/.cache."""
    monkeypatch.delenv("AIAYN_DATA_MIRROR", raising=False)
    monkeypatch.setenv("AIAYN_CACHE", str(tmp_path / "env-cache"))


@pytest.fixture
def mirror(_isolated: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared data mirror's root (it holds multi30k/ and ptb_sample/)."""
    if not MIRROR.is_dir():
        pytest.skip(f"no data mirror at {MIRROR} (set AIAYN_DATA_MIRROR)")
    monkeypatch.setenv("AIAYN_DATA_MIRROR", str(MIRROR))
    return MIRROR


TinyModel = Callable[..., Transformer]


@pytest.fixture
def tiny_model() -> TinyModel:
    """A factory: ``tiny_model(seed=0, **ModelConfig overrides)`` -> eval-mode model."""

    def make(seed: int = 0, **overrides: Any) -> Transformer:
        torch.manual_seed(seed)
        return Transformer(ModelConfig.tiny(**overrides)).eval()

    return make
