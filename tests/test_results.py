"""Table 2 (aiayn.results): the paper's rows and this book's, read from files."""

import json
from pathlib import Path

from aiayn.results import (
    LITERATURE,
    PAPER_TABLE_2,
    PAPER_TABLE_4,
    shipped_parse_rows,
    shipped_rows,
    table_2_markdown,
    table_4_markdown,
)


def test_the_papers_transformer_rows() -> None:
    rows = {r.model: r for r in PAPER_TABLE_2}
    base, big = rows["Transformer (base model)"], rows["Transformer (big)"]
    assert (base.en_de, base.en_fr, big.en_de, big.en_fr) == (27.3, 38.1, 28.4, 41.8)
    assert "3.3e18" in base.cost and "2.3e19" in big.cost
    assert (LITERATURE[0].en_de, LITERATURE[0].en_fr) == (41.02, 61.80)


def _fake_model(root: Path, name: str, src: str, tgt: str, bleu: float) -> None:
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(
        json.dumps({"task": "multi30k", "src_lang": src, "tgt_lang": tgt})
    )
    (d / "metrics.json").write_text(
        json.dumps(
            {"wall_time_s": 600.0, "device": "CPU", "steps": 100, "command": "cmd"}
        )
    )
    (d / "eval_test_2016_flickr.json").write_text(
        json.dumps({"tok_bleu": bleu, "beam": 5, "alpha": 1.0})
    )


def test_shipped_rows_come_from_each_models_files(tmp_path: Path) -> None:
    _fake_model(tmp_path, "a_de_en", "de", "en", 33.333)
    _fake_model(tmp_path, "b_en_fr", "en", "fr", 55.0)
    (tmp_path / "copy").mkdir()  # not a translation model: left out
    (tmp_path / "copy" / "config.json").write_text(json.dumps({"task": "copy"}))
    rows = shipped_rows(tmp_path)
    assert [(r.de_en, r.en_de, r.en_fr) for r in rows] == [
        (33.33, None, None),
        (None, None, 55.0),
    ]
    assert rows[0].cost == "10 min on CPU, 100 updates"
    table = table_2_markdown(tmp_path)
    assert table.count("Multi30k test2016") == 3  # the literature's and ours
    assert "| a_de_en (beam 5, alpha 1.0) | Multi30k test2016 |  | 33.33 |" in table
    assert "- a_de_en: `cmd`" in table


def test_table_4_the_papers_rows_and_the_shipped_parser(tmp_path: Path) -> None:
    rows = {(r.parser, r.training): r.f1 for r in PAPER_TABLE_4}
    assert rows["Transformer (4 layers)", "WSJ only, discriminative"] == 91.3
    assert rows["Transformer (4 layers)", "semi-supervised"] == 92.7
    assert len(PAPER_TABLE_4) == 12
    d = tmp_path / "parser"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"task": "parse"}))
    (d / "eval_test.json").write_text(
        json.dumps(
            {"f1": 61.234, "right_branching_f1": 13.07, "shape_baseline_f1": 20.5,
             "beam_size": 4, "alpha": 0.3, "constrained": True, "command": "cmd"}
        )
    )  # fmt: skip
    _fake_model(tmp_path, "a_de_en", "de", "en", 33.3)  # not a parser: left out
    ours = shipped_parse_rows(tmp_path)
    assert [(r.parser, r.f1) for r in ours] == [
        ("parser (beam 4, alpha 0.3, constrained)", 61.23),
        ("right-branching baseline", 13.07),
        ("commonest tree of each length", 20.5),
    ]
    table = table_4_markdown(tmp_path)
    assert "| Luong et al. (2015) | multi-task | WSJ section 23 | 93.0 |" in table
    assert "| 61.23 |" in table and table.count("- `cmd`") == 1
