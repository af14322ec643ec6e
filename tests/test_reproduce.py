"""The one-command reproduction (`aiayn.reproduce`), end to end on a CPU at toy size.

On a GPU ``--budget full`` produces the book's numbers; here ``--budget tiny``
runs every part with toy sizes, which proves the machinery: parts in order,
a record per finished part, resume that skips what is done, and the time limit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiayn.cli import main
from aiayn.reproduce import BENCH, PARTS, RESULTS, describe, read_results


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / RESULTS).read_text().splitlines()]


def test_tiny_budget_runs_every_part_and_resumes(
    mirror: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "repro"
    assert main(["reproduce", "--budget", "tiny", "--out", str(out)]) == 0
    records = _records(out)
    assert [r["part"] for r in records] == [p.name for p in PARTS]
    for r in records:
        assert r["device"].startswith("CPU") and r["torch"] and r["wall_s"] >= 0
        assert r["command"].startswith("python -m aiayn reproduce")
        expected = "done" if r["part"] != "bench" or BENCH.is_file() else "skipped"
        assert r["status"] == expected, r
    by_part = read_results(out)
    for name in ("multi30k_en_de", "multi30k_de_en", "multi30k_en_fr"):
        r = by_part[name]
        assert r["steps"] == 2 and r["tokens_per_s"] > 0
        assert r["test"]["n"] == 4 and 0 <= r["test"]["tok_bleu"] <= 100
        assert (out / name / "eval_test_2016_flickr.json").is_file()
    assert by_part["ptb_parse"]["test"]["split"] == "test"
    assert 0 <= by_part["ptb_parse"]["test"]["f1"] <= 100
    assert by_part["table3"]["rows"] >= 1
    printed = capsys.readouterr().out
    assert "[multi30k_en_de] done on CPU" in printed and "train tokens/s" in printed

    # A second call finds every part done and adds nothing.
    assert main(["reproduce", "--budget", "tiny", "--out", str(out)]) == 0
    assert len(_records(out)) == len(PARTS)
    assert "already done" in capsys.readouterr().out


def test_a_part_that_does_not_fit_is_skipped(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "repro"
    argv = ["reproduce", "--budget", "tiny", "--out", str(out), "--parts",
            "multi30k_en_de", "--time-limit", "0.001"]  # fmt: skip
    assert main(argv) == 0
    (record,) = _records(out)
    assert record["status"] == "skipped" and "estimated" in record["reason"]
    assert record["estimate_s"] > 0
    assert not (out / "multi30k_en_de").exists()  # nothing trained
    assert "skipped" in describe(record)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--parts", "wmt14"], "unknown parts ['wmt14']"),
        (["--time-limit", "0"], "--time-limit must be > 0"),
        (["--device", "tpu7"], "unknown device"),
    ],
)
def test_bad_arguments_write_nothing(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "repro"
    assert main(["reproduce", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
