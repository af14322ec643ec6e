"""aiayn.env: devices, their names in reports, and the mixed-precision dtype."""

from __future__ import annotations

import pytest
import torch

from aiayn.env import amp_dtype, bf16_supported, device_info, resolve_device
from aiayn.errors import AiaynError

CUDA = torch.device("cuda")


def test_cpu_trains_in_float32_unless_asked() -> None:
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("fp32", cpu) is None
    assert amp_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(AiaynError, match="amp must be one of"):
        amp_dtype("int8", cpu)


def test_emulated_bf16_falls_back_to_float16(monkeypatch: pytest.MonkeyPatch) -> None:
    """A T4 emulates bf16: torch says True unless emulation is excluded."""

    def t4(including_emulation: bool = True) -> bool:
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", t4)
    assert not bf16_supported(CUDA)
    assert amp_dtype("auto", CUDA) is torch.float16
    assert amp_dtype("bf16", CUDA) is torch.bfloat16  # asked for explicitly

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **_: True)  # A100
    assert amp_dtype("auto", CUDA) is torch.bfloat16


def test_devices_are_checked_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("tpu7", "gpu", ""):
        with pytest.raises(AiaynError, match="device"):
            resolve_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(AiaynError, match="no CUDA GPU; use --device cpu"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(AiaynError, match="has 2 GPU"):
        resolve_device("cuda:3")


def test_device_info_names_the_cpu() -> None:
    assert device_info("cpu").startswith("CPU (") and "cores" in device_info("cpu")
