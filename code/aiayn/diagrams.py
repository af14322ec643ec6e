"""The paper's Figures 1 and 2, drawn from the code they describe.

Figure 1, "The Transformer - model architecture": the encoder and decoder stacks
of N identical layers, their sublayers with residual connections and layer
norms, the embeddings, positional encodings and the final Linear and Softmax.
Figure 2: "(left) Scaled Dot-Product Attention. (right) Multi-Head Attention
consists of several attention layers running in parallel."

:func:`figure_1` walks a :class:`~aiayn.model.Transformer`'s own modules (the
layers of each stack, their attention and feed-forward sublayers in the order
they were built, each :class:`~aiayn.layers.SublayerConnection`'s ``norm_first``)
and :func:`figure_2` reads a :class:`~aiayn.attention.MultiHeadAttention`, so a
change to the model changes the drawing. Each box is labelled with what it is and
where it lives: an attribute path such as ``encoder[i].self_attn`` (``[i]`` is
any layer, :func:`resolve` follows it) or a snippet of the source it stands for.
Both return a :class:`Diagram`: the matplotlib Figure and the list of boxes drawn
(for the tests); a notebook shows it as a picture.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from torch import nn

from .attention import MultiHeadAttention
from .config import ModelConfig
from .embeddings import LearnedPositionalEmbedding
from .feed_forward import PositionwiseFeedForward
from .layers import _attention
from .model import Transformer

WIDTH = 7.0  # inches: the book's 688-pixel column at 100 dpi
TITLE_PT, PATH_PT, HEAD_PT = 9.0, 8.0, 10.0  # font sizes (points)
BOX_H, GAP = 0.42, 0.22  # box height and the space between two boxes (inches)
FRAME_PAD = 0.2  # space between a layer's frame and its boxes
COLOURS = {  # close to the paper's
    "attention": "#fcdcb4",
    "feed_forward": "#c6e6f6",
    "add_norm": "#f2efa4",
    "norm": "#f2efa4",
    "add": "#f2efa4",
    "embedding": "#f7cfcf",
    "position": "#ffffff",
    "linear": "#ddd4ef",
    "softmax": "#cfeccb",
    "matmul": "#ddd4ef",
    "scale": "#f2efa4",
    "mask": "#f7cfcf",
    "concat": "#f2efa4",
}


@dataclass(frozen=True)
class Box:
    """One drawn element: what it is, where it lives, where it is (inches)."""

    label: str  # what it is, as printed
    kind: str  # "attention", "feed_forward", "add_norm", ..., "stack", "text"
    path: str | None = None  # attribute path on the drawn object; [i]: any layer
    code: str | None = None  # or the source it stands for
    x: float = 0.0  # centre
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0


class Diagram(NamedTuple):
    """A drawn figure and its boxes, bottom to top within each column.

    A notebook shows a Diagram as its picture (PNG at 100 dpi, the book's scale).
    """

    figure: Figure
    boxes: list[Box]

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()

    def __repr__(self) -> str:
        w, h = self.figure.get_size_inches()
        return f"<Diagram: {w:.3g} x {h:.3g} in, {len(self.boxes)} boxes>"


def resolve(root: Any, path: str, i: int = 0) -> Any:
    """The object at ``path`` on ``root``, with ``[i]`` standing for layer ``i``."""
    obj = root
    for part in path.split("."):
        match = re.fullmatch(r"(\w+)((?:\[\w+\])*)", part)
        if match is None:
            raise ValueError(f"not an attribute path: {path!r}")
        obj = getattr(obj, match.group(1))
        for index in re.findall(r"\[(\w+)\]", match.group(2)):
            obj = obj[i if index == "i" else int(index)]
    return obj


class _Canvas:
    """An axes in inches, origin bottom left, and the boxes drawn on it."""

    def __init__(self, height: float) -> None:
        self.figure = Figure(figsize=(WIDTH, height))
        self.ax: Axes = self.figure.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, WIDTH)
        self.ax.set_ylim(0, height)
        self.ax.axis("off")
        self.boxes: list[Box] = []

    def box(self, box: Box, shadows: int = 0) -> Box:
        """Draw a rounded box (and ``shadows`` copies behind it), label inside."""
        for j in range(shadows, -1, -1):  # back to front
            d = 0.06 * j
            self.ax.add_patch(
                FancyBboxPatch(
                    (box.x - box.w / 2 + d, box.y - box.h / 2 + d),
                    box.w,
                    box.h,
                    boxstyle="round,pad=0,rounding_size=0.06",
                    fc=COLOURS.get(box.kind, "white"),
                    ec="0.25",
                    lw=0.8,
                    zorder=2 - 0.01 * j,
                )
            )
        where = box.path or box.code
        if where is None:
            self.text(box.x, box.y, box.label, TITLE_PT)
        else:
            self.text(box.x, box.y + 0.085, box.label, TITLE_PT)
            self.text(box.x, box.y - 0.095, where, PATH_PT, family="monospace")
        self.boxes.append(box)
        return box

    def text(self, x: float, y: float, s: str, size: float, **kw: Any) -> None:
        self.ax.text(x, y, s, ha="center", va="center", fontsize=size, zorder=3, **kw)

    def label(self, box: Box, size: float = TITLE_PT, **kw: Any) -> Box:
        """A free-standing text element, recorded like a box."""
        self.text(box.x, box.y, box.label, size, **kw)
        self.boxes.append(box)
        return box

    def arrow(self, points: list[tuple[float, float]]) -> None:
        """A polyline with an arrowhead at its last point."""
        xs, ys = zip(*points, strict=True)
        self.ax.plot(xs[:-1], ys[:-1], color="0.2", lw=0.9, zorder=1)
        self.ax.annotate(
            "",
            xy=points[-1],
            xytext=points[-2],
            zorder=1,
            arrowprops={
                "arrowstyle": "-|>",
                "color": "0.2",
                "lw": 0.9,
                "shrinkA": 0,
                "shrinkB": 0,
                "mutation_scale": 8,
            },
        )


# -- Figure 1 -----------------------------------------------------------------------

_ATTENTION_NAMES = {  # (stack, attribute) -> the paper's label
    ("encoder", "self_attn"): "Multi-Head Attention",
    ("decoder", "self_attn"): "Masked Multi-Head Attention",
    ("decoder", "cross_attn"): "Multi-Head Attention",
}


def sublayers(layer: nn.Module) -> list[tuple[str, nn.Module]]:
    """A layer's attention and feed-forward sublayers, in the order built."""
    kinds = (MultiHeadAttention, PositionwiseFeedForward)
    return [(n, m) for n, m in layer.named_children() if isinstance(m, kinds)]


def _item(label: str, kind: str, path: str | None = None, **flags: Any) -> dict:
    """One entry of a column: a Box's label, kind and path, and layout flags."""
    return {"label": label, "kind": kind, "path": path, **flags}


def _layer_items(stack: str, layer: nn.Module) -> list[dict[str, Any]]:
    """The boxes of one layer, bottom to top.

    Flags: "residual" on the box below which a residual branches off, "add" on
    the box it is added back in, "memory" on the encoder-decoder attention.
    """
    items: list[dict[str, Any]] = []
    subs = sublayers(layer)
    wrappers = list(layer.get_submodule("sublayers"))
    if len(subs) != len(wrappers):
        raise ValueError(f"{stack}: {len(subs)} sublayers, {len(wrappers)} wrappers")
    for k, ((name, module), wrap) in enumerate(zip(subs, wrappers, strict=True)):
        wrap_path = f"{stack}[i].sublayers[{k}]"
        path, memory = f"{stack}[i].{name}", name == "cross_attn"
        if isinstance(module, MultiHeadAttention):
            title = _ATTENTION_NAMES.get((stack, name), "Multi-Head Attention")
            sub = _item(f"{title}, h = {module.h}", "attention", path, memory=memory)
        else:
            d_ff = module.w_1.out_features
            sub = _item(f"Feed Forward, d_ff = {d_ff}", "feed_forward", path)
        if wrap.norm_first:  # x + Sublayer(LayerNorm(x))
            norm = _item("LayerNorm", "norm", f"{wrap_path}.norm", residual=True)
            items += [norm, sub, _item("Add", "add", wrap_path, add=True)]
        else:  # LayerNorm(x + Sublayer(x)), the paper
            add_norm = _item("Add & Norm", "add_norm", wrap_path, add=True)
            items += [sub | {"residual": True}, add_norm]
    return items


def _column(model: Transformer, stack: str) -> list[dict[str, Any]]:
    """Everything in one half of Figure 1, bottom to top."""
    items = [_layer_items(stack, layer) for layer in getattr(model, stack)]
    if any(it != items[0] for it in items):
        raise ValueError(f"the layers of {stack} differ: Figure 1 draws one of N")
    side = "src" if stack == "encoder" else "tgt"
    embed = resolve(model, f"{side}_embed")
    title = "Input Embedding" if side == "src" else "Output Embedding"
    if embed.scale != 1.0:
        title += " \u00d7 \u221ad_model"
    learned = isinstance(resolve(model, f"{side}_pos"), LearnedPositionalEmbedding)
    col = [
        _item("Inputs" if side == "src" else "Outputs (shifted right)", "text"),
        _item(title, "embedding", f"{side}_embed"),
        _item(
            "\u2295 " + ("Learned Positions" if learned else "Positional Encoding"),
            "position",
            f"{side}_pos",
        ),
    ]
    col += [d | {"frame": True} for d in items[0]]
    name = "enc_norm" if stack == "encoder" else "dec_norm"
    if isinstance(getattr(model, name), nn.LayerNorm):  # pre-norm stacks end so
        col.append(_item("LayerNorm", "norm", name))
    if stack == "decoder":
        tied = model.generator is None
        col += [
            _item(
                "Linear (tied to tgt_embed)" if tied else "Linear",
                "linear",
                "output_weight" if tied else "generator",
            ),
            # the model returns logits; the loss and decoding apply the softmax
            _item("Softmax (loss, decoding)", "softmax", code="log_softmax(dim=-1)"),
            _item("Output Probabilities", "text"),
        ]
    return col


def _place(col: list[dict[str, Any]], bottom: float) -> list[float]:
    """Centre heights of a column's items, from ``bottom`` up (inches)."""
    ys, y, in_frame = [], bottom, False
    for d in col:
        h = 0.2 if d["kind"] == "text" else BOX_H
        if d.get("frame", False) != in_frame:
            y += FRAME_PAD
            in_frame = not in_frame
        ys.append(y + h / 2)
        y += h + GAP
    return ys


def figure_1(model: Transformer) -> Diagram:
    """Figure 1 of the paper, drawn from ``model``'s modules."""
    cfg: ModelConfig = model.cfg
    columns = {
        "encoder": _column(model, "encoder"),
        "decoder": _column(model, "decoder"),
    }
    centre = {"encoder": 1.75, "decoder": 5.25}
    bw = 2.5
    placed = {s: _place(c, 0.12) for s, c in columns.items()}
    top = max(y for ys in placed.values() for y in ys) + 0.15
    height = top + 0.6
    canvas = _Canvas(height)
    drawn: dict[str, list[Box]] = {}
    for stack, col in columns.items():
        cx, ys = centre[stack], placed[stack]
        boxes = []
        for d, y in zip(col, ys, strict=True):
            text = d["kind"] == "text"
            box = Box(
                label=d["label"],
                kind=d["kind"],
                path=d.get("path"),
                code=d.get("code"),
                x=cx,
                y=y,
                w=bw,
                h=0.2 if text else BOX_H,
            )
            boxes.append(canvas.label(box) if text else canvas.box(box))
        drawn[stack] = boxes
        for a, b in zip(boxes, boxes[1:], strict=False):  # the main path
            canvas.arrow([(cx, a.y + a.h / 2), (cx, b.y - b.h / 2)])
        # the frame around one layer, and "N x"
        framed = [b for b, d in zip(boxes, col, strict=True) if d.get("frame")]
        lo = framed[0].y - BOX_H / 2 - FRAME_PAD
        hi = framed[-1].y + BOX_H / 2 + FRAME_PAD
        sign = -1 if stack == "encoder" else 1  # residuals on the outer side
        x0 = cx - bw / 2 - 0.25
        canvas.ax.add_patch(
            FancyBboxPatch(
                (x0, lo),
                bw + 0.5,
                hi - lo,
                boxstyle="round,pad=0,rounding_size=0.12",
                fc="0.93",
                ec="0.45",
                lw=0.9,
                zorder=0,
            )
        )
        n = len(getattr(model, stack))
        stack_box = Box(
            label=f"N = cfg.n_layers = {n} \u00d7",
            kind="stack",
            path=stack,
            x=cx + sign * (bw / 2 + 0.39),
            y=(lo + hi) / 2,
            w=0.2,
            h=hi - lo,
        )
        canvas.label(stack_box, rotation=90)
        # residual connections: from below the first box of a sublayer to its Add
        x_side = cx + sign * (bw / 2 + 0.12)
        start = None
        for b, d in zip(boxes, col, strict=True):
            if d.get("residual"):
                start = b.y - b.h / 2 - GAP / 2
            if d.get("add") and start is not None:
                canvas.arrow(
                    [
                        (cx, start),
                        (x_side, start),
                        (x_side, b.y),
                        (cx + sign * bw / 2, b.y),
                    ]
                )
                start = None
    # the encoder's output is the keys and values of every cross-attention
    enc_out = drawn["encoder"][-1]
    y0 = enc_out.y + enc_out.h / 2
    y1 = y0 + FRAME_PAD + 0.1  # above the encoder's frame
    mid = (centre["encoder"] + centre["decoder"]) / 2
    x_e, x_d = centre["encoder"], centre["decoder"] - bw / 2
    for b, d in zip(drawn["decoder"], columns["decoder"], strict=True):
        if d.get("memory"):
            canvas.arrow([(x_e, y0), (x_e, y1), (mid, y1), (mid, b.y), (x_d, b.y)])
    canvas.text((x_e + mid) / 2, y1 + 0.12, "memory: K, V", PATH_PT)
    wiring = (
        "pre-norm (norm_first): x + Sublayer(LayerNorm(x))"
        if cfg.norm_first
        else "post-norm, as in the paper: LayerNorm(x + Sublayer(x))"
    )
    header = (
        f"d_model = {cfg.d_model}, d_ff = {cfg.d_ff}, h = {cfg.n_heads}, "
        f"d_k = {cfg.head_dim_k}, d_v = {cfg.head_dim_v}"
    )
    canvas.label(Box(header, "text", x=WIDTH / 2, y=height - 0.2), HEAD_PT)
    canvas.label(Box(wiring, "text", x=WIDTH / 2, y=height - 0.42), TITLE_PT)
    return Diagram(canvas.figure, canvas.boxes)


# -- Figure 2 -----------------------------------------------------------------------


def figure_2(source: ModelConfig | MultiHeadAttention) -> Diagram:
    """Figure 2 of the paper for the attention that ``source`` configures.

    Given a ModelConfig, the attention module is built the way the layers build
    theirs (on the meta device: shapes only). Paths resolve on that module; code
    snippets are from :mod:`aiayn.attention`.
    """
    if isinstance(source, ModelConfig):
        with torch.device("meta"):
            mha = _attention(source)
    else:
        mha = source
    h, d_k, d_v = mha.h, mha.d_k, mha.d_v
    d_model = mha.w_q.in_features
    height = 4.8
    canvas = _Canvas(height)
    ax = canvas.ax
    ax.plot([WIDTH / 2, WIDTH / 2], [0.15, height - 0.15], color="0.8", lw=0.8)

    # left: scaled dot-product attention
    cx, bw = 1.6, 2.45
    steps = [
        ("MatMul", "matmul", "q @ k.transpose(-2, -1)"),
        (f"Scale: 1/\u221ad_k = 1/\u221a{d_k}", "scale", "/ math.sqrt(d_k)"),
        ("Mask (opt.)", "mask", 'masked_fill(~mask, float("-inf"))'),
        ("SoftMax", "softmax", "scores.softmax(dim=-1)"),
        ("MatMul", "matmul", "weights @ v"),
    ]
    y, left = 0.85, []
    for label, kind, code in steps:
        left.append(canvas.box(Box(label, kind, code=code, x=cx, y=y, w=bw, h=BOX_H)))
        y += BOX_H + 0.24
    for a, b in zip(left, left[1:], strict=False):
        canvas.arrow([(cx, a.y + a.h / 2), (cx, b.y - b.h / 2)])
    first, last = left[0], left[-1]
    x_v = cx + bw / 2 + 0.3
    for name, x in (("Q", cx - 0.45), ("K", cx + 0.45), ("V", x_v)):
        canvas.label(Box(name, "text", x=x, y=0.25, w=0.2, h=0.2))
    for x in (cx - 0.45, cx + 0.45):
        canvas.arrow([(x, 0.37), (x, first.y - first.h / 2)])
    canvas.arrow([(x_v, 0.37), (x_v, last.y), (cx + bw / 2, last.y)])
    canvas.arrow([(cx, last.y + last.h / 2), (cx, last.y + last.h / 2 + 0.3)])
    canvas.label(
        Box("Scaled Dot-Product Attention", "text", x=WIDTH / 4, y=height - 0.2),
        HEAD_PT,
    )
    canvas.label(Box(f"d_k = {d_k}, d_v = {d_v}", "text", x=WIDTH / 4, y=height - 0.45))

    # right: multi-head attention
    cx, bw = 5.05, 2.6
    shadows = min(h, 4) - 1  # the paper's stack of h copies
    lin = []
    for name, attr, dx in (("V", "w_v", -0.95), ("K", "w_k", 0.0), ("Q", "w_q", 0.95)):
        x = cx + dx
        canvas.label(Box(name, "text", x=x, y=0.25, w=0.2, h=0.2))
        b = canvas.box(
            Box("Linear", "linear", path=attr, x=x, y=0.85, w=0.8, h=BOX_H), shadows
        )
        canvas.arrow([(x, 0.37), (x, b.y - b.h / 2)])
        lin.append(b)
    sdpa = canvas.box(
        Box(
            "Scaled Dot-Product Attention",
            "attention",
            code="F.scaled_dot_product_attention",
            x=cx,
            y=1.9,
            w=bw - 0.2,
            h=BOX_H,
        ),
        shadows,
    )
    for b in lin:
        canvas.arrow([(b.x, b.y + b.h / 2), (b.x, sdpa.y - sdpa.h / 2)])
    x_h = sdpa.x + sdpa.w / 2 + 0.06 * shadows + 0.35  # clear of the copies
    canvas.label(Box(f"h = {h}", "stack", path="h", x=x_h, y=sdpa.y, w=0.4, h=0.2))
    concat = canvas.box(
        Box(
            f"Concat: h \u00b7 d_v = {h * d_v}",
            "concat",
            code="reshape(B, T_q, self.h * self.d_v)",
            x=cx,
            y=2.85,
            w=bw,
            h=BOX_H,
        )
    )
    out = canvas.box(Box("Linear", "linear", path="w_o", x=cx, y=3.51, w=1.2, h=BOX_H))
    canvas.arrow([(cx, sdpa.y + sdpa.h / 2 + 0.18), (cx, concat.y - concat.h / 2)])
    canvas.arrow([(cx, concat.y + concat.h / 2), (cx, out.y - out.h / 2)])
    canvas.arrow([(cx, out.y + out.h / 2), (cx, out.y + out.h / 2 + 0.3)])
    canvas.label(
        Box("Multi-Head Attention", "text", x=3 * WIDTH / 4, y=height - 0.2), HEAD_PT
    )
    canvas.label(
        Box(f"h = {h}, d_model = {d_model}", "text", x=3 * WIDTH / 4, y=height - 0.45)
    )
    return Diagram(canvas.figure, canvas.boxes)
