"""Every full-budget number of the book from one command, on any single GPU.

    python -m aiayn reproduce --budget full --out runs/reproduce --time-limit 36000

runs, in this order, and appends one JSON line per finished part to
``OUT/results.jsonl`` as soon as the part ends (so a run cut off by a time limit
or Ctrl-C keeps every part it finished, and a rerun skips them):

1. the three Multi30k directions with the translation presets
   (``multi30k_en_de``, ``multi30k_de_en``, ``multi30k_en_fr``), then the paper's
   base configuration on the same data (``multi30k_base_en_de``) for comparison,
   each scored on test_2016_flickr with its own beam and length penalty;
2. the parser (``ptb_parse``), scored by EVALB on the test split;
3. Table 3 at the GPU budget (`aiayn.variations`, budget ``full``);
4. the speed benchmark (``bench/speed.py``, budget ``full``), when the repository's
   ``bench/`` folder is there.

Before each part a short warm-up (a few optimizer steps of the same model on the
same data) measures its speed; the part runs only if its estimated time fits in
what is left of ``--time-limit``, and is recorded as skipped otherwise. Every line
printed and stored names the device, the torch version, the wall time and the
training tokens per second. ``--budget tiny`` runs the same parts with toy sizes
in a minute or two on a CPU: the test suite runs it end to end.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig
from .env import device_info, resolve_device
from .errors import AiaynError

RESULTS = "results.jsonl"
BENCH = Path(__file__).resolve().parents[2] / "bench" / "speed.py"

# --budget tiny: toy sizes that keep every part's machinery (a CPU test).
TINY_TRAIN = [
    "model.d_model=32",
    "model.d_ff=64",
    "model.n_heads=2",
    "model.n_layers=1",
    "model.vocab_size=300",
    "max_tokens=600",
    "max_steps=2",
    "warmup=2",
    "eval_every=2",
    "save_every=2",
    "keep_checkpoints=1",
    "average_last=1",
    "train_limit=200",
    "dev_limit=8",
    "eval_max_sentences=4",
    "eval_bleu=false",
    "extra_len=5",
]
TINY_EVAL_LIMIT = 4  # test sentences decoded per part


@dataclass(frozen=True)
class Part:
    """One experiment of the reproduction."""

    name: str
    kind: str  # "train", "variations" or "bench"
    preset: str | None = None  # for kind "train"
    split: str | None = None  # the split the trained model is scored on


PARTS = (
    Part("multi30k_en_de", "train", "multi30k_en_de", "test_2016_flickr"),
    Part("multi30k_de_en", "train", "multi30k_de_en", "test_2016_flickr"),
    Part("multi30k_en_fr", "train", "multi30k_en_fr", "test_2016_flickr"),
    Part("multi30k_base_en_de", "train", "multi30k_base_en_de", "test_2016_flickr"),
    Part("ptb_parse", "train", "ptb_parse", "test"),
    Part("table3", "variations"),
    Part("bench", "bench"),
)


def read_results(out: Path) -> dict[str, dict[str, Any]]:
    """The parts already recorded in ``out``, by name (the last line wins)."""
    path = out / RESULTS
    if not path.exists():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            done[record["part"]] = record
    return done


def _append(out: Path, record: dict[str, Any]) -> None:
    with open(out / RESULTS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def _config(part: Part, budget: str) -> TrainConfig:
    from .presets import get_preset

    cfg = get_preset(part.preset or "")
    return cfg.with_overrides(TINY_TRAIN) if budget == "tiny" else cfg


def _warmup(
    cfg: TrainConfig, out: Path, steps: int, mirror: str | None, device: str
) -> float:
    """Seconds per optimizer step of ``cfg``, from ``steps`` steps in ``out``."""
    from .train import train

    shutil.rmtree(out, ignore_errors=True)  # a warm-up always starts afresh
    probe = replace(
        cfg,
        max_steps=steps,
        eval_every=steps,
        save_every=steps,
        eval_bleu=False,
        dev_limit=8,
        extra_len=1,  # the final decode of an untrained model stays short
    )
    metrics = train(probe, out, mirror=mirror, device=device, progress=False)
    shutil.rmtree(out, ignore_errors=True)  # only its speed is kept
    return metrics["wall_time_s"] / max(metrics["steps"], 1)


def _train_part(
    part: Part, budget: str, run: Path, mirror: str | None, device: str, command: str
) -> dict[str, Any]:
    """Train the part's preset into ``run`` and score it on its split."""
    from .checkpoint import load_model, read_config
    from .tasks import get_task
    from .tokenizer import load_tokenizer
    from .train import train

    cfg = _config(part, budget)
    resume = (run / "train_config.json").exists()
    metrics = train(
        cfg,
        run,
        resume=resume,
        mirror=mirror,
        device=device,
        progress=False,
        command=command,
    )
    model, tok = load_model(run, device), load_tokenizer(run)
    task = get_task(cfg.task)
    t0 = time.perf_counter()
    limit = TINY_EVAL_LIMIT if budget == "tiny" else None
    result = task.evaluate_split(
        model,
        tok,
        read_config(run),
        part.split or task.default_split,
        cfg.beam_size,
        cfg.alpha,
        limit=limit,
        mirror=mirror,
    )
    scores = {k: v for k, v in result.scores.items() if k != "examples"}
    (run / f"eval_{part.split}.json").write_text(json.dumps(scores, indent=2) + "\n")
    return {
        "run": str(run),
        "steps": metrics["steps"],
        "train_wall_s": metrics["wall_time_s"],
        "tokens_per_s": metrics["train_tokens_per_s"],
        "parameters": metrics["parameters"],
        "dev_ppl": metrics["dev_ppl"],
        "test": scores,
        "decode_wall_s": round(time.perf_counter() - t0, 1),
    }


def _variations_part(
    budget: str, runs: Path, mirror: str | None, device: str, command: str
) -> dict[str, Any]:
    from . import variations

    b = variations.BUDGETS["tiny" if budget == "tiny" else "full"]
    rows = variations.select_rows("base" if budget == "tiny" else None)
    results = runs / "results.json"
    variations.run_variations(
        rows,
        variations.budget_config(b),
        b.steps,
        b.seeds,
        runs,
        mirror,
        device,
        results=results,
        progress=False,
        command=command,
    )
    return {
        "results": str(results),
        "rows": len(json.loads(results.read_text())["rows"]),
    }


def _bench_part(budget: str, out: Path, device: str) -> dict[str, Any]:
    """bench/speed.py: training speed and MFU, and beam search against generate.

    Decoding is measured on the en-de model of the first part when it finished.
    """
    if not BENCH.is_file():
        raise _Skip(f"{BENCH} is not there (an installed package without bench/)")
    path = out / "bench.json"
    cmd = [sys.executable, str(BENCH), "--out", str(path), "--device", device]
    cmd += ["--budget", "smoke"] if budget == "tiny" else ["--budget", "full"]
    if budget != "tiny" and device.startswith("cuda"):
        cmd.append("--compile")  # each contender also with torch.compile
    model = out / "multi30k_en_de"
    if (model / "model.safetensors").is_file():
        cmd += ["--model", str(model)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AiaynError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return {"results": str(path), "bench_command": " ".join(cmd)}


class _Skip(Exception):
    """A part that cannot run here; recorded as skipped with the reason."""


def estimate_s(
    part: Part, budget: str, out: Path, mirror: str | None, device: str
) -> float | None:
    """Estimated seconds for ``part``, from a short warm-up; None: no estimate."""
    if part.kind == "bench":
        return 30.0 if budget == "tiny" else 600.0  # a fixed allowance, not measured
    if part.kind == "variations":
        from . import variations

        b = variations.BUDGETS["tiny" if budget == "tiny" else "full"]
        cfg = variations.budget_config(b)
        per_step = _warmup(cfg, out / "warmup" / part.name, 2, mirror, device)
        rows = 1 if budget == "tiny" else len(variations.VARIATIONS)
        return per_step * b.steps * len(b.seeds) * rows * 1.2  # + dev evaluations
    cfg = _config(part, budget)
    steps = 2 if budget == "tiny" else 20
    per_step = _warmup(cfg, out / "warmup" / part.name, steps, mirror, device)
    return per_step * cfg.max_steps * 1.15 + 60.0  # + evaluations and decoding


def reproduce(
    budget: str,
    out: Path,
    time_limit: float = math.inf,
    parts: tuple[str, ...] | None = None,
    mirror: str | None = None,
    device: str | None = None,
    printer: Callable[[str], None] = print,
    command: str = "",
) -> list[dict[str, Any]]:
    """Run the parts in order within ``time_limit`` seconds; the new records."""
    dev = resolve_device(device)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    facts = {
        "device": device_info(dev),
        "torch": torch.__version__,
        "budget": budget,
        "command": command,
    }
    printer(f"reproduce: {facts['device']}, torch {facts['torch']}, budget {budget}")
    done = read_results(out)
    chosen = [p for p in PARTS if parts is None or p.name in parts]
    records = []
    for part in chosen:
        if done.get(part.name, {}).get("status") == "done":
            printer(f"[{part.name}] already done in {out / RESULTS}")
            continue
        t0 = time.perf_counter()
        left = time_limit - (t0 - t_start)
        record: dict[str, Any] = {"part": part.name, **facts}
        try:
            est = estimate_s(part, budget, out, mirror, str(dev))
            record["estimate_s"] = None if est is None else round(est, 1)
            left = time_limit - (time.perf_counter() - t_start)
            if est is not None and est > left:
                raise _Skip(f"estimated {est:.0f} s, {max(left, 0):.0f} s left")
            if part.kind == "train":
                record.update(
                    _train_part(
                        part, budget, out / part.name, mirror, str(dev), command
                    )
                )
            elif part.kind == "variations":
                record.update(
                    _variations_part(budget, out / part.name, mirror, str(dev), command)
                )
            else:
                record.update(_bench_part(budget, out, str(dev)))
            record["status"] = "done"
        except _Skip as why:
            record.update(status="skipped", reason=str(why))
        record["wall_s"] = round(time.perf_counter() - t0, 1)
        _append(out, record)
        records.append(record)
        printer(describe(record))
    return records


def describe(r: dict[str, Any]) -> str:
    """One line per part: device, torch, wall time, tokens/s and the headline."""
    head = f"[{r['part']}] {r['status']} on {r['device']}, torch {r['torch']}, "
    head += f"{r['wall_s']} s"
    if r["status"] != "done":
        return head + f" ({r.get('reason', '')})"
    if "tokens_per_s" in r:
        head += f", {r['tokens_per_s']:,.0f} train tokens/s"
    test = r.get("test", {})
    for key in ("tok_bleu", "bleu", "f1", "exact_match"):
        if key in test:
            head += f", {key} {test[key]:.2f}"
    return head


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m aiayn reproduce``."""
    p.add_argument(
        "--budget",
        choices=("full", "tiny"),
        default="full",
        help="full: the book's numbers on a GPU; tiny: a CPU check",
    )
    p.add_argument("--out", type=Path, required=True, help="results folder")
    p.add_argument(
        "--time-limit",
        type=float,
        default=math.inf,
        metavar="SECONDS",
        help="skip a part whose estimated time does not fit",
    )
    p.add_argument(
        "--parts",
        help="comma-separated part names (default: all): "
        + ", ".join(p.name for p in PARTS),
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if any)")
    p.add_argument("--data-mirror", help="directory or base URL of the data")


def run(args: argparse.Namespace, command: str) -> int:
    """Check every argument, then run :func:`reproduce`."""
    from .cli import check_mirror, check_output_dir

    resolve_device(args.device)
    check_mirror(args.data_mirror)
    check_output_dir(args.out)
    if not args.time_limit > 0:
        raise AiaynError(f"--time-limit must be > 0 seconds, not {args.time_limit}")
    parts = None
    if args.parts:
        parts = tuple(s.strip() for s in args.parts.split(",") if s.strip())
        unknown = sorted(set(parts) - {p.name for p in PARTS})
        if unknown:
            raise AiaynError(
                f"unknown parts {unknown}; choose from "
                f"{', '.join(p.name for p in PARTS)}"
            )
    reproduce(
        args.budget,
        args.out,
        args.time_limit,
        parts,
        args.data_mirror,
        args.device,
        command=command,
    )
    return 0
