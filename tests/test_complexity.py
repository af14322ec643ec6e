"""Tests for aiayn.complexity: Table 1's layers, their FLOPs and their connectivity."""

from __future__ import annotations

import json
import math

import pytest
import torch

from aiayn.complexity import (
    BUDGETS,
    KINDS,
    RestrictedSelfAttentionLayer,
    SelfAttentionLayer,
    banded_mask,
    count_flops,
    crossovers,
    dependency_graph,
    fit_slope,
    main,
    make_layer,
    max_path_length,
    measure_table,
    peak_memory,
    position_adjacency,
    sequential_ops,
    slopes,
    time_layer,
)
from aiayn.errors import AiaynError


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n", "k"), [(1, 3), (7, 3), (12, 4), (9, 5)])
def test_every_layer_maps_b_n_d_to_b_n_d(kind: str, n: int, k: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, n, 8)  # (B, n, d)
    y = make_layer(kind, 8, k=k, r=2)(x)
    assert y.shape == (2, n, 8)
    assert torch.isfinite(y).all()


def test_unknown_kind_is_a_user_error() -> None:
    with pytest.raises(AiaynError, match="unknown layer kind"):
        make_layer("lstm", 8)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [3, 4])
def test_graph_matches_the_modules_jacobian(kind: str, k: int) -> None:
    """Output i depends on input j exactly where the dependency graph has a path."""
    n, d = 11, 3
    torch.manual_seed(0)
    layer = make_layer(kind, d, k=k, r=2).double()
    x = torch.randn(1, n, d, dtype=torch.double)
    jac = torch.autograd.functional.jacobian(layer, x)  # (1, n, d, 1, n, d)
    depends = jac[0, :, :, 0].abs().sum(dim=(1, 3)) > 0  # (n, n): output i, input j
    depth = 1 if kind == "dilated_convolutional" else 0  # make_layer's dilation k
    adj = dependency_graph(kind, n, k=k, r=2, depth=depth).double()
    reach = torch.linalg.matrix_power(adj + torch.eye(2 * n), 2 * n) > 0
    assert torch.equal(depends, reach[n:, :n])


def test_restricted_attention_equals_banded_full_attention() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 20, 8, requires_grad=True)  # (B, n, d)
    y = RestrictedSelfAttentionLayer(8, r=3)(x)
    y_ref = SelfAttentionLayer(8)(x, mask=banded_mask(20, 3))
    torch.testing.assert_close(y, y_ref)
    (g,) = torch.autograd.grad(y.square().sum(), x)
    (g_ref,) = torch.autograd.grad(y_ref.square().sum(), x)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("i", [0, 9, 19])
def test_restricted_attention_ignores_positions_outside_r(i: int) -> None:
    n, r = 20, 3
    torch.manual_seed(0)
    x = torch.randn(1, n, 8, requires_grad=True)
    RestrictedSelfAttentionLayer(8, r)(x)[0, i].sum().backward()
    touched = x.grad[0].abs().sum(dim=-1) > 0  # (n,)
    inside = (torch.arange(n) - i).abs() <= r
    assert torch.equal(touched, inside)


def test_flops_match_the_closed_forms() -> None:
    """What FlopCounterMode counts: 2 per multiply-add of every matmul and conv."""
    n, d, k, r = 32, 16, 3, 4
    assert count_flops(make_layer("self_attention", d), n, d) == 4 * n * n * d
    projected = make_layer("self_attention_projected", d)
    assert count_flops(projected, n, d) == 4 * n * n * d + 8 * n * d * d
    assert count_flops(make_layer("recurrent", d), n, d) == 4 * n * d * d
    assert count_flops(make_layer("convolutional", d, k), n, d) == 2 * k * n * d * d
    separable = make_layer("separable_convolutional", d, k)
    assert count_flops(separable, n, d) == 2 * k * n * d + 2 * n * d * d
    restricted = make_layer("restricted_self_attention", d, r=r)
    assert count_flops(restricted, n, d) == 4 * (2 * r + 1) * n * d
    assert count_flops(make_layer("recurrent", d), n, d, batch=3) == 12 * n * d * d


SLOPES = [  # kind, exponent in n (d = 16), exponent in d (n = 64)
    ("self_attention", 2.0, 1.0),
    ("recurrent", 1.0, 2.0),
    ("convolutional", 1.0, 2.0),
    ("dilated_convolutional", 1.0, 2.0),
    ("restricted_self_attention", 1.0, 1.0),
]


@pytest.mark.parametrize(("kind", "in_n", "in_d"), SLOPES)
def test_fitted_flop_slopes_recover_table_1(kind: str, in_n: float, in_d: float):
    ns, ds = [16, 32, 64, 128], [8, 16, 32, 64]
    flops_n = [count_flops(make_layer(kind, 16, r=4), n, 16) for n in ns]
    flops_d = [count_flops(make_layer(kind, d, r=4), 64, d) for d in ds]
    assert fit_slope(ns, flops_n) == pytest.approx(in_n, abs=0.15)
    assert fit_slope(ds, flops_d) == pytest.approx(in_d, abs=0.15)


def test_flops_grow_linearly_in_k_and_r() -> None:
    ks, rs = [3, 5, 9, 17], [2, 4, 8, 16]
    conv = [count_flops(make_layer("convolutional", 16, k=k), 64, 16) for k in ks]
    attn = [
        count_flops(make_layer("restricted_self_attention", 16, r=r), 256, 16)
        for r in rs
    ]
    windows = [2 * r + 1 for r in rs]
    assert fit_slope(ks, conv) == pytest.approx(1.0, abs=0.15)
    assert fit_slope(windows, attn) == pytest.approx(1.0, abs=0.15)


def test_separable_convolution_is_cheaper_by_about_k() -> None:
    n, d, k = 64, 256, 7
    conv = count_flops(make_layer("convolutional", d, k), n, d)
    separable = count_flops(make_layer("separable_convolutional", d, k), n, d)
    assert conv / separable == pytest.approx(k * d / (k + d))


@pytest.mark.parametrize("n", [1, 2, 5, 16, 37])
def test_path_lengths_of_attention_and_recurrence(n: int) -> None:
    assert max_path_length("self_attention", n) == 1
    assert max_path_length("recurrent", n) == n  # x_1 -> h_1, then n - 1 hops


@pytest.mark.parametrize("n", [2, 3, 10, 17, 40])
@pytest.mark.parametrize("k", [3, 4, 5, 6, 7])
def test_contiguous_convolution_needs_n_over_k_layers(n: int, k: int) -> None:
    # "same" padding reaches (k-1)//2 positions back and k//2 forward per layer;
    # the shorter side, (k-1)//2, sets the depth that connects 1 and n.
    expected = math.ceil((n - 1) / ((k - 1) // 2))
    assert max_path_length("convolutional", n, k=k) == expected
    assert max_path_length("separable_convolutional", n, k=k) == expected


@pytest.mark.parametrize("n", [2, 3, 8, 9, 10, 27, 28, 64])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_dilated_convolution_needs_log_k_n_layers(n: int, k: int) -> None:
    # a causal stack with dilations 1, k, k^2, ... reaches back k^L - 1 positions
    expected = next(layers for layers in range(n + 1) if k**layers >= n)
    assert max_path_length("dilated_convolutional", n, k=k) == expected


@pytest.mark.parametrize("n", [2, 9, 10, 33, 50])
@pytest.mark.parametrize("r", [1, 2, 4, 8])
def test_restricted_attention_needs_n_over_r_layers(n: int, r: int) -> None:
    expected = math.ceil((n - 1) / r)
    assert max_path_length("restricted_self_attention", n, r=r) == expected


def test_even_k_two_never_connects_backwards() -> None:
    with pytest.raises(AiaynError, match="never connects"):
        max_path_length("convolutional", 6, k=2)


@pytest.mark.parametrize("kind", KINDS)
def test_sequential_ops_are_constant_except_recurrence(kind: str) -> None:
    ops = [sequential_ops(kind, n) for n in (1, 4, 16, 64)]
    assert ops == ([1, 4, 16, 64] if kind == "recurrent" else [1, 1, 1, 1])


def test_dilated_convolution_reads_k_taps_spaced_k_to_the_depth() -> None:
    adj = position_adjacency("dilated_convolutional", 20, k=3, depth=2)
    assert adj[19].nonzero().flatten().tolist() == [1, 10, 19]  # dilation 9
    assert torch.equal(adj, adj.tril())  # causal


def test_fit_slope() -> None:
    xs = [1.0, 2.0, 4.0, 8.0]
    assert fit_slope(xs, [3 * x**1.5 for x in xs]) == pytest.approx(1.5)
    with pytest.raises(AiaynError):
        fit_slope([1.0], [1.0])
    with pytest.raises(AiaynError):
        fit_slope([1.0, 2.0], [0.0, 1.0])


def test_saved_memory_is_quadratic_for_attention_linear_for_recurrence() -> None:
    ns, d = [64, 128, 256, 512], 4
    attn = [peak_memory(make_layer("self_attention", d), n, d) for n in ns]
    rnn = [peak_memory(make_layer("recurrent", d), n, d) for n in ns]
    assert attn[0] == 4 * (64 * d + 64 * 64)  # the input and the softmax weights
    assert fit_slope(ns, attn) > 1.8
    assert fit_slope(ns, rnn) == pytest.approx(1.0, abs=0.15)


def test_time_layer_returns_positive_medians() -> None:
    layer = make_layer("convolutional", 8)
    fwd, fwd_bwd = time_layer(layer, 16, 8, repeats=2)
    assert fwd > 0 and fwd_bwd > 0
    assert math.isnan(time_layer(layer, 16, 8, backward=False, repeats=1)[1])


def test_measure_table_rows_and_slopes() -> None:
    kinds = ["self_attention", "recurrent"]
    rows = measure_table(device="cpu", kinds=kinds, budget="tiny", progress=False)
    tiny = BUDGETS["tiny"]
    assert len(rows) == len(tiny.ns) * len(tiny.ds) * len(kinds)
    for row in rows:
        assert row["flops"] > 0 and row["fwd_ms"] > 0 and row["peak_bytes"] > 0
        recurrent = row["kind"] == "recurrent"
        assert row["sequential_ops"] == (row["n"] if recurrent else 1)
        assert row["max_path_length"] == (row["n"] if recurrent else 1)
    fits = {
        (s["kind"], s["vs"]): s["slope"]
        for s in slopes(rows)
        if s["metric"] == "flops" and s.get("d", s.get("n")) == 16
    }
    assert fits[("self_attention", "n")] == pytest.approx(2.0, abs=0.01)
    assert fits[("recurrent", "d")] == pytest.approx(2.0, abs=0.01)
    # FLOPs: 4 n^2 d against 4 n d^2 cross exactly at n = d
    cross = crossovers(rows, metrics=["flops"])
    assert [c["n_cross"] for c in cross] == pytest.approx([8.0, 16.0, 32.0])


def test_main_writes_json_with_provenance(tmp_path) -> None:
    out = tmp_path / "t1.json"
    argv = ["--device", "cpu", "--budget", "tiny", "--kinds", "convolutional"]
    assert main([*argv, "--ns", "8", "16", "--ds", "8", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("python -m aiayn.complexity --device cpu")
    assert data["torch_version"] == torch.__version__ and data["wall_s"] >= 0
    assert {row["kind"] for row in data["rows"]} == {"convolutional"}
    assert main(["--budget", "tiny", "--kinds", "lstm", "--out", str(out)]) == 2
