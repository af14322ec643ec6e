"""Speed benchmark: training throughput and MFU, and beam-search decoding speed.

One run measures, on the device it runs on:

1. Training steps of the paper's base configuration (N=6, d_model=512, d_ff=2048,
   h=8, shared vocabulary of 37,000) for three implementations with identical
   dimensions: ``aiayn.Transformer`` (fused attention), transformers'
   ``MarianMTModel`` (``attn_implementation="sdpa"``) and ``torch.nn.Transformer``
   (``bench/fair.py``'s twin: the same embeddings, sinusoids, tied output
   projection, dropout sites and norms). On a CPU, ``bench/fair.py`` is the
   comparison to trust: real batches, rotated rounds, paired ratios. Every one
   gets the same batches, loss (label-smoothed cross-entropy, eps 0.1), dropout
   0.1 and Adam step, under bf16 autocast on a GPU (fp32 on a CPU), eager and,
   with ``--compile``, under ``torch.compile``. Reported: target tokens per
   second and model FLOPs utilisation (MFU), from :func:`model_flops`.
2. Beam search (beam 4, alpha 0.6) over Multi30k test_2016_flickr with a
   trained en->de model: ``aiayn.translate.decode_ids`` against
   ``MarianMTModel.generate`` on its exported twin (``aiayn.export_hf``).

    python bench/speed.py --budget full --model checkpoints/multi30k_tiny_cpu_en_de \\
        --compile --out book/data/bench_gpu.json      # on a GPU
    nice -n 10 python bench/speed.py --budget small \\
        --model checkpoints/multi30k_tiny_cpu_en_de --out FILE
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import aiayn
from aiayn.config import ModelConfig
from aiayn.display import portable_command
from aiayn.loss import cross_entropy_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fair import MarianTwin, TorchTwin, cpu_matmul_peak, cpu_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Dense bf16 tensor-core peaks from the vendors' data sheets, in FLOP/s.
PEAK_BF16 = [  # (substring of torch.cuda.get_device_name(), peak); first match wins
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10G", 125e12),
    ("L4", 121e12),
]

BUDGETS: dict[str, dict[str, Any]] = {
    # GPU: about 25,000 source and 25,000 target tokens per batch (section 5.1).
    "full": {
        "batch": 400,
        "length": 64,
        "warmup": 10,
        "steps": 30,
        "sentences": None,
        "ours_batch_tokens": 32000,
        "hf_batch": 256,
    },
    # CPU: a tiny batch, so that the whole run takes minutes on a loaded CPU.
    "small": {
        "batch": 4,
        "length": 16,
        "warmup": 1,
        "steps": 3,
        "sentences": 50,
        "ours_batch_tokens": 4000,
        "hf_batch": 16,
    },
    # A tiny model, to check in seconds that the script runs (not a benchmark).
    "smoke": {
        "batch": 4,
        "length": 8,
        "warmup": 1,
        "steps": 2,
        "sentences": 8,
        "ours_batch_tokens": 4000,
        "hf_batch": 8,
        "tiny": True,
    },
}


def model_flops(cfg: ModelConfig, B: int, S: int, T: int) -> int:
    """Matmul FLOPs of one forward pass on a (B, S) source and (B, T) target.

    A (m x k) @ (k x n) product costs 2mkn. Per encoder layer: the Q, K, V and
    output projections 4 * 2BSd^2, the scores QK^T and their product with V
    2 * 2BS^2d (all h heads together: h * d_k = d), the feed-forward network
    2 * 2BSd*d_ff. Per decoder layer: the same for masked self-attention on T
    (the full T x T scores, as dense kernels compute them), encoder-decoder
    attention (Q and output on T: 2 * 2BTd^2; K and V on S: 2 * 2BSd^2;
    scores and values 2 * 2BTSd), and the feed-forward network. Then the
    output projection 2BTdV. Embedding lookups, softmax, layer norm and the
    loss are not matmuls and are left out. A training step (forward +
    backward) costs 3x this: the backward pass of a product is two products.
    """
    d, d_ff, V, N = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.n_layers
    enc = 8 * B * S * d * d + 4 * B * S * S * d + 4 * B * S * d * d_ff
    dec_self = 8 * B * T * d * d + 4 * B * T * T * d
    dec_cross = 4 * B * T * d * d + 4 * B * S * d * d + 4 * B * T * S * d
    dec = dec_self + dec_cross + 4 * B * T * d * d_ff
    return N * (enc + dec) + 2 * B * T * d * V


def counted_flops(cfg: ModelConfig, B: int, S: int, T: int) -> dict[str, int]:
    """FLOPs that torch.utils.flop_counter sees for aiayn.Transformer (readable)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = aiayn.Transformer(cfg)
    model.set_fused_attention(False)  # explicit matmuls, which the counter sees
    src = torch.randint(4, cfg.vocab_size, (B, S))  # (B, S)
    tgt = torch.randint(4, cfg.vocab_size, (B, T))  # (B, T)
    with FlopCounterMode(display=False) as fwd:
        logits = model(src, tgt)
    with FlopCounterMode(display=False) as bwd:
        logits.float().sum().backward()
    return {"forward": fwd.get_total_flops(), "backward": bwd.get_total_flops()}


# -- the three models -----------------------------------------------------------


def build(name: str, cfg: ModelConfig) -> nn.Module:
    if name == "aiayn":
        model = aiayn.Transformer(cfg)
        model.check_inputs = False  # no host sync for an id range check
        model.set_fused_attention(True)
        return model
    if name == "marian":
        return MarianTwin(cfg)
    return TorchTwin(cfg)  # bench/fair.py's: aiayn's dropout sites and norms


# -- training throughput --------------------------------------------------------


def make_batches(
    cfg: ModelConfig, B: int, L: int, n: int, device: torch.device
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """n random (src, tgt_in, tgt_out) batches, lengths in [7L/8, L], right-padded."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        src = torch.randint(4, cfg.vocab_size, (B, L), generator=g)  # (B, S)
        tgt = torch.randint(4, cfg.vocab_size, (B, L + 1), generator=g)  # (B, T+1)
        s_len = torch.randint(L - L // 8, L + 1, (B,), generator=g)  # EOS included
        t_len = torch.randint(L - L // 8, L + 1, (B,), generator=g)  # BOS/EOS incl.
        pos = torch.arange(L + 1)
        src[pos[:L] >= s_len[:, None]] = cfg.pad_id
        src[torch.arange(B), s_len - 1] = cfg.eos_id
        tgt[:, 0] = cfg.bos_id
        tgt[torch.arange(B), t_len] = cfg.eos_id
        tgt[pos > t_len[:, None]] = cfg.pad_id
        out.append((src.to(device), tgt[:, :-1].to(device), tgt[:, 1:].to(device)))
    return out


class TrainRun:
    """One implementation's training steps: forward, loss, backward, Adam."""

    def __init__(
        self, name: str, cfg: ModelConfig, device: torch.device, compile: bool
    ) -> None:
        torch.manual_seed(0)
        self.name, self.cfg, self.device, self.compile = name, cfg, device, compile
        self.model = build(name, cfg).to(device).train()
        self.fwd: Callable = torch.compile(self.model) if compile else self.model
        self.cuda = device.type == "cuda"
        self.opt = torch.optim.Adam(
            self.model.parameters(),
            lr=1e-4,
            betas=(0.9, 0.98),
            eps=1e-9,
            fused=self.cuda,
        )
        self.times: list[float] = []
        self.loss = math.nan

    def step(self, batch: tuple[Tensor, Tensor, Tensor]) -> float:
        """One synchronised training step; returns its wall time in seconds."""
        src, tgt_in, tgt_out = batch
        if self.cuda:
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.cuda):
            logits = self.fwd(src, tgt_in)  # (B, T, V)
        cfg = self.cfg
        loss = cross_entropy_loss(logits, tgt_out, cfg.label_smoothing, cfg.pad_id)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.cuda:
            torch.cuda.synchronize(self.device)
        self.loss = float(loss.detach())
        return time.perf_counter() - t0

    def summary(self, batches: list[tuple[Tensor, Tensor, Tensor]]) -> dict[str, Any]:
        """Median step time; target tokens and model FLOPs per second."""
        step_s = statistics.median(self.times)
        B, S = batches[0][0].shape
        T = batches[0][1].size(1)
        pad = self.cfg.pad_id
        tgt_tokens = statistics.mean(int((b[2] != pad).sum()) for b in batches)
        flops = 3 * model_flops(self.cfg, B, S, T)
        return {
            "model": self.name,
            "compiled": self.compile,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "step_s_median": step_s,
            "step_s_min": min(self.times),
            "step_s_all": self.times,
            "tgt_tokens_per_step": tgt_tokens,
            "tgt_tokens_per_s": tgt_tokens / step_s,
            "flops_per_step": flops,
            "achieved_flop_per_s": flops / step_s,
            "final_loss": self.loss,
        }


def train_speeds(
    variants: list[tuple[str, bool]],
    cfg: ModelConfig,
    batches: list[tuple[Tensor, Tensor, Tensor]],
    warmup: int,
    steps: int,
    device: torch.device,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Time every (model, compiled) variant, their steps interleaved.

    Step i of every variant runs before step i + 1 of any, so a change in the
    machine's load (a shared CPU) falls on all of them alike. Returns the
    summaries and the variants that failed (out of memory, a compile error).
    """
    runs: list[TrainRun] = []
    failed: list[dict[str, Any]] = []

    def fail(name: str, compile: bool, e: Exception) -> None:
        failed.append({"model": name, "compiled": compile, "error": repr(e)[:500]})
        print(f"train {name} compile={compile} failed: {e!r}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()

    for name, compile in variants:
        try:
            runs.append(TrainRun(name, cfg, device, compile))
        except Exception as e:
            fail(name, compile, e)
    for i in range(warmup + steps):
        for run in list(runs):
            try:
                t = run.step(batches[i % len(batches)])
            except Exception as e:
                runs.remove(run)
                fail(run.name, run.compile, e)
                continue
            if i >= warmup:
                run.times.append(t)
    return [run.summary(batches) for run in runs], failed


# -- decoding -------------------------------------------------------------------


def decode_speed(
    model_dir: Path,
    n_sentences: int | None,
    ours_batch_tokens: int,
    hf_batch: int,
    device: torch.device,
    mirror: str | None,
) -> dict[str, Any]:
    """Beam 4, alpha 0.6 over test_2016_flickr: ours vs generate on the twin."""
    import tempfile

    import transformers

    from aiayn import multi30k
    from aiayn.checkpoint import load_model, read_config
    from aiayn.export_hf import export_hf
    from aiayn.metrics import sacrebleu_score
    from aiayn.tokenizer import load_tokenizer
    from aiayn.translate import decode_ids

    train_cfg = read_config(model_dir)
    pairs = multi30k.load_pairs(
        "test_2016_flickr",
        train_cfg.src_lang,
        train_cfg.tgt_lang,
        mirror=mirror,
        progress=False,
    )
    pairs = pairs[:n_sentences] if n_sentences else pairs
    tok = load_tokenizer(
        model_dir
        if (model_dir / "tokenizer.json").exists()
        else model_dir.parent.parent
    )
    sources = tok.encode_batch([s for s, _ in pairs])  # tokenising is not timed
    refs = [t for _, t in pairs]
    beam, alpha, extra = 4, 0.6, train_cfg.extra_len
    model = load_model(model_dir, device)
    model.check_inputs = False

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    decode_ids(model, sources[:8], beam, alpha, extra)  # warm-up
    sync()
    t0 = time.perf_counter()
    ours = decode_ids(model, sources, beam, alpha, extra, ours_batch_tokens)
    sync()
    ours_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        export_hf(model_dir, Path(tmp) / "hf")
        hf = (
            transformers.MarianMTModel.from_pretrained(
                Path(tmp) / "hf", attn_implementation="sdpa"
            )
            .to(device)
            .eval()
        )
    eos, pad = train_cfg.model.eos_id, train_cfg.model.pad_id
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    chunks = [order[i : i + hf_batch] for i in range(0, len(order), hf_batch)]

    def generate(idx: list[int], early_stopping: bool | str) -> list[list[int]]:
        src = aiayn.batching.encode_sources([sources[i] for i in idx], pad, eos)
        src = src.to(device)  # (B, S), sources end in EOS like ours
        with torch.no_grad():
            out = hf.generate(
                input_ids=src,
                attention_mask=src != pad,
                num_beams=beam,
                length_penalty=alpha,
                early_stopping=early_stopping,
                do_sample=False,
                max_length=1 + src.size(1) + extra,  # + the start token
            )
        res = []
        for row in out[:, 1:].tolist():  # drop the start token
            res.append(
                row[: row.index(eos)] if eos in row else [t for t in row if t != pad]
            )
        return res

    def same(outs: list[list[int]]) -> float:
        return sum(a == b for a, b in zip(outs, ours, strict=True)) / len(outs)

    def summary(outs: list[list[int]], wall: float, batching: str) -> dict[str, Any]:
        tokens = sum(len(o) + 1 for o in outs)  # generated tokens, EOS included
        hyps = tok.decode_batch(outs)
        return {
            "wall_s": wall,
            "sentences_per_s": len(outs) / wall,
            "tgt_tokens": tokens,
            "tgt_tokens_per_s": tokens / wall,
            "bleu": sacrebleu_score(hyps, refs)["score"],
            "identical_to_aiayn": same(outs),
            "batching": batching,
        }

    result = {
        "model_dir": str(model_dir),
        "config": train_cfg.name,
        "split": "test_2016_flickr",
        "sentences": len(sources),
        "beam": beam,
        "alpha": alpha,
        "max_output": f"source length + {extra}",
        "aiayn": summary(
            ours,
            ours_s,
            f"decode_ids, length-sorted, batch_tokens={ours_batch_tokens} (x beam)",
        ),
        "note": "tokenisation and detokenisation are not timed; both run in fp32",
    }
    # HF's default stopping heuristic, and "never", the rule ours follows.
    for key, early_stopping in (("generate", False), ("generate_never", "never")):
        generate(order[:8], early_stopping)  # warm-up
        sync()
        theirs: list[list[int]] = [[] for _ in sources]
        t0 = time.perf_counter()
        for idx in chunks:
            for i, o in zip(idx, generate(idx, early_stopping), strict=True):
                theirs[i] = o
        sync()
        result[key] = summary(
            theirs,
            time.perf_counter() - t0,
            f"length-sorted batches of {hf_batch} sentences; "
            f"early_stopping={early_stopping!r}",
        )
    return result


# -- the run --------------------------------------------------------------------


def device_facts(device: torch.device) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "aiayn": aiayn.__version__,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": list(os.getloadavg()),
    }
    try:
        import transformers

        facts["transformers"] = transformers.__version__
    except ImportError:
        facts["transformers"] = None
    if device.type == "cuda":
        facts["device_name"] = torch.cuda.get_device_name(device)
        facts["cuda"] = torch.version.cuda
        facts["cudnn"] = torch.backends.cudnn.version()
    else:
        facts["device_name"] = f"CPU ({facts['cpu']})"
    return facts


def peak_flops(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in PEAK_BF16:
            if key in name:
                return {"value": peak, "source": f"data sheet, dense bf16 ({key})"}
        return {"value": None, "source": f"no peak known for {name}"}
    return {
        "value": None,
        "source": "no peak known for a CPU; see measured_matmul_flop_per_s",
        "measured_matmul_flop_per_s": cpu_matmul_peak(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="small")
    p.add_argument("--out", type=Path, required=True, help="results JSON")
    p.add_argument(
        "--model",
        type=Path,
        help="trained en->de model directory (skip decoding if absent)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", action="store_true", help="also torch.compile")
    p.add_argument("--models", default="aiayn,marian,torch")
    p.add_argument(
        "--data-mirror",
        default=os.environ.get("AIAYN_DATA_MIRROR")
        or (
            str(ROOT.parent / "shared" / "data")
            if (ROOT.parent / "shared" / "data").is_dir()
            else None
        ),
    )
    args = p.parse_args(argv)
    if args.model is not None and not (args.model / "model.safetensors").is_file():
        p.error(f"--model {args.model} holds no model.safetensors")
    try:
        import transformers

        transformers.logging.set_verbosity_error()  # no per-call notices
    except ImportError:
        pass
    device = torch.device(args.device)
    budget = BUDGETS[args.budget]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    t_run = time.perf_counter()
    cfg = ModelConfig.base(vocab_size=37000)  # the paper's base model
    if budget.get("tiny"):
        cfg = ModelConfig.tiny(vocab_size=1000)
    B, L = budget["batch"], budget["length"]
    batches = make_batches(cfg, B, L, 4, device)
    peak = peak_flops(device)
    small = ModelConfig.tiny(vocab_size=50)
    check = counted_flops(small, 2, 5, 7)
    result: dict[str, Any] = {
        "command": portable_command(
            "python " + shlex.join([sys.argv[0], *(argv or sys.argv[1:])])
        ),
        "budget": args.budget,
        **device_facts(device),
        "peak_flop_per_s": peak,
        "train": {
            "config": asdict(cfg),
            "batch": {
                "sentences": B,
                "src_len": L,
                "tgt_len": L,
                "padding": "lengths uniform in [7L/8, L], right-padded",
                "tgt_tokens_per_step": statistics.mean(
                    int((b[2] != 0).sum()) for b in batches
                ),
                "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
            },
            "how": f"{budget['warmup']} warm-up step(s), then the median of "
            f"{budget['steps']} timed steps (forward, label-smoothed loss, "
            "backward, Adam), synchronised, the models' steps interleaved; "
            "tokens are non-padding targets",
            "flops": "3 x model_flops(cfg, B, S, T): padded shapes, matmuls only",
            "flop_check": {
                "tiny model B=2 S=5 T=7": check,
                "model_flops": model_flops(small, 2, 5, 7),
            },
            "results": [],
            "failed": [],
        },
    }
    variants = [
        (name, compile)
        for name in args.models.split(",")
        for compile in ([False, True] if args.compile else [False])
    ]
    t_train = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    runs, failed = train_speeds(
        variants, cfg, batches, budget["warmup"], budget["steps"], device
    )
    train = result["train"]
    train["wall_s"] = time.perf_counter() - t_train
    train["failed"] = failed
    if device.type == "cuda":
        train["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    for r in runs:
        if peak["value"]:
            r["mfu"] = r["achieved_flop_per_s"] / peak["value"]
        else:
            r["fraction_of_measured_matmul"] = (
                r["achieved_flop_per_s"] / peak["measured_matmul_flop_per_s"]
            )
        train["results"].append(r)
        print(
            f"train {r['model']:7s} compile={r['compiled']!s:5s} "
            f"{r['tgt_tokens_per_s']:10.1f} tgt tok/s  "
            f"{r['achieved_flop_per_s'] / 1e12:7.3f} TFLOP/s",
            flush=True,
        )
    result["decode"] = None
    if args.model is not None:
        try:
            result["decode"] = d = decode_speed(
                args.model,
                budget["sentences"],
                budget["ours_batch_tokens"],
                budget["hf_batch"],
                device,
                args.data_mirror,
            )
        except Exception as e:  # e.g. a model Marian cannot hold; keep the rest
            result["decode_error"] = f"{type(e).__name__}: {e}"
            print(f"decoding not measured: {e}", flush=True)
        else:
            for impl in ("aiayn", "generate", "generate_never"):
                print(
                    f"decode {impl:14s} {d[impl]['sentences_per_s']:8.2f} sent/s "
                    f"{d[impl]['tgt_tokens_per_s']:9.1f} tok/s "
                    f"BLEU {d[impl]['bleu']:.2f}",
                    flush=True,
                )
    result["wall_s"] = time.perf_counter() - t_run
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
