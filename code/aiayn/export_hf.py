"""Export a trained model to Hugging Face transformers as a ``MarianMTModel``.

Marian (Junczys-Dowmunt et al. 2018) is the paper's base architecture as
transformers implements it: post-norm layers (section 3.1), sinusoidal positions
(3.5), embeddings scaled by sqrt(d_model) and shared with the pre-softmax matrix
(3.4), ReLU feed-forward (3.3). So a model trained here loads with::

    from transformers import AutoTokenizer, MarianMTModel
    tok = AutoTokenizer.from_pretrained(out_dir)
    model = MarianMTModel.from_pretrained(out_dir)
    ids = model.generate(**tok(["A man rides a bike."], return_tensors="pt"))

What maps to what (one encoder layer i; the decoder adds ``encoder_attn``):

==============================  ================================================
aiayn                            Marian
==============================  ================================================
tgt_embed (= src, = generator)   model.shared (encoder/decoder embed_tokens, lm_head)
self_attn.w_q / w_k / w_v / w_o  self_attn.q_proj / k_proj / v_proj / out_proj
cross_attn.*                     encoder_attn.*
feed_forward.w_1 / w_2           fc1 / fc2 (activation_function="relu")
sublayers[0] / [1] / [2].norm    self_attn_layer_norm / (encoder_attn_layer_norm)
                                 / final_layer_norm
(no output bias)                 final_logits_bias = 0
pad 0, bos 1, eos 2, unk 3       pad_token_id 0, decoder_start_token_id 1 (our
                                 BOS; Marian usually starts from pad), eos 2
==============================  ================================================

Caveats:

- Positions. We interleave, PE[2i] = sin, PE[2i+1] = cos; Marian puts the d/2
  sines first and the cosines after, and recomputes that table on load (it is
  not saved). Rather than fight that, the export permutes the d_model axis of
  the whole residual stream, ``marian[..., j] = ours[..., PERM[j]]`` with PERM =
  (0, 2, 4, ..., 1, 3, 5, ...): embedding columns, layer-norm parameters, the
  input columns of q/k/v/fc1 and the output rows of out_proj/fc2. Layer norm,
  residual sums and dot products are blind to the order of coordinates, so the
  logits are unchanged (a test checks them to 1e-4); only hidden states read
  from Marian come out permuted.
- Source EOS. Our sources end in EOS (``batching.encode_sources``); the exported
  tokenizer appends ``</s>`` too, and normalizes as ``tokenizer.normalize``
  does (NFC, whitespace runs to one space, stripped). The copy task's symbol
  vocabulary becomes a WordLevel tokenizer; an unknown symbol reads as <unk>
  there, where ours raises.
- Search. ``generate`` masks PAD and BOS like our decoders (``suppress_tokens``),
  and greedy search agrees token for token. Beam search keeps the same live
  beams as ours (the K best unfinished of the 2K best extensions), but (a) it
  finishes an EOS candidate only if it ranks among the K best of the 2K, we
  (as tensor2tensor) among all 2K; (b) it divides by |Y|^alpha, we by GNMT's
  ((5 + |Y|) / 6)^alpha; (c) its length limit is one per batch, ours each
  source's length + 50. With equal limits and alpha >= 0, our result scores at
  least as well as generate's under our objective; at alpha = 0 the two differ
  only where ours found a strictly better hypothesis through (a). The exported
  generation config uses ``early_stopping="never"``, the rule closest to ours.
- Not exportable (Marian has no such option): pre-norm (``norm_first``),
  learned positions, d_k * n_heads != d_model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoint import load_model
from .config import ModelConfig
from .download import temp_dir_beside
from .errors import AiaynError
from .model import Transformer
from .tokenizer import (
    SPECIAL_TOKENS,
    TOKENIZER_FILE,
    SubwordTokenizer,
    SymbolTokenizer,
    Tokenizer,
    load_tokenizer,
)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise AiaynError(
            "exporting needs transformers: pip install 'aiayn[hf]'"
        ) from None
    return transformers


def position_permutation(d_model: int) -> Tensor:
    """PERM (d_model,): Marian's coordinate j holds our coordinate PERM[j]."""
    return torch.cat([torch.arange(0, d_model, 2), torch.arange(1, d_model, 2)])


def marian_config(cfg: ModelConfig) -> Any:
    """The MarianConfig with our architecture; AiaynError if Marian cannot hold it."""
    problems = []
    if cfg.norm_first:
        problems.append("norm_first=True (Marian is post-norm)")
    if cfg.learned_positions:
        problems.append("learned_positions=True (Marian has sinusoids only)")
    d_k, d_v = cfg.head_dim_k, cfg.head_dim_v
    if d_k * cfg.n_heads != cfg.d_model or d_v * cfg.n_heads != cfg.d_model:
        problems.append(f"d_k={d_k}, d_v={d_v} (Marian needs d_model / h)")
    if cfg.d_model % 2:
        problems.append(f"odd d_model={cfg.d_model}")
    if problems:
        raise AiaynError("cannot export to Marian: " + "; ".join(problems))
    share = cfg.shared_vocab and cfg.tie_embeddings  # one matrix for everything
    return _transformers().MarianConfig(
        vocab_size=cfg.vocab_size if share else cfg.src_vocab_size or cfg.vocab_size,
        decoder_vocab_size=cfg.vocab_size,
        d_model=cfg.d_model,
        encoder_layers=cfg.n_layers,
        decoder_layers=cfg.n_layers,
        encoder_attention_heads=cfg.n_heads,
        decoder_attention_heads=cfg.n_heads,
        encoder_ffn_dim=cfg.d_ff,
        decoder_ffn_dim=cfg.d_ff,
        activation_function="relu",
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.relu_dropout,
        max_position_embeddings=cfg.max_len,
        scale_embedding=cfg.scale_embeddings,
        share_encoder_decoder_embeddings=share,
        tie_word_embeddings=cfg.tie_embeddings,
        pad_token_id=cfg.pad_id,
        bos_token_id=cfg.bos_id,
        eos_token_id=cfg.eos_id,
        decoder_start_token_id=cfg.bos_id,
        forced_eos_token_id=None,  # Marian's default would force id 0 (our PAD)
    )


def marian_state_dict(model: Transformer) -> dict[str, Tensor]:
    """Our weights under Marian's names, the d_model axis permuted (see above)."""
    cfg = model.cfg
    perm = position_permutation(cfg.d_model)
    sd: dict[str, Tensor] = {}

    def linear(name: str, lin: torch.nn.Linear, into: bool) -> None:
        """into=True: reads the residual stream (permute columns), else writes it."""
        w, b = lin.weight.detach(), lin.bias.detach()
        sd[f"{name}.weight"] = w[:, perm] if into else w[perm]
        sd[f"{name}.bias"] = b if into else b[perm]

    def norm(name: str, ln: torch.nn.LayerNorm) -> None:
        sd[f"{name}.weight"] = ln.weight.detach()[perm]
        sd[f"{name}.bias"] = ln.bias.detach()[perm]

    def attention(name: str, attn: torch.nn.Module) -> None:
        for ours, theirs in (("w_q", "q_proj"), ("w_k", "k_proj"), ("w_v", "v_proj")):
            linear(f"{name}.{theirs}", getattr(attn, ours), into=True)
        linear(f"{name}.out_proj", attn.w_o, into=False)

    tgt = model.tgt_embed.weight.detach()[:, perm]  # (V, d_model)
    if model.own_src_embed is None:
        sd["model.shared.weight"] = tgt
        sd["model.encoder.embed_tokens.weight"] = tgt
    else:
        src = model.src_embed.weight.detach()  # (V_src, d_model)
        sd["model.encoder.embed_tokens.weight"] = src[:, perm]
    sd["model.decoder.embed_tokens.weight"] = tgt
    sd["lm_head.weight"] = model.output_weight.detach()[:, perm]
    sd["final_logits_bias"] = torch.zeros(1, cfg.vocab_size)
    for i, layer in enumerate(model.encoder):
        p = f"model.encoder.layers.{i}"
        attention(f"{p}.self_attn", layer.self_attn)
        norm(f"{p}.self_attn_layer_norm", layer.sublayers[0].norm)
        linear(f"{p}.fc1", layer.feed_forward.w_1, into=True)
        linear(f"{p}.fc2", layer.feed_forward.w_2, into=False)
        norm(f"{p}.final_layer_norm", layer.sublayers[1].norm)
    for i, layer in enumerate(model.decoder):
        p = f"model.decoder.layers.{i}"
        attention(f"{p}.self_attn", layer.self_attn)
        norm(f"{p}.self_attn_layer_norm", layer.sublayers[0].norm)
        attention(f"{p}.encoder_attn", layer.cross_attn)
        norm(f"{p}.encoder_attn_layer_norm", layer.sublayers[1].norm)
        linear(f"{p}.fc1", layer.feed_forward.w_1, into=True)
        linear(f"{p}.fc2", layer.feed_forward.w_2, into=False)
        norm(f"{p}.final_layer_norm", layer.sublayers[2].norm)
    return {k: v.float().contiguous() for k, v in sd.items()}


def to_marian(model: Transformer, beam_size: int = 4, alpha: float = 0.6) -> Any:
    """A MarianMTModel (eval mode, CPU, fp32) computing the same logits as ``model``."""
    tf = _transformers()
    cfg = model.cfg
    hf = tf.MarianMTModel(marian_config(cfg)).eval()
    missing, unexpected = hf.load_state_dict(marian_state_dict(model), strict=False)
    positions = {f"model.{s}.embed_positions.weight" for s in ("encoder", "decoder")}
    if set(missing) - positions or unexpected:  # the sinusoids are rebuilt by Marian
        raise AiaynError(f"internal: Marian missed {missing}, got extra {unexpected}")
    beam: dict[str, Any] = {}
    if beam_size > 1:  # HF refuses beam-only flags on a greedy config
        beam = dict(
            num_beams=beam_size,
            length_penalty=alpha,  # |Y|^alpha, not GNMT's ((5 + |Y|) / 6)^alpha
            early_stopping="never",  # like ours: stop when no live beam can win
        )
    hf.generation_config = tf.GenerationConfig(
        decoder_start_token_id=cfg.bos_id,
        bos_token_id=cfg.bos_id,
        eos_token_id=cfg.eos_id,
        pad_token_id=cfg.pad_id,
        forced_eos_token_id=None,
        suppress_tokens=[cfg.pad_id, cfg.bos_id],  # as our decoders do
        max_length=cfg.max_len,  # decoder positions, the start token included
        **beam,
    )
    return hf


def hf_tokenizer(tokenizer: Tokenizer, max_len: int | None = None) -> Any:
    """A PreTrainedTokenizerFast that encodes like ours and appends </s>.

    ``max_len``: the model's positions; longer inputs warn (or are cut with
    ``truncation=True``), as ours are by ``translate``.
    """
    tf = _transformers()
    from tokenizers import Regex, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers.models import WordLevel

    if isinstance(tokenizer, SymbolTokenizer):
        vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
        n = len(SPECIAL_TOKENS)
        vocab.update({str(s): s + n for s in range(tokenizer.n_symbols)})
        rust = RustTokenizer(WordLevel(vocab, unk_token="<unk>"))
        rust.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    elif isinstance(tokenizer, SubwordTokenizer):
        rust = RustTokenizer.from_str(tokenizer.hf.to_str())
        # tokenizer.normalize: NFC, Python's whitespace runs -> " ", strip.
        spaces = "".join(f"\\x{{{c:x}}}" for c in range(0x110000) if chr(c).isspace())
        rust.normalizer = normalizers.Sequence(
            [
                normalizers.NFC(),
                normalizers.Replace(Regex(f"[{spaces}]+"), " "),
                normalizers.Strip(),
            ]
        )
    else:
        raise AiaynError(f"cannot export a {type(tokenizer).__name__}")
    pad, bos, eos, unk = SPECIAL_TOKENS
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=rust,
        pad_token=pad,
        bos_token=bos,
        eos_token=eos,
        unk_token=unk,
        add_bos_token=False,
        add_eos_token=True,  # sources end in EOS, as batching.encode_sources does
        split_special_tokens=True,  # the text "<s>" is text, as in ours
        model_max_length=max_len or int(1e30),
    )


def _find_tokenizer(directory: Path) -> Tokenizer | None:
    """The tokenizer beside the weights, or in the run directory of a step."""
    for d in (directory, directory.parent.parent):
        if (d / TOKENIZER_FILE).is_file():
            return load_tokenizer(d)
    return None


@torch.no_grad()
def check_logits(model: Transformer, hf: Any, rtol: float = 1e-4) -> float:
    """Largest |logit difference| on a padded random batch.

    AiaynError if it exceeds ``rtol`` times the largest |logit| (at least 1).
    """
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    B, S, T = 3, min(9, cfg.max_len), min(7, cfg.max_len)
    V = min(cfg.vocab_size, model.src_embed.weight.size(0))
    src = torch.randint(4, V, (B, S), generator=g)  # (B, S)
    tgt = torch.randint(4, cfg.vocab_size, (B, T), generator=g)  # (B, T)
    src[:, -1], src[1, S // 2 :], src[1, S // 2 - 1] = cfg.eos_id, 0, cfg.eos_id
    tgt[:, 0], tgt[2, T // 2 :] = cfg.bos_id, cfg.pad_id
    model.eval()
    ours = model(src, tgt)  # (B, T, V)
    theirs = hf(
        input_ids=src,
        attention_mask=src != cfg.pad_id,
        decoder_input_ids=tgt,
        decoder_attention_mask=tgt != cfg.pad_id,
    ).logits
    diff = float((ours - theirs).abs().max())
    tol = rtol * max(1.0, float(ours.abs().max()))
    if not diff <= tol:
        raise AiaynError(f"internal: exported logits differ by {diff:.3g} > {tol:.3g}")
    return diff


def export_hf(
    checkpoint_dir: Path, out_dir: Path, overwrite: bool = False
) -> dict[str, Any]:
    """Write ``out_dir``: a MarianMTModel, its generation config and tokenizer.

    The directory is built under a temporary name and renamed into place. Returns
    a summary (what was written, the logit check's largest difference).
    """
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise AiaynError(f"{out_dir} is not empty; choose another --out or --force")
    from .checkpoint import read_config

    train_cfg = read_config(checkpoint_dir)
    model = load_model(checkpoint_dir, "cpu")
    hf = to_marian(model, train_cfg.beam_size, train_cfg.alpha)
    diff = check_logits(model, hf)
    tokenizer = _find_tokenizer(checkpoint_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(out_dir)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # HF's notes on tied/unsaved weights
            hf.save_pretrained(tmp)
            if tokenizer is not None:
                hf_tokenizer(tokenizer, model.cfg.max_len).save_pretrained(tmp)
        (tmp / "README.md").write_text(_card(checkpoint_dir, train_cfg.name, diff))
        mode = (tmp / "README.md").stat().st_mode & 0o777  # 0666 less the umask
        for f in tmp.rglob("*"):  # safetensors writes 0600 whatever the umask
            if f.is_file():
                f.chmod(mode)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.replace(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "out": str(out_dir),
        "config": train_cfg.name,
        "parameters": model.num_parameters(),
        "tokenizer": tokenizer is not None,
        "max_abs_logit_diff": diff,
    }


def _card(source: Path, name: str, diff: float) -> str:
    return (
        f"# {name} (exported from aiayn)\n\n"
        f"A `MarianMTModel` converted by `python -m aiayn export-hf` from "
        f"`{source}`, a reproduction of Vaswani et al. (2017). Logits match the "
        f"original to {diff:.1e} on a check batch. Decoding starts from `<s>` "
        "(id 1), not from pad; the hidden size is permuted relative to the "
        "original (positions are laid out the Marian way). See "
        "`aiayn/export_hf.py` for the mapping and the beam-search differences.\n"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``export-hf`` subcommand's options."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="model directory (config.json + model.safetensors)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output directory for the Hugging Face model",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace --out if it is not empty"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``export-hf`` from parsed arguments; prints a JSON summary."""
    from .checkpoint import read_config
    from .cli import check_output_dir, inside

    read_config(args.checkpoint)  # a model directory, or an error saying so
    check_output_dir(args.out)
    if inside(args.checkpoint, args.out) or inside(args.out, args.checkpoint):
        raise AiaynError(
            f"--out {args.out} overlaps --checkpoint {args.checkpoint}, and the "
            "export replaces --out; choose a directory of its own, e.g. "
            f"{args.checkpoint}_hf"
        )
    print(json.dumps(export_hf(args.checkpoint, args.out, args.force), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m aiayn.export_hf --checkpoint DIR --out HF_DIR``."""
    parser = argparse.ArgumentParser(prog="python -m aiayn.export_hf")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except AiaynError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
