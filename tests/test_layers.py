"""Encoder and decoder layers (section 3.1): built with the config's resolved widths."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aiayn.config import ModelConfig
from aiayn.layers import DecoderLayer, EncoderLayer


@pytest.mark.parametrize(
    ("overrides", "d_k", "d_v"),
    [
        ({"d_model": 64}, 16, 16),  # d_k = d_v = None follow d_model / h
        ({"n_heads": 8}, 4, 4),
        ({"d_k": 12, "d_v": 6}, 12, 6),  # explicit widths stay (Table 3 row B)
    ],
)
def test_layers_use_the_resolved_head_widths(
    overrides: dict[str, int], d_k: int, d_v: int
) -> None:
    cfg = replace(ModelConfig.tiny(), **overrides)
    h = cfg.n_heads
    enc, dec = EncoderLayer(cfg), DecoderLayer(cfg)
    for attn in (enc.self_attn, dec.self_attn, dec.cross_attn):
        assert (attn.d_k, attn.d_v) == (d_k, d_v)
        assert attn.w_q.weight.shape == (h * d_k, cfg.d_model)
        assert attn.w_v.weight.shape == (h * d_v, cfg.d_model)
        assert attn.w_o.weight.shape == (cfg.d_model, h * d_v)


def test_layers_pass_relu_dropout_to_the_feed_forward_network() -> None:
    cfg = ModelConfig.tiny(relu_dropout=0.2)
    assert EncoderLayer(cfg).feed_forward.dropout.p == 0.2
    assert DecoderLayer(cfg).feed_forward.dropout.p == 0.2
