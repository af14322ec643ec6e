"""Choosing what to ship on the dev set: which checkpoints to average, which beam.

Section 6.1 averages "the last 5 checkpoints" and picks "beam size 4 and length
penalty alpha = 0.6 ... after experimentation on the development set". On a small
budget a fixed number of checkpoints can hurt (the early ones of a short run are
much worse than the last), so ``python -m aiayn select --run RUN`` makes both
choices on the dev set, never on test:

1. every kept checkpoint alone and the average of the last k, for every k, scored
   by dev perplexity; the lowest wins, so the shipped weights are never worse on
   dev than the best single checkpoint they could have been;
2. a grid of beam sizes and length penalties, decoded on the dev set with those
   weights and scored by the task's own measure (tokenized BLEU for Multi30k,
   exact match for the copy task, F1 for parsing); the paper's setting for the
   task (beam 4 / alpha 0.6 for translation, beam 21 / alpha 0.3 for parsing) is
   tried first and wins ties.

The run directory's ``model.safetensors``, ``config.json`` (beam_size, alpha) and
``metrics.json`` are replaced by the choice, and ``selection.json`` records every
candidate with its scores, the device, wall time and command.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .env import device_info, resolve_device
from .errors import AiaynError
from .tasks import get_task
from .tokenizer import load_tokenizer


def _grid(
    beams: list[int], alphas: list[float], paper: tuple[int, float]
) -> list[tuple[int, float]]:
    """(beam, alpha) pairs, the paper's first; greedy (beam 1) once, alpha unused."""
    grid: list[tuple[int, float]] = [paper]
    for b in beams:
        for a in alphas[:1] if b == 1 else alphas:
            if (b, a) not in grid:
                grid.append((b, a))
    return grid


def select(
    run: Path,
    beams: list[int] | None = None,
    alphas: list[float] | None = None,
    *,
    mirror: str | None = None,
    device: str | None = None,
    progress: bool = True,
    command: str = "",
) -> dict[str, Any]:
    """Choose the average and the decoding of ``run`` on dev; the selection record.

    `beams` and `alphas` default to the task's grid (``Task.selection_beams``).
    """
    from .train import dev_loss  # train imports tasks, which import this lazily

    run = Path(run)
    if not (run / "metrics.json").is_file():
        raise AiaynError(
            f"{run} has no metrics.json: is --run a finished training run?"
        )
    found = ckpt.list_checkpoints(run)
    if not found:
        raise AiaynError(f"no checkpoints under {run}/checkpoints to choose from")
    t0 = time.perf_counter()
    dev = resolve_device(device)
    cfg = ckpt.read_config(run)
    task = get_task(cfg.task)
    beams = list(task.selection_beams) if beams is None else beams
    alphas = list(task.selection_alphas) if alphas is None else alphas
    data = task.prepare(cfg, mirror, load_tokenizer(run))
    model = ckpt.load_model(found[-1], dev)
    tokens = max(cfg.max_tokens // cfg.accum, 1)

    candidates: list[dict[str, Any]] = []
    options = [[d] for d in found] + [found[-k:] for k in range(2, len(found) + 1)]
    for dirs in tqdm(options, desc="dev perplexity", disable=not progress):
        ckpt.load_into(model, ckpt.average_checkpoints(dirs), run)
        name = dirs[0].name if len(dirs) == 1 else f"average of last {len(dirs)}"
        candidates.append(
            {"name": name, "checkpoints": [d.name for d in dirs]}
            | dev_loss(model, data, tokens, dev)
        )
    singles = candidates[: len(found)]
    last, best_single = singles[-1], min(singles, key=lambda c: c["dev_nll"])
    chosen = min(candidates, key=lambda c: c["dev_nll"])
    chosen_dirs = [run / "checkpoints" / n for n in chosen["checkpoints"]]
    weights = ckpt.average_checkpoints(chosen_dirs)
    ckpt.load_into(model, weights, run)

    metric = task.selection_metric
    decodings = []
    for beam, alpha in tqdm(
        _grid(beams, alphas, task.paper_decoding),
        desc="dev decoding",
        disable=not progress,
    ):
        scores = task.evaluate(model, data, beam, alpha)
        decodings.append({"beam": beam, "alpha": alpha} | _numbers(scores))
    best = max(decodings, key=lambda d: d[metric])  # first of equals: the paper's
    beam, alpha = best["beam"], best["alpha"]

    side_by_side = []  # last, best single, chosen: dev scores with the chosen beam
    decoded = {tuple(chosen["checkpoints"]): {
        k: v for k, v in best.items() if k not in ("beam", "alpha")
    }}  # fmt: skip
    for label, c in (("last", last), ("best single", best_single), ("chosen", chosen)):
        key = tuple(c["checkpoints"])
        if key not in decoded:  # the last is often the best single: decode it once
            dirs = [run / "checkpoints" / n for n in c["checkpoints"]]
            ckpt.load_into(model, ckpt.average_checkpoints(dirs), run)
            decoded[key] = _numbers(task.evaluate(model, data, beam, alpha))
        scores = decoded[key]
        side_by_side.append(
            {"which": label, "name": c["name"], "dev_ppl": c["dev_ppl"]} | scores
        )
    ckpt.load_into(model, weights, run)

    record = {
        "metric": metric,
        "averaging": candidates,
        "chosen_average": chosen,
        "decoding": decodings,
        "chosen_decoding": {"beam": beam, "alpha": alpha},
        "paper_decoding": next(
            d for d in decodings if (d["beam"], d["alpha"]) == task.paper_decoding
        ),
        "side_by_side": side_by_side,
        "device": device_info(dev),
        "torch": torch.__version__,
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "command": command,
    }
    new_cfg = replace(data.cfg, beam_size=beam, alpha=alpha)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update(
        averaged_checkpoints=chosen["checkpoints"],
        **{k: chosen[k] for k in ("dev_loss", "dev_nll", "dev_ppl")},
        **{k: v for k, v in best.items() if k not in ("beam", "alpha")},
        selection={
            "average": chosen["name"],
            "beam": beam,
            "alpha": alpha,
            "file": "selection.json",
        },
    )
    ckpt.atomic_write(run / "selection.json", json.dumps(record, indent=2) + "\n")
    ckpt.save_weights(run / ckpt.WEIGHTS, model)
    ckpt.atomic_write(run / ckpt.CONFIG, new_cfg.to_json())
    ckpt.atomic_write(run / "metrics.json", json.dumps(metrics, indent=2))
    return record


def _numbers(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scores.items() if isinstance(v, int | float)}


def add_arguments(p: Any) -> None:
    p.add_argument("--run", required=True, type=Path, help="finished run directory")
    p.add_argument(
        "--beams",
        help="beam sizes to try (default: the task's, 1,4,5,8 for translation, "
        "1,4,8,21 for parsing)",
    )
    p.add_argument(
        "--alphas",
        help="length penalties to try (default: the task's, 0.6,0.8,1.0,1.2 for "
        "translation, 0.3,0.6,1.0 for parsing)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument(
        "--data-mirror", help="directory or base URL holding multi30k/ and ptb_sample/"
    )


def parse_list(text: str, kind: type, flag: str) -> list[Any]:
    """'1,4,5' -> [1, 4, 5]; AiaynError naming ``flag`` otherwise."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AiaynError(
            f"{flag} takes comma-separated numbers, not {text!r}"
        ) from None
    if not values:
        raise AiaynError(f"{flag} is empty")
    return values


def run(args: Any, command: str) -> int:
    from .cli import check_decoding, check_mirror

    beams = None if args.beams is None else parse_list(args.beams, int, "--beams")
    alphas = None
    if args.alphas is not None:
        alphas = parse_list(args.alphas, float, "--alphas")
    for b in beams or []:
        check_decoding(b, None)
    for a in alphas or []:
        check_decoding(None, a)
    check_mirror(args.data_mirror)
    resolve_device(args.device)
    record = select(
        args.run,
        beams,
        alphas,
        mirror=args.data_mirror,
        device=args.device,
        progress=not args.no_progress,
        command=command,
    )
    shown = {
        k: record[k] for k in ("chosen_decoding", "paper_decoding", "side_by_side")
    }
    print(
        json.dumps(
            shown | {"chosen_average": record["chosen_average"]["name"]}, indent=2
        )
    )
    return 0
