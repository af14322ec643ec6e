"""Resuming training (section 5): an interrupted run continues bit-exactly."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from aiayn import checkpoint as ckpt
from aiayn.config import TrainConfig
from aiayn.errors import AiaynError
from aiayn.presets import get_preset
from aiayn.ship import ship
from aiayn.train import train

# 200 copy pairs make about 3 batches per epoch, so 6 steps cross two epoch
# boundaries and the resumed run must find its place in the reshuffled stream.
TINY = [
    "save_every=3",
    "eval_every=3",
    "copy_train_size=200",
    "copy_test_size=20",
    "eval_bleu=False",
]


def _cfg(max_steps: int) -> TrainConfig:
    return get_preset("copy").with_overrides([*TINY, f"max_steps={max_steps}"])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_weights(path)


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


# Numbers in a log record that depend on the data and the model only (not on time).
EXACT = ("step", "train_loss", "lr", "dev_loss", "dev_nll", "dev_ppl")


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-step run, never interrupted."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("WORLD_SIZE", raising=False)
        out = tmp_path_factory.mktemp("straight") / "run"
        metrics = train(_cfg(6), out, progress=False)
    assert metrics["steps"] == 6
    return out


def test_resumed_run_is_bit_identical(
    straight: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "run"
    first = train(_cfg(3), out, progress=False)
    assert first["steps"] == 3
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["step_0000003"]
    step3 = _weights(out / "checkpoints" / "step_0000003" / ckpt.WEIGHTS)
    _assert_equal(
        step3, _weights(straight / "checkpoints" / "step_0000003" / ckpt.WEIGHTS)
    )

    metrics = train(_cfg(6), out, resume=True, progress=False)

    assert metrics["steps"] == 6
    last = "checkpoints/step_0000006/" + ckpt.WEIGHTS
    _assert_equal(_weights(out / last), _weights(straight / last))
    # The final model averages step 3 and step 6 (average_last=3) in both runs.
    _assert_equal(_weights(out / ckpt.WEIGHTS), _weights(straight / ckpt.WEIGHTS))
    assert metrics["averaged_checkpoints"] == ["step_0000003", "step_0000006"]
    # wall time, tokens and epochs add up over the two segments
    whole = json.loads((straight / "metrics.json").read_text())
    assert (metrics["segments"], whole["segments"]) == (2, 1)
    assert metrics["train_target_tokens"] == whole["train_target_tokens"] > 0
    assert metrics["epochs"] == whole["epochs"] > 0
    # the first segment's totals travel in its checkpoint's trainer state
    totals = ckpt.load_trainer_state(out / "checkpoints" / "step_0000003")["totals"]
    assert totals["segments"] == 1
    assert totals["tokens"] == first["train_target_tokens"]
    # Steps 4-6 did train: the weights moved after the resume.
    moved = _weights(out / last)
    assert any(not torch.equal(step3[k], moved[k]) for k in step3)

    # The log continues the first part's history instead of starting over.
    log, ref = _log(out), _log(straight)
    assert [r["step"] for r in log] == [3, 6]
    for r, s in zip(log, ref, strict=True):
        assert {k: r[k] for k in EXACT} == {k: s[k] for k in EXACT}
    assert [r["step"] for r in metrics["history"]] == [3, 6]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 6
    assert (
        saved["dev_loss"]
        == json.loads((straight / "metrics.json").read_text())["dev_loss"]
    )
    assert ckpt.read_config(out).max_steps == 6


def test_resuming_a_finished_run_changes_nothing(
    straight: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "run"
    train(_cfg(3), out, progress=False)
    before = _weights(out / ckpt.WEIGHTS)
    metrics = train(_cfg(3), out, resume=True, progress=False)
    assert metrics["steps"] == 3
    _assert_equal(_weights(out / ckpt.WEIGHTS), before)
    assert [r["step"] for r in _log(out)] == [3]


def test_a_run_directory_is_never_overwritten(
    straight: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    before = (straight / ckpt.WEIGHTS).read_bytes()
    with pytest.raises(AiaynError, match="already holds a run.*--resume"):
        train(_cfg(6), straight, progress=False)
    assert (straight / ckpt.WEIGHTS).read_bytes() == before

    # An interrupted run (checkpoints, no final config.json) is protected too.
    out = tmp_path / "interrupted"
    shutil.copytree(
        straight / "checkpoints" / "step_0000003",
        out / "checkpoints" / "step_0000003",
    )
    with pytest.raises(AiaynError, match="already holds a run"):
        train(_cfg(6), out, progress=False)

    # A directory with unrelated files in it is fine to train into.
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.txt").write_text("notes\n")
    assert train(_cfg(1), other, progress=False)["steps"] == 1


def test_max_minutes_stops_checkpoints_and_finishes(tmp_path: Path) -> None:
    """A time budget ends the run at the step that crosses it, as a finished run."""
    out = tmp_path / "run"
    cfg = _cfg(6).with_overrides(["max_minutes=1e-9"])  # spent by the first step
    metrics = train(cfg, out, progress=False)
    assert metrics["steps"] == 1 and metrics["stopped_by"] == "max_minutes"
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["step_0000001"]
    assert [r["step"] for r in _log(out)] == [1]  # evaluated where it stopped
    assert (out / ckpt.WEIGHTS).exists()
    card = ship(out, tmp_path / "one", notes=["Nothing else ran."]) / "README.md"
    text = card.read_text()
    assert "Stopped at step 1 of 6 by the time budget, max_minutes=1e-09" in text
    assert "\n- Nothing else ran.\n" in text
    # Resumed with the budget already spent: no more steps, finished again.
    again = train(cfg, out, resume=True, progress=False, command="second")
    assert again["steps"] == 1 and again["stopped_by"] == "max_minutes"
    assert again["segments"] == 2 and again["commands"][1:] == ["second"]
    # Without a budget the same run goes on to max_steps.
    done = train(_cfg(6), out, resume=True, progress=False, command="third")
    assert done["steps"] == 6 and done["stopped_by"] == "max_steps"
    assert done["commands"][1:] == ["third"]  # the second trained nothing
    card = (ship(out, tmp_path / "three") / "README.md").read_text()
    assert "1. `" in card and "2. `third`" in card and "Stopped" not in card
    with pytest.raises(AiaynError, match="max_minutes"):
        _cfg(6).with_overrides(["max_minutes=0"])
