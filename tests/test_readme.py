"""README.md's commands, run verbatim in a fresh copy of the repository.

Every line of the README's ```bash blocks is either run, in order, by one bash
script in a copy of the repository (its files as ``git ls-files`` lists them: no
.venv, runs or caches), starting from a PATH without this virtual environment, so
the README's own ``. .venv/bin/activate`` must make ``python -m aiayn`` work; or
it is listed in EXPENSIVE with the reason, and an ``aiayn`` command there is at
least parsed by the CLI's parser.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from aiayn.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the environment running this test
TIMEOUT = 600  # seconds for all the cheap commands (about 60 s on an idle CPU)

# README lines not run here, and why.
EXPENSIVE = {
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"': (
        "installs every dependency from the network (.ci/run does it)"
    ),
    ".venv/bin/jupyter-book build .": "builds the whole book (minutes)",
    ".venv/bin/pytest -n 2 --dist loadscope --nbval tests book": (
        "the full test run, this test included"
    ),
    "python -m aiayn train --config multi30k_en_de --out runs/ende": (
        "a GPU preset: hours on a CPU"
    ),
    "torchrun --nproc_per_node 4 -m aiayn train --config multi30k_en_de "
    "--out runs/ende4": "four training processes of a GPU preset",
    "python -m aiayn reproduce --budget full --out runs/reproduce "
    "--time-limit 36000": "every full-budget experiment: hours on a GPU",
    "python -m aiayn train --config multi30k_tiny_cpu_en_de "
    "--out runs/multi30k_tiny_cpu_en_de --no-progress": "85 minutes of training",
    "python -m aiayn select --run runs/multi30k_tiny_cpu_en_de": (
        "needs the run of the line above"
    ),
    "python -m aiayn evaluate --checkpoint runs/multi30k_tiny_cpu_en_de "
    "--out runs/multi30k_tiny_cpu_en_de/eval_test_2016_flickr.json": (
        "needs the run of the lines above"
    ),
    "python -m aiayn ship --run runs/multi30k_tiny_cpu_en_de "
    "--out checkpoints/multi30k_tiny_cpu_en_de": "needs the run of the lines above",
}


def _code(line: str) -> str:
    """A shell line without its trailing comment."""
    return re.sub(r"\s+#\s.*$", "", line).strip()


def readme_commands() -> list[str]:
    """The lines of README.md's ```bash blocks, in order, as written."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [ln for b in blocks for ln in b.replace("\\\n", " ").splitlines() if ln]


def _cheap() -> list[str]:
    return [c for c in readme_commands() if _code(c) not in EXPENSIVE]


def test_every_expensive_entry_is_in_the_readme() -> None:
    codes = [_code(c) for c in readme_commands()]
    assert set(EXPENSIVE) <= set(codes), set(EXPENSIVE) - set(codes)
    assert len(_cheap()) >= 5  # activate, train, translate x2, info, evaluate


def test_install_and_test_lines_are_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert '.venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"' in ci
    assert "\n.venv/bin/pytest -n 2 --dist loadscope --nbval tests book\n" in ci
    codes = [_code(c) for c in readme_commands()]
    assert codes[0] == 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"'
    assert ".venv/bin/pytest -n 2 --dist loadscope --nbval tests book" in codes
    assert codes[1] == ". .venv/bin/activate"  # before any bare `python`
    bare = [i for i, c in enumerate(codes) if re.search(r"(^|\| )python ", c)]
    assert bare and min(bare) > 1


def test_expensive_aiayn_commands_parse() -> None:
    parsed = 0
    for code in EXPENSIVE:
        words = shlex.split(code)
        if "aiayn" in words and words[words.index("aiayn") - 1] == "-m":
            args = build_parser().parse_args(words[words.index("aiayn") + 1 :])
            if args.command == "train":
                assert args.config in ("multi30k_en_de", "multi30k_tiny_cpu_en_de")
            elif args.command in ("select", "ship"):
                assert args.run == Path("runs/multi30k_tiny_cpu_en_de")
            elif args.command == "evaluate":
                assert args.checkpoint == Path("runs/multi30k_tiny_cpu_en_de")
            else:
                assert args.command == "reproduce" and args.budget == "full"
            parsed += 1
    assert parsed == 7


def fresh_copy(dst: Path) -> Path:
    """``dst``: the repository's files as in the working tree, minus ignored ones.

    What ``git ls-files`` lists (tracked, or new and not ignored) and exists: a
    clean checkout plus uncommitted work, without .venv, runs/ or caches.
    """
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
    )
    if shutil.which("git") is None or listing.returncode != 0:
        skip = (".git", ".venv", "runs", "_build", ".cache", "__pycache__")
        shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(*skip, "*.egg-info"))
    else:
        for rel in listing.stdout.decode().split("\0"):
            if rel and (ROOT / rel).is_file():  # deleted files are still listed
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, dst / rel)
    (dst / ".venv").symlink_to(VENV, target_is_directory=True)
    return dst


def _outputs(text: str, n: int) -> list[str]:
    """The output of each of ``n`` commands, split at the script's markers."""
    parts = re.split(r"^@@@ command (\d+)\n", text, flags=re.M)
    found = {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    return [found.get(i, "") for i in range(n)]


def _stat(directory: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file under ``directory``."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in directory.rglob("*")
    }


def test_cheap_commands_run_verbatim(mirror: Path, tmp_path: Path) -> None:
    repo = fresh_copy(tmp_path / "repo")
    shipped = _stat(repo / "checkpoints")
    commands = _cheap()
    script = ["set -euo pipefail"]
    for i, command in enumerate(commands):
        script += [f"echo '@@@ command {i}'", f"echo '@@@ command {i}' >&2", command]
    bin_dir = str(VENV / "bin")
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p != bin_dir
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "WORLD_SIZE")
    }
    env.update(
        PATH=path,
        PYTHONPATH=str(repo / "code"),  # this copy's package, not the installed one
        OMP_NUM_THREADS="1",
        AIAYN_DATA_MIRROR=str(mirror),
    )
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=repo,
        env=env,
        capture_output=True,
        timeout=TIMEOUT,
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, f"{commands[-1]!r} and before:\n{err[-3000:]}"
    assert "Traceback" not in err
    stdout = dict(zip(commands, _outputs(out, len(commands)), strict=True))

    def output_of(fragment: str) -> str:
        return next(v for k, v in stdout.items() if fragment in k)

    copy_line = output_of("translate --checkpoint runs/copy").split()
    assert copy_line and all(s.isdigit() for s in copy_line)
    assert "parameters:" in output_of("info runs/copy")
    assert '"max_steps": 400' in output_of("info runs/copy")
    scores = output_of("evaluate --checkpoint")
    assert '"n": 100' in scores and '"bleu":' in scores
    german = output_of("A man rides a bike.").strip()
    assert german and german.count("\n") == 0
    assert (repo / "runs" / "copy" / "model.safetensors").is_file()
    assert _stat(repo / "checkpoints") == shipped  # evaluate wrote nothing there
    which = subprocess.run(
        ["bash", "-c", ". .venv/bin/activate && python -c 'import aiayn; "
         "print(aiayn.__file__)'"],
        cwd=repo, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(which.stdout.strip()).is_relative_to(repo)
