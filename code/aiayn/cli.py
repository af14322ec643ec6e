"""The command line: ``python -m aiayn COMMAND``; ``--help`` lists the commands.

    python -m aiayn train --config copy --out runs/copy
    torchrun --nproc_per_node 8 -m aiayn train --config multi30k_en_de --out runs/ende
    python -m aiayn evaluate --checkpoint runs/ende --split test_2016_flickr
    echo "A man rides a bike." | python -m aiayn translate --checkpoint runs/ende

Errors a user can cause print one clear message (no traceback) and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import torch

from .errors import AiaynError


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)"
    )
    p.add_argument(
        "--data-mirror",
        help="directory or base URL holding multi30k/ and ptb_sample/ "
        "(default: $AIAYN_DATA_MIRROR, else the canonical addresses)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiayn",
        description="Attention Is All You Need, reproduced: train, translate, score.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a named config")
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

    p = sub.add_parser("evaluate", help="BLEU of a checkpoint on a Multi30k split")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--split", default="test_2016_flickr")
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.6)
    p.add_argument(
        "--out", type=Path, help="JSON file (default CHECKPOINT/eval_SPLIT.json)"
    )
    _add_common(p)

    p = sub.add_parser("translate", help="translate stdin to stdout, line by line")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.6)
    p.add_argument("--batch-tokens", type=int, default=4000)
    _add_common(p)

    p = sub.add_parser("average", help="average the last K checkpoints of a run")
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--last", type=int, default=5)
    p.add_argument("--out", required=True, type=Path, help="output model directory")

    p = sub.add_parser("info", help="parameters and settings of a preset or checkpoint")
    p.add_argument("name", help="preset name or model directory")

    p = sub.add_parser("ship", help="fp16 copy of a run with a model card")
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
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

    for name, (_, text) in PASSTHROUGH.items():
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, argv)
    except AiaynError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; checkpoints written so far are complete", file=sys.stderr)
        return 130


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    from .presets import get_preset
    from .train import train

    cfg = get_preset(args.config).with_overrides(args.set)
    command = "python -m aiayn " + shlex.join(argv)
    metrics = train(
        cfg,
        args.out,
        resume=args.resume,
        mirror=args.data_mirror,
        device=args.device,
        progress=not args.no_progress,
        command=command,
    )
    if metrics:
        shown = {k: v for k, v in metrics.items() if k != "history"}
        print(json.dumps(shown, indent=2))
    return 0


def _load(args: argparse.Namespace):  # -> (model, tokenizer, cfg)
    from .checkpoint import load_model, read_config
    from .tokenizer import load_tokenizer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.checkpoint, device)
    return model, load_tokenizer(args.checkpoint), read_config(args.checkpoint)


def _evaluate(args: argparse.Namespace, argv: list[str]) -> int:
    from . import multi30k
    from .metrics import evaluate_translations
    from .train import device_info
    from .translate import translate

    model, tok, cfg = _load(args)
    if cfg.task != "multi30k":
        raise AiaynError(f"{args.checkpoint} is a {cfg.task!r} model, not a translator")
    pairs = multi30k.load_pairs(
        args.split, cfg.src_lang, cfg.tgt_lang, mirror=args.data_mirror
    )
    t0 = time.perf_counter()
    hyps = translate(
        model,
        tok,
        [s for s, _ in pairs],
        args.beam,
        args.alpha,
        cfg.extra_len,
        progress=True,
    )
    wall = time.perf_counter() - t0
    result = evaluate_translations(hyps, [t for _, t in pairs], cfg.tgt_lang)
    device = next(model.parameters()).device
    result.update(
        split=args.split,
        beam=args.beam,
        alpha=args.alpha,
        pair=f"{cfg.src_lang}-{cfg.tgt_lang}",
        decode_wall_s=round(wall, 2),
        device=device_info(device),
        torch=torch.__version__,
        command="python -m aiayn " + shlex.join(argv),
    )
    from .checkpoint import atomic_write

    out = args.out or args.checkpoint / f"eval_{args.split}.json"
    atomic_write(out, json.dumps(result, indent=2))
    atomic_write(out.with_suffix(".hyp.txt"), "".join(h + "\n" for h in hyps))
    print(json.dumps(result, indent=2))
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
    from .translate import translate

    model, tok, _ = _load(args)
    lines = _read_stdin_lines()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda m, *a, **k: print(
            f"warning: {m}", file=sys.stderr
        )
        outs = translate(
            model, tok, lines, args.beam, args.alpha, batch_tokens=args.batch_tokens
        )
    sys.stdout.write("".join(o + "\n" for o in outs))
    return 0


def _average(args: argparse.Namespace, argv: list[str]) -> int:
    import shutil

    from . import checkpoint as ckpt

    if args.last < 1:
        raise AiaynError(f"--last must be at least 1, not {args.last}")
    found = ckpt.list_checkpoints(args.run)
    if not found:
        raise AiaynError(f"no checkpoints under {args.run}/checkpoints")
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
    from .ship import ship

    out = ship(args.run, args.out, args.with_steps, args.with_last)
    print((out / "README.md").read_text())
    return 0


# Subcommands whose module parses its own arguments: name -> (module, help).
PASSTHROUGH = {
    "complexity": ("complexity", "measure Table 1 (section 4); --help for options"),
    "variations": ("variations", "run the Table 3 variations (section 6.2)"),
    "export-hf": ("export_hf", "export a checkpoint as a transformers MarianMTModel"),
}


def _passthrough(args: argparse.Namespace, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(f"aiayn.{PASSTHROUGH[args.command][0]}")
    return int(module.main(args.args) or 0)


COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "translate": _translate,
    "average": _average,
    "info": _info,
    "ship": _ship,
    **{name: _passthrough for name in PASSTHROUGH},
}
