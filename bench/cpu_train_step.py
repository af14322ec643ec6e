"""The CPU training step of Transformer-Tiny, before and after the issue-11 speedups.

Measures, in one process with contenders interleaved (order rotated each round),
the wall time of one training step (forward, label-smoothed loss, backward, Adam)
of the ``multi30k_tiny_cpu_en_de`` architecture on batches of Multi30k-like
lengths (4,096 padded tokens, similar lengths batched together as
``aiayn.batching.token_batches`` does), for:

- ``baseline``: logits for every position, the default (unfused) CPU Adam;
- ``keep``: logits and loss only for the non-padding target positions;
- ``keep+fused``: that and ``torch.optim.Adam(fused=True)``.

Reported as ratios to the baseline (median over rounds), with the device and
torch version: absolute times on a shared machine mean little.

    python bench/cpu_train_step.py --rounds 7 --out book/data/bench_cpu_step.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from aiayn.loss import cross_entropy_loss
from aiayn.model import Transformer
from aiayn.presets import get_preset
from aiayn.schedule import make_optimizer


def batches(n: int, max_tokens: int, vocab: int, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):  # like token_batches: similar lengths share a batch
        L = int(torch.randint(8, 30, (1,), generator=g))
        lengths = torch.randint(
            L - 2, L + 3, (max_tokens // 2 // (L + 2),), generator=g
        )
        B, T = len(lengths), int(lengths.max())
        src = torch.zeros(B, T, dtype=torch.long)
        tgt = torch.zeros(B, T + 1, dtype=torch.long)
        for i, n_i in enumerate(lengths.tolist()):
            src[i, :n_i] = torch.randint(3, vocab, (n_i,), generator=g)
            tgt[i, : n_i + 1] = torch.randint(3, vocab, (n_i + 1,), generator=g)
        out.append((src, tgt[:, :-1], tgt[:, 1:]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument(
        "--steps", type=int, default=5, help="steps per contender per round"
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = get_preset("multi30k_tiny_cpu_en_de")
    mcfg = cfg.model
    data = batches(args.steps, cfg.max_tokens, mcfg.vocab_size)
    contenders = {}
    for name, keep, fused in (
        ("baseline", False, False),
        ("keep", True, False),
        ("keep+fused", True, True),
    ):
        torch.manual_seed(0)
        model = Transformer(mcfg)
        model.check_inputs = False
        opt = make_optimizer(model, cfg.adam_betas, cfg.adam_eps, fused)
        contenders[name] = (model, opt, keep)

    def step(model, opt, keep_rows, src, tgt_in, tgt_out):
        keep = tgt_out != mcfg.pad_id if keep_rows else None
        logits = model(src, tgt_in, keep)
        target = tgt_out[keep] if keep_rows else tgt_out
        loss = cross_entropy_loss(logits, target, 0.1, mcfg.pad_id, "sum")
        (loss / int((tgt_out != 0).sum())).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    names = list(contenders)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds + 1):  # round 0 warms up
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            model, opt, keep = contenders[n]
            t0 = time.perf_counter()
            for b in data:
                step(model, opt, keep, *b)
            if r:
                times[n].append((time.perf_counter() - t0) / len(data))
    med = {n: statistics.median(t) for n, t in times.items()}
    result = {
        "device": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "median_step_s": med,
        "ratio_to_baseline": {n: med[n] / med["baseline"] for n in names},
        "command": "python " + " ".join(sys.argv),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
