"""Data-parallel training (section 5.2): N processes take the step one process would.

Two CPU processes (gloo) under ``torchrun`` with one micro-batch each must make the
same optimizer step as one process that accumulates both micro-batches
(``accum=2``): train.py gives micro-batch i to rank i % world_size and divides the
loss by the target tokens of the whole global batch.
"""

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from aiayn import checkpoint as ckpt
from aiayn.model import Transformer
from aiayn.presets import get_preset
from aiayn.tasks import prepare
from aiayn.train import _seed_all

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

# Adam's first step is lr * g / (|g| + eps): for the paper's eps=1e-9 that is
# about lr * sign(g), blind to a gradient off by a constant factor (a wrong loss
# normalisation across ranks). With eps=1 and lr=1 (warmup=1, lr_factor=8,
# d_model=64) the step is g / (|g| + 1), close to plain SGD, so the weights show
# the gradient's size as well as its sign.
SETTINGS = [
    "max_steps=1",
    "save_every=1",
    "eval_every=1",
    "copy_train_size=200",
    "copy_test_size=10",
    "eval_bleu=False",
    "adam_eps=1.0",
    "warmup=1",
    "lr_factor=8",
]
TIMEOUT = 900  # seconds per command: a hang guard, generous for busy CI machines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# torchrun's variables: a test run under torchrun must not leak them into ours.
DIST_VARS = (
    "WORLD_SIZE RANK LOCAL_RANK LOCAL_WORLD_SIZE GROUP_RANK ROLE_RANK MASTER_ADDR "
    "MASTER_PORT TORCHELASTIC_RUN_ID"
).split()


def _run(cmd: list[str], cwd: Path) -> None:
    """Run ``cmd``; on timeout kill its whole process group (torchrun's workers)."""
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env["CUDA_VISIBLE_DEVICES"] = ""  # gloo on the CPU even where a GPU exists
    env.setdefault("OMP_NUM_THREADS", "1")  # what torchrun gives each worker
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, f"{cmd}\n{out[-3000:]}\n{err[-3000:]}"


def _train_args(out: Path, accum: int) -> list[str]:
    sets = [a for s in [*SETTINGS, f"accum={accum}"] for a in ("--set", s)]
    return [
        *"-m aiayn train --config copy --no-progress --device cpu".split(),
        *("--out", str(out), *sets),
    ]


def _initial_weights() -> dict[str, torch.Tensor]:
    """The weights train() starts from: same seed, same order of RNG use."""
    cfg = get_preset("copy").with_overrides(SETTINGS)
    _seed_all(cfg.seed)
    data = prepare(cfg)
    return Transformer(data.cfg.model).state_dict()


def test_two_processes_step_like_one_that_accumulates(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, *_train_args(one, accum=2)], tmp_path)
    torchrun = [
        *(sys.executable, "-m", "torch.distributed.run", "--nnodes", "1"),
        *("--nproc_per_node", "2", "--master_addr", "127.0.0.1"),
        *("--master_port", str(_free_port())),
    ]
    _run([*torchrun, *_train_args(two, accum=1)], tmp_path)

    step = "checkpoints/step_0000001/" + ckpt.WEIGHTS
    w1, w2 = ckpt.load_weights(one / step), ckpt.load_weights(two / step)
    w0 = _initial_weights()
    assert set(w1) == set(w2) == set(w0)
    for k in w0:
        assert torch.allclose(w2[k], w1[k], atol=1e-6, rtol=0), (
            k,
            float((w2[k] - w1[k]).abs().max()),
        )
    # The step did something, far above the tolerance. Its typical size (median
    # about 0.003 here) is far below the distance to another random
    # initialisation (median about 0.1), so w0 really is where both runs started.
    moved = torch.cat([(w1[k] - w0[k]).abs().flatten() for k in w0])  # (P,)
    assert float(moved.max()) > 1e-2
    assert float(moved.median()) < 0.03

    assert ckpt.read_config(one).accum == 2
    assert ckpt.read_config(two).accum == 1
    assert json.loads((one / "metrics.json").read_text())["world_size"] == 1
    assert json.loads((two / "metrics.json").read_text())["world_size"] == 2
    log = [json.loads(line) for line in (two / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1]
    assert math.isfinite(log[0]["dev_loss"])
