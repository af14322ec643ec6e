"""What to train on: tasks as objects, looked up by name.

    from aiayn.tasks import get_task
    task = get_task("multi30k")          # or cfg.task
    data = task.prepare(cfg)             # tokenizer + id pairs
    scores = task.evaluate(model, data, beam_size=4, alpha=0.6)

Three tasks are registered: ``copy`` (the toy of chapter 5), ``multi30k``
(translation, section 6.1) and ``parse`` (constituency parsing, section 6.3). A
new task is one module: subclass :class:`Task`, decorate it with
:func:`register`, and import the module below.
"""

from __future__ import annotations

from typing import Any

from ..config import TrainConfig
from ..errors import AiaynError
from ..model import Transformer
from .base import Evaluation, Task, TaskData

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available as ``get_task(cls.name)``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise AiaynError(f"two tasks are registered as {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def get_task(name: str) -> Task:
    """The task registered as ``name``; AiaynError listing the known ones."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise AiaynError(
            f"unknown task {name!r}; known tasks: {', '.join(sorted(_REGISTRY))}"
        ) from None


def task_names() -> tuple[str, ...]:
    """The registered task names, sorted."""
    return tuple(sorted(_REGISTRY))


def prepare(cfg: TrainConfig, mirror: str | None = None) -> TaskData:
    """Shorthand for ``get_task(cfg.task).prepare(cfg, mirror)``."""
    return get_task(cfg.task).prepare(cfg, mirror)


def evaluate(
    model: Transformer,
    data: TaskData,
    beam_size: int | None = None,
    alpha: float | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score ``model`` on ``data``'s dev set, with the config's beam by default."""
    cfg = data.cfg
    return get_task(cfg.task).evaluate(
        model,
        data,
        cfg.beam_size if beam_size is None else beam_size,
        cfg.alpha if alpha is None else alpha,
        limit,
        progress,
    )


# The built-in tasks register themselves on import.
from . import copy, multi30k, parse  # noqa: E402, F401

__all__ = [
    "Evaluation",
    "Task",
    "TaskData",
    "evaluate",
    "get_task",
    "prepare",
    "register",
    "task_names",
]
