"""bench/fair.py: its contenders do the same work, and the script runs end to end.

Speed itself is never asserted here (it depends on the machine); what is tested is
what makes the comparison fair: equal parameters, the same dropout sites, the
same function computed, the trainer's own batches, and outputs agreeing.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("transformers", reason="the benchmark compares with transformers")

from aiayn import ModelConfig, Transformer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "checkpoints" / "multi30k_tiny_cpu_en_de"


def _load_bench():
    spec = importlib.util.spec_from_file_location("fair", ROOT / "bench" / "fair.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fair = _load_bench()
CFG = ModelConfig(
    vocab_size=53, d_model=32, d_ff=48, n_heads=4, n_layers=2, dropout=0.1, max_len=40
)


def test_contenders_have_equal_trainable_parameters() -> None:
    counts = {
        n: fair.trainable_parameters(fair.build(n, CFG)) for n in fair.TRAIN_CONTENDERS
    }
    assert len(set(counts.values())) == 1, counts
    assert counts[fair.AIAYN] == Transformer(CFG).num_parameters()


def _active_dropouts(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())


def test_torch_twin_drops_out_where_aiayn_does() -> None:
    twin, ours = fair.TorchTwin(CFG), Transformer(CFG)
    N = CFG.n_layers
    # one on the embedding sums, one per sublayer: 2 per encoder and 3 per decoder layer
    assert _active_dropouts(ours) == _active_dropouts(twin) == 1 + 2 * N + 3 * N
    for layer in [*twin.core.encoder.layers, *twin.core.decoder.layers]:
        assert isinstance(layer.dropout, nn.Identity)  # no feed-forward dropout
        assert layer.self_attn.dropout == 0.0
    assert twin.core.encoder.norm is None and twin.core.decoder.norm is None
    hf = fair.MarianTwin(CFG).hf.config
    assert (hf.dropout, hf.attention_dropout, hf.activation_dropout) == (0.1, 0.0, 0.0)


def _copy_into_twin(ours: Transformer, twin: nn.Module) -> None:
    """aiayn's weights into the nn.Transformer twin (same function if same work)."""

    def attn(dst: nn.MultiheadAttention, src) -> None:
        dst.in_proj_weight.copy_(
            torch.cat([src.w_q.weight, src.w_k.weight, src.w_v.weight])
        )
        dst.in_proj_bias.copy_(torch.cat([src.w_q.bias, src.w_k.bias, src.w_v.bias]))
        dst.out_proj.weight.copy_(src.w_o.weight)
        dst.out_proj.bias.copy_(src.w_o.bias)

    def ff(dst, src) -> None:
        dst.linear1.weight.copy_(src.feed_forward.w_1.weight)
        dst.linear1.bias.copy_(src.feed_forward.w_1.bias)
        dst.linear2.weight.copy_(src.feed_forward.w_2.weight)
        dst.linear2.bias.copy_(src.feed_forward.w_2.bias)

    def norms(dst, src) -> None:
        for i, sub in enumerate(src.sublayers, start=1):
            getattr(dst, f"norm{i}").load_state_dict(sub.norm.state_dict())

    with torch.no_grad():
        twin.embed.weight.copy_(ours.output_weight)
        for dst, src in zip(twin.core.encoder.layers, ours.encoder, strict=True):
            attn(dst.self_attn, src.self_attn)
            ff(dst, src)
            norms(dst, src)
        for dst, src in zip(twin.core.decoder.layers, ours.decoder, strict=True):
            attn(dst.self_attn, src.self_attn)
            attn(dst.multihead_attn, src.cross_attn)
            ff(dst, src)
            norms(dst, src)


def test_torch_twin_computes_the_same_function() -> None:
    torch.manual_seed(0)
    ours, twin = Transformer(CFG).eval(), fair.TorchTwin(CFG).eval()
    _copy_into_twin(ours, twin)
    src = torch.randint(4, 53, (3, 7))
    tgt = torch.randint(4, 53, (3, 5))
    src[1, 4:], src[2, 2:], tgt[2, 3:] = 0, 0, 0  # padding, as in real batches
    with torch.no_grad():
        a, b = ours(src, tgt), twin(src, tgt)  # (B, T, V)
    real = tgt != 0
    torch.testing.assert_close(a[real], b[real], rtol=1e-4, atol=1e-4)


def test_aiayn_paths_give_the_same_loss_and_gradients() -> None:
    """The optimisations measured against 'previous code' change no result."""
    torch.manual_seed(0)
    model = fair.build(fair.AIAYN, CFG).eval()
    b = fair.collate([([5, 6, 7], [8, 9]), ([5], [8, 9, 10, 11])], 0, 1, 2)
    got = []
    for name in (fair.AIAYN, fair.AIAYN_UNFUSED, fair.AIAYN_ALL_ROWS):
        model.zero_grad()
        loss = fair.loss_sum(name, model, b)
        loss.backward()
        got.append((float(loss.detach()), model.output_weight.grad.clone()))
    for loss, grad in got[1:]:
        assert loss == pytest.approx(got[0][0], rel=1e-6)
        torch.testing.assert_close(grad, got[0][1])


def test_paired_ratios_and_rotation() -> None:
    times = {"a": [1.0, 2.0, 1.0], "b": [2.0, 3.0, 4.0]}
    s = fair.paired(times, "a")["b"]
    assert s["rounds"] == [2.0, 1.5, 4.0]
    assert (s["median"], s["min"], s["max"]) == (2.0, 1.5, 4.0)
    assert [fair.rotated(["x", "y", "z"], r)[0] for r in range(4)] == list("xyzx")


@pytest.mark.skipif(not MODEL.is_dir(), reason="no shipped en-de model")
def test_quick_run_writes_every_section(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["--out", str(out), "--sizes", "tiny", "--rounds", "2", "--tokens", "600",
            "--bf16", "", "--sentences", "6", "--batch1-sentences", "2",
            "--train-limit", "300", "--threads", "1", "--previous", "HEAD"]  # fmt: skip
    assert fair.main(args) == 0
    r = json.loads(out.read_text())
    assert r["command"].startswith("python bench/fair.py --out")
    (sec,) = r["train"]
    assert set(sec["results"]) == set(fair.TRAIN_CONTENDERS)
    assert sec["trainable_parameters"] == 2_605_056  # the shipped Transformer-Tiny
    assert len(sec["tgt_tokens_per_round"]) == 2
    assert all(t <= 600 for t in sec["batches"]["tgt_tokens"])
    for name, ratio in sec["aiayn_speedup"].items():
        times = sec["results"][name]["round_s"]
        ours = sec["results"][fair.AIAYN]["round_s"]
        assert ratio["rounds"] == pytest.approx(
            [t / o for t, o in zip(times, ours, strict=True)]
        )
    modes = {m["mode"]: m for m in r["decode"]["modes"]}
    assert set(modes) == {"beam 4, batch 32", "greedy, batch 32", "beam 4, batch 1",
                          "greedy, batch 1"}  # fmt: skip
    for m in modes.values():
        res = m["results"]
        assert res[fair.AIAYN]["identical_to_aiayn"] == 1.0
        # finished sentences leaving the batch changes no output
        assert (
            res["aiayn (previous code: finished sentences stay)"]["identical_to_aiayn"]
            == 1.0
        )
        # the fast decoding step (aiayn.fast_decode) changes no output
        assert res[fair.AIAYN_MODULE_STEP]["identical_to_aiayn"] == 1.0
        # the committed package, imported beside the working one, decodes alike
        assert res["aiayn (previous code: HEAD)"]["identical_to_aiayn"] == 1.0
    for mode in ("beam 4, batch 32", "beam 4, batch 1"):
        # like for like: each stopping rule against generate's of its kind
        m = modes[mode]
        pairs = m["like_for_like"]
        assert len(pairs) == 2
        never = pairs[fair.EXACT_AGAINST_NEVER]
        assert never == m["aiayn_speedup"][fair.GENERATE_NEVER]
        heuristic = pairs[f"{fair.AIAYN_HEURISTIC} against {fair.GENERATE_DEFAULT}"]
        times = m["results"][fair.GENERATE_DEFAULT]["batch_s"]
        ours = m["results"][fair.AIAYN_HEURISTIC]["batch_s"]
        assert heuristic["rounds"] == pytest.approx(
            [t / o for t, o in zip(times, ours, strict=True)]
        )
    assert modes["greedy, batch 32"]["sentences"] == 6
    # greedy search is the same rule in both: the exported twin agrees (up to an
    # argmax that float rounding in a padded batch may flip)
    assert (
        modes["greedy, batch 32"]["results"]["generate (greedy)"]["identical_to_aiayn"]
        >= 0.8
    )
