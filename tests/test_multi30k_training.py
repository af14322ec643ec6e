"""A short CPU training run on a slice of Multi30k: the dev loss falls."""

from __future__ import annotations

import json
from pathlib import Path

from aiayn.presets import get_preset
from aiayn.train import train


def test_dev_loss_falls_on_a_slice_of_multi30k(mirror: Path, tmp_path: Path) -> None:
    cfg = get_preset("multi30k_cpu_en_de").with_overrides(
        [
            "train_limit=3000",
            "dev_limit=100",
            "model.vocab_size=1000",
            "max_tokens=1024",
            "max_steps=60",
            "warmup=30",
            "lr_factor=1.0",
            "eval_every=20",
            "save_every=20",
            "eval_bleu=false",
        ]
    )
    metrics = train(cfg, tmp_path / "run", mirror=str(mirror), progress=False)
    history = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").open()]
    losses = [r["dev_loss"] for r in history]
    assert [r["step"] for r in history] == [20, 40, 60]
    assert losses[0] > losses[1] > losses[2], losses
    assert losses[-1] < losses[0] - 0.05  # measured at step 40, 60: 5.99, 5.92
    assert metrics["steps"] == 60 and metrics["bleu"] >= 0.0
