"""The training loop (section 5): batches, Adam with warmup, checkpoints, averaging.

One function, :func:`train`, runs on a CPU, one GPU, or several GPUs under
``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on CUDA) with the same
code. ``TrainConfig.max_tokens`` is the batch of one optimizer step, as in the
paper's "25000 source and 25000 target tokens per batch": it is split into
``world_size * accum`` micro-batches of ``max_tokens // (world_size * accum)``
tokens, micro-batch i going to rank i % world_size, so adding GPUs or accumulation
changes the speed, not the recipe. The loss is normalised by the number of target
tokens in the whole global batch, so one step of N processes equals one step of a
single process that accumulates the same N micro-batches (a test checks this).

The loop receives a task (`aiayn.tasks`) and never asks which one it is: the task
builds the data and judges the model. Mixed precision: bf16 autocast on GPUs with
native bf16, fp16 with gradient scaling on older ones (Colab's T4), fp32 on the
CPU (`aiayn.env.amp_dtype`). Checkpoints are written every
``save_every`` steps; at the end the last ``average_last`` are averaged (section
6.1) into ``OUT/model.safetensors``, and ``OUT/metrics.json`` records the result
with its device, wall time and command.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
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
from .batching import Batch, batch_stream, collate, token_batches
from .config import TrainConfig
from .decoding import eval_mode
from .env import amp_dtype, device_info, resolve_device
from .errors import AiaynError
from .layers import SublayerConnection
from .loss import cross_entropy_loss, projected_cross_entropy
from .model import Transformer
from .schedule import make_optimizer, make_scheduler
from .tasks import Task, TaskData, get_task
from .tokenizer import TOKENIZER_FILE, load_tokenizer


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
    """Per-token cross-entropy on the dev set: label-smoothed and plain (perplexity).

    The model is evaluated without dropout and left in the mode it came in.
    """
    cfg = data.cfg.model
    total_ls = total_nll = 0.0
    n = 0
    with eval_mode(model):
        for idx in token_batches(data.dev, max_tokens, shuffle=False):
            pairs = [data.dev[i] for i in idx]
            b = collate(pairs, cfg.pad_id, cfg.bos_id, cfg.eos_id).to(device)
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


def batch_loss(
    fwd: nn.Module,
    model: Transformer,
    b: Batch,
    dtype: torch.dtype | None = None,
    fused: bool = True,
) -> torch.Tensor:
    """The label-smoothed loss of one batch, summed over its real target tokens.

    ``fwd`` is ``model`` as the loop calls it (wrapped by DDP or torch.compile).
    Logits are computed for the non-padding targets only. In full precision with
    ``fused`` (``TrainConfig.fused_loss``), the pre-softmax projection and the loss
    are one function (`loss.projected_cross_entropy`: the same value and
    gradients with one (N, vocab) buffer, not up to three); under autocast
    (``dtype``), the projection and ``F.cross_entropy`` run apart.
    """
    m = model.cfg
    keep = b.tgt_out != m.pad_id  # (B, T)
    target = b.tgt_out[keep]  # (N,)
    if fused and dtype is None:
        h = fwd(b.src, b.tgt_in, keep, project=False)  # (N, d_model)
        return projected_cross_entropy(
            h, model.output_weight, target, m.label_smoothing
        )
    with torch.autocast(b.src.device.type, dtype=dtype, enabled=dtype is not None):
        logits = fwd(b.src, b.tgt_in, keep)  # (N, V): no padding rows
    return cross_entropy_loss(logits, target, m.label_smoothing, m.pad_id, "sum")


def train(
    cfg: TrainConfig,
    out: Path,
    *,
    task: Task | None = None,
    resume: bool = False,
    mirror: str | None = None,
    device: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` on ``task`` into the run directory ``out``; the final metrics.

    ``task`` defaults to the one registered as ``cfg.task``. With ``resume`` the
    run in ``out`` continues from its last checkpoint with its own tokenizer.
    """
    out = Path(out)
    task = get_task(cfg.task) if task is None else task
    rank, world, local_rank = _dist_setup()
    per_step = world * cfg.accum  # micro-batches in one optimizer step
    micro_tokens = cfg.max_tokens // per_step
    if micro_tokens < 1:
        raise AiaynError(
            f"max_tokens={cfg.max_tokens} is the batch of one optimizer step, split "
            f"into {per_step} micro-batches (world size {world} x accum "
            f"{cfg.accum}): raise it"
        )
    _check_out(out, resume)
    if device is None and world > 1 and torch.cuda.is_available():
        device = f"cuda:{local_rank}"
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    is_main = rank == 0
    out.mkdir(parents=True, exist_ok=True)
    _seed_all(cfg.seed)
    data = _prepare(task, cfg, out, mirror, resume, is_main, world)
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
    optimizer = make_optimizer(model, cfg.adam_betas, cfg.adam_eps, cfg.fused_adam)
    scheduler = make_scheduler(optimizer, cfg.model.d_model, cfg.warmup, cfg.lr_factor)
    dtype = amp_dtype(cfg.amp, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    step, consumed, history = 0, 0, []
    before = {"wall_s": 0.0, "tokens": 0, "segments": 0}  # earlier runs of a resume
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
        before = state.get("totals", before)

    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    fwd = torch.compile(net) if cfg.compile else net

    stream = batch_stream(data.train, micro_tokens, cfg.seed)
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
    this_command = command or " ".join(sys.argv)

    def out_of_time() -> bool:
        """Past ``cfg.max_minutes`` (all ranks agree: rank 0's clock decides)."""
        if cfg.max_minutes is None:
            return False
        over = before["wall_s"] + time.perf_counter() - t0 >= 60 * cfg.max_minutes
        if world > 1:
            flag = torch.tensor([float(over)], device=dev)
            dist.broadcast(flag, src=0)
            over = bool(flag.item())
        return over

    stopped_by = "max_steps"
    if 0 < step < cfg.max_steps and out_of_time():
        stopped_by = "max_minutes"  # a resumed run whose budget is already spent
    while step < cfg.max_steps and stopped_by == "max_steps":
        model.train()
        if cfg.dropout_ramp is not None:
            set_residual_dropout(model, ramped_dropout(cfg, step))
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
                loss_sum = batch_loss(fwd, model, b, dtype, cfg.fused_loss)
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
        if step < cfg.max_steps and out_of_time():
            stopped_by = "max_minutes"  # this step is the last: evaluate and save
        final = step == cfg.max_steps or stopped_by == "max_minutes"
        if step % cfg.eval_every == 0 or final:
            if is_main:
                record = {
                    "step": step,
                    "train_loss": sum(losses) / len(losses),
                    "lr": scheduler.get_last_lr()[0],
                    "tokens_per_s": tokens_done / elapsed,
                    "elapsed_s": elapsed,
                    **dev_loss(model, data, micro_tokens, dev),
                }
                if cfg.eval_bleu:
                    record.update(
                        _scores(
                            task.evaluate(
                                model,
                                data,
                                cfg.beam_size,
                                cfg.alpha,
                                limit=cfg.eval_max_sentences,
                            )
                        )
                    )
                history.append(record)
                ckpt.atomic_write(
                    out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history)
                )
                bar.write(_describe(record))
                losses = []
            _barrier(world)
        if step % cfg.save_every == 0 or final:
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
                    "totals": {
                        "wall_s": before["wall_s"] + time.perf_counter() - t0,
                        "tokens": before["tokens"] + tokens_done,
                        "segments": before["segments"] + 1,
                        "commands": [*before.get("commands", []), this_command],
                    },
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
            model,
            task,
            data,
            out,
            dev,
            wall,
            tokens_done,
            step,
            history,
            command,
            micro_tokens,
            before,
            stopped_by,
        )
    _barrier(world)
    if world > 1:
        dist.destroy_process_group()
    return result


def ramped_dropout(cfg: TrainConfig, step: int) -> float:
    """P_drop for the update after ``step`` under ``cfg.dropout_ramp``."""
    p0 = cfg.model.dropout
    if cfg.dropout_ramp is None:
        return p0
    a, b, p1 = cfg.dropout_ramp
    t = min(max((step - a) / (b - a), 0.0), 1.0)
    return p0 + t * (p1 - p0)


def set_residual_dropout(model: Transformer, p: float) -> None:
    """Set the residual and embedding dropout (not attention or ReLU dropout)."""
    model.dropout.p = p
    for m in model.modules():
        if isinstance(m, SublayerConnection):
            m.dropout.p = p


def _finish(
    model: Transformer,
    task: Task,
    data: TaskData,
    out: Path,
    dev: torch.device,
    wall: float,
    tokens: int,
    step: int,
    history: list[dict[str, Any]],
    command: str | None,
    micro_tokens: int,
    before: dict[str, Any],
    stopped_by: str = "max_steps",
) -> dict[str, Any]:
    """Average the last checkpoints, write the model directory and metrics.json."""
    cfg = data.cfg
    epoch_tokens = sum(len(t) + 1 for _, t in data.train)  # targets and their EOS
    found = ckpt.list_checkpoints(out)[-cfg.average_last :]
    state = ckpt.average_checkpoints(found)
    ckpt.load_into(model, state, out / "checkpoints")
    ckpt.save_weights(out / ckpt.WEIGHTS, model)
    ckpt.atomic_write(out / ckpt.CONFIG, cfg.to_json())
    metrics: dict[str, Any] = {
        "config": cfg.name,
        "steps": step,
        "stopped_by": stopped_by,  # max_steps, or the max_minutes budget
        "averaged_checkpoints": [p.name for p in found],
        **dev_loss(model, data, micro_tokens, dev),
        **_scores(task.evaluate(model, data, cfg.beam_size, cfg.alpha)),
        "device": device_info(dev),
        "torch": torch.__version__,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "wall_time_s": round(before["wall_s"] + wall, 1),
        "train_tokens_per_s": round(
            (before["tokens"] + tokens) / (before["wall_s"] + wall), 1
        )
        if wall
        else None,
        "train_target_tokens": before["tokens"] + tokens,
        "epochs": round((before["tokens"] + tokens) / max(epoch_tokens, 1), 2),
        "segments": before["segments"] + 1,  # 1 + how often it was resumed
        "commands": [*before.get("commands", []), command or " ".join(sys.argv)],
        "parameters": model.num_parameters(),
        "command": command or " ".join(sys.argv),  # this segment's
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


def _check_out(out: Path, resume: bool) -> None:
    """Refuse an ``out`` that cannot hold this run, before anything is written."""
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise AiaynError(f"--out {out}: {parent} is a file, not a directory")
    holds_run = (out / "train_config.json").exists() or bool(
        out.is_dir() and ckpt.list_checkpoints(out)
    )
    if resume and not holds_run:
        raise AiaynError(
            f"--resume: {out} holds no run to continue (no train_config.json or "
            "checkpoints); drop --resume to start a new run there"
        )
    if not resume and holds_run:
        raise AiaynError(
            f"{out} already holds a run; pass --resume to continue it or choose "
            "another --out"
        )


def _prepare(
    task: Task,
    cfg: TrainConfig,
    out: Path,
    mirror: str | None,
    resume: bool,
    is_main: bool,
    world: int,
) -> TaskData:
    """The task's data with ONE tokenizer per run.

    Sub-word training is not guaranteed to give the same vocabulary twice, so the
    tokenizer is trained once, by rank 0 of a new run, and saved into ``out``; a
    resumed run and the other DDP ranks load that saved copy.
    """
    saved = out / TOKENIZER_FILE
    if is_main:
        tokenizer = load_tokenizer(out) if resume and saved.exists() else None
        data = task.prepare(cfg, mirror, tokenizer)
        if tokenizer is None:
            data.tokenizer.save(out)
    _barrier(world)
    if not is_main:
        data = task.prepare(cfg, mirror, load_tokenizer(out))
    return data


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
