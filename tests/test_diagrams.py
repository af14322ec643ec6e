"""Figures 1 and 2 (aiayn.diagrams): drawn from the model, so they follow it.

Every module path drawn resolves on the model, every parameter of the model is
inside a drawn box, the boxes come in the order the forward pass calls them, the
labels follow the config, a pre-norm model draws its norms first, and both figures
render to PNG with every label inside its box and the page.
"""

from __future__ import annotations

import inspect
import io
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from torch import nn

import aiayn.attention
import aiayn.decoding
import aiayn.loss
from aiayn.attention import MultiHeadAttention
from aiayn.config import ModelConfig
from aiayn.diagrams import WIDTH, Box, Diagram, figure_1, figure_2, resolve
from aiayn.feed_forward import PositionwiseFeedForward
from aiayn.layers import EncoderLayer
from aiayn.model import Transformer

TinyModel = Callable[..., Transformer]  # conftest.py's tiny_model factory

VARIANTS = [
    {},
    {"norm_first": True},
    {"learned_positions": True},
    {"tie_embeddings": False},
    {"src_vocab_size": 24},  # own source embedding
    {"n_layers": 3, "n_heads": 2},
    {"d_k": 12, "d_v": 6},
]


def _modules(d: Diagram, kinds: tuple[str, ...]) -> list[Box]:
    return [b for b in d.boxes if b.kind in kinds and b.path is not None]


def _template(name: str) -> str:
    """named_modules' "encoder.0.sublayers.1" -> the drawn "encoder[i].sublayers[1]"."""
    name = re.sub(r"^(encoder|decoder)\.\d+", r"\1[i]", name)
    return re.sub(r"\.(\d+)", r"[\1]", name)


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda o: str(o) or "paper")
def test_every_path_resolves_and_every_parameter_is_drawn(
    tiny_model: TinyModel, overrides: dict[str, Any]
) -> None:
    model = tiny_model(**overrides)
    d = figure_1(model)
    covered: set[int] = set()
    for box in d.boxes:
        if box.path is None:
            continue
        for i in range(model.cfg.n_layers):
            obj = resolve(model, box.path, i)
            if isinstance(obj, nn.Module):
                covered |= {id(p) for p in obj.parameters()}
            elif isinstance(obj, torch.Tensor):
                covered.add(id(obj))
    assert {id(p) for p in model.parameters()} <= covered
    # every attention and feed-forward module is a box of its own
    drawn = {b.path for b in d.boxes}
    kinds = (MultiHeadAttention, PositionwiseFeedForward)
    named = {_template(n) for n, m in model.named_modules() if isinstance(m, kinds)}
    assert named == {b.path for b in _modules(d, ("attention", "feed_forward"))}
    assert named <= drawn


@pytest.mark.parametrize("norm_first", [False, True])
def test_the_boxes_follow_the_forward_pass(
    tiny_model: TinyModel, norm_first: bool
) -> None:
    model = tiny_model(norm_first=norm_first)
    d = figure_1(model)
    called: list[str] = []
    names = {id(m): _template(n) for n, m in model.named_modules()}
    kinds = (MultiHeadAttention, PositionwiseFeedForward, nn.LayerNorm)
    hooks = [
        m.register_forward_pre_hook(lambda m, _: called.append(names[id(m)]))
        for m in (*model.encoder[0].modules(), *model.decoder[0].modules())
        if isinstance(m, kinds)
    ]
    with torch.no_grad():
        model(torch.tensor([[5, 6, 7, 2]]), torch.tensor([[1, 8, 9]]))
    for h in hooks:
        h.remove()
    assert len(called) == 4 + 6  # each sublayer and its norm, in both layers
    for stack in ("encoder", "decoder"):
        drawn = [
            b.path
            for b in _modules(d, ("attention", "feed_forward", "norm", "add_norm"))
            if b.path.startswith(f"{stack}[i].")
        ]
        calls = [c for c in called if c.startswith(f"{stack}[i].")]
        if not norm_first:  # post-norm: the norm is inside its Add & Norm box
            calls = [c.removesuffix(".norm") for c in calls]
        assert drawn == calls, stack


def test_a_pre_norm_model_draws_its_norms_first(tiny_model: TinyModel) -> None:
    post, pre = figure_1(tiny_model()), figure_1(tiny_model(norm_first=True))
    for stack in ("encoder", "decoder"):
        n_sub = 2 if stack == "encoder" else 3
        layer = f"{stack}[i]."
        post_kinds = [b.kind for b in post.boxes if (b.path or "").startswith(layer)]
        pre_kinds = [b.kind for b in pre.boxes if (b.path or "").startswith(layer)]
        assert post_kinds[1::2] == ["add_norm"] * n_sub  # after each sublayer
        assert pre_kinds[0::3] == ["norm"] * n_sub  # before each sublayer
        assert pre_kinds[2::3] == ["add"] * n_sub
        for d in (post, pre):
            boxes = {b.path: b for b in d.boxes if b.path}
            sub = boxes[f"{stack}[i].self_attn"]
            wrap = boxes[f"{stack}[i].sublayers[0]"]
            assert wrap.y > sub.y  # the residual is added above the sublayer
        norm = {b.path: b for b in pre.boxes}[f"{stack}[i].sublayers[0].norm"]
        assert norm.y < {b.path: b for b in pre.boxes}[f"{stack}[i].self_attn"].y
    paths = {b.path for b in pre.boxes} - {b.path for b in post.boxes}
    assert {"enc_norm", "dec_norm"} <= paths  # the final norms of pre-norm stacks
    assert not any("norm_first" in b.label for b in post.boxes)
    assert any("pre-norm" in b.label for b in pre.boxes)


@pytest.mark.parametrize(("n_layers", "n_heads"), [(1, 1), (3, 2), (2, 8)])
def test_labels_follow_the_config(
    tiny_model: TinyModel, n_layers: int, n_heads: int
) -> None:
    model = tiny_model(n_layers=n_layers, n_heads=n_heads, d_ff=96)
    d = figure_1(model)
    stacks = [b for b in d.boxes if b.kind == "stack"]
    assert [b.path for b in stacks] == ["encoder", "decoder"]
    assert all(b.label == f"N = cfg.n_layers = {n_layers} \u00d7" for b in stacks)
    attention = [b for b in d.boxes if b.kind == "attention"]
    assert len(attention) == 3  # encoder self, decoder masked self, cross
    assert all(b.label.endswith(f"h = {n_heads}") for b in attention)
    assert [b.label.startswith("Masked") for b in attention] == [False, True, False]
    ffn = [b for b in d.boxes if b.kind == "feed_forward"]
    assert [b.label for b in ffn] == ["Feed Forward, d_ff = 96"] * 2
    header = " ".join(b.label for b in d.boxes if b.kind == "text")
    assert "d_model = 32" in header and f"h = {n_heads}" in header


def test_figure_2_follows_the_attention_it_is_given() -> None:
    cfg = ModelConfig.tiny(d_model=32, n_heads=2, d_k=12, d_v=6)
    d = figure_2(cfg)
    labels = [b.label for b in d.boxes]
    assert "Scale: 1/\u221ad_k = 1/\u221a12" in labels
    assert "Concat: h \u00b7 d_v = 12" in labels  # h * d_v = 2 * 6
    assert "h = 2" in labels and "d_k = 12, d_v = 6" in labels
    assert [b.label for b in d.boxes if b.kind == "matmul"] == ["MatMul"] * 2
    with torch.device("meta"):
        mha = MultiHeadAttention(32, 2, 12, 6)
    assert resolve(mha, "h") == 2
    paths = [b.path for b in d.boxes if b.path]
    assert sorted(paths) == ["h", "w_k", "w_o", "w_q", "w_v"]
    for path in paths:
        resolve(mha, path)  # raises if the module has no such attribute
    # a module gives the same drawing as the config that built it
    model = Transformer(cfg)
    again = figure_2(model.decoder[0].cross_attn)
    assert [b.label for b in again.boxes] == labels


def test_code_snippets_are_in_the_source() -> None:
    source = inspect.getsource(aiayn.attention)
    for box in figure_2(ModelConfig.tiny()).boxes:
        if box.code is not None:
            assert box.code in source, box.code
    softmax = [b for b in figure_1(Transformer(ModelConfig.tiny())).boxes if b.code]
    assert len(softmax) == 1  # the model returns logits: softmax is elsewhere
    for module in (aiayn.loss, aiayn.decoding):
        assert softmax[0].code in inspect.getsource(module)


def test_layers_that_differ_are_refused(tiny_model: TinyModel) -> None:
    model = tiny_model(n_layers=2)
    model.encoder[1] = EncoderLayer(ModelConfig.tiny(n_heads=2))
    with pytest.raises(ValueError, match="layers of encoder differ"):
        figure_1(model)


def test_resolve() -> None:
    model = Transformer(ModelConfig.tiny(n_layers=2))
    assert resolve(model, "decoder[i].cross_attn", 1) is model.decoder[1].cross_attn
    assert resolve(model, "encoder[1].sublayers[0].norm") is (
        model.encoder[1].sublayers[0].norm
    )
    assert resolve(model, "output_weight") is model.tgt_embed.weight  # tied
    with pytest.raises(ValueError, match="not an attribute path"):
        resolve(model, "encoder[i]..norm")


def _check_render(d: Diagram) -> None:
    """PNG, page width, fonts >= 8 pt, every label inside the page and its box."""
    fig = d.figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    assert d._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"  # how a notebook shows it
    assert repr(d).startswith("<Diagram: 7 x ")
    width, height = fig.get_size_inches()
    assert width <= WIDTH
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    dpi = fig.dpi
    (ax,) = fig.axes
    texts = [t for t in ax.texts if t.get_text()]
    assert texts
    for t in texts:
        assert t.get_fontsize() >= 8
        e = t.get_window_extent(renderer)
        assert e.x0 >= 0 and e.x1 <= width * dpi, t.get_text()
        assert e.y0 >= 0 and e.y1 <= height * dpi, t.get_text()
    for box in d.boxes:
        if box.kind in ("text", "stack"):
            continue
        inside = [
            t
            for t in texts
            if abs(t.get_position()[0] - box.x) < 1e-9
            and abs(t.get_position()[1] - box.y) < box.h / 2
        ]
        assert [t.get_text() for t in inside][:1] == [box.label]
        for t in inside:
            e = t.get_window_extent(renderer)
            assert e.x0 > (box.x - box.w / 2) * dpi, t.get_text()
            assert e.x1 < (box.x + box.w / 2) * dpi, t.get_text()
            assert e.y0 > (box.y - box.h / 2) * dpi, t.get_text()
            assert e.y1 < (box.y + box.h / 2) * dpi, t.get_text()


@pytest.mark.parametrize("name", ["base", "big"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_figures_render_legibly(name: str, norm_first: bool) -> None:
    cfg = getattr(ModelConfig, name)(norm_first=norm_first)
    with torch.device("meta"):  # shapes only
        model = Transformer(cfg)
    _check_render(figure_1(model))
    _check_render(figure_2(cfg))
