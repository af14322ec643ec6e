"""Table 2 (section 6.1): BLEU and training cost, the paper's beside this book's.

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
