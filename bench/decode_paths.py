"""Two decoding speed-ups on this machine, each a paired ratio against the old code.

1. Finished sentences leave the batch (``shrink=True``) against the plain loop that
   decodes every row until the whole batch stops (``shrink=False``).
2. At one query (each step of cached decoding) on a CPU, plain matmul-softmax-
   matmul attention (``MultiHeadAttention.plain_single_query``) against
   ``F.scaled_dot_product_attention``.

Both on the shipped en->de model over the first N val sentences, beam 4 and
greedy, in batches of about 4,000 source tokens x beam (``decode_ids``). The
contenders alternate, their order rotating, for R rounds; the outputs must be
identical. Prints and writes (``--out``) the median time of each and the paired
ratios (median, min, max)::

    python bench/decode_paths.py --sentences 200 --rounds 5 --out FILE
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from aiayn import multi30k
from aiayn.attention import MultiHeadAttention
from aiayn.checkpoint import load_model, read_config
from aiayn.display import portable_command
from aiayn.env import device_info
from aiayn.tokenizer import load_tokenizer
from aiayn.translate import decode_ids


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="checkpoints/multi30k_tiny_cpu_en_de")
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, torch.device("cpu")).eval()
    cfg, tok = read_config(args.model), load_tokenizer(args.model)
    pairs = multi30k.load_pairs("val", cfg.src_lang, cfg.tgt_lang, progress=False)
    src = multi30k.preprocess([s for s, _ in pairs[: args.sentences]],
                              cfg.src_lang, cfg.preprocessing)  # fmt: skip
    ids = tok.encode_batch(src)
    attn = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]

    def run(beam: int, shrink: bool, plain: bool) -> tuple[float, list]:
        for m in attn:
            m.plain_single_query = plain
        t0 = time.perf_counter()
        out = decode_ids(model, ids, beam, 0.6, cfg.extra_len, 4000, shrink=shrink)
        return time.perf_counter() - t0, out

    contenders = {
        "old (no shrink, fused)": (False, False),
        "shrink": (True, False),
        "shrink + plain 1-query": (True, True),
    }
    report = {}
    for beam in (4, 1):
        times: dict[str, list[float]] = {k: [] for k in contenders}
        outputs = {}
        names = list(contenders)
        run(beam, True, False)  # warm up
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                wall, out = run(beam, *contenders[name])
                times[name].append(wall)
                outputs.setdefault(name, out)
        ref = outputs[names[0]]
        same = {n: outputs[n] == ref for n in names}
        base = times[names[0]]
        rows = {}
        for n in names:
            ratios = [t / b for t, b in zip(times[n], base, strict=True)]
            rows[n] = {
                "median_s": statistics.median(times[n]),
                "min_s": min(times[n]),
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "same_outputs": same[n],
            }
            print(
                f"beam {beam} {n:24s} median {rows[n]['median_s']:.2f} s  ratio "
                f"{rows[n]['ratio_median']:.3f} [{rows[n]['ratio_min']:.3f}, "
                f"{rows[n]['ratio_max']:.3f}]  same outputs: {same[n]}"
            )
        report[f"beam_{beam}"] = rows
    result = {
        "model": args.model,
        "sentences": args.sentences,
        "rounds": args.rounds,
        "threads": args.threads,
        "device": device_info(torch.device("cpu")),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "command": portable_command(
            "python bench/decode_paths.py "
            + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None)
        ),
        "results": report,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
