"""A fair speed benchmark: aiayn against torch.nn.Transformer, Marian and generate.

One command, one JSON file, one printed table::

    python bench/fair.py --out book/data/bench_fair_cpu.json

What makes it fair (each point answers a flaw of the older ``bench/speed.py``):

- Identical work. Every training contender has the same dimensions, vocabulary,
  tied embeddings, post-norm layers without a final LayerNorm, and dropout at the
  same sites (the sums of embeddings and positions, every sublayer's output; no
  attention or ReLU dropout, as the shipped models); their trainable parameter
  counts are asserted equal. All get the same label-smoothed loss (eps 0.1,
  summed over the real target tokens and divided by their number, as the
  trainer does) and the same Adam.
- Real batches. The trainer's own batches: Multi30k en->de with the shipped
  model's tokenizer, grouped by ``aiayn.batching.token_batches`` (padding
  included, as training sees it).
- Noise. Contenders alternate within every round, the order rotating from one
  round to the next, over enough rounds; a warm-up step each comes first.
  Reported: median and minimum round time, and the paired ratio (the other's
  time over aiayn's in the same round) with its median, minimum and maximum.
- Decoding on the same sentences, in the same length-sorted batches, with the
  same length limit (the batch's longest source + 50 for everyone), beam 4 /
  alpha 0.6 and greedy, at batch 32 and batch 1, against ``generate`` on the
  model exported to Marian; batches alternate between the contenders with a
  rotating order, and the agreement of the outputs is reported. Each beam
  search is also set against ``generate`` with a stopping rule of its kind
  (``like_for_like``): aiayn's exact rule against ``early_stopping="never"``,
  and aiayn with ``stop="heuristic"`` against ``generate``'s default.
- Peak memory: on a CPU, the process's peak resident set (VmHWM, reset through
  ``/proc/self/clear_refs``) during one step above the resident set before it;
  on a GPU, ``torch.cuda.max_memory_allocated``.

Contenders named "(previous code)" are aiayn with an optimisation switched off
(logits for padding rows too; finished sentences kept in the batch; every
decoding step through ``model.decode``'s modules instead of
``aiayn.fast_decode``): their ratio is that optimisation's measured gain.
``--previous REV`` adds, to the decoding modes, the package as it was at git
revision REV (imported beside this one as ``aiayn_prev``, the same weights
loaded by its own code): the measured gain of everything that changed in
decoding since.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import aiayn
from aiayn.batching import Batch, collate, encode_sources, token_batches
from aiayn.checkpoint import atomic_write
from aiayn.config import ModelConfig
from aiayn.display import portable_command
from aiayn.embeddings import sinusoidal_encoding
from aiayn.loss import cross_entropy_loss
from aiayn.train import batch_loss

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/speed.py
DEFAULT_MODEL = ROOT / "checkpoints" / "multi30k_tiny_cpu_en_de"
AIAYN = "aiayn"
# Decoding contenders named in more than one place.
AIAYN_HEURISTIC = "aiayn (stop='heuristic', generate's kind of rule)"
GENERATE_DEFAULT = "generate (early_stopping=False, its default)"
GENERATE_NEVER = 'generate (early_stopping="never")'
EXACT_AGAINST_NEVER = f"aiayn (exact) against {GENERATE_NEVER}"  # like for like
AIAYN_UNFUSED = "aiayn (previous code: projection and loss apart)"
AIAYN_ALL_ROWS = "aiayn (previous code: logits for padding too)"
AIAYN_MODULE_STEP = "aiayn (previous code: model.decode each step)"
TORCH = "torch.nn.Transformer"
MARIAN = "MarianMTModel"
TRAIN_CONTENDERS = (AIAYN, AIAYN_UNFUSED, AIAYN_ALL_ROWS, TORCH, MARIAN)


# -- training contenders ----------------------------------------------------------


class TorchTwin(nn.Module):
    """torch.nn.Transformer doing exactly aiayn's work.

    The same embeddings (scaled by sqrt(d_model), tied with the output), the same
    sinusoids, post-norm layers and ReLU; dropout only where aiayn has it (the
    embedding sums and each sublayer's output: ``dropout1..3``), none on the
    attention probabilities or the feed-forward activation, and no final
    LayerNorm after either stack (nn.Transformer adds one by default).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, d)
        nn.init.normal_(self.embed.weight, std=d**-0.5)
        self.register_buffer("pe", sinusoidal_encoding(cfg.max_len, d), False)
        self.dropout = nn.Dropout(cfg.dropout)
        kw = dict(dim_feedforward=cfg.d_ff, dropout=cfg.dropout, batch_first=True)
        enc = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, cfg.n_heads, **kw),
            cfg.n_layers,
            norm=None,
            enable_nested_tensor=False,
        )
        dec = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d, cfg.n_heads, **kw), cfg.n_layers, norm=None
        )
        for layer in [*enc.layers, *dec.layers]:
            layer.dropout = nn.Identity()  # the feed-forward's inner dropout
            for attn in (layer.self_attn, getattr(layer, "multihead_attn", None)):
                if attn is not None:
                    attn.dropout = cfg.attention_dropout  # 0: none on the weights
        self.core = nn.Transformer(
            d, cfg.n_heads, custom_encoder=enc, custom_decoder=dec, batch_first=True
        )

    def _embed(self, tokens: Tensor) -> Tensor:
        x = self.embed(tokens) * math.sqrt(self.cfg.d_model)  # (B, L, d_model)
        return self.dropout(x + self.pe[: tokens.size(1)])

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        T = tgt_in.size(1)
        causal = nn.Transformer.generate_square_subsequent_mask(
            T, device=src.device, dtype=torch.bool
        )  # (T, T), True = may not attend
        pad_s, pad_t = src == self.cfg.pad_id, tgt_in == self.cfg.pad_id  # (B, L)
        h = self.core(
            self._embed(src),
            self._embed(tgt_in),
            tgt_mask=causal,
            src_key_padding_mask=pad_s,
            tgt_key_padding_mask=pad_t,
            memory_key_padding_mask=pad_s,
            tgt_is_causal=True,
        )  # (B, T, d_model)
        return nn.functional.linear(h, self.embed.weight)  # (B, T, V)


class MarianTwin(nn.Module):
    """MarianMTModel (sdpa attention) from aiayn's configuration, behind one call."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        import transformers

        from aiayn.export_hf import marian_config

        self.cfg = cfg
        self.hf = transformers.MarianMTModel._from_config(
            marian_config(cfg), attn_implementation="sdpa"
        )

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        return self.hf(
            input_ids=src,
            attention_mask=src != self.cfg.pad_id,
            decoder_input_ids=tgt_in,
            decoder_attention_mask=tgt_in != self.cfg.pad_id,
        ).logits  # (B, T, V)


def build(name: str, cfg: ModelConfig) -> nn.Module:
    """One training contender's model."""
    if name in (AIAYN, AIAYN_UNFUSED, AIAYN_ALL_ROWS):
        model = aiayn.Transformer(cfg)
        model.check_inputs = False  # as in the trainer
        return model
    if name == TORCH:
        return TorchTwin(cfg)
    if name == MARIAN:
        return MarianTwin(cfg)
    raise ValueError(f"unknown contender {name!r}")


def trainable_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def loss_sum(
    name: str, model: nn.Module, b: Batch, dtype: torch.dtype | None = None
) -> Tensor:
    """The summed label-smoothed loss of one batch, each contender's own way.

    aiayn runs the training loop's own ``batch_loss``; the others compute logits
    for every position and the same ``cross_entropy_loss`` (padding ignored).
    ``dtype``: autocast to it (None: fp32).
    """
    if name in (AIAYN, AIAYN_UNFUSED):
        return batch_loss(model, model, b, dtype, fused=name == AIAYN)
    eps, pad = model.cfg.label_smoothing, model.cfg.pad_id
    with torch.autocast(b.src.device.type, dtype=dtype, enabled=dtype is not None):
        logits = model(b.src, b.tgt_in)  # (B, T, V)
    return cross_entropy_loss(logits, b.tgt_out, eps, pad, "sum")


class Trainer:
    """One contender: model, Adam, and a timed training step."""

    def __init__(
        self, name: str, cfg: ModelConfig, device: torch.device, dtype: torch.dtype
    ) -> None:
        torch.manual_seed(0)
        self.name, self.device, self.dtype = name, device, dtype
        self.model = build(name, cfg).to(device).train()
        self.opt = torch.optim.Adam(
            self.model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9
        )  # the same Adam for all (aiayn's make_optimizer: fused on CUDA only)
        self.loss = math.nan

    def step(self, b: Batch) -> float:
        """One synchronised training step; its wall time in seconds."""
        sync(self.device)
        t0 = time.perf_counter()
        dtype = None if self.dtype == torch.float32 else self.dtype
        loss = loss_sum(self.name, self.model, b, dtype)
        (loss / b.n_tgt_tokens).backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        sync(self.device)
        self.loss = float(loss.detach()) / b.n_tgt_tokens
        return time.perf_counter() - t0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_matmul_peak(n: int = 1024, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of an n x n matmul: the CPU's practical ceiling right now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


# -- measuring ----------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_memory_mib(fn: Callable[[], Any], device: torch.device) -> float | None:
    """Peak memory while ``fn`` runs, above what was in use before it, in MiB."""
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    try:  # Linux: writing 5 resets the peak resident set to the current one
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        fn()
        return None
    before = _status_kib("VmRSS")
    fn()
    peak = _status_kib("VmHWM")
    return None if before is None or peak is None else (peak - before) / 1024


def paired(times: dict[str, list[float]], ref: str) -> dict[str, dict[str, Any]]:
    """Per contender: its time over ``ref``'s in each round, summarised."""
    out = {}
    for name, ts in times.items():
        if name == ref:
            continue
        r = [t / t_ref for t, t_ref in zip(ts, times[ref], strict=True)]
        out[name] = {
            "median": statistics.median(r),
            "min": min(r),
            "max": max(r),
            "rounds": r,
        }
    return out


def rotated(names: list[str], r: int) -> list[str]:
    k = r % len(names)
    return names[k:] + names[:k]


def train_section(
    size: str,
    cfg: ModelConfig,
    batches: list[Batch],
    rounds: int,
    per_round: int,
    device: torch.device,
    dtype: torch.dtype,
    contenders: list[str],
) -> dict[str, Any]:
    """Training throughput of every contender on the same batches, interleaved."""
    trainers = {n: Trainer(n, cfg, device, dtype) for n in contenders}
    params = {n: trainable_parameters(t.model) for n, t in trainers.items()}
    if len(set(params.values())) != 1:
        raise AssertionError(f"contenders differ in trainable parameters: {params}")
    memory = {}
    for n, t in trainers.items():  # warm-up step, which also allocates Adam's state
        memory[n] = peak_memory_mib(lambda t=t: t.step(batches[0]), device)
        t.step(batches[1 % len(batches)])
    times: dict[str, list[float]] = {n: [] for n in contenders}
    tokens: list[int] = []
    for r in range(rounds):
        chosen = [batches[(r * per_round + j) % len(batches)] for j in range(per_round)]
        tokens.append(sum(b.n_tgt_tokens for b in chosen))
        for n in rotated(contenders, r):
            times[n].append(sum(trainers[n].step(b) for b in chosen))
    results = {}
    for n in contenders:
        tps = [k / t for k, t in zip(tokens, times[n], strict=True)]
        results[n] = {
            "round_s_median": statistics.median(times[n]),
            "round_s_min": min(times[n]),
            "round_s": times[n],
            "tgt_tokens_per_s_median": statistics.median(tps),
            "tgt_tokens_per_s": sum(tokens) / sum(times[n]),  # all rounds together
            "peak_memory_mib": memory[n],
            "final_loss": trainers[n].loss,
        }
    pads = [1 - (b.tgt_out != cfg.pad_id).float().mean().item() for b in batches]
    return {
        "size": size,
        "precision": "fp32" if dtype == torch.float32 else f"{dtype} autocast",
        "config": asdict(cfg),
        "trainable_parameters": params[contenders[0]],
        "batches": {
            "count": len(batches),
            "sentences": [b.src.size(0) for b in batches],
            "src_shape": [list(b.src.shape) for b in batches],
            "tgt_shape": [list(b.tgt_in.shape) for b in batches],
            "tgt_tokens": [b.n_tgt_tokens for b in batches],
            "tgt_padding_fraction": pads,
        },
        "rounds": rounds,
        "batches_per_round": per_round,
        "tgt_tokens_per_round": tokens,
        "results": results,
        "aiayn_speedup": paired(times, AIAYN),
    }


# -- decoding -----------------------------------------------------------------------


def previous_package(rev: str, where: Path) -> Any:
    """``code/aiayn`` at git revision ``rev``, imported from ``where`` as aiayn_prev.

    The package imports its own modules relatively, so under another name it runs
    beside the current one in the same process.
    """
    import subprocess
    import tarfile

    archive = where / "prev.tar"
    with archive.open("wb") as f:
        subprocess.run(
            ["git", "archive", rev, "code/aiayn"], cwd=ROOT, stdout=f, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data")
    (where / "code" / "aiayn").rename(where / "aiayn_prev")
    sys.path.insert(0, str(where))
    return importlib.import_module("aiayn_prev")


def decode_section(
    model_dir: Path,
    sentences: int | None,
    batch1_sentences: int,
    device: torch.device,
    mirror: str | None,
    modes: list[tuple[str, int, int]],
    done: Callable[[dict[str, Any]], None] = lambda result: None,
    previous: tuple[str, Any] | None = None,
) -> dict[str, Any]:
    """Beam 4 and greedy, batch 32 and 1: aiayn against generate, same batches.

    ``done(result)`` is called after every mode, so that what is measured survives.
    ``previous``: (revision, package) of an earlier aiayn, decoding as a contender.
    """
    import sacrebleu
    import transformers

    from aiayn import multi30k
    from aiayn.checkpoint import load_model, read_config
    from aiayn.decoding import _strip
    from aiayn.export_hf import export_hf
    from aiayn.tokenizer import load_tokenizer

    cfg = read_config(model_dir)
    pairs = multi30k.load_pairs(
        "test_2016_flickr", cfg.src_lang, cfg.tgt_lang, mirror=mirror, progress=False
    )
    src_text = multi30k.preprocess(
        [s for s, _ in pairs], cfg.src_lang, cfg.preprocessing
    )
    refs = multi30k.preprocess([t for _, t in pairs], cfg.tgt_lang, cfg.preprocessing)
    tok = load_tokenizer(model_dir)
    ids = tok.encode_batch(src_text)  # tokenising is not timed
    extra, pad, eos = cfg.extra_len, cfg.model.pad_id, cfg.model.eos_id
    model = load_model(model_dir, device).eval()
    model.check_inputs = False
    with tempfile.TemporaryDirectory() as tmp:
        export_hf(model_dir, Path(tmp) / "hf")
        hf = transformers.MarianMTModel.from_pretrained(
            Path(tmp) / "hf", attn_implementation="sdpa"
        )
    hf = hf.to(device).eval()
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))

    def ours(
        shrink: bool,
        beam: int,
        package: Any = aiayn,
        net: nn.Module = model,
        stop: str | None = None,
        fast: bool = True,
    ) -> Callable[[Tensor], list[list[int]]]:
        search = importlib.import_module(f"{package.__name__}.decoding")
        rule: dict[str, Any] = {}  # only what differs: older code has no `stop`,
        if stop is not None:  # nor `fast`
            rule["stop"] = stop
        if not fast:
            rule["fast"] = False

        def run(src: Tensor) -> list[list[int]]:
            limit = src.size(1) + extra  # the batch's longest source (EOS incl.) + 50
            if beam == 1:
                return search.greedy_decode(
                    net, src, max_len=limit, shrink=shrink, **rule
                )
            return search.beam_search(
                net, src, beam, 0.6, max_len=limit, shrink=shrink, **rule
            )

        return run

    if previous is not None:
        rev, package = previous
        load = importlib.import_module(f"{package.__name__}.checkpoint").load_model
        old_model = load(model_dir, device).eval()
        old_model.check_inputs = False

    def generate(early_stopping: bool | str, beam: int) -> Callable:
        def run(src: Tensor) -> list[list[int]]:
            with torch.no_grad():
                out = hf.generate(
                    input_ids=src,
                    attention_mask=src != pad,
                    num_beams=beam,
                    length_penalty=0.6,
                    early_stopping=early_stopping,
                    do_sample=False,
                    max_length=1 + src.size(1) + extra,  # + the start token
                )
            return [_strip(r, eos, pad) for r in out[:, 1:].tolist()]

        return run

    result: dict[str, Any] = {
        "model_dir": portable_command(str(model_dir)),
        "config": cfg.name,
        "split": "test_2016_flickr",
        "max_output": f"the batch's longest source (EOS included) + {extra}",
        "alpha": 0.6,
        "modes": [],
        "note": "tokenising and detokenising are not timed; fp32; BLEU is a sanity "
        "check (tokenized, lowercased text, sacreBLEU tokenize='none')",
    }
    for label, beam, batch in modes:
        n = sentences if batch > 1 else batch1_sentences
        chosen = (
            order if n is None or n >= len(order) else order[:: len(order) // n][:n]
        )
        chunks = [chosen[i : i + batch] for i in range(0, len(chosen), batch)]
        contenders: dict[str, Callable] = {
            AIAYN: ours(True, beam),
            "aiayn (previous code: finished sentences stay)": ours(False, beam),
            AIAYN_MODULE_STEP: ours(True, beam, fast=False),
        }
        if previous is not None:
            contenders[f"aiayn (previous code: {rev})"] = ours(
                True, beam, package, old_model
            )
        if beam > 1:
            # generate's default rule, ours in kind: like for like with the next one
            contenders[AIAYN_HEURISTIC] = ours(True, beam, stop="heuristic")
            contenders[GENERATE_DEFAULT] = generate(False, beam)
            contenders[GENERATE_NEVER] = generate("never", beam)
        else:
            contenders["generate (greedy)"] = generate(False, 1)
        names = list(contenders)
        warm = encode_sources([ids[i] for i in chunks[0]], pad, eos).to(device)
        memory = {
            n: peak_memory_mib(lambda f=f, w=warm: f(w), device)
            for n, f in contenders.items()
        }
        outs: dict[str, list[list[int]]] = {n: [[] for _ in ids] for n in names}
        times: dict[str, list[float]] = {n: [] for n in names}
        for c, idx in enumerate(chunks):
            src = encode_sources([ids[i] for i in idx], pad, eos).to(device)  # (B, S)
            for name in rotated(names, c):
                sync(device)
                t0 = time.perf_counter()
                got = contenders[name](src)
                sync(device)
                times[name].append(time.perf_counter() - t0)
                for i, o in zip(idx, got, strict=True):
                    outs[name][i] = o
        mode: dict[str, Any] = {
            "mode": label,
            "beam": beam,
            "batch": batch,
            "sentences": len(chosen),
            "batches": len(chunks),
            "src_tokens": sum(len(ids[i]) + 1 for i in chosen),
            "results": {},
            "aiayn_speedup": paired(times, AIAYN),
        }
        if beam > 1:  # the same kind of stopping rule on both sides
            mode["like_for_like"] = {
                EXACT_AGAINST_NEVER: mode["aiayn_speedup"][GENERATE_NEVER],
                f"{AIAYN_HEURISTIC} against {GENERATE_DEFAULT}": paired(
                    times, AIAYN_HEURISTIC
                )[GENERATE_DEFAULT],
            }
        for name in names:
            wall = sum(times[name])
            generated = sum(len(outs[name][i]) + 1 for i in chosen)  # EOS included
            hyps = [" ".join(tok.decode(outs[name][i]).split()) for i in chosen]
            mode["results"][name] = {
                "wall_s": wall,
                "batch_s": times[name],  # each batch's time, in order
                "sentences_per_s": len(chosen) / wall,
                "tokens_per_s": generated / wall,
                "generated_tokens": generated,
                "identical_to_aiayn": sum(
                    outs[name][i] == outs[AIAYN][i] for i in chosen
                )
                / len(chosen),
                "bleu": sacrebleu.corpus_bleu(
                    hyps, [[refs[i] for i in chosen]], tokenize="none", force=True
                ).score,
                "peak_memory_mib": memory[name],
            }
        result["modes"].append(mode)
        print_decode(mode)
        done(result)
    return result


# -- the run ------------------------------------------------------------------------


def training_pairs(model_dir: Path, mirror: str | None, limit: int | None = None):
    """Multi30k train as the trainer sees it, with the shipped model's tokenizer."""
    from aiayn.checkpoint import read_config
    from aiayn.tasks import get_task
    from aiayn.tokenizer import load_tokenizer

    cfg = replace(read_config(model_dir), train_limit=limit)
    return get_task(cfg.task).prepare(cfg, mirror, load_tokenizer(model_dir))


def real_batches(data: Any, max_tokens: int, n: int) -> list[Batch]:
    """The first ``n`` of the trainer's batches (``token_batches``, seed 0)."""
    m = data.cfg.model
    groups = token_batches(data.train, max_tokens, seed=0)[:n]
    return [
        collate([data.train[i] for i in g], m.pad_id, m.bos_id, m.eos_id)
        for g in groups
    ]


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def facts(device: torch.device, threads: int) -> dict[str, Any]:
    import transformers

    return {
        "measured_matmul_flop_per_s": None
        if device.type == "cuda"
        else cpu_matmul_peak(),  # fp32 1024 x 1024, best of 5: the CPU's ceiling
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({cpu_name()}, {os.cpu_count()} cores)",
        "torch_threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "aiayn": aiayn.__version__,
        "load_average_1_5_15_at_start": list(os.getloadavg()),
        "memory": "CPU: peak resident set during one step above the resident set "
        "before it (VmHWM after /proc/self/clear_refs), glibc's "
        f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_')}; "
        "GPU: torch.cuda.max_memory_allocated above memory_allocated",
    }


def print_train(sec: dict[str, Any]) -> None:
    print(
        f"\ntraining, {sec['size']} ({sec['trainable_parameters']:,} parameters), "
        f"{sec['precision']}, {sec['rounds']} rounds x {sec['batches_per_round']} "
        "batches"
    )
    print(f"  {'contender':48s} {'tgt tok/s':>10s} {'aiayn speed-up (min-max)':>26s}")
    for name, r in sec["results"].items():
        s = sec["aiayn_speedup"].get(name)
        ratio = f"{s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f})" if s else "-"
        print(f"  {name:48s} {r['tgt_tokens_per_s']:10,.0f} {ratio:>26s}")


def print_decode(mode: dict[str, Any]) -> None:
    print(
        f"\ndecoding, {mode['mode']}: {mode['sentences']} sentences in "
        f"{mode['batches']} batches"
    )
    print(
        f"  {'contender':48s} {'sent/s':>8s} {'tok/s':>8s} {'same':>5s} "
        f"{'aiayn speed-up (min-max)':>26s}"
    )
    for name, r in mode["results"].items():
        s = mode["aiayn_speedup"].get(name)
        ratio = f"{s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f})" if s else "-"
        print(
            f"  {name:48s} {r['sentences_per_s']:8.2f} {r['tokens_per_s']:8.0f} "
            f"{r['identical_to_aiayn']:5.0%} {ratio:>26s}"
        )
    for pair, s in mode.get("like_for_like", {}).items():
        span = f"{s['min']:.2f}-{s['max']:.2f}"
        print(f"  like for like, {pair}: {s['median']:.2f}x ({span})")


def write(path: Path, result: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(result, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="results JSON")
    p.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL,
        help="a shipped Multi30k model: its tokenizer, sizes and weights",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument(
        "--sizes",
        default="tiny,base",
        help="tiny: the model's own sizes; base: the paper's base model",
    )
    p.add_argument("--rounds", type=int, default=9, help="training rounds (tiny)")
    p.add_argument("--base-rounds", type=int, default=5)
    p.add_argument("--tokens", type=int, default=4096, help="batch tokens (tiny)")
    p.add_argument("--base-tokens", type=int, default=2048)
    p.add_argument("--bf16", default="base", help="sizes also timed under bf16")
    p.add_argument(
        "--sentences",
        type=int,
        default=None,
        help="test sentences decoded at batch 32 (default: all 1,000)",
    )
    p.add_argument("--batch1-sentences", type=int, default=50)
    p.add_argument("--no-decode", action="store_true")
    p.add_argument(
        "--previous",
        metavar="REV",
        help="also decode with the package as it was at this git revision",
    )
    p.add_argument(
        "--train-limit",
        type=int,
        help="batch only the first N training pairs (for a quick check)",
    )
    p.add_argument("--data-mirror", default=os.environ.get("AIAYN_DATA_MIRROR"))
    args = p.parse_args(argv)
    if not (args.model / "model.safetensors").is_file():
        p.error(f"--model {args.model} holds no model.safetensors")
    sizes = [s for s in args.sizes.split(",") if s]
    if not set(sizes) <= {"tiny", "base"}:
        p.error(f"--sizes takes tiny and/or base, not {args.sizes!r}")
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t_run = time.perf_counter()
    from aiayn.checkpoint import read_config

    shipped = read_config(args.model).model
    result: dict[str, Any] = {
        "command": portable_command(
            "python "
            + shlex.join(
                ["bench/fair.py", *(argv if argv is not None else sys.argv[1:])]
            )
        ),
        **facts(device, args.threads),
        "train": [],
        "decode": None,
    }
    data = training_pairs(args.model, args.data_mirror, args.train_limit)
    for size in sizes:
        if size == "tiny":
            cfg = replace(shipped, dropout=0.1)  # the preset's first dropout
            rounds, tokens, per_round = args.rounds, args.tokens, 2
        else:
            cfg = ModelConfig.base(vocab_size=shipped.vocab_size)
            rounds, tokens, per_round = args.base_rounds, args.base_tokens, 1
        batches = [b.to(device) for b in real_batches(data, tokens, 8)]
        dtypes = [torch.float32]
        if size in args.bf16.split(","):
            dtypes.append(torch.bfloat16)
        for dtype in dtypes:
            sec = train_section(
                size,
                cfg,
                batches,
                rounds,
                per_round,
                device,
                dtype,
                list(TRAIN_CONTENDERS),
            )
            result["train"].append(sec)
            print_train(sec)
            result["wall_s"] = time.perf_counter() - t_run
            write(args.out, result)  # what is done so far survives a stop
    if not args.no_decode:
        modes = [
            ("beam 4, batch 32", 4, 32),
            ("greedy, batch 32", 1, 32),
            ("beam 4, batch 1", 4, 1),
            ("greedy, batch 1", 1, 1),
        ]

        def done(dec: dict[str, Any]) -> None:
            result["decode"] = dec
            result["wall_s"] = time.perf_counter() - t_run
            write(args.out, result)

        with tempfile.TemporaryDirectory() as tmp:
            previous = None
            if args.previous:
                previous = (args.previous, previous_package(args.previous, Path(tmp)))
            decode_section(
                args.model,
                args.sentences,
                args.batch1_sentences,
                device,
                args.data_mirror,
                modes,
                done,
                previous,
            )
    result["wall_s"] = time.perf_counter() - t_run
    write(args.out, result)
    print(
        f"\nwall {result['wall_s']:.0f} s on {result['device_name']}, "
        f"torch {torch.__version__}, {args.threads} threads; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    if sys.platform == "linux" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # A fixed mmap threshold: glibc hands every freed tensor back to the OS at
        # once, so memory one contender freed cannot hide the next one's peak.
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "131072"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    raise SystemExit(main())
