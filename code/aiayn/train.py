"""The training loop (section 5): batches, Adam with warmup, checkpoints, averaging.

One function, :func:`train`, runs on a CPU, one GPU, or several GPUs under
``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on CUDA) with the same
code. Each optimizer step consumes ``world_size * accum`` token-batches, micro-batch
i going to rank i % world_size, and the loss is normalised by the number of target
tokens in the whole global batch, so one step of N processes equals one step of a
single process that accumulates the same N micro-batches (a test checks this).

Mixed precision: bf16 autocast on GPUs that support it, fp16 with gradient scaling
on those that do not (Colab's T4), fp32 on the CPU. Checkpoints are written every
``save_every`` steps; at the end the last ``average_last`` are averaged (section
6.1) into ``OUT/model.safetensors``, and ``OUT/metrics.json`` records the result
with its device, wall time and command.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .batching import batch_stream, collate, token_batches
from .config import TrainConfig
from .errors import AiaynError
from .loss import cross_entropy_loss
from .model import Transformer
from .schedule import make_optimizer, make_scheduler
from .tasks import TaskData, evaluate, prepare


def device_info(device: torch.device) -> str:
    """A human-readable name of the device, for every reported number."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: None means full fp32."""
    if cfg.amp == "fp32" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if cfg.amp == "bf16" or (cfg.amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    if cfg.amp in ("fp16", "auto"):
        return torch.float16
    raise AiaynError(f"amp must be auto, fp32, bf16 or fp16, not {cfg.amp!r}")


def _dist_setup() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, or one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def dev_loss(
    model: Transformer, data: TaskData, max_tokens: int, device: torch.device
) -> dict[str, float]:
    """Per-token cross-entropy on the dev set: label-smoothed and plain (perplexity)."""
    model.eval()
    cfg = data.cfg.model
    total_ls = total_nll = 0.0
    n = 0
    for idx in token_batches(data.dev, max_tokens, shuffle=False):
        b = collate([data.dev[i] for i in idx], cfg.pad_id, cfg.bos_id, cfg.eos_id)
        b = b.to(device)
        logits = model(b.src, b.tgt_in)  # (B, T, V)
        total_ls += float(
            cross_entropy_loss(
                logits, b.tgt_out, cfg.label_smoothing, cfg.pad_id, "sum"
            )
        )
        total_nll += float(
            cross_entropy_loss(logits, b.tgt_out, 0.0, cfg.pad_id, "sum")
        )
        n += b.n_tgt_tokens
    nll = total_nll / max(n, 1)
    return {"dev_loss": total_ls / max(n, 1), "dev_nll": nll, "dev_ppl": math.exp(nll)}


def train(
    cfg: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    mirror: str | None = None,
    device: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` into the run directory ``out``; returns the final metrics."""
    out = Path(out)
    _check_settings(cfg)
    rank, world, local_rank = _dist_setup()
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    is_main = rank == 0
    if out.exists() and any(out.iterdir()) and not resume and is_main:
        if (out / ckpt.CONFIG).exists() or ckpt.list_checkpoints(out):
            raise AiaynError(
                f"{out} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    _seed_all(cfg.seed)
    data = prepare(cfg, out if is_main else None, mirror)
    cfg = data.cfg  # vocab size now set from the tokenizer
    if not data.train or not data.dev:
        raise AiaynError(
            f"{cfg.name}: {len(data.train)} training and {len(data.dev)} dev pairs; "
            "both must be non-empty (check train_limit, copy_*_size, the data)"
        )
    if is_main:
        ckpt.atomic_write(out / "train_config.json", cfg.to_json())

    model = Transformer(cfg.model).to(dev)
    model.check_inputs = False  # ids come from our tokenizer; validated here once
    _validate_ids(data, cfg)
    optimizer = make_optimizer(model, cfg.adam_betas, cfg.adam_eps)
    scheduler = make_scheduler(optimizer, cfg.model.d_model, cfg.warmup, cfg.lr_factor)
    dtype = amp_dtype(cfg, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    step, consumed, history = 0, 0, []
    if resume and (found := ckpt.list_checkpoints(out)):
        last = found[-1]
        ckpt.load_into(model, ckpt.load_weights(last / ckpt.WEIGHTS), last)
        state = ckpt.load_trainer_state(last)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        random.setstate(tuple(_untuple(state["rng_py"])))
        step, consumed, history = state["step"], state["consumed"], state["history"]

    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    fwd = torch.compile(net) if cfg.compile else net

    per_step = world * cfg.accum
    stream = batch_stream(data.train, cfg.max_tokens, cfg.seed)
    for _ in range(consumed):  # skip what a resumed run has already seen
        next(stream)
    bar = tqdm(
        total=cfg.max_steps,
        initial=step,
        disable=not (progress and is_main),
        desc=cfg.name,
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    tokens_done = 0
    losses: list[float] = []
    while step < cfg.max_steps:
        model.train()
        group = [
            collate(
                [data.train[i] for i in idx],
                cfg.model.pad_id,
                cfg.model.bos_id,
                cfg.model.eos_id,
            )
            for _, idx in (next(stream) for _ in range(per_step))
        ]
        consumed += per_step
        n_global = sum(b.n_tgt_tokens for b in group)  # same on every rank
        mine = group[rank::world]
        step_loss = 0.0
        for j, b in enumerate(mine):
            b = b.to(dev)
            sync = j == len(mine) - 1
            ctx = (
                net.no_sync() if (world > 1 and not sync) else contextlib.nullcontext()
            )
            with ctx:
                with torch.autocast(
                    dev.type, dtype=dtype or torch.float32, enabled=dtype is not None
                ):
                    logits = fwd(b.src, b.tgt_in)  # (B, T, V)
                loss_sum = cross_entropy_loss(
                    logits,
                    b.tgt_out,
                    cfg.model.label_smoothing,
                    cfg.model.pad_id,
                    "sum",
                )
                # DDP averages gradients over ranks: scale so the result is the
                # gradient of the mean loss over the global batch's tokens.
                scaler.scale(loss_sum * world / n_global).backward()
            step_loss += float(loss_sum.detach())
        if cfg.clip_grad_norm:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        step += 1
        tokens_done += n_global
        losses.append(step_loss * world / n_global)  # this rank's share, rescaled
        elapsed = time.perf_counter() - t0
        bar.update(1)
        bar.set_postfix(
            loss=f"{losses[-1]:.3f}",
            tok_s=f"{tokens_done / elapsed:,.0f}",
            lr=f"{scheduler.get_last_lr()[0]:.2e}",
        )
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            if is_main:
                record = {
                    "step": step,
                    "train_loss": sum(losses) / len(losses),
                    "lr": scheduler.get_last_lr()[0],
                    "tokens_per_s": tokens_done / elapsed,
                    "elapsed_s": elapsed,
                    **dev_loss(model, data, cfg.max_tokens, dev),
                }
                if cfg.eval_bleu:
                    record.update(
                        _scores(evaluate(model, data, limit=cfg.eval_max_sentences))
                    )
                history.append(record)
                ckpt.atomic_write(
                    out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history)
                )
                bar.write(_describe(record))
                losses = []
            _barrier(world)
        if step % cfg.save_every == 0 or step == cfg.max_steps:
            if is_main:
                state = {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng_cpu": torch.get_rng_state(),
                    "rng_py": random.getstate(),
                    "step": step,
                    "consumed": consumed,
                    "history": history,
                }
                d = out / "checkpoints" / f"step_{step:07d}"
                ckpt.save_checkpoint(d, model, cfg, state)
                _prune(out, max(cfg.keep_checkpoints, cfg.average_last))
            _barrier(world)
    bar.close()
    wall = time.perf_counter() - t0
    result: dict[str, Any] = {}
    if is_main:
        result = _finish(
            model, data, out, cfg, dev, wall, tokens_done, step, history, command
        )
    _barrier(world)
    if world > 1:
        dist.destroy_process_group()
    return result


def _finish(
    model: Transformer,
    data: TaskData,
    out: Path,
    cfg: TrainConfig,
    dev: torch.device,
    wall: float,
    tokens: int,
    step: int,
    history: list[dict[str, Any]],
    command: str | None,
) -> dict[str, Any]:
    """Average the last checkpoints, write the model directory and metrics.json."""
    found = ckpt.list_checkpoints(out)[-cfg.average_last :]
    state = ckpt.average_checkpoints(found)
    ckpt.load_into(model, state, out / "checkpoints")
    ckpt.save_weights(out / ckpt.WEIGHTS, model)
    ckpt.atomic_write(out / ckpt.CONFIG, cfg.to_json())
    metrics: dict[str, Any] = {
        "config": cfg.name,
        "steps": step,
        "averaged_checkpoints": [p.name for p in found],
        **dev_loss(model, data, cfg.max_tokens, dev),
        **_scores(evaluate(model, data)),
        "device": device_info(dev),
        "torch": torch.__version__,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "wall_time_s": round(wall, 1),
        "train_tokens_per_s": round(tokens / wall, 1) if wall else None,
        "parameters": model.num_parameters(),
        "command": command or " ".join(sys.argv),
        "history": history,
    }
    ckpt.atomic_write(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def _scores(result: dict[str, Any]) -> dict[str, Any]:
    """Keep the numbers of an evaluation, drop example sentences."""
    return {k: v for k, v in result.items() if k != "examples"}


def _describe(r: dict[str, Any]) -> str:
    parts = [
        f"step {r['step']}",
        f"train {r['train_loss']:.3f}",
        f"dev {r['dev_loss']:.3f}",
        f"ppl {r['dev_ppl']:.2f}",
    ]
    for key in ("bleu", "tok_bleu", "exact_match", "f1"):
        if key in r:
            parts.append(f"{key} {r[key]:.4g}")
    return " | ".join(parts)


def _check_settings(cfg: TrainConfig) -> None:
    """Loop settings below 1 would crash or hang the loop: a user error instead."""
    names = (
        "max_steps",
        "accum",
        "max_tokens",
        "eval_every",
        "save_every",
        "keep_checkpoints",
        "average_last",
    )
    bad = [f"{n}={getattr(cfg, n)}" for n in names if getattr(cfg, n) < 1]
    if bad:
        raise AiaynError(f"{', '.join(bad)}: each must be at least 1")


def _validate_ids(data: TaskData, cfg: TrainConfig) -> None:
    V = cfg.model.vocab_size
    V_src = V if cfg.model.shared_vocab else cfg.model.src_vocab_size
    for s, t in data.train[:: max(1, len(data.train) // 1000)] + data.dev:
        if (s and max(s) >= V_src) or (t and max(t) >= V):
            raise AiaynError(f"token id >= vocab size ({V_src}, {V}) in the data")


def _prune(out: Path, keep: int) -> None:
    for old in ckpt.list_checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def _untuple(x: Any) -> Any:
    """random.getstate() round-trips through torch.save as lists; undo that."""
    return tuple(_untuple(v) for v in x) if isinstance(x, list | tuple) else x


def rescale_config(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``cfg`` with TrainConfig fields changed (helper for notebooks)."""
    return replace(cfg, **changes)
