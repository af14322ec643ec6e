"""Optimizer and learning-rate schedule (section 5.3), equation 3.

"We used the Adam optimizer with beta1 = 0.9, beta2 = 0.98 and eps = 10^-9. We
varied the learning rate over the course of training, according to the formula:

    lrate = d_model^-0.5 * min(step_num^-0.5, step_num * warmup_steps^-1.5)

This corresponds to increasing the learning rate linearly for the first
warmup_steps training steps, and decreasing it thereafter proportionally to the
inverse square root of the step number. We used warmup_steps = 4000."

The peak, at step_num = warmup_steps, is d_model^-0.5 * warmup_steps^-0.5.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def noam_lr(step: int, d_model: int, warmup: int, factor: float = 1.0) -> float:
    """Equation 3 at optimizer step ``step`` (1-based)."""
    step = max(step, 1)
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def make_optimizer(
    model: nn.Module,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-9,
    fused: bool | None = None,
) -> torch.optim.Adam:
    """Adam with the paper's betas and eps; the schedule sets the rate.

    ``fused=None`` uses PyTorch's fused kernel when every parameter is on CUDA;
    ``True`` asks for it on the CPU too (same update, different rounding).
    """
    if fused is None:
        fused = all(p.is_cuda for p in model.parameters())
    return torch.optim.Adam(
        model.parameters(), lr=1.0, betas=betas, eps=eps, fused=fused or None
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, d_model: int, warmup: int, factor: float = 1.0
) -> LambdaLR:
    """LambdaLR over equation 3. ``scheduler.step()`` follows each optimizer step.

    LambdaLR evaluates its function at 0 before the first step; the first update
    must use step_num = 1, so the function is shifted by one.
    """
    return LambdaLR(optimizer, lambda s: noam_lr(s + 1, d_model, warmup, factor))
