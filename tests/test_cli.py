"""The command line: ``python -m aiayn``; user errors are one line, exit status 2.

A copy-task model trained for a few steps serves here (enough checkpoints to
average; it need not copy well); test_copy_task.py runs the CLI on a fully trained
one. Most tests call ``aiayn.cli.main`` in this process, the code ``python -m
aiayn`` runs minus a second or two of start-up: an exception it fails to turn into
an ``error:`` line fails the test with its traceback. A few run the real
``python -m aiayn`` in a subprocess.
"""

import argparse
import ast
import importlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from aiayn import checkpoint as ckpt
from aiayn.cli import COMMANDS, build_parser, main
from aiayn.env import resolve_device
from aiayn.errors import AiaynError
from aiayn.model import Transformer
from aiayn.presets import get_preset
from aiayn.tasks import get_task
from aiayn.train import train

TIMEOUT = 900  # a hang guard per CLI subprocess (about 2 s on an idle machine)
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
        ("copy_train_size=0", "copy_train_size=0"),  # would loop forever
        ("warmup=0", "warmup=0"),  # ZeroDivisionError in the scheduler
        ("max_tokens=0", "max_tokens=0"),
        ("beam_size=0", "beam_size=0"),
        ("alpha=-0.5", "alpha=-0.5"),  # beam search's early stop needs alpha >= 0
        ("lr_factor=0", "lr_factor=0.0"),
        ("adam_betas=[0.9, 1.0]", "adam_betas=[0.9, 1.0]"),
        ("amp=fp8", "amp='fp8'"),
        ("copy_min_len=20", "copy_max_len=12"),
    ],
)
def test_bad_set(tmp_path: Path, setting: str, message: str, cli: Cli) -> None:
    out = tmp_path / "run"
    done = cli("train", "--config", "copy", "--out", out, "--set", setting)
    assert_user_error(done, message)
    assert not out.exists()  # nothing written: no tokenizer, no train_config


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


def test_evaluate_scores_any_task_as_it_is_judged(run: Path, cli: Cli) -> None:
    """evaluate goes through the model's task: exact match for the copy task."""
    done = cli("evaluate", "--checkpoint", run, "--limit", "5")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["task"] == "copy" and result["split"] == "dev"
    assert result["n"] == 5 and 0.0 <= result["exact_match"] <= 1.0
    assert result["beam"] == 1  # the copy preset's own beam, not the paper's 4
    done = cli("evaluate", "--checkpoint", run, "--split", "test_2016_flickr")
    assert_user_error(done, "the copy task has no split 'test_2016_flickr'")


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


# --- every command has real options; every documented command line parses ----

ROOT = Path(__file__).resolve().parents[1]
COMMAND_NAMES = sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_every_command_has_help(command: str, cli: Cli) -> None:
    done = cli(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m aiayn {command}")
    assert "unrecognized arguments" not in done.stderr


def test_module_commands_take_their_options_from_the_cli() -> None:
    """complexity, variations, export-hf: the REMAINDER pass-through is gone."""
    done = real_cli("export-hf", "--help")
    assert done.returncode == 0, done.stderr
    assert "--checkpoint" in done.stdout and "--force" in done.stdout
    args = build_parser().parse_args(
        ["complexity", "--device", "cpu", "--budget", "tiny", "--out", "t.json"]
    )
    assert (args.device, args.budget, args.out) == ("cpu", "tiny", "t.json")
    args = build_parser().parse_args(["variations", "--budget", "tiny", "--out", "x"])
    assert (args.budget, args.out) == ("tiny", Path("x"))


def _module_parser(module: str) -> argparse.ArgumentParser:
    """The parser of ``python -m MODULE`` (``aiayn``: the whole CLI)."""
    if module == "aiayn":
        return build_parser()
    add = importlib.import_module(module).add_arguments
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    add(parser)
    return parser


def command_argv(line: str) -> tuple[str, list[str]] | None:
    """(module, arguments) of the ``-m aiayn...`` command in a shell line."""
    words = shlex.split(line, comments=True)
    for i in range(len(words) - 1):
        if words[i] == "-m" and words[i + 1].split(".")[0] == "aiayn":
            rest = words[i + 2 :]
            if "|" in rest:
                rest = rest[: rest.index("|")]
            return words[i + 1], rest
    return None


def shell_lines(markdown: str) -> list[str]:
    """The lines of the ```bash blocks of a Markdown text, continuations joined."""
    lines = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", markdown, re.S):
        lines += [ln for ln in block.replace("\\\n", " ").splitlines() if ln.strip()]
    return lines


NOT_OURS = {"aiayn.parse_task"}  # its parser lives in parse_task.main (the lead's)


# Prose shorthand that leaves out a required option (presets.py, chapter 0).
def documented_commands() -> list[tuple[str, str]]:
    """(where, line) for each ``-m aiayn`` command in docs, docstrings and book."""
    found = [("README.md", ln) for ln in shell_lines((ROOT / "README.md").read_text())]
    for path in sorted((ROOT / "code" / "aiayn").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            doc = None
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node)
            for span in re.findall(r"``([^`\n]*-m aiayn[^`\n]*)``", doc or ""):
                found.append((path.name, span))
            for ln in (doc or "").splitlines():
                if re.match(r"\s+(echo .*\| )?(torchrun|python) .*-m aiayn", ln):
                    found.append((path.name, ln.strip()))
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                found += [(path.name, ln) for ln in shell_lines(src)]
                prose = re.sub(r"```.*?```", "", src, flags=re.S)
                for span in re.findall(r"`([^`]*-m aiayn[^`]*)`", prose):
                    found.append((path.name, " ".join(span.split())))
                continue
            if "-m aiayn" not in src:
                continue
            magics = re.compile(r"^(\s*)[!%].*$", re.M)  # IPython's !cmd, %magic
            for node in ast.walk(ast.parse(magics.sub(r"\1pass", src))):
                if isinstance(node, ast.Constant) and "-m aiayn" in str(node.value):
                    text = " ".join(node.value.split())
                    if re.search(r"--[\w-]+$", text):  # "--out " + str(run)
                        text += " PATH"
                    found.append((path.name, text))
    unique = dict.fromkeys((w, ln.strip()) for w, ln in found if "-m aiayn" in ln)
    return list(unique)


def test_documented_command_lines_parse(capsys: pytest.CaptureFixture) -> None:
    commands = documented_commands()
    where = {w for w, _ in commands}
    assert {"README.md", "cli.py", "05_training.ipynb"} <= where, where
    assert len(commands) >= 20, commands
    parsed, failed = 0, []
    for where, line in commands:
        found = command_argv(line)
        assert found is not None, (where, line)
        module, argv = found
        if module in NOT_OURS:
            continue
        if len(argv) <= 1 and "-" not in "".join(argv):
            continue  # a name in prose ("python -m aiayn evaluate"), not a line
        try:
            _module_parser(module).parse_args(argv)
        except SystemExit:
            failed.append(f"{where}: {line!r}: {capsys.readouterr().err}")
        parsed += 1
    assert not failed, "\n".join(failed)
    assert parsed >= 20


# --- every argument is checked before any work; nothing is written ------------


def _refuse_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading data, decoding or training fails the test: the check came late."""
    import aiayn.multi30k
    import aiayn.train
    import aiayn.translate

    def work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(aiayn.multi30k, "load_pairs", work)
    monkeypatch.setattr(aiayn.translate, "translate", work)
    monkeypatch.setattr(aiayn.train, "train", work)
    for task in ("copy", "multi30k", "parse"):
        monkeypatch.setattr(type(get_task(task)), "evaluate_split", work)


def _no_gpu_index() -> str:
    return f"cuda:{torch.cuda.device_count()}"  # one past the last GPU


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["translate", "--beam", "0"], ["--beam", "at least 1"]),
        (["translate", "--beam", "-2"], ["--beam", "-2"]),
        (["translate", "--alpha", "-0.5"], ["--alpha", ">= 0"]),
        (["translate", "--batch-tokens", "0"], ["--batch-tokens"]),
        (["translate", "--device", "tpu7"], ["unknown device 'tpu7'", "cpu"]),
        (["translate", "--device", "NO_GPU"], ["--device cuda:", "GPU"]),
        (["evaluate", "--beam", "0"], ["--beam"]),
        (["evaluate", "--alpha", "-1"], ["--alpha"]),
        (["evaluate", "--limit", "0"], ["--limit"]),
        (["evaluate", "--device", "tpu7"], ["unknown device"]),
        (["evaluate", "--split", "test_2099"], ["no split 'test_2099'"]),
        (["evaluate", "--data-mirror", "/no/such/mirror"], ["--data-mirror"]),
    ],
)
def test_bad_decoding_arguments(
    run: Path,
    argv: list[str],
    fragments: list[str],
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _refuse_work(monkeypatch)
    argv = [_no_gpu_index() if a == "NO_GPU" else a for a in argv]
    done = cli(argv[0], "--checkpoint", run, *argv[1:], stdin=b"3 1 4\n")
    assert_user_error(done, *fragments)
    assert done.stdout == ""


def test_plain_cuda_without_a_gpu(run: Path, cli: Cli) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = cli("translate", "--checkpoint", run, "--device", "cuda", stdin=b"1 2\n")
    assert_user_error(done, "no CUDA GPU", "--device cpu")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    for bad in ("tpu7", "", "cuda:x", _no_gpu_index()):
        with pytest.raises(AiaynError, match="device"):
            resolve_device(bad)


def test_evaluate_checks_out_before_decoding(
    run: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_work(monkeypatch)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (tmp_path, "is a directory"),
        (a_file / "eval.json", "is a file"),
        (a_file / "deeper" / "eval.json", "is a file"),
    ]
    for out, message in cases:
        done = cli("evaluate", "--checkpoint", run, "--out", out)
        assert_user_error(done, "--out", message)
    (tmp_path / "e.hyp.txt").mkdir()  # where the translations would go
    done = cli("evaluate", "--checkpoint", run, "--out", tmp_path / "e.json")
    assert_user_error(done, "hyp.txt", "is a directory")
    assert not (tmp_path / "e.json").exists()


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_evaluate_writes_only_where_told(
    mirror: Path, tmp_path: Path, cli: Cli
) -> None:
    shipped = ROOT / "checkpoints" / "multi30k_tiny_cpu_en_de"
    if not (shipped / ckpt.WEIGHTS).is_file():
        pytest.skip("no shipped multi30k_tiny_cpu_en_de model")
    model = tmp_path / "model"
    shutil.copytree(shipped, model, ignore=shutil.ignore_patterns("checkpoints"))
    before = _snapshot(model)
    argv = ["evaluate", "--checkpoint", model, "--limit", "3", "--beam", "1"]
    done = cli(*argv)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n"] == 3 and result["limit"] == 3 and result["beam"] == 1
    assert _snapshot(model) == before  # the checkpoint directory is untouched
    out = tmp_path / "scores" / "eval.json"
    done = cli(*argv, "--out", out)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["n"] == 3
    hyps = out.with_suffix(".hyp.txt").read_text().splitlines()
    assert len(hyps) == 3 and all(hyps)
    assert _snapshot(model) == before


def test_train_checks_out_and_resume(tmp_path: Path, cli: Cli) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    base = ["train", "--config", "copy", "--set", "max_steps=1"]
    assert_user_error(cli(*base, "--out", a_file), "--out", "is a file")
    assert_user_error(cli(*base, "--out", a_file / "run"), "is a file")
    missing = tmp_path / "missing"
    done = cli(*base, "--out", missing, "--resume")
    assert_user_error(done, "--resume", "holds no run", "drop --resume")
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(cli(*base, "--out", empty, "--resume"), "holds no run")
    assert list(empty.iterdir()) == []
    for device in ("tpu7", _no_gpu_index()):
        done = cli(*base, "--out", tmp_path / "run", "--device", device)
        assert_user_error(done, "device")
    done = cli(*base, "--out", tmp_path / "run", "--data-mirror", tmp_path / "nope")
    assert_user_error(done, "--data-mirror")
    assert not (tmp_path / "run").exists()


def test_average_never_overwrites_its_run(run: Path, tmp_path: Path, cli: Cli) -> None:
    before = _snapshot(run)
    for out in (run, run / "checkpoints", run / "checkpoints" / "step_0000004"):
        done = cli("average", "--run", run, "--out", out)
        assert_user_error(done, "would overwrite the run")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert_user_error(cli("average", "--run", run, "--out", a_file), "is a file")
    assert_user_error(cli("average", "--run", run, "--last", "-1", "--out", a_file))
    assert _snapshot(run) == before


def test_ship_never_replaces_its_run(run: Path, tmp_path: Path, cli: Cli) -> None:
    before = _snapshot(run)
    for out in (run, run.parent, run / "shipped"):
        done = cli("ship", "--run", run, "--out", out)
        assert_user_error(done, "overlap")
    other = tmp_path / "other"
    (other / "notes").mkdir(parents=True)
    done = cli("ship", "--run", run, "--out", other)
    assert_user_error(done, "not a model directory")
    assert (other / "notes").is_dir()
    assert _snapshot(run) == before
    done = cli("ship", "--run", run, "--out", tmp_path / "shipped")
    assert done.returncode == 0, done.stderr  # an ordinary ship still works
    assert (tmp_path / "shipped" / "README.md").is_file()


def test_export_hf_never_replaces_its_checkpoint(
    run: Path, tmp_path: Path, cli: Cli
) -> None:
    before = _snapshot(run)
    for out in (run, run.parent):
        done = cli("export-hf", "--checkpoint", run, "--out", out, "--force")
        assert_user_error(done, "overlaps --checkpoint")
    done = cli("export-hf", "--checkpoint", tmp_path / "none", "--out", tmp_path / "x")
    assert_user_error(done, "not a model directory")
    assert _snapshot(run) == before
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["complexity", "--device", "tpu7"], "unknown device"),
        (["complexity", "--kinds", "lstm"], "unknown --kinds"),
        (["complexity", "--threads", "0"], "--threads"),
        (["complexity", "--ns", "0"], "--ns"),
        (["complexity", "--out", "DIR"], "is a directory"),
        (["variations", "--device", "tpu7", "--out", "OUT"], "unknown device"),
        (["variations", "--threads", "0", "--out", "OUT"], "--threads"),
        (["variations", "--out", "DIR"], "is a directory"),
        (["variations", "--out", "OUT", "--runs", "FILE"], "--runs"),
        (["variations", "--rows", "Z", "--out", "OUT"], "unknown rows"),
    ],
)
def test_bad_experiment_arguments(
    argv: list[str],
    fragment: str,
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # complexity's default --out is table1.json
    (tmp_path / "FILE").write_text("x")
    names = {"DIR": tmp_path, "OUT": tmp_path / "out.json", "FILE": tmp_path / "FILE"}
    done = cli(*[names.get(a, a) for a in argv])
    assert_user_error(done, fragment)
    assert not (tmp_path / "out.json").exists()
    assert not (tmp_path / "table1.json").exists()


# --- Ctrl-C and SIGTERM: one line, exit 130, complete checkpoints --------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_interrupted_training_exits_cleanly(
    sig: signal.Signals, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    settings = [
        *SETTINGS,
        "max_steps=100000",
        "eval_every=100000",
        "save_every=2",
        "keep_checkpoints=3",
        "average_last=1",
    ]
    argv = ["train", "--config", "copy", "--out", str(out), "--no-progress"]
    for s in settings:
        argv += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiayn", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        hang_guard = time.monotonic() + TIMEOUT  # not a speed check: a stuck run
        while len(ckpt.list_checkpoints(out)) < 2 and proc.poll() is None:
            if time.monotonic() > hang_guard:
                pytest.fail(f"no checkpoint after {TIMEOUT} s: the run is stuck")
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    err = stderr.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith(f"interrupted by {sig.name}")
    assert "--resume" in err
    entries = sorted((out / "checkpoints").iterdir())
    assert entries and entries == ckpt.list_checkpoints(out)  # no half-written one
    for d in entries:
        assert ckpt.read_config(d).max_steps == 100000
        ckpt.load_model(d)  # the weights are whole
        assert ckpt.load_trainer_state(d)["step"] == int(d.name.split("_")[1])


def test_complexity_and_export_hf_run_from_the_cli(
    run: Path, tmp_path: Path, cli: Cli
) -> None:
    out = tmp_path / "t1.json"
    done = cli(
        "complexity", "--device", "cpu", "--budget", "tiny", "--kinds",
        "convolutional", "--ns", "8", "16", "--ds", "8", "--out", out, "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["command"].startswith("python -m aiayn complexity --device cpu")
    assert {row["kind"] for row in data["rows"]} == {"convolutional"}
    pytest.importorskip("transformers")
    hf = tmp_path / "hf"
    done = cli("export-hf", "--checkpoint", run, "--out", hf)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["out"] == str(hf)
    assert (hf / "config.json").is_file()
    done = cli("export-hf", "--checkpoint", run, "--out", hf)  # not empty now
    assert_user_error(done, "not empty", "--force")
