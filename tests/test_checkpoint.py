"""Checkpoints (section 6.1): exact round trips, atomic writes, errors, averaging."""

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from aiayn import ModelConfig, TrainConfig, Transformer
from aiayn import checkpoint as ckpt
from aiayn.errors import AiaynError


def _cfg(**model: object) -> TrainConfig:
    return TrainConfig(name="t", task="copy", model=ModelConfig.tiny(**model))


def _model(seed: int = 0, **model: object) -> Transformer:
    torch.manual_seed(seed)
    m = Transformer(_cfg(**model).model)
    with torch.no_grad():  # the initial biases and LayerNorms are all 0 or 1
        for p in m.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return m.eval()


def _logits(model: Transformer) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, model.cfg.vocab_size, (3, 7), generator=g)  # (B, S)
    tgt = torch.randint(4, model.cfg.vocab_size, (3, 5), generator=g)  # (B, T)
    with torch.no_grad():
        return model(src, tgt)  # (B, T, V)


def _leftovers(directory: Path) -> list[str]:
    """Names that only a failed or unfinished atomic write would leave."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_weights_round_trip_is_bit_exact(tmp_path: Path) -> None:
    model = _model()
    ckpt.save_weights(tmp_path / "m.safetensors", model)
    state = ckpt.load_weights(tmp_path / "m.safetensors")
    own = model.state_dict()
    assert set(state) == set(own)
    for k, v in own.items():
        assert state[k].dtype == v.dtype, k
        assert torch.equal(state[k], v), k
    assert _leftovers(tmp_path) == []


def test_fp16_option_halves_floats_and_loads_back(tmp_path: Path) -> None:
    model = _model()
    ckpt.save_weights(tmp_path / "half.safetensors", model, dtype=torch.float16)
    ckpt.save_weights(tmp_path / "full.safetensors", model)
    state = ckpt.load_weights(tmp_path / "half.safetensors")
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            assert state[k].dtype == torch.float16, k
            assert torch.equal(state[k], v.half()), k
        else:
            assert torch.equal(state[k], v), k
    half, full = (tmp_path / "half.safetensors"), (tmp_path / "full.safetensors")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    # Loaded into an fp32 model, the fp16 weights give nearly the same logits.
    other = Transformer(model.cfg).eval()
    ckpt.load_into(other, state, half)
    assert next(other.parameters()).dtype == torch.float32
    torch.testing.assert_close(_logits(other), _logits(model), atol=5e-3, rtol=5e-3)


def test_load_model_rebuilds_an_identical_model(tmp_path: Path) -> None:
    cfg = _cfg(d_ff=48, n_layers=1)
    model = _model(d_ff=48, n_layers=1)
    ckpt.save_checkpoint(tmp_path / "run", model, cfg, {"step": 7})
    loaded = ckpt.load_model(tmp_path / "run")
    assert not loaded.training
    assert loaded.cfg == model.cfg
    assert torch.equal(_logits(loaded), _logits(model))
    assert ckpt.read_config(tmp_path / "run") == cfg
    assert ckpt.load_trainer_state(tmp_path / "run") == {"step": 7}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        ckpt.CONFIG,
        ckpt.WEIGHTS,
        ckpt.TRAINER,
    ]


def test_failed_weight_save_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.safetensors"
    ckpt.save_weights(path, _model(0))
    before = path.read_bytes()

    def half_written(state: dict, filename: str, metadata: dict) -> None:
        Path(filename).write_bytes(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(ckpt, "save_file", half_written)
    with pytest.raises(OSError, match="No space"):
        ckpt.save_weights(path, _model(1))
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_failed_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.json"
    ckpt.atomic_write(path, "old")
    weights = tmp_path / "model.safetensors"
    ckpt.save_weights(weights, _model(0))
    before = weights.read_bytes()

    def broken(src: object, dst: object) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="rename failed"):
        ckpt.atomic_write(path, "new")
    with pytest.raises(OSError, match="rename failed"):
        ckpt.save_weights(weights, _model(1))
    assert path.read_text() == "old"
    assert weights.read_bytes() == before
    assert _leftovers(tmp_path) == []


def _ckpt_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_failed_checkpoint_save_keeps_the_old_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "checkpoints" / "step_0000010"
    ckpt.save_checkpoint(d, _model(0), _cfg(), {"step": 10})
    before = _ckpt_bytes(d)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_weights", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(d, _model(1), _cfg(), {"step": 10})
    assert _ckpt_bytes(d) == before
    assert _leftovers(d.parent) == []
    assert ckpt.list_checkpoints(tmp_path) == [d]


def test_failed_checkpoint_rename_keeps_the_old_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last step, moving the new directory into place, fails once."""
    d = tmp_path / "checkpoints" / "step_0000010"
    ckpt.save_checkpoint(d, _model(0), _cfg(), {"step": 10})
    before = _ckpt_bytes(d)
    real_replace = os.replace
    failed = []

    def replace_once(src: object, dst: object) -> None:
        if Path(dst) == d and not failed:
            failed.append(src)
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_once)
    with pytest.raises(OSError, match="rename failed"):
        ckpt.save_checkpoint(d, _model(1), _cfg(), {"step": 10})
    assert failed, "save_checkpoint never renamed a directory onto the checkpoint"
    assert _ckpt_bytes(d) == before
    assert _leftovers(d.parent) == []
    # With the rename working again, the new checkpoint replaces the old one.
    ckpt.save_checkpoint(d, _model(1), _cfg(), {"step": 10})
    assert torch.equal(_logits(ckpt.load_model(d)), _logits(_model(1)))
    assert _leftovers(d.parent) == []


@pytest.mark.parametrize("damage", ["truncated", "empty", "header", "garbage"])
def test_damaged_weights_are_a_clear_error(tmp_path: Path, damage: str) -> None:
    ckpt.save_checkpoint(tmp_path, _model(), _cfg())
    path = tmp_path / ckpt.WEIGHTS
    data = path.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "header": data[:8] + b"#" + data[9:],  # the JSON header no longer parses
        "garbage": bytes(range(256)) * 8,
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(AiaynError, match="truncated or corrupted") as e:
        ckpt.load_model(tmp_path)
    assert str(path) in str(e.value)
    assert e.value.__cause__ is None  # no safetensors trace chained to it


def test_missing_weights_are_a_clear_error(tmp_path: Path) -> None:
    ckpt.save_checkpoint(tmp_path, _model(), _cfg())
    (tmp_path / ckpt.WEIGHTS).unlink()
    with pytest.raises(AiaynError, match="no weights file") as e:
        ckpt.load_model(tmp_path)
    assert ckpt.WEIGHTS in str(e.value)


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [
        ("d_ff", 96, r"shape mismatch.*feed_forward\.w_1\.weight"),
        ("n_layers", 3, "missing"),
        ("n_layers", 1, "unexpected"),
        ("vocab_size", 20, "shape mismatch"),
    ],
)
def test_config_that_does_not_match_the_weights(
    tmp_path: Path, field: str, value: int, expect: str
) -> None:
    ckpt.save_checkpoint(tmp_path, _model(), _cfg())
    cfg_path = tmp_path / ckpt.CONFIG
    d = json.loads(cfg_path.read_text())
    d["model"][field] = value
    cfg_path.write_text(json.dumps(d))
    with pytest.raises(AiaynError, match="do not match its config.json") as e:
        ckpt.load_model(tmp_path)
    assert str(tmp_path / ckpt.WEIGHTS) in str(e.value)
    assert re.search(expect, str(e.value))


def test_missing_or_broken_config_is_a_clear_error(tmp_path: Path) -> None:
    ckpt.save_checkpoint(tmp_path, _model(), _cfg())
    cfg_path = tmp_path / ckpt.CONFIG
    text = cfg_path.read_text()
    cfg_path.unlink()
    with pytest.raises(AiaynError, match="config.json not found"):
        ckpt.load_model(tmp_path)
    broken_configs = (
        "{not json",
        "null",
        "[1, 2]",
        '{"model": null}',
        '{"colour": "red"}',  # unknown field
        '{"model": {"d_ff": -1}}',  # invalid ModelConfig
    )
    for broken in broken_configs:
        cfg_path.write_text(broken)
        with pytest.raises(AiaynError, match="is not a valid config") as e:
            ckpt.load_model(tmp_path)
        assert str(cfg_path) in str(e.value)
    cfg_path.write_text(text)
    ckpt.load_model(tmp_path)  # and it loads again once repaired


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # our fake pickle
def test_trainer_state_errors(tmp_path: Path) -> None:
    ckpt.save_checkpoint(tmp_path, _model(), _cfg())  # no trainer state
    with pytest.raises(AiaynError, match="cannot resume"):
        ckpt.load_trainer_state(tmp_path)
    (tmp_path / ckpt.TRAINER).write_bytes(b"\x80\x04 not a pickle")
    with pytest.raises(AiaynError, match="truncated or corrupted"):
        ckpt.load_trainer_state(tmp_path)


def test_average_of_three_checkpoints_is_the_mean(tmp_path: Path) -> None:
    models = [_model(seed) for seed in (1, 2, 3)]
    dirs = [tmp_path / f"step_{i}" for i in range(3)]
    for d, m in zip(dirs, models, strict=True):
        ckpt.save_checkpoint(d, m, _cfg())
    avg = ckpt.average_checkpoints(dirs)
    states = [m.state_dict() for m in models]
    assert set(avg) == set(states[0])
    for k in avg:
        manual = (states[0][k] + states[1][k] + states[2][k]) / 3
        assert avg[k].dtype == torch.float32
        torch.testing.assert_close(avg[k], manual, atol=1e-7, rtol=1e-6)
    # Not a trivial pass: the three checkpoints differ from each other and the mean.
    k = "encoder.0.feed_forward.w_1.weight"
    assert not torch.equal(states[0][k], states[1][k])
    assert not torch.equal(avg[k], states[0][k])
    # Averaging one checkpoint returns its weights unchanged.
    one = ckpt.average_checkpoints(dirs[:1])
    assert all(torch.equal(one[k], states[0][k]) for k in one)


def test_average_rejects_mismatched_or_no_checkpoints(tmp_path: Path) -> None:
    ckpt.save_checkpoint(tmp_path / "a", _model(), _cfg())
    ckpt.save_checkpoint(tmp_path / "b", _model(n_layers=1), _cfg(n_layers=1))
    with pytest.raises(AiaynError, match="different parameters"):
        ckpt.average_checkpoints([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(AiaynError, match="no checkpoints"):
        ckpt.average_checkpoints([])


def test_list_checkpoints_ignores_incomplete_directories(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    assert ckpt.list_checkpoints(tmp_path) == []
    for step in (20, 3, 100):
        ckpt.save_checkpoint(root / f"step_{step:07d}", _model(), _cfg())
    # What an interrupted save_checkpoint or a careless user could leave behind:
    ckpt.save_checkpoint(root / "step_0000500", _model(), _cfg())
    os.rename(root / "step_0000500", root / ".step_0000500.abc123")  # temp dir
    (root / "step_0000600").mkdir()  # no weights in it
    (root / "step_0000600" / ckpt.CONFIG).write_text("{}")
    (root / "step_0000700.tmp").mkdir()  # not a step number
    (root / "step_0000700.tmp" / ckpt.WEIGHTS).write_bytes(b"")
    (root / "notes.txt").write_text("hi")
    found = ckpt.list_checkpoints(tmp_path)
    assert [p.name for p in found] == ["step_0000003", "step_0000020", "step_0000100"]
    assert all(p.parent == root for p in found)


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=["022", "077", "002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode)
        for p in [root, *root.rglob("*")]
    }


def test_saved_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    run = tmp_path / "run"
    d = run / "checkpoints" / "step_0000010"
    ckpt.save_checkpoint(d, _model(0), _cfg(), {"step": 10})
    ckpt.save_checkpoint(d, _model(1), _cfg(), {"step": 10})  # over an old one
    ckpt.atomic_write(run / "metrics.json", "{}")
    ckpt.save_weights(run / "model.safetensors", _model(0))
    modes = _modes(run)
    dirs = {"run", "run/checkpoints", "run/checkpoints/step_0000010"}
    files = {f"run/{ckpt.CONFIG}", f"run/{ckpt.WEIGHTS}", f"run/{ckpt.TRAINER}"}
    files = {f.replace("run/", "run/checkpoints/step_0000010/") for f in files}
    files |= {"run/metrics.json", "run/model.safetensors"}
    assert set(modes) == dirs | files  # nothing else, no temp files
    want = {p: (0o777 if p in dirs else 0o666) & ~umask for p in modes}
    assert modes == want  # 022: 0755 and 0644; 077: 0700 and 0600
