"""Table 3's rows (section 6.2): their configurations and the harness that runs them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import pytest

from aiayn import variations as var
from aiayn.config import ModelConfig
from aiayn.errors import AiaynError
from aiayn.model import Transformer
from aiayn.schedule import noam_lr

# Table 3 of the paper, transcribed again here (not read from the module), in its
# order: PPL (dev), BLEU (dev), params in millions (None where the cell is blank).
PAPER = [
    (4.92, 25.8, 65),
    (5.29, 24.9, None), (5.00, 25.5, None), (4.91, 25.8, None), (5.01, 25.4, None),
    (5.16, 25.1, 58), (5.01, 25.4, 60),
    (6.11, 23.7, 36), (5.19, 25.3, 50), (4.88, 25.5, 80),
    (5.75, 24.5, 28), (4.66, 26.0, 168), (5.12, 25.4, 53), (4.75, 26.2, 90),
    (5.77, 24.6, None), (4.95, 25.5, None), (4.67, 25.3, None), (5.47, 25.7, None),
    (4.92, 25.7, None),
    (4.33, 26.4, 213),
]  # fmt: skip

# How our parameter count must move against our base: -1 fewer, 0 same, +1 more.
PARAMS_DIRECTION = {
    "base": 0, "A_h1": 0, "A_h4": 0, "A_h16": 0, "A_h32": 0,
    "B_dk16": -1, "B_dk32": -1,
    "C_N2": -1, "C_N4": -1, "C_N8": 1, "C_d256": -1, "C_d1024": 1,
    "C_ff1024": -1, "C_ff4096": 1,
    "D_drop0": 0, "D_drop2": 0, "D_ls0": 0, "D_ls2": 0,
    "E_learned": 1, "big": 1,
}  # fmt: skip


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


@pytest.fixture(scope="module")
def configs() -> dict[str, ModelConfig]:
    """Every row's ModelConfig under the full budget, at an 8,000-token vocabulary."""
    base = var.budget_config(var.BUDGETS["full"])
    return {v.name: var.row_config(v, base, 100, 1).model for v in var.VARIATIONS}


@pytest.fixture(scope="module")
def params(configs: dict[str, ModelConfig]) -> dict[str, int]:
    return {name: Transformer(cfg).num_parameters() for name, cfg in configs.items()}


def test_every_paper_row_is_mapped_once() -> None:
    groups = [v.row for v in var.VARIATIONS]
    counts = {g: groups.count(g) for g in ("base", "A", "B", "C", "D", "E", "big")}
    assert counts == {"base": 1, "A": 4, "B": 2, "C": 7, "D": 4, "E": 1, "big": 1}
    assert len(var.ROWS) == len(var.VARIATIONS) == 20  # unique names
    assert set(PARAMS_DIRECTION) == set(var.ROWS)
    numbers = [(v.paper_ppl, v.paper_bleu, v.paper_params_m) for v in var.VARIATIONS]
    assert numbers == PAPER


def test_overrides_name_model_fields_and_build(configs: dict[str, ModelConfig]) -> None:
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    for v in var.VARIATIONS:
        assert set(v.overrides) <= known, v.name
        assert v.overrides or v.name == "base"
        cfg = configs[v.name]
        for key, value in v.overrides.items():
            assert getattr(cfg, key) == value
    ref = var.get_preset(var.REFERENCE).model
    assert configs["base"] == ref  # the base row is the preset's model


def test_mapping_follows_the_paper(configs: dict[str, ModelConfig]) -> None:
    ref = configs["base"]
    assert (ref.n_layers, ref.d_model, ref.n_heads, ref.head_dim_k) == (4, 256, 4, 64)
    # (A): constant compute, h * d_k = h * d_v = d_model, heads scaled as the paper's
    for name, h in (("A_h1", 1), ("A_h4", 2), ("A_h16", 8), ("A_h32", 16)):
        c = configs[name]
        assert c.n_heads == h and c.n_heads * c.d_k == c.n_heads * c.d_v == 256
    assert configs["A_h16"].d_k == 32 and configs["A_h32"].d_k == 16  # the paper's
    # (B): d_k alone changes
    assert (configs["B_dk16"].head_dim_k, configs["B_dk16"].head_dim_v) == (16, 64)
    # (C): d_model rows keep d_k = d_v = d_model / h
    for name in ("C_d256", "C_d1024"):
        c = configs[name]
        assert c.d_k == c.d_v == c.d_model // c.n_heads
    assert configs["C_d256"].d_model * 2 == 256 == configs["C_d1024"].d_model // 2
    # big: twice as wide, more dropout, three times the steps
    big = var.ROWS["big"]
    assert (configs["big"].d_model, configs["big"].d_ff) == (512, 2048)
    assert configs["big"].dropout > ref.dropout and big.steps_factor == 3.0
    base_cfg = var.budget_config(var.BUDGETS["tiny"])
    assert var.row_config(big, base_cfg, 10, 1).max_steps == 30
    assert var.row_config(var.ROWS["C_N2"], base_cfg, 10, 1).max_steps == 10


def test_parameter_counts_move_as_expected(params: dict[str, int]) -> None:
    base = params["base"]
    moved = {name: _sign(n - base) for name, n in params.items()}
    assert moved == PARAMS_DIRECTION
    # Learned positions add one (max_len, d_model) table per stack.
    ref = var.get_preset(var.REFERENCE).model
    assert params["E_learned"] - base == 2 * ref.max_len * ref.d_model
    # Where the paper lists a count, ours moves the same way as the paper's.
    for v in var.VARIATIONS:
        if v.paper_params_m is not None and v.name != "base":
            assert _sign(v.paper_params_m - 65) == moved[v.name], v.name


def test_budgets_keep_the_reference_peak_learning_rate() -> None:
    for budget in var.BUDGETS.values():
        ref = var.get_preset(budget.reference)
        peak = noam_lr(ref.warmup, ref.model.d_model, ref.warmup, ref.lr_factor)
        cfg = var.budget_config(budget)
        got = noam_lr(cfg.warmup, cfg.model.d_model, cfg.warmup, cfg.lr_factor)
        assert got == pytest.approx(peak)
        assert cfg.average_last == 1  # the paper: no checkpoint averaging
        assert (cfg.train_limit, cfg.dev_limit) == (
            budget.train_limit,
            budget.dev_limit,
        )
    assert var.BUDGETS["full"].dev_limit is None  # the whole dev set on a GPU


def _row(name: str, ppl: float, bleu: float) -> dict:
    v = var.ROWS[name]
    return {"name": name, "dev_ppl": ppl, "bleu": bleu,
            "paper": {"ppl": v.paper_ppl, "bleu": v.paper_bleu}}  # fmt: skip


def test_direction_matches() -> None:
    base = _row("base", 10.0, 5.0)
    # h=1: the paper's perplexity rises and its BLEU falls.
    assert var.direction_matches(_row("A_h1", 11.0, 4.0), base) == {
        "ppl": True,
        "bleu": True,
    }
    assert var.direction_matches(_row("A_h1", 9.0, 6.0), base) == {
        "ppl": False,
        "bleu": False,
    }
    # h=16: the paper's BLEU does not move, so there is no direction to match.
    assert var.direction_matches(_row("A_h16", 9.0, 6.0), base) == {
        "ppl": True,
        "bleu": None,
    }
    # (E): the paper's perplexity does not move.
    assert var.direction_matches(_row("E_learned", 9.0, 4.0), base)["ppl"] is None
    assert var.direction_matches(base, base) == {"ppl": None, "bleu": None}


def test_select_rows() -> None:
    assert [v.name for v in var.select_rows("A")] == [
        "A_h1",
        "A_h4",
        "A_h16",
        "A_h32",
    ]
    assert [v.name for v in var.select_rows("big,C_N2")] == ["C_N2", "big"]
    assert var.select_rows(None) == var.VARIATIONS
    with pytest.raises(AiaynError, match="unknown rows"):
        var.select_rows("A,Z")


def test_cli_reports_bad_rows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = var.main(["--rows", "nope", "--out", str(tmp_path / "r.json")])
    assert code == 2
    assert "unknown rows ['nope']" in capsys.readouterr().err
    assert var.main(["--seeds", "one", "--out", str(tmp_path / "r.json")]) == 2
    assert "--seeds takes integers" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_two_rows_train_end_to_end_and_resume(
    mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = replace(
        var.budget_config(var.BUDGETS["tiny"]),
        train_limit=300,
        dev_limit=8,
        max_tokens=256,
    )
    rows = [var.ROWS["C_N2"]]  # the base row is added in front
    out, results = tmp_path / "runs", tmp_path / "table3.json"
    got = var.run_variations(
        rows, base, 3, [1], out, str(mirror), "cpu", results=results, progress=False,
        command="pytest",
    )  # fmt: skip
    saved = json.loads(results.read_text())
    assert saved == json.loads(json.dumps(got))
    assert saved["complete"] is True
    for key in ("device", "torch", "command", "wall_time_s", "steps", "seeds"):
        assert key in saved
    assert saved["command"] == "pytest" and saved["steps"] == 3
    assert [r["name"] for r in saved["rows"]] == ["base", "C_N2"]
    base_row, shallow = saved["rows"]
    for r in saved["rows"]:
        assert r["dev_ppl"] > 1.0 and 0.0 <= r["bleu"] <= 100.0
        assert r["runs"][0]["n"] == 8  # BLEU on the budget's dev slice
        assert r["runs"][0]["steps"] == 3 and isinstance(r["wall_time_s"], float)
        assert set(r["direction"]) == {"ppl", "bleu"}
        run_dir = Path(r["runs"][0]["run_dir"])
        assert (run_dir / "metrics.json").exists()
        assert (run_dir / "model.safetensors").exists()
        assert not (run_dir / "checkpoints").exists()  # pruned after the run
    assert shallow["params_m"] < base_row["params_m"]
    assert base_row["direction"] == {"ppl": None, "bleu": None}

    # A second call reads the finished runs instead of training them again.
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished row was trained again")

    monkeypatch.setattr(var, "train", no_training)
    again = var.run_variations(
        rows, base, 3, [1], out, str(mirror), "cpu", results=results, progress=False,
        command="pytest",
    )  # fmt: skip
    assert [r["dev_ppl"] for r in again["rows"]] == [
        r["dev_ppl"] for r in saved["rows"]
    ]
    assert [r["wall_time_s"] for r in again["rows"]] == [
        r["wall_time_s"] for r in saved["rows"]
    ]
    # A run directory of another configuration is an error, not silently reused.
    with pytest.raises(AiaynError, match="another configuration"):
        var.run_variations(
            rows, base, 4, [1], out, str(mirror), "cpu", results=results,
            progress=False,
        )  # fmt: skip


def test_command_line_runs_the_tiny_budget(
    mirror: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "table3.json"
    argv = ["--budget", "tiny", "--rows", "base", "--runs", str(tmp_path / "runs"),
            "--out", str(out), "--threads", "1", "--no-progress"]  # fmt: skip
    assert var.main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["command"].startswith("python -m aiayn.variations --budget tiny")
    assert [r["name"] for r in saved["rows"]] == ["base"]
    tiny = var.BUDGETS["tiny"]
    run = saved["rows"][0]["runs"][0]
    assert (run["steps"], run["n"]) == (tiny.steps, tiny.dev_limit)


# -- the cpu budget: Transformer-Tiny rows -----------------------------------------


@pytest.fixture(scope="module")
def tiny_configs() -> dict[str, ModelConfig]:
    budget = var.BUDGETS["cpu"]
    base = var.budget_config(budget)
    return {
        v.name: var.row_config(v, base, 100, 1, budget.reference).model
        for v in var.VARIATIONS
    }


def test_cpu_budget_rows_sit_around_transformer_tiny(
    tiny_configs: dict[str, ModelConfig],
) -> None:
    budget = var.BUDGETS["cpu"]
    cfg = var.budget_config(budget)
    assert budget.reference == var.TINY_REFERENCE == "multi30k_tiny_cpu_en_de"
    assert cfg.dropout_ramp is None and cfg.max_minutes is None  # constant P_drop
    assert cfg.preprocessing == "lc.norm.tok" and var.score_key(cfg) == "tok_bleu"
    assert (budget.base_seeds, budget.seeds) == ((1, 2, 3), (1,))  # the noise
    base = tiny_configs["base"]
    assert base == var.get_preset(var.TINY_REFERENCE).model
    assert (base.n_layers, base.d_model, base.d_ff, base.n_heads) == (4, 128, 256, 4)
    assert set(var.TINY_OVERRIDES) == set(var.ROWS)
    # (A) h in {1, 2, 8, 16}, h * d_k = h * d_v = d_model
    heads = [tiny_configs[n].n_heads for n in ("A_h1", "A_h4", "A_h16", "A_h32")]
    assert heads == [1, 2, 8, 16]
    for n in ("A_h1", "A_h4", "A_h16", "A_h32"):
        c = tiny_configs[n]
        assert c.n_heads * c.head_dim_k == c.n_heads * c.head_dim_v == 128
    # (B) smaller d_k only; (C) N 2, 3, 6, d_model and d_ff halved and doubled
    assert [tiny_configs[n].head_dim_k for n in ("B_dk16", "B_dk32")] == [8, 16]
    assert tiny_configs["B_dk16"].head_dim_v == 32
    assert [tiny_configs[n].n_layers for n in ("C_N2", "C_N4", "C_N8")] == [2, 3, 6]
    for n, d in (("C_d256", 64), ("C_d1024", 256)):
        c = tiny_configs[n]
        assert c.d_model == d and c.head_dim_k == c.head_dim_v == d // c.n_heads
    assert [tiny_configs[n].d_ff for n in ("C_ff1024", "C_ff4096")] == [128, 512]
    # (D), (E), big
    assert [tiny_configs[n].dropout for n in ("D_drop0", "D_drop2")] == [0.0, 0.3]
    assert [tiny_configs[n].label_smoothing for n in ("D_ls0", "D_ls2")] == [0.0, 0.2]
    assert tiny_configs["E_learned"].learned_positions
    big = tiny_configs["big"]
    assert (big.d_model, big.d_ff, big.n_heads, big.dropout) == (256, 512, 8, 0.3)
    # Parameters move against the base as the paper's rows do.
    n = {k: Transformer(c).num_parameters() for k, c in tiny_configs.items()}
    assert {k: _sign(v - n["base"]) for k, v in n.items()} == PARAMS_DIRECTION
    assert var.describe(var.ROWS["A_h1"], var.TINY_REFERENCE) == "h=1 d_k=128 d_v=128"


def _copy_base() -> var.TrainConfig:
    return var.get_preset("copy").with_overrides(
        ["max_tokens=256", "copy_train_size=200", "copy_test_size=20",
         "eval_bleu=False", "keep_checkpoints=1", "average_last=1", "eval_every=4"]
    )  # fmt: skip


def test_harness_mechanics_on_the_copy_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel jobs, per-run records, the noise, skipping and retraining."""
    out, results = tmp_path / "runs", tmp_path / "table3.json"
    rows = [var.ROWS["C_N2"]]  # the base row is added in front

    def grid(jobs: int) -> dict:
        return var.run_variations(
            rows, _copy_base(), 4, [1], out, None, "cpu", results=results,
            progress=False, command="pytest grid", base_seeds=[1, 2], jobs=jobs,
            threads=1,
        )  # fmt: skip

    first = grid(jobs=2)  # two processes of one thread
    assert first == json.loads(results.read_text())
    assert first["complete"] and first["score"] == "exact_match"
    assert (first["jobs"], first["threads"]) == (2, 1)
    assert first["code_version"] == var.code_version()
    base, shallow = first["rows"]
    assert [r["seed"] for r in base["runs"]] == [1, 2] and len(shallow["runs"]) == 1
    for r in (*base["runs"], *shallow["runs"]):
        assert r["device"] and r["train_tokens_per_s"] > 0
        assert isinstance(r["row_wall_s"], float)  # recorded, never bounded here
        assert r["command"] == "pytest grid" and r["threads"] == 1
        assert r["code_version"] == first["code_version"]
        assert 0.0 <= r["bleu"] <= 100.0  # the copy task's exact match
    spread = [x["dev_ppl"] for x in base["runs"]]
    assert shallow["noise"]["dev_ppl"] == pytest.approx(max(spread) - min(spread))
    assert base["beyond_noise"] is None and set(shallow["beyond_noise"]) == {
        "ppl",
        "bleu",
    }
    for k, beyond in shallow["beyond_noise"].items():
        kept = shallow["direction_beyond_noise"][k]
        assert kept == (shallow["direction"][k] if beyond else None)

    # A rerun trains nothing: same configuration, same code.
    calls: list[str] = []
    real_train = var.train

    def counting(cfg, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(cfg.name)
        return real_train(cfg, *args, **kwargs)

    monkeypatch.setattr(var, "train", counting)
    again = grid(jobs=1)
    assert calls == [] and again["rows"][1]["dev_ppl"] == shallow["dev_ppl"]
    # Other training code: every finished run is trained again.
    monkeypatch.setattr(var, "code_version", lambda: "0123456789ab")
    redone = grid(jobs=1)
    assert sorted(calls) == ["table3_C_N2", "table3_base", "table3_base"]
    assert {r["code_version"] for x in redone["rows"] for r in x["runs"]} == {
        "0123456789ab"
    }
    # A run begun by other code and interrupted is started anew, not resumed.
    begun = out / "C_N2" / "seed_1"
    (begun / "metrics.json").unlink()
    (begun / "train_config.json").write_text("{}")  # else "another configuration"
    (begun / "row_time.json").write_text(json.dumps({"code_version": "old"}))
    calls.clear()
    grid(jobs=1)
    assert calls == ["table3_C_N2"]
    with pytest.raises(AiaynError, match="jobs"):
        var.run_variations(rows, _copy_base(), 4, [1], out, jobs=0, progress=False)
