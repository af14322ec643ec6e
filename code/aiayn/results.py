"""Tables 2 and 4 (sections 6.1 and 6.3): the paper's rows beside this book's.

"Table 2: The Transformer achieves better BLEU scores than previous
state-of-the-art models on the English-to-German and English-to-French
newstest2014 tests at a fraction of the training cost."

The paper's rows are copied from its Table 2 (WMT 2014, newstest2014, cased
tokenized BLEU; training cost in floating-point operations, estimated as
"training time x number of GPUs x sustained single-precision capacity"). The
Multi30k rows are the published text-only Transformer-Tiny of Wu et al. (2021)
(test2016, tokenized lowercased BLEU) and the models shipped in ``checkpoints/``,
read from their own ``metrics.json`` and ``eval_test_2016_flickr.json``, with the
device, wall time and command that made them. WMT and Multi30k numbers are on
different data and are not comparable with each other.

Table 4 (constituency parsing, WSJ section 23 F1) is copied the same way and set
beside the shipped parser's EVALB F1 on the test split of the Penn Treebank
sample, with the two baselines scored by the same EVALB on the same sentences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One row of a Table 2: a model, where it was tested, its BLEU and cost."""

    model: str
    test_set: str
    en_de: float | None  # BLEU English->German
    en_fr: float | None  # BLEU English->French
    cost: str  # training cost as the source reports it
    source: str
    de_en: float | None = None  # BLEU German->English (Multi30k only)


WMT = "WMT14 newstest2014"
MULTI30K = "Multi30k test2016"

# Vaswani et al. 2017, Table 2: BLEU EN-DE, EN-FR; training cost EN-DE / EN-FR.
PAPER_TABLE_2 = (
    Row("ByteNet", WMT, 23.75, None, "", "Table 2"),
    Row("Deep-Att + PosUnk", WMT, None, 39.2, "- / 1.0e20 FLOPs", "Table 2"),
    Row("GNMT + RL", WMT, 24.6, 39.92, "2.3e19 / 1.4e20 FLOPs", "Table 2"),
    Row("ConvS2S", WMT, 25.16, 40.46, "9.6e18 / 1.5e20 FLOPs", "Table 2"),
    Row("MoE", WMT, 26.03, 40.56, "2.0e19 / 1.2e20 FLOPs", "Table 2"),
    Row("Deep-Att + PosUnk Ensemble", WMT, None, 40.4, "- / 8.0e20 FLOPs", "Table 2"),
    Row("GNMT + RL Ensemble", WMT, 26.30, 41.16, "1.8e20 / 1.1e21 FLOPs", "Table 2"),
    Row("ConvS2S Ensemble", WMT, 26.36, 41.29, "7.7e19 / 1.2e21 FLOPs", "Table 2"),
    Row(
        "Transformer (base model)",
        WMT,
        27.3,
        38.1,
        "3.3e18 FLOPs (12 hours on 8 P100 GPUs)",
        "Table 2",
    ),
    Row(
        "Transformer (big)",
        WMT,
        28.4,
        41.8,
        "2.3e19 FLOPs (3.5 days on 8 P100 GPUs)",
        "Table 2",
    ),
)

# Wu et al. 2021, text-only Transformer-Tiny on Multi30k test2016.
LITERATURE = (
    Row(
        "Transformer-Tiny",
        MULTI30K,
        41.02,
        61.80,
        "up to 8,000 updates of about 8k tokens",
        "Wu et al. 2021",
    ),
)


def shipped_rows(checkpoints: Path) -> list[Row]:
    """One row per shipped Multi30k model with a scored test set."""
    rows = []
    for directory in sorted(Path(checkpoints).iterdir()):
        metrics_path = directory / "metrics.json"
        eval_path = directory / "eval_test_2016_flickr.json"
        config_path = directory / "config.json"
        if not (metrics_path.is_file() and eval_path.is_file()):
            continue
        cfg = json.loads(config_path.read_text())
        if cfg.get("task") != "multi30k":
            continue
        m = json.loads(metrics_path.read_text())
        e = json.loads(eval_path.read_text())
        pair = f"{cfg['src_lang']}_{cfg['tgt_lang']}"
        bleu = {pair: round(e["tok_bleu"], 2)}
        rows.append(
            Row(
                f"{directory.name} (beam {e['beam']}, alpha {e['alpha']})",
                MULTI30K,
                bleu.get("en_de"),
                bleu.get("en_fr"),
                f"{m['wall_time_s'] / 60:.0f} min on {m['device']}, "
                f"{m['steps']:,} updates",
                f"`{m['command']}`",
                de_en=bleu.get("de_en"),
            )
        )
    return rows


def table_2_markdown(checkpoints: Path) -> str:
    """The paper's Table 2, the literature's and this book's Multi30k rows.

    The table keeps to six narrow columns (it must fit a book page); where each
    number comes from, and the command of every shipped model, follow it.
    """

    def cell(x: float | None) -> str:
        return "" if x is None else f"{x:g}"

    ours = shipped_rows(checkpoints)
    lines = [
        "| model | test set | EN-DE | DE-EN | EN-FR | training cost |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in (*PAPER_TABLE_2, *LITERATURE, *ours):
        lines.append(
            f"| {r.model} | {r.test_set} | {cell(r.en_de)} | {cell(r.de_en)} | "
            f"{cell(r.en_fr)} | {r.cost} |"
        )
    lines += [
        "",
        "WMT rows: Vaswani et al. (2017), Table 2, cased tokenized BLEU. "
        "Transformer-Tiny: Wu et al. (2021), tokenized lowercased BLEU. "
        "This book's rows: tokenized lowercased BLEU on test2016 (1,000 "
        "sentences), from each model's `eval_test_2016_flickr.json`; trained by",
        "",
    ]
    lines += [f"- {r.model.split(' ')[0]}: {r.source}" for r in ours]
    return "\n".join(lines)


def show_table_2(checkpoints: Path):  # -> IPython.display.Markdown
    """Render :func:`table_2_markdown` in a notebook."""
    from IPython.display import Markdown

    return Markdown(table_2_markdown(checkpoints))


@dataclass(frozen=True)
class ParseRow:
    """One row of a Table 4: a parser, how it was trained, its F1."""

    parser: str
    training: str
    f1: float
    test_set: str = "WSJ section 23"
    source: str = "Table 4"


_WSJ, _SEMI = "WSJ only, discriminative", "semi-supervised"
# Vaswani et al. 2017, Table 4: English constituency parsing, WSJ section 23 F1.
PAPER_TABLE_4 = (
    ParseRow("Vinyals & Kaiser et al. (2014)", _WSJ, 88.3),
    ParseRow("Petrov et al. (2006)", _WSJ, 90.4),
    ParseRow("Zhu et al. (2013)", _WSJ, 90.4),
    ParseRow("Dyer et al. (2016)", _WSJ, 91.7),
    ParseRow("Transformer (4 layers)", _WSJ, 91.3),
    ParseRow("Zhu et al. (2013)", _SEMI, 91.3),
    ParseRow("Huang & Harper (2009)", _SEMI, 91.3),
    ParseRow("McClosky et al. (2006)", _SEMI, 92.1),
    ParseRow("Vinyals & Kaiser et al. (2014)", _SEMI, 92.1),
    ParseRow("Transformer (4 layers)", _SEMI, 92.7),
    ParseRow("Luong et al. (2015)", "multi-task", 93.0),
    ParseRow("Dyer et al. (2016)", "generative", 93.3),
)
PTB_SAMPLE = "PTB sample test (245 sentences)"


def shipped_parse_rows(checkpoints: Path) -> list[ParseRow]:
    """The shipped parsers' test F1, each followed by its baselines' (same EVALB)."""
    rows = []
    for directory in sorted(Path(checkpoints).iterdir()):
        eval_path, config_path = directory / "eval_test.json", directory / "config.json"
        if not (eval_path.is_file() and config_path.is_file()):
            continue
        if json.loads(config_path.read_text()).get("task") != "parse":
            continue
        e = json.loads(eval_path.read_text())
        train = "PTB sample, 3,396 sentences"
        how = f"beam {e['beam_size']}, alpha {e['alpha']}"
        if e.get("constrained"):
            how += ", constrained"
        source = f"`{e.get('command', '')}`"
        rows.append(
            ParseRow(f"{directory.name} ({how})", train, round(e["f1"], 2),
                     PTB_SAMPLE, source)
        )  # fmt: skip
        rows.append(
            ParseRow("right-branching baseline", "none", round(
                e["right_branching_f1"], 2), PTB_SAMPLE, source)
        )  # fmt: skip
        if "shape_baseline_f1" in e:
            rows.append(
                ParseRow("commonest tree of each length", train, round(
                    e["shape_baseline_f1"], 2), PTB_SAMPLE, source)
            )  # fmt: skip
    return rows


def table_4_markdown(checkpoints: Path) -> str:
    """The paper's Table 4 and this book's parsers, with where each comes from."""
    ours = shipped_parse_rows(checkpoints)
    lines = ["| parser | training | test set | F1 |", "| --- | --- | --- | ---: |"]
    for r in (*PAPER_TABLE_4, *ours):
        f1 = f"{r.f1:.1f}" if r.source == "Table 4" else f"{r.f1:.2f}"
        lines.append(f"| {r.parser} | {r.training} | {r.test_set} | {f1} |")
    lines += [
        "",
        "Paper rows: Vaswani et al. (2017), Table 4, F1 on WSJ section 23 "
        "(2,416 sentences; the WSJ-only systems trained on about 40K sentences). "
        "This book's rows: EVALB F1 (COLLINS.prm) on the test split of the "
        "sample (wsj_0180-0199), from each parser's `eval_test.json`, made by",
        "",
    ]
    seen = []
    for r in ours:
        if r.source not in seen:
            seen.append(r.source)
    lines += [f"- {s}" for s in seen]
    return "\n".join(lines)


def show_table_4(checkpoints: Path):  # -> IPython.display.Markdown
    """Render :func:`table_4_markdown` in a notebook."""
    from IPython.display import Markdown

    return Markdown(table_4_markdown(checkpoints))
