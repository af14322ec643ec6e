"""The position-wise feed-forward network (section 3.3) and its ReLU dropout,
tensor2tensor's ``relu_dropout`` (ModelConfig.relu_dropout; 0, the paper's, is off)."""

from __future__ import annotations

import pytest
import torch

from aiayn.config import ModelConfig
from aiayn.feed_forward import PositionwiseFeedForward
from aiayn.model import Transformer


def feed_forwards(model: Transformer) -> list[PositionwiseFeedForward]:
    return [m for m in model.modules() if isinstance(m, PositionwiseFeedForward)]


@pytest.mark.parametrize("p", [0.0, 0.25])
def test_relu_dropout_reaches_every_feed_forward_network(p: float) -> None:
    cfg = ModelConfig.tiny(relu_dropout=p)
    ffns = feed_forwards(Transformer(cfg))
    assert len(ffns) == 2 * cfg.n_layers  # one per encoder and decoder layer
    assert all(f.dropout.p == p for f in ffns)


def test_relu_dropout_defaults_to_off() -> None:
    assert ModelConfig().relu_dropout == 0.0 and ModelConfig.big().relu_dropout == 0.0
    assert PositionwiseFeedForward(8, 16).dropout.p == 0.0


def test_relu_dropout_drops_inner_units_only_in_training() -> None:
    torch.manual_seed(0)
    ffn = PositionwiseFeedForward(8, 64, relu_dropout=0.5)
    x = torch.randn(2, 3, 8)
    inner: list[torch.Tensor] = []
    ffn.w_2.register_forward_pre_hook(lambda m, args: inner.append(args[0]))
    ffn.eval()
    expected = ffn.w_2(ffn.w_1(x).relu())  # equation 2, no dropout
    torch.testing.assert_close(ffn(x), expected)
    ffn.train()
    ffn(x)
    dropped = inner[-1]  # (B, T, d_ff) after the ReLU and dropout
    relu = ffn.w_1(x).relu()
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], relu[kept] * 2)  # scaled 1 / (1 - p)
    assert ((relu > 0) & ~kept).any()  # some active units were dropped


def outputs_twice(relu_dropout: float, train: bool) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(relu_dropout=relu_dropout)  # dropout = 0 elsewhere
    model = Transformer(cfg).train(train)
    src, tgt_in = torch.tensor([[5, 6, 7, 2]]), torch.tensor([[1, 5, 6]])
    with torch.no_grad():
        return model(src, tgt_in), model(src, tgt_in)


def test_relu_dropout_changes_training_outputs_only_when_positive() -> None:
    tiny = ModelConfig.tiny()
    assert tiny.dropout == 0.0 and tiny.attention_dropout == 0.0  # only ReLU dropout
    torch.testing.assert_close(*outputs_twice(0.0, train=True))  # off: no noise
    torch.testing.assert_close(*outputs_twice(0.3, train=False))  # eval: no noise
    a, b = outputs_twice(0.3, train=True)
    assert not torch.allclose(a, b)
    off, _ = outputs_twice(0.0, train=False)
    torch.testing.assert_close(outputs_twice(0.3, train=False)[0], off)  # same weights
