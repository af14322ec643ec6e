"""Shipping a trained model: fp16 weights, tokenizer, config and a model card.

``python -m aiayn ship --run RUN --out checkpoints/NAME`` copies what a reader needs
to load a model (``config.json``, ``tokenizer.json``, the averaged weights in fp16,
``metrics.json``, and any ``eval_*.json``) into a small self-contained directory and
writes its ``README.md`` model card from those files alone, so every number on the
card is one the code measured. ``--with-steps`` also ships the kept step
checkpoints (weights only) for chapters that show checkpoint averaging.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .errors import AiaynError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_meta.json")


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def ship(
    run: Path,
    out: Path,
    with_steps: bool = False,
    with_last: bool = False,
    notes: list[str] | None = None,
) -> Path:
    """Copy a finished run into a shippable model directory; returns ``out``.

    ``notes`` are lines the card adds under "How it was made", for what the run's
    files cannot say (what else ran on the machine, why it was stopped).
    """
    run, out = Path(run), Path(out)
    metrics_path = run / "metrics.json"
    if not metrics_path.is_file():
        raise AiaynError(f"{run} has no metrics.json: is the training finished?")
    model = ckpt.load_model(run)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        ckpt.save_weights(tmp / ckpt.WEIGHTS, model, torch.float16)
        names = (ckpt.CONFIG, "metrics.json", "log.jsonl", *TOKENIZER_FILES)
        for name in names:
            if (run / name).is_file():
                shutil.copyfile(run / name, tmp / name)
        for path in [*run.glob("eval_*.json"), *run.glob("selection.json")]:
            shutil.copyfile(path, tmp / path.name)
        steps = ckpt.list_checkpoints(run)
        for step in steps if with_steps else steps[-1:] if with_last else []:
            dst = tmp / "checkpoints" / step.name
            dst.mkdir(parents=True)
            m = ckpt.load_model(step)
            ckpt.save_weights(dst / ckpt.WEIGHTS, m, torch.float16)
            shutil.copyfile(step / ckpt.CONFIG, dst / ckpt.CONFIG)
        (tmp / "README.md").write_text(model_card(tmp, out.name, notes))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _fmt(x: Any, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def model_card(
    directory: Path, name: str | None = None, notes: list[str] | None = None
) -> str:
    """The Markdown model card of a shipped directory, from its own files."""
    directory = Path(directory)
    name = name or directory.name
    m = json.loads((directory / "metrics.json").read_text())
    cfg = json.loads((directory / ckpt.CONFIG).read_text())
    evals = {
        p.stem.removeprefix("eval_"): json.loads(p.read_text())
        for p in sorted(directory.glob("eval_*.json"))
    }
    model = cfg["model"]
    lines = [
        f"# `{name}`",
        "",
        f"Trained with `aiayn` preset `{cfg['name']}` ({cfg['task']}"
        + (
            f", {cfg['src_lang']}→{cfg['tgt_lang']}"
            if cfg["task"] == "multi30k"
            else ""
        )
        + f"). {cfg.get('notes', '')}",
        "",
        "## Results",
        "",
        "| split | measure | value |",
        "| --- | --- | --- |",
    ]
    if "exact_match" in m and cfg["task"] == "copy":
        lines.append(f"| held-out (dev) | exact match | {_fmt(m['exact_match'], 3)} |")
    for split, e in evals.items():
        if "f1" in e:  # a parser's evaluation
            lines += _parse_result_lines(split, e)
            continue
        setting = f"beam {e.get('beam')}, alpha {e.get('alpha')}"
        lines += [
            f"| {split} | BLEU, {_case(e)} detokenized sacreBLEU ({setting}) | "
            f"{_fmt(e['bleu'])} |",
            f"| {split} | BLEU, tokenized lowercased (Multi30k literature) | "
            f"{_fmt(e['tok_bleu'])} |",
            f"| {split} | chrF | {_fmt(e['chrf'])} |",
        ]
    if "f1" in m and "dev" not in evals:
        lines.append(f"| dev | labelled bracket F1 (EVALB) | {_fmt(m['f1'])} |")
    unit = "target symbol" if cfg["task"] == "parse" else "sub-word token"
    lines.append(f"| dev | perplexity per {unit} | {_fmt(m['dev_ppl'])} |")
    lines += [
        "",
        "## How it was made",
        "",
        f"- Data: {_data_line(cfg)}",
        f"- Model: N={model['n_layers']}, d_model={model['d_model']}, "
        f"d_ff={model['d_ff']}, h={model['n_heads']}, P_drop={_dropout(cfg)}, "
        f"eps_ls={model['label_smoothing']}, vocabulary {model['vocab_size']}, "
        f"{m['parameters']:,} parameters; post-norm={not model['norm_first']}, "
        f"tied embeddings={model['tie_embeddings']}",
        f"- Training: {m['steps']} steps of about {cfg['max_tokens']} source and "
        f"target tokens, warmup {cfg['warmup']}, learning-rate factor "
        f"{cfg['lr_factor']}; averaged checkpoints: "
        f"{', '.join(m['averaged_checkpoints'])}",
        f"- Device: {m['device']}, torch {m['torch']}, wall time "
        f"{m['wall_time_s']:.0f} s ({m['train_tokens_per_s']:.0f} target tokens/s)"
        + (
            f", {m['train_target_tokens']:,} target tokens = {m['epochs']} epochs"
            if "epochs" in m
            else ""
        )
        + (
            f", in {m['segments']} segments (resumed)"
            if m.get("segments", 1) > 1
            else ""
        ),
        *_command_lines(m, cfg),
        *(f"- {line}" for line in notes or []),
    ]
    lines += _selection_lines(directory)
    for split, e in evals.items():
        lines.append(
            f"- Evaluation ({split}): `{e.get('command', '')}` on "
            f"{e.get('device', '?')}, decoding took {e.get('decode_wall_s')} s"
        )
        if "bleu_signature" in e:
            lines.append(f"  - sacreBLEU signature: `{e['bleu_signature']}`")
    lines += [
        f"- Shipped: fp16 weights, {datetime.date.today().isoformat()}, "
        f"from commit {_git_commit()}",
        "",
        "Load it with `aiayn.checkpoint.load_model(path)` and "
        "`aiayn.tokenizer.load_tokenizer(path)`, or "
        + (
            "parse with `aiayn.tasks.parse.predict` and `aiayn.parsing.delinearize`."
            if cfg["task"] == "parse"
            else f"`python -m aiayn translate --checkpoint checkpoints/{name}`."
        ),
        "",
    ]
    return "\n".join(lines)


def _command_lines(m: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """The training command, or each segment's of a resumed run; how it stopped."""
    commands = m.get("commands") or [m["command"]]
    if len(commands) == 1:
        lines = [f"- Command: `{commands[0]}`"]
    else:
        lines = ["- Commands, one per segment, in order:"]
        lines += [f"  {i}. `{c}`" for i, c in enumerate(commands, 1)]
    if m.get("stopped_by") == "max_minutes":
        lines.append(
            f"- Stopped at step {m['steps']} of {cfg['max_steps']} by the time "
            f"budget, max_minutes={cfg.get('max_minutes')}"
        )
    return lines


def _case(e: dict[str, Any]) -> str:
    """'lowercased' or 'cased', from the sacreBLEU signature."""
    return "lowercased" if "case:lc" in e.get("bleu_signature", "") else "cased"


def _dropout(cfg: dict[str, Any]) -> str:
    """P_drop, or how it rose during training (``dropout_ramp``)."""
    p = cfg["model"]["dropout"]
    ramp = cfg.get("dropout_ramp")
    if not ramp:
        return str(p)
    a, b, p1 = ramp
    return f"{p} rising to {p1} over updates {a}-{b}"


def _selection_lines(directory: Path) -> list[str]:
    """What `python -m aiayn select` chose on dev, and the alternatives."""
    path = directory / "selection.json"
    if not path.is_file():
        return []
    r = json.loads(path.read_text())
    metric = r["metric"]
    lines = [
        f"- Chosen on dev (`{r['command']}`, {r['wall_time_s']:.0f} s on "
        f"{r['device']}): {r['chosen_average']['name']}, beam "
        f"{r['chosen_decoding']['beam']}, alpha {r['chosen_decoding']['alpha']} "
        f"(dev {metric} {_fmt(r['paper_decoding'][metric])} with the paper's beam "
        f"{r['paper_decoding']['beam']}, alpha {r['paper_decoding']['alpha']})",
    ]
    for row in r["side_by_side"]:
        lines.append(
            f"  - {row['which']} ({row['name']}): dev perplexity "
            f"{_fmt(row['dev_ppl'])}, dev {metric} {_fmt(row.get(metric))}"
        )
    return lines


def _parse_result_lines(split: str, e: dict[str, Any]) -> list[str]:
    """Table rows of a parser's evaluation: F1, repairs and both baselines."""
    search = f"beam {e['beam_size']}, alpha {e['alpha']}, " + (
        "constrained search" if e.get("constrained") else "the paper's search"
    )
    where = f"{split} ({e['n']} sentences)"
    return [
        f"| {where} | labelled bracket F1, EVALB COLLINS.prm ({search}) | "
        f"{_fmt(e['f1'])} |",
        f"| {where} | F1, sentences of at most 40 words | {_fmt(e['f1_40'])} |",
        f"| {where} | outputs that needed no repair (%) | {_fmt(e['well_formed'])} |",
        f"| {where} | right-branching baseline F1 | {_fmt(e['right_branching_f1'])} |",
        f"| {where} | commonest training tree per length, F1 | "
        f"{_fmt(e['shape_baseline_f1'])} |",
    ]


def _data_line(cfg: dict[str, Any]) -> str:
    if cfg["task"] == "copy":
        return (
            f"random sequences of {cfg['copy_min_len']}-{cfg['copy_max_len']} "
            f"symbols out of {cfg['copy_symbols']}, {cfg['copy_train_size']} "
            f"training and {cfg['copy_test_size']} held-out sequences"
        )
    if cfg["task"] == "multi30k":
        return (
            f"Multi30k (WMT16 multimodal task 1) train, 29,000 pairs, "
            f"{cfg['vocab_kind']} vocabulary trained on it; dev = val (1,014)"
        )
    if cfg["task"] == "parse":
        return (
            "NLTK's 10% sample of the Penn Treebank WSJ, split by file: train "
            "wsj_0001-0159 (3,396 sentences), dev wsj_0160-0179 (273), test "
            f"wsj_0180-0199 (245); leaves: {cfg.get('parse_leaves', 'XX')}"
        )
    return cfg["task"]
