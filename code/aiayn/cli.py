"""The command line: ``python -m aiayn COMMAND``; ``--help`` lists the commands.

    python -m aiayn train --config copy --out runs/copy
    torchrun --nproc_per_node 8 -m aiayn train --config multi30k_en_de --out runs/ende
    python -m aiayn evaluate --checkpoint runs/ende --split test_2016_flickr
    echo "A man rides a bike." | python -m aiayn translate --checkpoint runs/ende

Every argument is checked before any work starts: a mistake prints one line,
``error: ...``, that says what to do, writes nothing and exits with 2. No command
writes into the directory it reads unless an ``--out`` points there. Ctrl-C
(SIGINT) and SIGTERM (what torchrun sends its workers) print one line and exit
with 130; the checkpoints written until then are complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from .env import device_info, resolve_device
from .errors import AiaynError

INTERRUPTED = 130  # the shell's exit status for a program stopped by SIGINT


# --- checks shared by the commands ------------------------------------------------


def check_at_least(value: int | None, flag: str, least: int = 1) -> None:
    """AiaynError unless ``value`` (when given) is at least ``least``."""
    if value is not None and value < least:
        raise AiaynError(f"{flag} must be at least {least}, not {value}")


def check_decoding(beam: int | None, alpha: float | None) -> None:
    """Beam size >= 1 and length penalty alpha >= 0 (beam search's early stop)."""
    check_at_least(beam, "--beam")
    if alpha is not None and not alpha >= 0:
        raise AiaynError(
            f"--alpha must be >= 0 (the paper's length penalty is 0.6), not {alpha}"
        )


def _check_creatable(path: Path, flag: str, target: Path) -> None:
    """The nearest existing ancestor of ``path`` is a writable directory."""
    for parent in (path, *path.absolute().parents):
        if parent.exists():
            if not parent.is_dir():
                raise AiaynError(
                    f"{flag} {target}: {parent} is a file, so nothing can be "
                    f"written under it; choose another {flag}"
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise AiaynError(
                    f"{flag} {target}: {parent} is not writable; choose another {flag}"
                )
            return


def check_output_file(path: Path, flag: str = "--out") -> None:
    """AiaynError unless ``path`` can be written (created or replaced) as a file."""
    path = Path(path)
    if path.is_dir():
        raise AiaynError(
            f"{flag} {path} is a directory; give a file name, e.g. "
            f"{path / 'result.json'}"
        )
    _check_creatable(path.absolute().parent, flag, path)


def check_output_dir(path: Path, flag: str = "--out") -> None:
    """AiaynError unless ``path`` is a directory or can be created as one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AiaynError(
            f"{flag} {path} is a file, not a directory; choose another {flag}"
        )
    _check_creatable(path, flag, path)


def check_mirror(mirror: str | None) -> None:
    """A local ``--data-mirror`` must be a directory (URLs are checked on use)."""
    if mirror and "://" not in mirror and not Path(mirror).expanduser().is_dir():
        raise AiaynError(
            f"--data-mirror {mirror} is not a directory; point it at the folder "
            "that holds multi30k/ and ptb_sample/, or give a base URL"
        )


def inside(path: Path, other: Path) -> bool:
    """True when ``path`` is ``other`` or lies under it."""
    a, b = Path(path).resolve(), Path(other).resolve()
    return a == b or b in a.parents


# --- the parser -------------------------------------------------------------------


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)"
    )
    p.add_argument(
        "--data-mirror",
        help="directory or base URL holding multi30k/ and ptb_sample/ "
        "(default: $AIAYN_DATA_MIRROR, else the canonical addresses)",
    )


def _add_decoding(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--beam",
        type=int,
        help="beam size, 1 for greedy (default: the model's own, from its config: "
        "the paper's 4 for translation, 21 for parsing)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        help="length penalty, >= 0 (default: the model's own: the paper's 0.6 for "
        "translation, 0.3 for parsing)",
    )
    p.add_argument(
        "--constrained",
        action=argparse.BooleanOptionalAction,
        help="parsing: search only well-formed trees, one leaf per word (default: "
        "the model's own constrained_decoding; not in the paper)",
    )


def _decoding(args: argparse.Namespace, cfg: Any) -> tuple[int, float]:
    """--beam and --alpha, or the model's own settings where not given."""
    beam = cfg.beam_size if args.beam is None else args.beam
    return beam, cfg.alpha if args.alpha is None else args.alpha


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="preset name, e.g. copy")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. max_steps=200, model.dropout=0.2",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_common(p)


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="model directory")
    p.add_argument(
        "--split",
        help="split to score (default: the task's test set: test_2016_flickr for "
        "Multi30k, test for parsing, dev for the copy task)",
    )
    _add_decoding(p)
    p.add_argument(
        "--limit", type=int, metavar="N", help="score only the first N sentences"
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="also write the JSON to FILE and the translations beside it "
        "(FILE with suffix .hyp.txt); default: the JSON on stdout only",
    )
    _add_common(p)


def add_translate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="model directory")
    _add_decoding(p)
    p.add_argument(
        "--batch-tokens", type=int, default=4000, help="source tokens per batch"
    )
    _add_common(p)  # --data-mirror is accepted and unused


def add_average_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, type=Path, help="run directory")
    p.add_argument("--last", type=int, default=5, help="how many (default 5)")
    p.add_argument("--out", required=True, type=Path, help="output model directory")


def add_info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="preset name or model directory")


def add_ship_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, type=Path, help="finished run directory")
    p.add_argument(
        "--out", required=True, type=Path, help="model directory, e.g. checkpoints/X"
    )
    p.add_argument(
        "--with-steps",
        action="store_true",
        help="also ship the kept step checkpoints (weights only)",
    )
    p.add_argument(
        "--with-last",
        action="store_true",
        help="also ship the last step checkpoint (weights only)",
    )
    p.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="TEXT",
        help="a line for the card's 'How it was made' (repeatable), e.g. what "
        "else ran on the machine",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m aiayn``, one subparser per command."""
    from . import complexity, export_hf, reproduce, selection, variations

    parser = argparse.ArgumentParser(
        prog="python -m aiayn",
        description="Attention Is All You Need, reproduced: train, translate, score.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    adders: dict[str, tuple[Callable[[argparse.ArgumentParser], None], str]] = {
        "train": (add_train_arguments, "train a model from a named config"),
        "evaluate": (add_evaluate_arguments, "score a model as its task is judged"),
        "translate": (add_translate_arguments, "translate stdin to stdout"),
        "average": (add_average_arguments, "average the last K checkpoints of a run"),
        "select": (selection.add_arguments, "choose averaging and beam on dev"),
        "info": (add_info_arguments, "parameters and settings of a preset or model"),
        "ship": (add_ship_arguments, "fp16 copy of a run with a model card"),
        "complexity": (complexity.add_arguments, "measure Table 1 (section 4)"),
        "variations": (variations.add_arguments, "run Table 3's rows (section 6.2)"),
        "export-hf": (export_hf.add_arguments, "export as a transformers MarianMT"),
        "reproduce": (reproduce.add_arguments, "every full-budget number, one GPU"),
    }
    for name, (add, text) in adders.items():
        add(sub.add_parser(name, help=text, description=text))
    return parser


# --- the entry point --------------------------------------------------------------


class _Signals:
    """SIGINT and SIGTERM raise KeyboardInterrupt, naming the signal."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.saved: dict[int, Any] = {}

    def _raise(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        raise KeyboardInterrupt(self.received)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self.saved[s] = signal.signal(s, self._raise)

    def ignore(self) -> None:
        """No second interrupt while the first one is being reported."""
        for s in self.saved:
            signal.signal(s, signal.SIG_IGN)

    def restore(self) -> None:
        for s, handler in self.saved.items():
            signal.signal(s, handler)
        self.saved = {}


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 2 on a user error, 130 when interrupted.

    Called as the program (no ``argv``), signals stay ignored after an interrupt
    until the process exits, so a second Ctrl-C or torchrun's SIGTERM cannot end
    it with a traceback.
    """
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    signals = _Signals()
    signals.install()
    interrupted = False
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args, argv)
    except AiaynError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        signals.ignore()
        how = signals.received or "SIGINT"
        note = "; the checkpoints written so far are complete"
        if argv[:1] == ["train"]:
            note += " (continue with --resume)"
        print(f"interrupted by {how}{note}", file=sys.stderr)
        return INTERRUPTED
    finally:
        if not (interrupted and as_program):
            signals.restore()


def _command(argv: list[str]) -> str:
    """The command as recorded in metrics and cards: no machine's absolute paths."""
    from .display import portable_command

    return portable_command("python -m aiayn " + shlex.join(argv))


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    from .presets import get_preset
    from .train import train

    cfg = get_preset(args.config).with_overrides(args.set)  # validates every value
    resolve_device(args.device)
    check_mirror(args.data_mirror)
    check_output_dir(args.out)  # train() checks --resume against the run there
    metrics = train(
        cfg,
        args.out,
        resume=args.resume,
        mirror=args.data_mirror,
        device=args.device,
        progress=not args.no_progress,
        command=_command(argv),
    )
    if metrics:
        shown = {k: v for k, v in metrics.items() if k != "history"}
        print(json.dumps(shown, indent=2))
    return 0


def _load(args: argparse.Namespace, device: torch.device):  # -> (model, tok, cfg)
    from .checkpoint import load_model, read_config
    from .tokenizer import load_tokenizer

    model = load_model(args.checkpoint, device)
    cfg = read_config(args.checkpoint)
    if getattr(args, "constrained", None) is not None:
        cfg = replace(cfg, constrained_decoding=args.constrained)
    return model, load_tokenizer(args.checkpoint), cfg


def _evaluate(args: argparse.Namespace, argv: list[str]) -> int:
    from .checkpoint import atomic_write, read_config
    from .tasks import get_task

    check_decoding(args.beam, args.alpha)
    check_at_least(args.limit, "--limit")
    device = resolve_device(args.device)
    check_mirror(args.data_mirror)
    hyp_path = None
    if args.out is not None:
        hyp_path = args.out.with_suffix(".hyp.txt")
        check_output_file(args.out)
        check_output_file(hyp_path, "--out (its .hyp.txt)")
    cfg = read_config(args.checkpoint)
    task = get_task(cfg.task)
    split = args.split or task.default_split
    task.check_split(split)
    model, tok, cfg = _load(args, device)
    beam, alpha = _decoding(args, cfg)
    t0 = time.perf_counter()
    result = task.evaluate_split(
        model,
        tok,
        cfg,
        split,
        beam,
        alpha,
        limit=args.limit,
        mirror=args.data_mirror,
        progress=True,
    )
    wall = time.perf_counter() - t0
    scores = {
        **result.scores,
        "task": task.name,
        "split": split,
        "limit": args.limit,
        "beam": beam,
        "alpha": alpha,
        "decode_wall_s": round(wall, 2),
        "device": device_info(device),
        "torch": torch.__version__,
        "command": _command(argv),
    }
    text = json.dumps(scores, indent=2)
    if args.out is not None and hyp_path is not None:
        atomic_write(args.out, text + "\n")
        atomic_write(hyp_path, "".join(h + "\n" for h in result.outputs))
    print(text)
    return 0


def _read_stdin_lines() -> list[str]:
    """All stdin lines as text; invalid UTF-8 is an error naming the line."""
    lines = []
    for n, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError as e:
            raise AiaynError(
                f"line {n} of the input is not valid UTF-8 ({e.reason} at byte "
                f"{e.start}); convert the input to UTF-8 first"
            ) from None
    return lines


def _translate(args: argparse.Namespace, argv: list[str]) -> int:
    from .tasks import get_task

    check_decoding(args.beam, args.alpha)
    check_at_least(args.batch_tokens, "--batch-tokens")
    model, tok, cfg = _load(args, resolve_device(args.device))
    beam, alpha = _decoding(args, cfg)
    lines = _read_stdin_lines()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda m, *a, **k: print(
            f"warning: {m}", file=sys.stderr
        )
        outs = get_task(cfg.task).translate(
            model, tok, cfg, lines, beam, alpha, args.batch_tokens
        )
    sys.stdout.write("".join(o + "\n" for o in outs))
    return 0


def _average(args: argparse.Namespace, argv: list[str]) -> int:
    import shutil

    from . import checkpoint as ckpt

    check_at_least(args.last, "--last")
    check_output_dir(args.out)
    same = args.out.resolve() == args.run.resolve()
    if same or inside(args.out, args.run / "checkpoints"):
        raise AiaynError(
            f"--out {args.out} would overwrite the run {args.run} or its "
            f"checkpoints; choose a directory of its own, e.g. {args.run}_avg"
        )
    found = ckpt.list_checkpoints(args.run)
    if not found:
        raise AiaynError(
            f"no checkpoints under {args.run}/checkpoints; is --run a run directory?"
        )
    chosen = found[-args.last :]
    model = ckpt.load_model(chosen[-1])
    ckpt.load_into(model, ckpt.average_checkpoints(chosen), args.run)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt.save_weights(args.out / ckpt.WEIGHTS, model)
    shutil.copy(chosen[-1] / ckpt.CONFIG, args.out / ckpt.CONFIG)
    for name in ("tokenizer.json", "tokenizer_meta.json"):
        if (args.run / name).exists():
            shutil.copy(args.run / name, args.out / name)
    print(f"averaged {[p.name for p in chosen]} into {args.out}")
    return 0


def _info(args: argparse.Namespace, argv: list[str]) -> int:
    from .checkpoint import read_config
    from .model import Transformer
    from .presets import PRESETS, get_preset

    path = Path(args.name)
    cfg = (
        get_preset(args.name)
        if args.name in PRESETS or not path.exists()
        else (read_config(path))
    )
    n = Transformer(cfg.model).num_parameters()
    print(cfg.to_json())
    print(f"parameters: {n:,}")
    return 0


def _ship(args: argparse.Namespace, argv: list[str]) -> int:
    from . import checkpoint as ckpt
    from .ship import ship

    check_output_dir(args.out)
    if inside(args.out, args.run) or inside(args.run, args.out):
        raise AiaynError(
            f"--out {args.out} and --run {args.run} overlap, and shipping replaces "
            "--out: give it a directory of its own, e.g. checkpoints/NAME"
        )
    if args.out.is_dir() and any(args.out.iterdir()):
        if not (args.out / ckpt.CONFIG).is_file():
            raise AiaynError(
                f"--out {args.out} is a directory that is not a model directory, "
                "and shipping replaces it; name a new directory or an earlier "
                "shipped model, e.g. checkpoints/NAME"
            )
    if not (args.run / "metrics.json").is_file():
        raise AiaynError(
            f"{args.run} has no metrics.json: is --run a finished training run?"
        )
    out = ship(args.run, args.out, args.with_steps, args.with_last, args.note)
    print((out / "README.md").read_text())
    return 0


def _select(args: argparse.Namespace, argv: list[str]) -> int:
    from . import selection

    return selection.run(args, _command(argv))


def _complexity(args: argparse.Namespace, argv: list[str]) -> int:
    from . import complexity

    return complexity.run(args, _command(argv))


def _variations(args: argparse.Namespace, argv: list[str]) -> int:
    from . import variations

    return variations.run(args, _command(argv))


def _reproduce(args: argparse.Namespace, argv: list[str]) -> int:
    from . import reproduce

    return reproduce.run(args, _command(argv))


def _export_hf(args: argparse.Namespace, argv: list[str]) -> int:
    from . import export_hf

    return export_hf.run(args)


COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {
    "train": _train,
    "evaluate": _evaluate,
    "translate": _translate,
    "average": _average,
    "select": _select,
    "info": _info,
    "ship": _ship,
    "complexity": _complexity,
    "variations": _variations,
    "export-hf": _export_hf,
    "reproduce": _reproduce,
}
