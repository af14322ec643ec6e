"""Choosing on dev what to ship (aiayn.selection) and the dropout ramp (train.py)."""

import json
from pathlib import Path

import pytest
import torch

from aiayn import checkpoint as ckpt
from aiayn.cli import main
from aiayn.layers import SublayerConnection
from aiayn.model import Transformer
from aiayn.presets import get_preset
from aiayn.selection import _grid
from aiayn.train import ramped_dropout, set_residual_dropout, train

SETTINGS = [
    "max_steps=6",
    "save_every=2",
    "eval_every=6",
    "keep_checkpoints=3",
    "average_last=3",
    "copy_train_size=200",
    "copy_test_size=12",
    "eval_bleu=False",
    "dropout_ramp=[2, 4, 0.3]",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("select") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("WORLD_SIZE", raising=False)
        train(get_preset("copy").with_overrides(SETTINGS), out, progress=False)
    return out


def test_dropout_ramp_rises_linearly_between_its_steps() -> None:
    cfg = get_preset("copy").with_overrides(["model.dropout=0.1", *SETTINGS[-1:]])
    got = [round(ramped_dropout(cfg, s), 6) for s in (0, 2, 3, 4, 9)]
    assert got == [0.1, 0.1, 0.2, 0.3, 0.3]
    plain = get_preset("copy")
    assert ramped_dropout(plain, 500) == plain.model.dropout


def test_the_ramp_sets_residual_and_embedding_dropout_only() -> None:
    cfg = get_preset("copy").model
    model = Transformer(cfg.__class__(**{**cfg.__dict__, "attention_dropout": 0.05}))
    set_residual_dropout(model, 0.3)
    residual = [m for m in model.modules() if isinstance(m, SublayerConnection)]
    assert residual and all(m.dropout.p == 0.3 for m in residual)
    assert model.dropout.p == 0.3
    attn = [m.dropout.p for n, m in model.named_modules() if n.endswith("attn")]
    assert attn and set(attn) == {0.05}


def test_select_chooses_on_dev_and_rewrites_the_run(run: Path, capsys) -> None:
    code = main(
        ["select", "--run", str(run), "--beams", "1,2", "--alphas", "0.6,1.0",
         "--no-progress"]
    )  # fmt: skip
    assert code == 0
    rec = json.loads((run / "selection.json").read_text())
    singles = [c for c in rec["averaging"] if len(c["checkpoints"]) == 1]
    assert [c["name"] for c in singles] == [p.name for p in ckpt.list_checkpoints(run)]
    assert len(rec["averaging"]) == 2 * len(singles) - 1  # singles + last 2..n
    chosen = rec["chosen_average"]
    assert chosen["dev_nll"] == min(c["dev_nll"] for c in rec["averaging"])
    assert chosen["dev_nll"] <= min(c["dev_nll"] for c in singles)
    # the paper's decoding first, greedy once; the best on exact match is chosen
    grid = [(d["beam"], d["alpha"]) for d in rec["decoding"]]
    assert grid == [(4, 0.6), (1, 0.6), (2, 0.6), (2, 1.0)]
    best = max(d["exact_match"] for d in rec["decoding"])
    first = next(d for d in rec["decoding"] if d["exact_match"] == best)
    assert rec["chosen_decoding"] == {"beam": first["beam"], "alpha": first["alpha"]}
    cfg = ckpt.read_config(run)
    assert (cfg.beam_size, cfg.alpha) == (first["beam"], first["alpha"])
    assert [s["which"] for s in rec["side_by_side"]] == [
        "last",
        "best single",
        "chosen",
    ]
    # the run's model is the chosen average, and metrics.json says so
    expected = ckpt.average_checkpoints(
        [run / "checkpoints" / n for n in chosen["checkpoints"]]
    )
    got = ckpt.load_weights(run / ckpt.WEIGHTS)
    for k, v in got.items():
        torch.testing.assert_close(v, expected[k])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["averaged_checkpoints"] == chosen["checkpoints"]
    assert metrics["selection"]["beam"] == first["beam"]


def test_select_refuses_bad_input_before_writing(
    run: Path, tmp_path: Path, capsys
) -> None:
    before = (run / "metrics.json").read_bytes()
    for argv, fragment in (
        (["--run", str(tmp_path)], "no metrics.json"),
        (["--run", str(run), "--beams", "x"], "--beams"),
        (["--run", str(run), "--beams", "0"], "--beam"),
        (["--run", str(run), "--alphas", "-1"], "--alpha"),
    ):
        assert main(["select", *argv]) == 2
        assert fragment in capsys.readouterr().err
    assert (run / "metrics.json").read_bytes() == before


def test_grid_puts_the_paper_first() -> None:
    from aiayn.tasks import get_task

    parse = get_task("parse")
    assert parse.paper_decoding == (21, 0.3)  # section 6.3
    assert _grid(list(parse.selection_beams), list(parse.selection_alphas), (21, 0.3))[
        :2
    ] == [(21, 0.3), (1, 0.3)]
    assert get_task("multi30k").paper_decoding == (4, 0.6)
    assert _grid([1, 4, 5], [0.6, 1.0], (4, 0.6)) == [
        (4, 0.6),
        (1, 0.6),
        (4, 1.0),
        (5, 0.6),
        (5, 1.0),
    ]


def test_the_card_shows_the_choice(run: Path, tmp_path: Path, capsys) -> None:
    from aiayn.ship import ship

    if not (run / "selection.json").is_file():
        assert main(["select", "--run", str(run), "--beams", "1", "--no-progress"]) == 0
    out = ship(run, tmp_path / "shipped")
    card = (out / "README.md").read_text()
    rec = json.loads((out / "selection.json").read_text())
    assert f"Chosen on dev (`{rec['command']}`" in card
    for which in ("last", "best single", "chosen"):
        assert f"  - {which} (" in card
    m = json.loads((out / "metrics.json").read_text())
    assert f"= {m['epochs']} epochs" in card
