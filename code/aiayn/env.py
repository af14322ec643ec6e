"""Where the code runs: the device, its name for reports, the mixed-precision dtype.

A small module that anything may import (the training loop, tasks, the CLI, the
notebooks): it depends on nothing else in the package but the config's constants
and the error type.
"""

from __future__ import annotations

import os
import platform

import torch

from .config import AMP_CHOICES
from .errors import AiaynError


def default_device() -> torch.device:
    """The first GPU if there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``name`` as a usable device, or AiaynError saying what to pass instead.

    None means :func:`default_device`. An unknown type ("tpu7"), CUDA on a machine
    without a GPU, or a GPU index the machine does not have are user errors.
    """
    if name is None:
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise AiaynError(
            f"unknown device {str(name)!r}; use --device cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise AiaynError(
                f"--device {name}: this machine has no CUDA GPU; use --device cpu"
            )
        if device.index is not None and device.index >= n:
            raise AiaynError(
                f"--device {name}: this machine has {n} GPU(s), cuda:0 to cuda:{n - 1}"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise AiaynError(f"--device {name}: MPS is not available; use cpu")
    elif device.type != "cpu":
        raise AiaynError(
            f"unsupported device {str(name)!r}; use --device cpu, cuda or cuda:N"
        )
    return device


def device_info(device: torch.device | str) -> str:
    """A human-readable name of the device, for every reported number."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def bf16_supported(device: torch.device) -> bool:
    """True if ``device`` runs bfloat16 natively (emulation does not count).

    ``torch.cuda.is_bf16_supported()`` also says True on GPUs that only emulate
    bf16 (a T4, compute capability 7.5), where it is several times slower than
    fp16; native bf16 starts with Ampere (compute capability 8.0).
    """
    if device.type != "cuda":
        return False
    return torch.cuda.is_bf16_supported(including_emulation=False)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the ``amp`` setting on ``device``; None: full fp32.

    "auto" is bf16 on GPUs with native bf16, fp16 (with a gradient scaler) on older
    GPUs such as Colab's T4, and fp32 on the CPU.
    """
    if amp not in AMP_CHOICES:
        raise AiaynError(f"amp must be one of {AMP_CHOICES}, not {amp!r}")
    if amp == "fp32" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "bf16" or (amp == "auto" and bf16_supported(device)):
        return torch.bfloat16
    return torch.float16
