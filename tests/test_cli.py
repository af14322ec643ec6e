"""The command line: ``python -m aiayn``; user errors are one line, exit status 2.

A copy-task model trained for a few steps serves here (enough checkpoints to
average; it need not copy well); test_copy_task.py runs the CLI on a fully trained
one. Most tests call ``aiayn.cli.main`` in this process, the code ``python -m
aiayn`` runs minus a second or two of start-up: an exception it fails to turn into
an ``error:`` line fails the test with its traceback. A few run the real
``python -m aiayn`` in a subprocess.
"""

import io
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from aiayn import checkpoint as ckpt
from aiayn.cli import main
from aiayn.model import Transformer
from aiayn.presets import get_preset
from aiayn.train import train

TIMEOUT = 120  # seconds for one CLI subprocess (about 2 s on an idle machine)
SETTINGS = [
    "max_steps=4",
    "save_every=1",
    "eval_every=4",
    "copy_train_size=200",
    "copy_test_size=10",
    "eval_bleu=False",
]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Result]


def real_cli(*args: str | Path, stdin: bytes = b"") -> Result:
    """Run ``python -m aiayn ARGS`` in a subprocess with ``stdin``."""
    done = subprocess.run(
        [sys.executable, "-m", "aiayn", *map(str, args)],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli(*args, stdin=b"")``: ``aiayn.cli.main(args)`` in this process."""

    def call(*args: str | Path, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's own usage errors
            code = e.code
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


def assert_user_error(done: Result, *fragments: str) -> str:
    """Exit status 2 and exactly one ``error: ...`` line naming ``fragments``."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy-task run of 4 steps; checkpoints 2, 3 and 4 are kept."""
    out = tmp_path_factory.mktemp("cli") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("WORLD_SIZE", raising=False)
        train(get_preset("copy").with_overrides(SETTINGS), out, progress=False)
    return out


def test_info_prints_the_parameter_count(run: Path, cli: Cli) -> None:
    n = Transformer(get_preset("copy").model).num_parameters()
    done = real_cli("info", "copy")
    assert done.returncode == 0, done.stderr
    assert f"parameters: {n:,}" in done.stdout.splitlines()
    assert '"name": "copy"' in done.stdout
    done = cli("info", run)  # a model directory works too
    assert done.returncode == 0, done.stderr
    assert f"parameters: {n:,}" in done.stdout.splitlines()
    assert '"max_steps": 4' in done.stdout


def test_unknown_config(tmp_path: Path, cli: Cli) -> None:
    assert_user_error(cli("info", "no_such_preset"), "unknown config", "copy")
    out = tmp_path / "run"
    done = real_cli("train", "--config", "no_such_preset", "--out", out)
    assert_user_error(done, "unknown config 'no_such_preset'", "multi30k_en_de")
    assert not out.exists()
    # argparse's own mistakes exit with 2 too (its usage message is two lines).
    done = cli("train", "--out", out)
    assert done.returncode == 2
    assert "--config" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("colour=red", "no field 'colour'"),
        ("model.colour=red", "ModelConfig has no field 'colour'"),
        ("model=3", "no field 'model'"),
        ("max_steps", "expects key=value"),
        ("max_steps=many", "cannot read max_steps='many'"),
        ("model.dropout=lots", "cannot read dropout='lots'"),
        ("eval_bleu=maybe", "cannot read eval_bleu='maybe'"),
        ("model.dropout=1.5", "dropout=1.5"),
        ("accum=0", "accum=0"),  # would divide by zero in the loop
        ("save_every=0", "save_every=0"),
        ("average_last=0", "average_last=0"),  # [-0:] would average them all
        ("copy_train_size=0", "0 training"),  # would loop forever on no batches
    ],
)
def test_bad_set(tmp_path: Path, setting: str, message: str, cli: Cli) -> None:
    out = tmp_path / "run"
    done = cli("train", "--config", "copy", "--out", out, "--set", setting)
    assert_user_error(done, message)
    assert not (out / ckpt.CONFIG).exists()


def test_train_refuses_an_existing_run(run: Path, cli: Cli) -> None:
    before = (run / ckpt.WEIGHTS).read_bytes()
    done = cli("train", "--config", "copy", "--out", run, "--set", "max_steps=1")
    assert_user_error(done, "already holds a run", "--resume")
    assert (run / ckpt.WEIGHTS).read_bytes() == before


def test_translate_without_a_checkpoint(tmp_path: Path, cli: Cli) -> None:
    missing = tmp_path / "nowhere"
    done = cli("translate", "--checkpoint", missing, stdin=b"3 1 4\n")
    assert_user_error(done, str(missing), "not found")


def test_translate_invalid_utf8_names_the_line(run: Path) -> None:
    stdin = b"3 1 4\n5 9\n\xff\xfe 2\n"
    done = real_cli("translate", "--checkpoint", run, stdin=stdin)
    assert_user_error(done, "line 3", "not valid UTF-8")
    assert done.stdout == ""


def test_translate_symbol_outside_the_vocabulary(run: Path, cli: Cli) -> None:
    done = cli("translate", "--checkpoint", run, stdin=b"3 99\n")
    assert_user_error(done, "'99'", "0..9")
    done = cli("translate", "--checkpoint", run, stdin=b"3 x\n")
    assert_user_error(done, "'x'")


def test_translate_overlong_line_is_truncated_with_a_warning(
    run: Path, cli: Cli
) -> None:
    max_len = ckpt.read_config(run).model.max_len
    long = " ".join(str(i % 10) for i in range(max_len + 40))
    done = cli("translate", "--checkpoint", run, stdin=f"1 2 3 4\n{long}\n".encode())
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    warning = f"warning: 1 input(s) longer than the model's {max_len - 1} source"
    assert warning in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2  # one output line per input line, in order
    # The output is copy-task symbols, at most max_len - 1 of them (BOS takes one).
    assert all(s.isdigit() for s in lines[1].split())
    assert len(lines[1].split()) <= max_len - 1


def test_evaluate_needs_a_translation_model(run: Path, cli: Cli) -> None:
    done = cli("evaluate", "--checkpoint", run)
    assert_user_error(done, "'copy' model, not a translator")


def test_corrupted_weights_are_a_clear_error(
    run: Path, tmp_path: Path, cli: Cli
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    weights = broken / ckpt.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])
    done = cli("translate", "--checkpoint", broken, stdin=b"3 1 4\n")
    assert_user_error(done, str(weights), "truncated or corrupted")
    assert_user_error(cli("info", broken / "checkpoints"), "config.json not found")


def test_average_writes_a_loadable_model(run: Path, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "avg"
    done = cli("average", "--run", run, "--last", "2", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "step_0000003" in done.stdout and "step_0000004" in done.stdout
    model = ckpt.load_model(out)
    steps = [ckpt.load_weights(p / ckpt.WEIGHTS) for p in ckpt.list_checkpoints(run)]
    assert len(steps) == 3
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, (steps[1][k] + steps[2][k]) / 2)
    assert not torch.equal(
        steps[1]["tgt_embed.embedding.weight"], steps[2]["tgt_embed.embedding.weight"]
    )
    done = cli("translate", "--checkpoint", out, "--beam", "1", stdin=b"3 1 4\n")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1

    assert_user_error(
        cli("average", "--run", run, "--last", "0", "--out", tmp_path / "x"), "--last"
    )
    assert_user_error(
        cli("average", "--run", tmp_path, "--out", tmp_path / "y"), "no checkpoints"
    )
