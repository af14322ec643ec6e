"""The copy task end to end: ``python -m aiayn train --config copy`` learns to copy.

The module trains the real preset once, through the real command line (44 s on an
idle 2-core CPU, 392 s under load), and every test here reuses that run directory.
No test asserts how long it took: the run records that in its metrics.json.
"""

import io
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiayn import checkpoint as ckpt
from aiayn.cli import main

# Seconds: only there to stop a hung command, never a speed test (a busy CPU took
# 992 s to train what an idle one trains in 44 s).
TRAIN_TIMEOUT = 3600
TIMEOUT = 600  # one translate or info command: a few seconds on an idle CPU


def _aiayn(
    *args: str | Path, stdin: bytes = b"", timeout: float = TIMEOUT
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aiayn", *map(str, args)],
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, float]:
    """(run directory, metrics printed by the CLI, wall seconds of the command)."""
    out = tmp_path_factory.mktemp("copy") / "run"
    t0 = time.perf_counter()
    done = _aiayn(
        "train", "--config", "copy", "--out", out, "--no-progress",
        timeout=TRAIN_TIMEOUT,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    stdout = done.stdout.decode()
    printed = json.loads(stdout[stdout.index("{") :])  # after the log lines
    return out, printed, wall


def test_copy_task_learns(copy_run: tuple[Path, dict, float]) -> None:
    out, printed, _ = copy_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["exact_match"] == 1.0, metrics
    assert metrics["n"] == 500  # every held-out sequence, none seen in training
    assert metrics["steps"] == 1400
    assert metrics["averaged_checkpoints"] == [
        "step_0001000", "step_0001200", "step_0001400"
    ]  # fmt: skip
    assert metrics["command"].startswith("python -m aiayn train --config copy")
    assert printed["exact_match"] == 1.0 and "history" not in printed
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [700, 1400]
    assert log[-1]["train_loss"] < log[0]["train_loss"]


def test_copy_run_records_its_cost(copy_run: tuple[Path, dict, float]) -> None:
    """The wall time is recorded (for the book and benchmarks), never bounded here."""
    out, printed, wall = copy_run
    metrics = json.loads((out / "metrics.json").read_text())
    seconds = metrics["wall_time_s"]
    assert 0 < seconds <= wall  # the loop's time, without Python's start-up
    assert printed["wall_time_s"] == seconds
    assert metrics["device"] and metrics["torch"] and metrics["train_tokens_per_s"] > 0


def test_translate_copies_stdin(copy_run: tuple[Path, dict, float]) -> None:
    out = copy_run[0]
    text = "3 1 4 1 5\n\n9 2 6\n"
    done = _aiayn("translate", "--checkpoint", out, stdin=text.encode())
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == text  # the empty line stays empty, in order
    assert done.stderr.decode() == ""


def _translate_in_process(
    out: Path, lines: list[str], capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch, *extra: str,
) -> list[str]:  # fmt: skip
    data = "".join(x + "\n" for x in lines).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    capsys.readouterr()
    assert main(["translate", "--checkpoint", str(out), *extra]) == 0
    return capsys.readouterr().out.splitlines()


def test_many_sequences_come_back_in_order(
    copy_run: tuple[Path, dict, float],
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Decoding sorts by length and batches; the output is in the input's order."""
    rng = random.Random(0)
    lines = [
        " ".join(str(rng.randrange(10)) for _ in range(rng.randint(4, 12)))
        for _ in range(40)
    ]
    lines[7] = ""
    for beam in ("1", "4"):
        got = _translate_in_process(
            copy_run[0], lines, capsys, monkeypatch, "--beam", beam,
            "--batch-tokens", "100",  # several batches
        )  # fmt: skip
        assert got == lines, beam


def test_averaged_model_still_copies(
    copy_run: tuple[Path, dict, float],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = copy_run[0]
    avg = tmp_path / "avg"
    assert main(["average", "--run", str(out), "--last", "2", "--out", str(avg)]) == 0
    assert "['step_0001200', 'step_0001400']" in capsys.readouterr().out
    lines = ["0 1 2 3 4 5 6 7 8 9", "7 7 7 7", "5 3 5 3 5 3 5 3 5 3 5 3"]
    assert _translate_in_process(avg, lines, capsys, monkeypatch) == lines


def test_info_on_the_trained_model(
    copy_run: tuple[Path, dict, float], capsys: pytest.CaptureFixture
) -> None:
    out, printed, _ = copy_run
    assert main(["info", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"parameters: {printed['parameters']:,}" in shown.splitlines()
    assert ckpt.read_config(out).name == "copy"
