"""Tasks as objects (aiayn.tasks): the registry, and a training loop that never asks.

The loop receives a task, so a new task is one class; the run's tokenizer is built
once and reused on resume and on every DDP rank; ``max_tokens`` is the batch of one
optimizer step, however it is split.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import aiayn
from aiayn import checkpoint as ckpt
from aiayn import tasks as tasks_package
from aiayn import train as train_module
from aiayn.config import TrainConfig
from aiayn.errors import AiaynError
from aiayn.multi30k import preprocess
from aiayn.presets import get_preset
from aiayn.tasks import Task, TaskData, get_task, register, task_names
from aiayn.tasks.copy import CopyTask
from aiayn.tokenizer import TOKENIZER_FILE, SymbolTokenizer, Tokenizer
from aiayn.train import _prepare, dev_loss, train

PACKAGE = Path(aiayn.__file__).parent
TINY = [
    "max_steps=4",
    "save_every=2",
    "eval_every=2",
    "copy_train_size=200",
    "copy_test_size=10",
    "eval_bleu=False",
]


def _cfg(*extra: str) -> TrainConfig:
    return get_preset("copy").with_overrides([*TINY, *extra])


def test_registry_knows_the_three_tasks() -> None:
    assert task_names() == ("copy", "multi30k", "parse")
    for name in task_names():
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name
        assert task.default_split in task.splits
    with pytest.raises(AiaynError, match="known tasks: copy, multi30k, parse"):
        get_task("summarise")


def test_a_bad_split_is_refused_before_any_work() -> None:
    with pytest.raises(AiaynError, match="no split 'train2'"):
        get_task("multi30k").check_split("train2")


def _imports(path: Path) -> set[str]:
    """The aiayn modules that ``path`` imports, as dotted names."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("aiayn"):
                found.add(name)
                found.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("aiayn"))
    return found


def test_tasks_and_env_never_import_the_training_loop() -> None:
    """No circle: the loop imports the tasks, never the other way round."""
    for path in [PACKAGE / "env.py", *sorted((PACKAGE / "tasks").glob("*.py"))]:
        imported = _imports(path)
        assert "aiayn.train" not in imported, path
        assert not any(m.startswith("aiayn.cli") for m in imported), path


def test_the_loop_never_asks_which_task() -> None:
    source = (PACKAGE / "train.py").read_text()
    for needle in ('task == "', 'task != "', "cfg.task ==", "isinstance(task"):
        assert needle not in source


class ReverseTask(CopyTask):
    """A new task in a few lines: write the input backwards."""

    name = "test_reverse"

    def load_data(
        self, cfg: TrainConfig, tokenizer: Tokenizer, mirror: str | None
    ) -> TaskData:
        data = super().load_data(cfg, tokenizer, mirror)
        data.train = [(s, s[::-1]) for s, _ in data.train]
        data.dev = [(s, s[::-1]) for s, _ in data.dev]
        return data


@pytest.fixture
def reverse_task() -> Any:
    register(ReverseTask)
    yield ReverseTask
    tasks_package._REGISTRY.pop(ReverseTask.name)


def test_a_new_task_trains_without_touching_the_loop(
    tmp_path: Path, reverse_task: type[Task]
) -> None:
    cfg = _cfg("task=test_reverse", "max_steps=2", "eval_bleu=True")
    metrics = train(cfg, tmp_path / "run", progress=False)
    assert metrics["steps"] == 2 and 0.0 <= metrics["exact_match"] <= 1.0
    assert ckpt.read_config(tmp_path / "run").task == "test_reverse"


def test_resume_reuses_the_runs_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    train(_cfg("max_steps=2"), out, progress=False)
    saved = (out / TOKENIZER_FILE).read_text()

    def retrain(self: Task, cfg: TrainConfig, mirror: str | None) -> Tokenizer:
        raise AssertionError("a resumed run must not build a new tokenizer")

    monkeypatch.setattr(CopyTask, "build_tokenizer", retrain)
    metrics = train(_cfg(), out, resume=True, progress=False)
    assert metrics["steps"] == 4
    assert (out / TOKENIZER_FILE).read_text() == saved


def test_other_ranks_load_rank_zeros_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under DDP only rank 0 builds the tokenizer; the others read its file."""
    task, cfg = CopyTask(), _cfg("copy_symbols=7")
    main = _prepare(task, cfg, tmp_path, None, False, is_main=True, world=1)
    assert (tmp_path / TOKENIZER_FILE).exists()

    def other(self: Task, cfg: TrainConfig, mirror: str | None) -> Tokenizer:
        return SymbolTokenizer(3)  # what a rank would get if it built its own

    monkeypatch.setattr(CopyTask, "build_tokenizer", other)
    rank1 = _prepare(task, cfg, tmp_path, None, False, is_main=False, world=1)
    assert rank1.tokenizer.vocab_size == main.tokenizer.vocab_size == 7 + 4
    assert rank1.train == main.train and rank1.dev == main.dev


def test_max_tokens_is_the_batch_of_one_optimizer_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    stream = train_module.batch_stream

    def spy(pairs: Any, max_tokens: int, seed: int, start_epoch: int = 0) -> Any:
        seen.append(max_tokens)
        return stream(pairs, max_tokens, seed, start_epoch)

    monkeypatch.setattr(train_module, "batch_stream", spy)
    train(
        _cfg("max_tokens=1024", "accum=4", "max_steps=1"),
        tmp_path / "a",
        progress=False,
    )
    train(
        _cfg("max_tokens=1024", "accum=1", "max_steps=1"),
        tmp_path / "b",
        progress=False,
    )
    assert seen == [256, 1024]  # micro-batches of max_tokens / (world * accum)
    with pytest.raises(AiaynError, match="max_tokens=3 is the batch of one"):
        train(_cfg("max_tokens=3", "accum=4"), tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()


def test_resume_without_a_run_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AiaynError, match="holds no run to continue"):
        train(_cfg(), tmp_path / "missing", resume=True, progress=False)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(AiaynError, match="holds no run to continue"):
        train(_cfg(), tmp_path / "empty", resume=True, progress=False)
    assert list((tmp_path / "empty").iterdir()) == []


def test_out_under_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    for out in (tmp_path / "file", tmp_path / "file" / "run"):
        with pytest.raises(AiaynError, match="is a file, not a directory"):
            train(_cfg(), out, progress=False)
    assert (tmp_path / "file").read_text() == "not a directory"


def test_dev_loss_leaves_the_mode_as_it_found_it(tiny_model: Any) -> None:
    data = get_task("copy").prepare(_cfg())
    model = tiny_model(vocab_size=data.cfg.model.vocab_size)
    for mode in (True, False):
        model.train(mode)
        result = dev_loss(model, data, 512, torch.device("cpu"))
        assert model.training is mode and result["dev_ppl"] > 1.0


def test_metrics_record_the_device_and_command(tmp_path: Path) -> None:
    train(_cfg("max_steps=2"), tmp_path / "run", progress=False, command="cmd")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["command"] == "cmd" and metrics["device"].startswith("CPU")


def test_lc_norm_tok_models_read_and_write_plain_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Input is preprocessed as in training, output turned back into plain text."""
    import aiayn.tasks.multi30k as m30k

    seen: list[list[str]] = []

    def fake_translate(model: Any, tok: Any, src: list[str], *args: Any) -> list[str]:
        seen.append(list(src))
        return ["un groupe d&apos; hommes &quot; heureux &quot; ."]

    monkeypatch.setattr(m30k, "translate", fake_translate)
    cfg = get_preset("multi30k_tiny_en_fr")
    out = get_task("multi30k").translate(
        None, None, cfg, ['A group of men\'s "happy" faces.'], 5, 1.0
    )
    assert seen == [["a group of men &apos;s &quot; happy &quot; faces ."]]
    assert out == ['un groupe d\'hommes "heureux".']
    raw = replace_preprocessing(cfg, "raw")
    get_task("multi30k").translate(None, None, raw, ["A Man's hat."], 5, 1.0)
    assert seen[-1] == ["A Man's hat."]  # raw models read the text as it is


def replace_preprocessing(cfg: TrainConfig, kind: str) -> TrainConfig:
    return cfg.with_overrides([f"preprocessing={kind}"])


def test_lc_norm_tok_training_data_and_lowercased_scores(
    mirror: Path, tmp_path: Path
) -> None:
    cfg = get_preset("multi30k_tiny_cpu_en_de").with_overrides(
        ["train_limit=300", "dev_limit=5", "model.vocab_size=400"]
    )
    task = get_task("multi30k")
    data = task.prepare(cfg, str(mirror))
    assert data.dev_src[0][0].isupper()  # raw text, preprocessed when decoded
    ref_ids = data.dev[0][1]
    official = preprocess([data.dev_ref[0]], "de", "lc.norm.tok")[0]
    assert data.tokenizer.decode(ref_ids) == official  # trained on lc.norm.tok
    model = aiayn.Transformer(data.cfg.model)
    result = task.evaluate_split(
        model, data.tokenizer, data.cfg, "test_2016_flickr", 1, 0.6, limit=2,
        mirror=str(mirror),
    )  # fmt: skip
    assert result.scores["preprocessing"] == "lc.norm.tok"
    assert "case:lc" in result.scores["bleu_signature"]
    with pytest.raises(AiaynError, match="preprocessing='lc'"):
        replace_preprocessing(cfg, "lc")
