"""Model variations (section 6.2, Table 3): the paper's ablations, rerun on Multi30k.

"To evaluate the importance of different components of the Transformer, we varied
our base model in different ways, measuring the change in performance on
English-to-German translation on the development set, newstest2013. We used beam
search as described in the previous section, but no checkpoint averaging."

Our base for this experiment is the ``multi30k_en_de`` preset (N=4, d_model=256,
d_ff=1024, h=4, d_k=d_v=64, P_drop=0.3, eps_ls=0.1). Each row of Table 3 changes
it the way the paper changed its own base (N=6, d_model=512, d_ff=2048, h=8,
d_k=d_v=64, P_drop=0.1, eps_ls=0.1):

* (A) heads at constant compute, h * d_k = h * d_v = d_model: h scaled by the
  paper's factor (1/8, 1/2, 2, 4 of its 8; at least one head), so h = 1, 2, 8, 16
  and d_k = d_v = 256, 128, 32, 16 (the last two are the paper's own values).
* (B) d_k = 16, 32 at fixed h, d_v unchanged: our d_k is 64 like the paper's.
* (C) N scaled by 4/6 and rounded: 2, 4, 8 -> 1, 3, 5; d_model halved and doubled
  (128, 512) with d_k = d_v = d_model / h; d_ff halved and doubled (512, 2048).
* (D) P_drop 0.0 and the paper's step of +0.1 (0.4); eps_ls 0.0 and 0.2.
* (E) learned positional embeddings instead of the sinusoids.
* big: d_model, d_ff and h doubled (d_k = d_v = 64), P_drop +0.2 (0.5), and
  three times the steps, as the paper's 300K against 100K.

Every row trains for the same number of steps (big: 3x), with the same seeds and
no checkpoint averaging (``average_last=1``, as in the paper), and is measured on
the dev set (Multi30k val): perplexity per sub-word token, BLEU with beam 4 and
alpha 0.6, and parameters. A :class:`Budget` sets the steps, seeds and data sizes.

The ``cpu`` budget starts from the shipped en->de recipe instead, Transformer-Tiny
(``multi30k_tiny_cpu_en_de``: N=4, d_model=128, d_ff=256, h=4, d_k=d_v=32, with
a constant P_drop of 0.1, its value before the recipe's dropout ramp), with the
rows in ``TINY_OVERRIDES`` and three seeds for the base row, whose spread is the
noise each row's difference is held against. Finished rows are skipped on a
rerun (same configuration, same :func:`code_version`), so the grid can be
completed over several sittings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .checkpoint import atomic_write
from .config import TrainConfig
from .display import portable_command
from .env import device_info
from .errors import AiaynError
from .presets import get_preset
from .train import train

REFERENCE = "multi30k_en_de"  # the preset every row starts from (GPU budgets)
TINY_REFERENCE = "multi30k_tiny_cpu_en_de"  # the shipped en->de recipe (cpu budget)
# What the results keep of each run's metrics.json.
RUN_KEYS = (
    "dev_ppl dev_nll bleu tok_bleu chrf n parameters steps device wall_time_s "
    "train_tokens_per_s"
).split()
# The modules whose code decides a row's numbers; a finished row trained by other
# code is trained again (`code_version`).
TRAINING_CODE = (
    "attention batching config embeddings feed_forward layers loss masks model "
    "multi30k schedule tokenizer train decoding metrics translate copy_task "
    "tasks/__init__ tasks/base tasks/multi30k tasks/copy"
).split()


@dataclass(frozen=True)
class Variation:
    """One row of Table 3: the paper's change and numbers, and ours."""

    name: str  # short id, also the run directory, e.g. "A_h1"
    row: str  # the paper's group: base, A, B, C, D, E, big
    label: str  # what the paper changed, in its notation
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields
    paper_ppl: float = 4.92  # dev perplexity per word-piece, newstest2013
    paper_bleu: float = 25.8  # dev BLEU, newstest2013
    paper_params_m: float | None = None  # millions; None: blank (as the base)
    steps_factor: float = 1.0  # training steps relative to the base row
    tiny_overrides: dict[str, Any] = field(default_factory=dict)  # around
    # Transformer-Tiny (TINY_REFERENCE), for the ``cpu`` budget


def _v(
    name: str,
    label: str,
    ppl: float,
    bleu: float,
    params: float | None = None,
    steps_factor: float = 1.0,
    **overrides: Any,
) -> Variation:
    row = name.split("_")[0]  # "A_h1" -> "A"
    tiny = TINY_OVERRIDES[name]
    return Variation(name, row, label, overrides, ppl, bleu, params, steps_factor, tiny)


# The same rows around Transformer-Tiny (N=4, d_model=128, d_ff=256, h=4,
# d_k=d_v=32, P_drop 0.1 at this budget), the base of the ``cpu`` budget, scaled
# as the paper's rows sit around its base: (A) h = 1, 2, 8, 16 with h * d_k =
# d_model; (B) d_k a quarter and a half; (C) N = 2, 3, 6, d_model and d_ff halved
# and doubled; (D) P_drop 0 and 0.3 (the literature's), eps_ls 0 and 0.2; (E)
# learned positions; big: d_model, d_ff and h doubled, P_drop 0.3, 3x the steps.
# fmt: off
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "base": {},
    "A_h1": dict(n_heads=1, d_k=128, d_v=128),
    "A_h4": dict(n_heads=2, d_k=64, d_v=64),
    "A_h16": dict(n_heads=8, d_k=16, d_v=16),
    "A_h32": dict(n_heads=16, d_k=8, d_v=8),
    "B_dk16": dict(d_k=8),
    "B_dk32": dict(d_k=16),
    "C_N2": dict(n_layers=2),
    "C_N4": dict(n_layers=3),
    "C_N8": dict(n_layers=6),
    "C_d256": dict(d_model=64, d_k=16, d_v=16),
    "C_d1024": dict(d_model=256, d_k=64, d_v=64),
    "C_ff1024": dict(d_ff=128),
    "C_ff4096": dict(d_ff=512),
    "D_drop0": dict(dropout=0.0),
    "D_drop2": dict(dropout=0.3),
    "D_ls0": dict(label_smoothing=0.0),
    "D_ls2": dict(label_smoothing=0.2),
    "E_learned": dict(learned_positions=True),
    "big": dict(d_model=256, d_ff=512, n_heads=8, d_k=32, d_v=32, dropout=0.3),
}
# fmt: on


# The paper's rows with its dev numbers, and our overrides of the reference.
# fmt: off
VARIATIONS: list[Variation] = [
    #  name         the paper's change       PPL   BLEU  params
    _v("base",      "(the base model)",      4.92, 25.8, 65),
    _v("A_h1",      "h=1 d_k=d_v=512",       5.29, 24.9, None,
       n_heads=1, d_k=256, d_v=256),
    _v("A_h4",      "h=4 d_k=d_v=128",       5.00, 25.5, None,
       n_heads=2, d_k=128, d_v=128),
    _v("A_h16",     "h=16 d_k=d_v=32",       4.91, 25.8, None,
       n_heads=8, d_k=32, d_v=32),
    _v("A_h32",     "h=32 d_k=d_v=16",       5.01, 25.4, None,
       n_heads=16, d_k=16, d_v=16),
    _v("B_dk16",    "d_k=16",                5.16, 25.1, 58, d_k=16),
    _v("B_dk32",    "d_k=32",                5.01, 25.4, 60, d_k=32),
    _v("C_N2",      "N=2",                   6.11, 23.7, 36, n_layers=1),
    _v("C_N4",      "N=4",                   5.19, 25.3, 50, n_layers=3),
    _v("C_N8",      "N=8",                   4.88, 25.5, 80, n_layers=5),
    _v("C_d256",    "d_model=256 d_k=d_v=32",  5.75, 24.5, 28,
       d_model=128, d_k=32, d_v=32),
    _v("C_d1024",   "d_model=1024 d_k=d_v=128", 4.66, 26.0, 168,
       d_model=512, d_k=128, d_v=128),
    _v("C_ff1024",  "d_ff=1024",             5.12, 25.4, 53, d_ff=512),
    _v("C_ff4096",  "d_ff=4096",             4.75, 26.2, 90, d_ff=2048),
    _v("D_drop0",   "P_drop=0.0",            5.77, 24.6, None, dropout=0.0),
    _v("D_drop2",   "P_drop=0.2",            4.95, 25.5, None, dropout=0.4),
    _v("D_ls0",     "eps_ls=0.0",            4.67, 25.3, None, label_smoothing=0.0),
    _v("D_ls2",     "eps_ls=0.2",            5.47, 25.7, None, label_smoothing=0.2),
    _v("E_learned", "positional embedding instead of sinusoids", 4.92, 25.7, None,
       learned_positions=True),
    _v("big",       "d_model=1024 d_ff=4096 h=16 P_drop=0.3 300K steps",
       4.33, 26.4, 213, 3.0, d_model=512, d_ff=2048, n_heads=8, d_k=64, d_v=64,
       dropout=0.5),
]
# fmt: on
ROWS = {v.name: v for v in VARIATIONS}
PAPER_NAMES = {
    "n_layers": "N",
    "n_heads": "h",
    "dropout": "P_drop",
    "label_smoothing": "eps_ls",
    "learned_positions": "learned_positions",
}


def overrides_for(v: Variation, reference: str = REFERENCE) -> dict[str, Any]:
    """The ModelConfig fields row `v` changes in the base built from `reference`."""
    return v.tiny_overrides if reference == TINY_REFERENCE else v.overrides


def describe(v: Variation, reference: str = REFERENCE) -> str:
    """Our change in the paper's notation, e.g. ``h=1 d_k=256 d_v=256``."""
    changes = overrides_for(v, reference).items()
    return " ".join(f"{PAPER_NAMES.get(k, k)}={x}" for k, x in changes)


def score_key(cfg: TrainConfig) -> str:
    """Which of a run's metrics the table's BLEU column holds.

    sacreBLEU for a model of raw text; for one of the literature's lowercased,
    tokenised text (``lc.norm.tok``) the tokenized BLEU the literature reports;
    exact match for the copy task (the harness's own test).
    """
    if cfg.task == "copy":
        return "exact_match"
    return "tok_bleu" if cfg.preprocessing == "lc.norm.tok" else "bleu"


def code_version() -> str:
    """A short hash of the training code (`TRAINING_CODE`) as it is on disk."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in TRAINING_CODE:
        h.update(name.encode() + b"\0" + (root / f"{name}.py").read_bytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class Budget:
    """How much each row trains, on how much data, with which seeds."""

    name: str
    steps: int  # optimizer steps per row (the big row: 3x)
    warmup: int  # warmup_steps; lr_factor keeps the reference's peak rate
    seeds: tuple[int, ...]
    max_tokens: int  # tokens per batch
    train_limit: int | None  # first N training pairs (None: all 29,000)
    dev_limit: int | None  # first N val pairs for perplexity and BLEU (None: 1,014)
    eval_every: int  # dev perplexity every this many steps (the training curve)
    about: str  # what it is for and what it costs
    reference: str = REFERENCE  # the preset of the base row
    base_seeds: tuple[int, ...] | None = None  # the base row's, if more (noise)


BUDGETS = {
    "tiny": Budget(
        "tiny",
        steps=16,
        warmup=4,
        seeds=(1,),
        max_tokens=256,
        train_limit=1000,
        dev_limit=20,
        eval_every=16,
        about="a CPU check of the harness: about 3 CPU-minutes for all rows "
        "(one thread); its numbers measure nothing",
    ),
    "small": Budget(
        "small",
        steps=1000,
        warmup=200,
        seeds=(1,),
        max_tokens=4096,
        train_limit=None,
        dev_limit=None,
        eval_every=250,
        about="one seed, 1,000 steps per row: under an hour on one GPU (estimate)",
    ),
    "cpu": Budget(
        "cpu",
        steps=1600,
        warmup=800,
        seeds=(1,),
        max_tokens=4096,
        train_limit=None,
        dev_limit=None,
        eval_every=400,
        about="Transformer-Tiny rows (the shipped en->de recipe, P_drop 0.1), "
        "1,600 steps of 4k tokens each, the base row with 3 seeds for the noise: "
        "run with --jobs 2 --threads 1 on a 2-core CPU, about 30 minutes a run "
        "(measured: 1,801 s, two at once), resumable over several days",
        reference=TINY_REFERENCE,
        base_seeds=(1, 2, 3),
    ),
    "full": Budget(
        "full",
        steps=6000,
        warmup=1000,
        seeds=(1, 2, 3),
        max_tokens=4096,
        train_limit=None,
        dev_limit=None,
        eval_every=500,
        about="three seeds, 6,000 steps per row (the preset's budget): about 4 "
        "hours on one H100 (estimate, not yet measured)",
    ),
}


def budget_config(budget: Budget, reference: str | None = None) -> TrainConfig:
    """The base row's TrainConfig under ``budget``: the preset, resized.

    A dropout schedule or a time budget of the preset is dropped: every row
    trains the same steps with its own constant P_drop.
    """
    ref = get_preset(reference or budget.reference)
    return replace(
        ref,
        name="table3",
        dropout_ramp=None,
        max_minutes=None,
        max_tokens=budget.max_tokens,
        warmup=budget.warmup,
        lr_factor=ref.lr_factor * math.sqrt(budget.warmup / ref.warmup),
        train_limit=budget.train_limit,
        dev_limit=budget.dev_limit,
        eval_every=budget.eval_every,
        eval_bleu=False,
        keep_checkpoints=1,
        average_last=1,
        eval_max_sentences=None,
    )


def row_config(
    v: Variation, base: TrainConfig, steps: int, seed: int, reference: str = REFERENCE
) -> TrainConfig:
    """The TrainConfig of row ``v``: ``base`` with the row's model changes."""
    n = max(1, round(steps * v.steps_factor))
    return replace(
        base,
        name=f"table3_{v.name}",
        model=replace(base.model, **overrides_for(v, reference)),
        seed=seed,
        max_steps=n,
        save_every=min(n, base.eval_every),  # an interrupted row resumes
        eval_every=min(base.eval_every, n),
    )


def run_variations(
    rows: list[Variation],
    base_cfg: TrainConfig,
    steps: int,
    seeds: list[int] | tuple[int, ...],
    out_dir: Path,
    mirror: str | None = None,
    device: str | None = None,
    *,
    results: Path | None = None,
    progress: bool = True,
    command: str | None = None,
    reference: str = REFERENCE,
    base_seeds: list[int] | tuple[int, ...] | None = None,
    jobs: int = 1,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train every row with every seed under ``out_dir``; write and return results.

    Each run lives in ``out_dir/<row>/seed_<seed>``; a run whose ``metrics.json``
    exists, with the same configuration and the same `code_version`, is read, not
    retrained, so an interrupted call resumes and a finished grid is free to
    rerun. A finished run of other training code is trained again. The results
    JSON (default ``out_dir/results.json``) is rewritten atomically after every
    run, with each run's device, wall time, tokens per second and command.

    ``base_seeds`` (default ``seeds``) are the base row's: more seeds there
    measure the noise that the other rows are compared against. ``jobs`` runs
    that many trainings at once, each in its own process with ``threads`` CPU
    threads (two of one thread each are the fastest way through the grid on a
    2-core CPU).
    """
    if steps < 1 or not seeds:
        raise AiaynError(f"need steps >= 1 and at least one seed, got {steps}, {seeds}")
    if jobs < 1:
        raise AiaynError(f"jobs={jobs} (must be >= 1)")
    if "base" not in {v.name for v in rows}:
        rows = [ROWS["base"], *rows]
    out_dir, results = Path(out_dir), Path(results or Path(out_dir) / "results.json")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t0 = time.perf_counter()
    command = portable_command(command or shlex.join(sys.argv))
    version = code_version()
    header = {
        "experiment": "Table 3 (section 6.2): variations on the Transformer",
        "reference": reference,
        "steps": steps,
        "seeds": list(seeds),
        "base_seeds": list(base_seeds or seeds),
        "base_config": base_cfg.to_dict(),
        "device": device_info(dev),
        "torch": torch.__version__,
        "command": command,
        "code_version": version,
        "score": score_key(base_cfg),  # what the rows' "bleu" holds
        "jobs": jobs,
        "threads": threads or torch.get_num_threads(),
        "out_dir": str(out_dir),
    }
    jobs_list = [
        (v, s)
        for v in rows
        for s in (base_seeds or seeds if v.name == "base" else seeds)
    ]
    tasks = [
        (row_config(v, base_cfg, steps, s, reference), out_dir / v.name / f"seed_{s}")
        for v, s in jobs_list
    ]
    runs: dict[str, list[dict[str, Any]]] = {}
    bar = tqdm(total=len(tasks), desc="Table 3", unit="run", disable=not progress)

    def finished(v: Variation, run: dict[str, Any]) -> None:
        runs.setdefault(v.name, []).append(run)
        runs[v.name].sort(key=lambda r: r["seed"])
        bar.update(1)
        bar.write(
            f"{v.name:>9} seed {run['seed']}: ppl {run['dev_ppl']:.2f} "
            f"bleu {run['bleu']:.2f}"
        )
        summary = {
            **header,
            "wall_time_s": round(time.perf_counter() - t0, 1),
            "complete": sum(map(len, runs.values())) == len(tasks),
            "rows": _rows(rows, runs, reference),
        }
        atomic_write(results, json.dumps(summary, indent=2))

    args = [(cfg, d, mirror, str(dev), command, version, threads) for cfg, d in tasks]
    if jobs == 1:
        for (v, _), a in zip(jobs_list, args, strict=True):
            finished(v, _run_one(*a))
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs, maxtasksperchild=1) as pool:
            handles = [pool.apply_async(_run_one, a) for a in args]
            waiting = list(zip(jobs_list, handles, strict=True))
            while waiting:
                for item in list(waiting):
                    (v, _), res = item
                    if res.ready():
                        finished(v, res.get())
                        waiting.remove(item)
                time.sleep(0.2)
    bar.close()
    return json.loads(results.read_text())


def _run_one(
    cfg: TrainConfig,
    run_dir: Path,
    mirror: str | None,
    device: str,
    command: str | None,
    version: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train one (row, seed) into ``run_dir``, or read it if already finished."""
    if threads:
        torch.set_num_threads(threads)
    version = version or code_version()
    saved = run_dir / "train_config.json"
    timing = run_dir / "row_time.json"  # written when a run starts and ends
    done = json.loads(timing.read_text()) if timing.exists() else {}
    if done.get("code_version", version) != version:
        shutil.rmtree(run_dir)  # trained, or begun, by other code: train it anew
        done = {}
    if saved.exists():
        ours = json.loads(json.dumps(cfg.to_dict()))
        theirs = json.loads(saved.read_text())
        ours["model"]["vocab_size"] = theirs["model"]["vocab_size"]  # from the data
        if ours != theirs:
            raise AiaynError(
                f"{run_dir} holds a run of another configuration; "
                "remove it or choose another output directory"
            )
    if (run_dir / "metrics.json").exists():
        metrics = json.loads((run_dir / "metrics.json").read_text())
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(timing, json.dumps({"code_version": version}))  # for a resume
        t0 = time.perf_counter()
        metrics = train(
            cfg,
            run_dir,
            resume=saved.exists(),  # an interrupted row continues
            mirror=mirror,
            device=device,
            progress=False,
            command=command,
        )
        done = {
            "row_wall_s": round(time.perf_counter() - t0, 1),
            "code_version": version,
            "threads": torch.get_num_threads(),
            "command": command,
        }
        atomic_write(timing, json.dumps(done))
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # model kept
    return {
        "seed": cfg.seed,
        **{k: metrics.get(k) for k in RUN_KEYS},
        "bleu": metrics.get(score_key(cfg)),
        "row_wall_s": done.get("row_wall_s"),
        "code_version": done.get("code_version"),
        "threads": done.get("threads"),
        "command": done.get("command"),
        "run_dir": str(run_dir),
    }


def _rows(
    rows: list[Variation],
    runs: dict[str, list[dict[str, Any]]],
    reference: str = REFERENCE,
) -> list[dict[str, Any]]:
    """One summary per finished row: means over seeds, paper numbers, direction.

    With several base seeds, the base's spread (max - min over its seeds) is the
    noise: a row's ``beyond_noise`` says whether its mean differs from the
    base's by more than that, and ``direction_beyond_noise`` keeps only those
    directions (None where the difference is within the noise).
    """
    out = []
    for v in rows:
        if v.name not in runs:
            continue
        rs = runs[v.name]
        ppl, bleu = [r["dev_ppl"] for r in rs], [r["bleu"] for r in rs]
        walls = [r["row_wall_s"] for r in rs if r["row_wall_s"] is not None]
        out.append(
            {
                "name": v.name,
                "row": v.row,
                "label": v.label,
                "ours": describe(v, reference),
                "overrides": overrides_for(v, reference),
                "steps": rs[0]["steps"],
                "paper": {
                    "ppl": v.paper_ppl,
                    "bleu": v.paper_bleu,
                    "params_m": v.paper_params_m,
                },
                "dev_ppl": statistics.fmean(ppl),
                "bleu": statistics.fmean(bleu),
                "dev_ppl_sd": statistics.stdev(ppl) if len(ppl) > 1 else None,
                "bleu_sd": statistics.stdev(bleu) if len(bleu) > 1 else None,
                "params_m": rs[0]["parameters"] / 1e6,
                "wall_time_s": round(sum(walls), 1) if walls else None,
                "runs": rs,
            }
        )
    base = next((r for r in out if r["name"] == "base"), None)
    noise = None
    if base is not None and len(base["runs"]) > 1:
        noise = {
            key: max(x[key] for x in base["runs"]) - min(x[key] for x in base["runs"])
            for key in ("dev_ppl", "bleu")
        }
    for r in out:
        r["direction"] = direction_matches(r, base) if base else None
        r["noise"] = noise
        r["beyond_noise"] = r["direction_beyond_noise"] = None
        if base is not None and noise is not None and r is not base:
            beyond = {
                "ppl": abs(r["dev_ppl"] - base["dev_ppl"]) > noise["dev_ppl"],
                "bleu": abs(r["bleu"] - base["bleu"]) > noise["bleu"],
            }
            r["beyond_noise"] = beyond
            r["direction_beyond_noise"] = {
                k: d if beyond[k] else None for k, d in r["direction"].items()
            }
    return out


def _sign(x: float) -> int:
    x = round(x, 9)  # the paper's numbers have two decimals
    return (x > 0) - (x < 0)


def direction_matches(
    row: dict[str, Any], base: dict[str, Any]
) -> dict[str, bool | None]:
    """Did our change from our base move PPL and BLEU the way the paper's did?

    ``row`` and ``base`` are entries of the results' ``rows``. A value is None
    where there is nothing to compare: the base row itself, or a row where the
    paper reports no change (h=16's BLEU, (E)'s perplexity).
    """
    out: dict[str, bool | None] = {}
    for ours, paper in (("dev_ppl", "ppl"), ("bleu", "bleu")):
        p = _sign(row["paper"][paper] - base["paper"][paper])
        if row["name"] == base["name"] or p == 0:
            out[paper] = None
        else:
            out[paper] = _sign(row[ours] - base[ours]) == p
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m aiayn.variations`` (and of the main CLI)."""
    p.add_argument(
        "--budget",
        choices=sorted(BUDGETS),
        default="tiny",
        help="; ".join(f"{b.name}: {b.about}" for b in BUDGETS.values()),
    )
    p.add_argument("--out", type=Path, required=True, help="results JSON file")
    p.add_argument(
        "--runs", type=Path, help="directory of the runs (default runs/table3_BUDGET)"
    )
    p.add_argument(
        "--rows",
        help="comma-separated row names or groups, e.g. A,C_N2 "
        f"(default all; the base row is always run): {', '.join(ROWS)}",
    )
    p.add_argument("--seeds", help="comma-separated seeds (default: the budget's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if any)")
    p.add_argument("--data-mirror", help="directory or URL holding multi30k/")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: all)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="trainings at once, each its own process (default 1; on a 2-core "
        "CPU: --jobs 2 --threads 1)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def select_rows(spec: str | None) -> list[Variation]:
    """Rows named by ``spec`` ("A,C_N2,big"); a group letter selects its rows."""
    if not spec:
        return list(VARIATIONS)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [
        w for w in wanted if w not in ROWS and w not in {v.row for v in VARIATIONS}
    ]
    if unknown:
        raise AiaynError(
            f"unknown rows {unknown}; choose from {list(ROWS)} or a "
            "group: base, A, B, C, D, E, big"
        )
    return [v for v in VARIATIONS if v.name in wanted or v.row in wanted]


def run(args: argparse.Namespace, command: str) -> int:
    """Run the command that :func:`add_arguments` describes; ``command`` is logged."""
    from .cli import check_at_least, check_mirror, check_output_dir, check_output_file
    from .env import resolve_device

    budget = BUDGETS[args.budget]
    if args.device is not None:
        resolve_device(args.device)
    check_mirror(args.data_mirror)
    check_output_file(args.out)
    runs = args.runs or Path("runs") / f"table3_{budget.name}"
    check_output_dir(runs, "--runs")
    check_at_least(args.threads, "--threads")
    check_at_least(args.jobs, "--jobs")
    seeds = list(budget.seeds)
    base_seeds = list(budget.base_seeds) if budget.base_seeds else None
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise AiaynError(
                f"--seeds takes integers, e.g. 1,2,3: {args.seeds!r}"
            ) from None
        base_seeds = None  # the given seeds for every row
    rows = select_rows(args.rows)
    if args.threads:
        torch.set_num_threads(args.threads)  # one thread is faster on a busy CPU
    run_variations(
        rows,
        budget_config(budget),
        budget.steps,
        seeds,
        runs,
        args.data_mirror,
        args.device,
        results=args.out,
        progress=not args.no_progress,
        command=command,
        reference=budget.reference,
        base_seeds=base_seeds,
        jobs=args.jobs,
        threads=args.threads,
    )
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m aiayn.variations --budget tiny --out FILE`` (or small, full)."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m aiayn.variations", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
        return run(args, f"python -m aiayn.variations {shlex.join(argv)}")
    except AiaynError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
