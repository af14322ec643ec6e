"""Checkpoints and checkpoint averaging (section 6.1).

"For the base models, we used a single model obtained by averaging the last 5
checkpoints, which were written at 10-minute intervals. For the big models, we
averaged the last 20 checkpoints."

A model directory holds ``config.json`` (the TrainConfig, model included),
``model.safetensors`` (the weights) and, for real text, ``tokenizer.json``; a
training checkpoint adds ``trainer.pt`` (optimizer, scheduler, scaler, RNG states and
the data position) so training resumes where it stopped. Every file is written to a
temporary name and renamed into place, and a checkpoint directory is assembled under
a temporary name and renamed whole, so an interruption never leaves a broken one.
Files and folders get the modes the user's umask allows (0666 and 0777 less it, as
``open`` and ``mkdir`` give; ``tempfile``'s private 0600 and 0700 are not used).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .config import TrainConfig
from .download import temp_dir_beside, temp_file_beside
from .errors import AiaynError
from .model import Transformer

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TRAINER = "trainer.pt"


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_weights(
    path: Path, model: nn.Module, dtype: torch.dtype | None = None
) -> None:
    """Weights to safetensors, atomically; ``dtype`` casts floats (fp16 to ship)."""
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        state[k] = v.contiguous()
    path = Path(path)
    fd, tmp = temp_file_beside(path)
    mode = os.fstat(fd).st_mode & 0o777  # 0666 less the umask
    os.close(fd)
    try:
        save_file(state, str(tmp), metadata={"format": "pt"})
        os.chmod(tmp, mode)  # safetensors writes a new, private file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_weights(path: Path) -> dict[str, Tensor]:
    """Read a safetensors file; a missing, truncated or corrupt one is an AiaynError."""
    path = Path(path)
    if not path.is_file():
        raise AiaynError(f"no weights file {path}; is this a model directory?")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise AiaynError(
            f"{path} is truncated or corrupted ({e}); delete it and use another "
            "checkpoint, or re-run training to write it again"
        ) from None


def read_config(directory: Path) -> TrainConfig:
    """The TrainConfig stored in a model or checkpoint directory."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise AiaynError(
            f"{path} not found: {directory} is not a model directory "
            "(expected config.json and model.safetensors)"
        )
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError, AiaynError) as e:
        raise AiaynError(f"{path} is not a valid config: {e}") from None


def load_into(model: nn.Module, state: dict[str, Tensor], source: Path) -> None:
    """Copy ``state`` into ``model``, explaining any mismatch with its config."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs config {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or wrong:
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:5]}" if missing else "",
                f"unexpected {unexpected[:5]}" if unexpected else "",
                f"shape mismatch {wrong[:5]}" if wrong else "",
            )
            if part
        )
        raise AiaynError(
            f"the weights in {source} do not match its config.json ({detail}); "
            "the config was edited or the files come from different runs"
        )
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k].to(v.dtype))


def load_model(directory: Path, device: str | torch.device = "cpu") -> Transformer:
    """Build the model a directory describes and load its weights (fp32)."""
    directory = Path(directory)
    cfg = read_config(directory)
    model = Transformer(cfg.model)
    load_into(model, load_weights(directory / WEIGHTS), directory / WEIGHTS)
    return model.to(device).eval()


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    cfg: TrainConfig,
    trainer_state: dict[str, Any] | None = None,
) -> None:
    """Write a complete checkpoint directory atomically (temp dir, then rename)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(directory)
    old = tmp.with_name(tmp.name + ".old")  # an existing checkpoint, moved aside
    try:
        (tmp / CONFIG).write_text(cfg.to_json())
        save_weights(tmp / WEIGHTS, model)
        if trainer_state is not None:
            torch.save(trainer_state, tmp / TRAINER)
        if directory.exists():
            os.replace(directory, old)
        try:
            os.replace(tmp, directory)
        except BaseException:
            if old.exists():
                os.replace(old, directory)  # put the old checkpoint back
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_trainer_state(directory: Path) -> dict[str, Any]:
    """The optimizer/scheduler/RNG/data state saved beside a checkpoint's weights."""
    path = Path(directory) / TRAINER
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AiaynError(f"{path} not found: cannot resume from {directory}") from None
    except Exception as e:  # torch raises several kinds for a damaged pickle
        raise AiaynError(f"{path} is truncated or corrupted ({e})") from None


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete step checkpoints under ``run_dir/checkpoints``, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.glob("step_*")
        if p.name.removeprefix("step_").isdecimal() and (p / WEIGHTS).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name.removeprefix("step_")))


def average_checkpoints(directories: Sequence[Path]) -> dict[str, Tensor]:
    """The element-wise mean of the weights of several checkpoints (in fp32)."""
    if not directories:
        raise AiaynError("no checkpoints to average")
    total: dict[str, Tensor] = {}
    for d in directories:
        state = load_weights(Path(d) / WEIGHTS)
        if total and set(state) != set(total):
            raise AiaynError(f"{d} holds different parameters from {directories[0]}")
        for k, v in state.items():
            total[k] = total.get(k, 0) + v.double()
    return {k: (v / len(directories)).float() for k, v in total.items()}
