"""Why self-attention (section 4): Table 1, measured.

> Table 1: Maximum path lengths, per-layer complexity and minimum number of
> sequential operations for different layer types. n is the sequence length, d is
> the representation dimension, k is the kernel size of convolutions and r the size
> of the neighborhood in restricted self-attention.

| Layer type                  | Complexity per layer | Sequential | Max path length |
|-----------------------------|----------------------|------------|-----------------|
| Self-Attention              | O(n^2 · d)           | O(1)       | O(1)            |
| Recurrent                   | O(n · d^2)           | O(n)       | O(n)            |
| Convolutional               | O(k · n · d^2)       | O(1)       | O(log_k(n))     |
| Self-Attention (restricted) | O(r · n · d)         | O(1)       | O(n/r)          |

> A single convolutional layer with kernel width k < n does not connect all pairs of
> input and output positions. Doing so requires a stack of O(n/k) convolutional
> layers in the case of contiguous kernels, or O(log_k(n)) in the case of dilated
> convolutions [...]. Separable convolutions [6], however, decrease the complexity
> considerably, to O(k · n · d + n · d^2).

Every row is a small module mapping (B, n, d) -> (B, n, d). Complexity is measured
(FLOPs, wall time, memory) and fitted as a log-log slope. Sequential operations and
path lengths are computed from each layer's dependency graph, never from formulas:

- sequential operations: the longest path, in edges, through one layer's DAG;
- maximum path length: the shortest path, in edges, between the farthest input and
  output positions, in a stack of the layer just deep enough to connect every pair
  (every pair for bidirectional layers; j <= i for the causal recurrent layer and
  dilated convolution). So attention has 1 and recurrence n: the input edge
  x_j -> h_j plus n - 1 recurrent hops (count only the hops and it is n - 1).

Two conventions differ from the paper by constant factors: r is the *radius* of the
restricted window (2r + 1 keys), and ``self_attention`` is Table 1's operation
softmax(x x^T / sqrt(d)) x, without the Q, K, V, O projections, which cost
O(n · d^2) like a recurrent layer (``self_attention_projected`` has them).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from .attention import scaled_dot_product_attention
from .errors import AiaynError

# --- the layers ---------------------------------------------------------------


class SelfAttentionLayer(nn.Module):
    """Single-head self-attention over all n positions: O(n^2 · d)."""

    def __init__(self, d_model: int, projections: bool = False) -> None:
        super().__init__()
        self.projections = projections  # W^Q, W^K, W^V, W^O add O(n · d^2)
        if projections:
            self.proj = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, n, d); mask: (n, n) boolean, True where attending is allowed."""
        if not self.projections:
            return scaled_dot_product_attention(x, x, x, mask)[0]  # (B, n, d)
        w_q, w_k, w_v, w_o = self.proj
        out, _ = scaled_dot_product_attention(w_q(x), w_k(x), w_v(x), mask)
        return w_o(out)  # (B, n, d)


class RecurrentLayer(nn.Module):
    """A tanh RNN, h_t = tanh(W_x x_t + W_h h_{t-1}): O(n · d^2), n steps.

    W_x is applied to all positions at once (parallel, as cuDNN does); the Python
    loop over t is the critical path of n sequential W_h products. FlopCounterMode
    sees the matmuls only, not the additions and tanh (O(n · d) either way).
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.w_x = nn.Linear(d_model, d_model)
        self.w_h = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, n, d = x.shape
        u = self.w_x(x)  # (B, n, d)
        h = x.new_zeros(B, d)  # (B, d)
        hs = []
        for t in range(n):  # the O(n) sequential operations
            h = torch.tanh(u[:, t] + self.w_h(h))  # (B, d)
            hs.append(h)
        return torch.stack(hs, dim=1)  # (B, n, d)


class ConvolutionalLayer(nn.Module):
    """Conv1d with kernel k over positions: O(k · n · d^2).

    ``same`` padding (PyTorch's: dilation · (k - 1) // 2 zeros on the left) or, with
    ``causal``, all padding on the left, as in a dilated stack [18].
    """

    def __init__(
        self, d_model: int, k: int = 3, dilation: int = 1, causal: bool = False
    ) -> None:
        super().__init__()
        self.left = dilation * (k - 1) if causal else 0
        padding = 0 if causal else "same"
        self.conv = nn.Conv1d(d_model, d_model, k, padding=padding, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        y = x.transpose(1, 2)  # (B, d, n)
        if self.left:
            y = F.pad(y, (self.left, 0))  # (B, d, left + n)
        return self.conv(y).transpose(1, 2)  # (B, n, d)


class SeparableConvolutionalLayer(nn.Module):
    """Depthwise (k per channel) then pointwise (d x d) conv: O(k · n · d + n · d^2)."""

    def __init__(self, d_model: int, k: int = 3) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(d_model, d_model, k, padding="same", groups=d_model)
        self.pointwise = nn.Conv1d(d_model, d_model, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.depthwise(x.transpose(1, 2))  # (B, d, n)
        return self.pointwise(y).transpose(1, 2)  # (B, n, d)


class RestrictedSelfAttentionLayer(nn.Module):
    """Each position attends to the 2r + 1 positions within radius r: O(r · n · d).

    Keys are gathered into windows, so cost and memory are linear in n; it equals
    :class:`SelfAttentionLayer` under :func:`banded_mask` (tested). The gather
    copies (2r + 1) · d numbers per position, so while r · d > n it moves more
    memory than full attention's n x n weights, and its backward is slower.
    """

    def __init__(self, d_model: int, r: int = 16) -> None:
        super().__init__()
        self.r = r

    def forward(self, x: Tensor) -> Tensor:
        B, n, d = x.shape
        r = min(self.r, n - 1)
        w = 2 * r + 1
        windows = F.pad(x, (0, 0, r, r)).unfold(1, w, 1)  # (B, n, d, w)
        scores = torch.einsum("bnd,bndw->bnw", x, windows) / math.sqrt(d)  # (B, n, w)
        i, t = torch.arange(n, device=x.device), torch.arange(w, device=x.device)
        pos = i[:, None] + t - r  # (n, w): the position in each window slot
        outside = (pos < 0) | (pos >= n)  # zero padding, not a position
        weights = scores.masked_fill(outside, float("-inf")).softmax(-1)  # (B, n, w)
        return torch.einsum("bnw,bndw->bnd", weights, windows)  # (B, n, d)


def banded_mask(n: int, r: int) -> Tensor:
    """(n, n) boolean: True where |i - j| <= r."""
    i = torch.arange(n)
    return (i[:, None] - i[None, :]).abs() <= r  # (n, n)


KINDS = (
    "self_attention",
    "self_attention_projected",
    "recurrent",
    "convolutional",
    "separable_convolutional",
    "dilated_convolutional",
    "restricted_self_attention",
)
CAUSAL = ("recurrent", "dilated_convolutional")  # only j <= i can ever connect


def make_layer(kind: str, d: int, k: int = 3, r: int = 16) -> nn.Module:
    """One layer of the given kind (the dilated one is layer 1 of its stack)."""
    factories: dict[str, Callable[[], nn.Module]] = {
        "self_attention": lambda: SelfAttentionLayer(d),
        "self_attention_projected": lambda: SelfAttentionLayer(d, projections=True),
        "recurrent": lambda: RecurrentLayer(d),
        "convolutional": lambda: ConvolutionalLayer(d, k),
        "separable_convolutional": lambda: SeparableConvolutionalLayer(d, k),
        "dilated_convolutional": lambda: ConvolutionalLayer(d, k, k, causal=True),
        "restricted_self_attention": lambda: RestrictedSelfAttentionLayer(d, r),
    }
    if kind not in factories:
        raise AiaynError(f"unknown layer kind {kind!r}; choose from {', '.join(KINDS)}")
    return factories[kind]()


# --- connectivity: sequential operations and path lengths ---------------------


def position_adjacency(
    kind: str, n: int, k: int = 3, r: int = 16, depth: int = 0
) -> Tensor:
    """(n, n) boolean: A[i, j] is True when output position i reads input j.

    ``depth`` is the layer's index in a stack (dilation k**depth when dilated).
    """
    if kind in ("self_attention", "self_attention_projected"):
        offsets = range(-n, n)
    elif kind in ("convolutional", "separable_convolutional"):
        offsets = [t - (k - 1) // 2 for t in range(k)]  # PyTorch's "same" padding
    elif kind == "dilated_convolutional":
        offsets = [-t * k**depth for t in range(k)]  # causal, dilation k**depth
    elif kind == "restricted_self_attention":
        offsets = range(-r, r + 1)
    else:
        raise AiaynError(f"{kind!r} has no position adjacency; see dependency_graph")
    i = torch.arange(n)
    offset = i[None, :] - i[:, None]  # (n, n): j - i
    return torch.isin(offset, torch.tensor(list(offsets)))  # (n, n)


def dependency_graph(
    kind: str, n: int, k: int = 3, r: int = 16, depth: int = 0
) -> Tensor:
    """(2n, 2n) boolean DAG of one layer: adj[v, u] is True when node v reads node u.

    Nodes 0..n-1 are the inputs x_j, nodes n..2n-1 the outputs (the hidden states
    h_t for the recurrent layer), numbered in topological order.
    """
    adj = torch.zeros(2 * n, 2 * n, dtype=torch.bool)
    t = torch.arange(n)
    if kind == "recurrent":
        adj[n + t, t] = True  # x_t -> h_t
        adj[n + t[1:], n + t[:-1]] = True  # h_{t-1} -> h_t
    else:
        adj[n:, :n] = position_adjacency(kind, n, k, r, depth)
    return adj


def _shortest_paths(adj: Tensor, n: int) -> Tensor:
    """(n, n) edges on the shortest path from input j to output i (inf: none)."""
    dist = torch.full((n, adj.size(0)), math.inf)  # (sources, nodes)
    dist[:, :n].fill_diagonal_(0.0)
    for v in range(n, adj.size(0)):  # topological order: predecessors are done
        dist[:, v] = 1 + dist[:, adj[v]].amin(dim=1)
    return dist[:, n:].T  # (outputs, inputs)


@functools.lru_cache(maxsize=256)
def sequential_ops(kind: str, n: int, k: int = 3, r: int = 16) -> int:
    """Longest path, in edges, through one layer's dependency graph."""
    adj = dependency_graph(kind, n, k, r)
    depth = torch.zeros(adj.size(0), dtype=torch.long)
    for v in range(n, adj.size(0)):
        depth[v] = 1 + depth[adj[v]].max()
    return int(depth[n:].max())


def _compose(a: Tensor, b: Tensor) -> Tensor:
    """Boolean matrix product: (a ∘ b)[i, j] = OR_m a[i, m] AND b[m, j]."""
    return (a.float() @ b.float()) > 0


@functools.lru_cache(maxsize=256)
def max_path_length(kind: str, n: int, k: int = 3, r: int = 16) -> int:
    """Max over position pairs of the shortest path, stacking layers as needed."""
    need = torch.ones(n, n, dtype=torch.bool)
    need = need.tril() if kind in CAUSAL else need  # (n, n): pairs that must connect
    D = _shortest_paths(dependency_graph(kind, n, k, r), n)  # (n, n)
    if D[need].isfinite().all():
        return int(D[need].max())
    if not (D[D.isfinite()] == 1).all():
        raise AiaynError(f"cannot stack {kind!r}: its paths are not single edges")
    full = lambda reach: bool(reach[need].all())  # noqa: E731
    if kind == "dilated_convolutional":  # a different adjacency at each depth
        reach = position_adjacency(kind, n, k, r, 0)
        for depth in range(1, n):
            reach = _compose(position_adjacency(kind, n, k, r, depth), reach)
            if full(reach):
                return depth + 1
        raise AiaynError(f"{kind!r} with k={k} never connects n={n} positions")
    powers = [D.isfinite()]  # A^(2^i): one edge per layer, A includes i -> i
    while not full(powers[-1]):
        if len(powers) > n.bit_length() + 1:
            raise AiaynError(f"{kind!r} with k={k} never connects n={n} positions")
        powers.append(_compose(powers[-1], powers[-1]))
    reach, layers = None, 0  # binary lifting: largest depth that is not yet full
    for i in reversed(range(len(powers) - 1)):
        step = powers[i] if reach is None else _compose(powers[i], reach)
        if not full(step):
            reach, layers = step, layers + 2**i
    return layers + 1


# --- measurement ----------------------------------------------------------------


def _device_of(layer: nn.Module) -> torch.device:
    return next(layer.parameters(), torch.empty(0)).device


def count_flops(layer: nn.Module, n: int, d: int, batch: int = 1) -> int:
    """Forward FLOPs by FlopCounterMode: 2 per multiply-add of mm/bmm/conv.

    It ignores elementwise work (softmax, tanh, bias adds, masking), all O(n · d)
    or O(n^2), and the Python-loop overhead of the recurrent layer.
    """
    x = torch.randn(batch, n, d, device=_device_of(layer))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        layer(x)
    return int(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_layer(
    layer: nn.Module,
    n: int,
    d: int,
    device: str | torch.device = "cpu",
    backward: bool = True,
    repeats: int = 5,
    warmup: int = 1,
    batch: int = 1,
) -> tuple[float, float]:
    """Median milliseconds of a forward (no grad) and of forward + backward.

    The second is nan when ``backward`` is False.
    """
    device = torch.device(device)
    layer = layer.to(device)
    x = torch.randn(batch, n, d, device=device)

    def forward() -> None:
        with torch.no_grad():
            layer(x)

    def forward_backward() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x.detach().requires_grad_(True)).sum().backward()

    def median_ms(fn: Callable[[], None]) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times.append(1000 * (time.perf_counter() - start))
        return statistics.median(times)

    return median_ms(forward), median_ms(forward_backward) if backward else math.nan


def peak_memory(
    layer: nn.Module, n: int, d: int, device: str | torch.device = "cpu", batch: int = 1
) -> int:
    """Bytes a forward + backward needs beyond the input and the weights.

    CUDA: torch.cuda.max_memory_allocated above the starting allocation (activations,
    gradients, workspaces). CPU: the bytes of the distinct storages autograd saves
    for backward (activations only; the saved input counts, weights do not).
    """
    device = torch.device(device)
    layer = layer.to(device)
    x = torch.randn(batch, n, d, device=device, requires_grad=True)
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        layer(x).sum().backward()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - start
    weights = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    return sum(saved.values())


def fit_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x: the exponent of y ~ x^p."""
    if len(xs) != len(ys) or len(xs) < 2 or min(*xs, *ys) <= 0:
        raise AiaynError("fit_slope needs >= 2 positive (x, y) pairs of equal length")
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


# --- the table --------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """A sweep: every n in ns at every d in ds, for each layer kind."""

    ns: tuple[int, ...]  # sequence lengths
    ds: tuple[int, ...]  # representation sizes
    repeats: int = 3  # timed runs per row; the median is kept
    batch: int = 1
    k: int = 3  # convolution kernel width
    r: int = 16  # restricted attention radius
    graph_max_n: int = 1024  # path lengths above this n are skipped (O(n^3) CPU)


BUDGETS = {
    "tiny": Budget(ns=(8, 16, 32), ds=(8, 16, 32), repeats=1, r=4),
    "small": Budget(
        ns=tuple(2**i for i in range(4, 11)), ds=(64, 128, 256, 512), repeats=5
    ),
    "large": Budget(
        ns=tuple(2**i for i in range(6, 14)), ds=(64, 256, 1024), repeats=10
    ),
}


def _budget(budget: Budget | str) -> Budget:
    if isinstance(budget, Budget):
        return budget
    if budget not in BUDGETS:
        raise AiaynError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    return BUDGETS[budget]


def measure_table(
    ns: Sequence[int] | None = None,
    ds: Sequence[int] | None = None,
    device: str = "cpu",
    kinds: Sequence[str] = KINDS,
    budget: Budget | str = "small",
    progress: bool = True,
) -> list[dict]:
    """One row per (d, n, kind): FLOPs, times, memory, sequential ops, path length.

    ``ns`` and ``ds`` default to the budget's; path lengths are None above
    ``budget.graph_max_n``.
    """
    b = _budget(budget)
    ns, ds = tuple(ns or b.ns), tuple(ds or b.ds)
    for kind in kinds:
        make_layer(kind, 1)  # fail on a bad kind before measuring anything
    grid = [(d, n, kind) for d in ds for n in ns for kind in kinds]
    rows = []
    for d, n, kind in tqdm(grid, desc="Table 1", disable=not progress):
        torch.manual_seed(0)
        layer = make_layer(kind, d, b.k, b.r).to(device)
        fwd_ms, fwd_bwd_ms = time_layer(
            layer, n, d, device, repeats=b.repeats, batch=b.batch
        )
        graph = n <= b.graph_max_n  # connectivity is cached per (kind, n, k, r)
        seq = sequential_ops(kind, n, b.k, b.r) if graph else None
        path = max_path_length(kind, n, b.k, b.r) if graph else None
        rows.append(
            {
                "kind": kind,
                "n": n,
                "d": d,
                "k": b.k,
                "r": b.r,
                "batch": b.batch,
                "flops": count_flops(layer, n, d, b.batch),
                "fwd_ms": fwd_ms,
                "fwd_bwd_ms": fwd_bwd_ms,
                "peak_bytes": peak_memory(layer, n, d, device, b.batch),
                "sequential_ops": seq,
                "max_path_length": path,
                "device": str(device),
                "torch_version": torch.__version__,
            }
        )
    return rows


METRICS = ("flops", "fwd_ms", "fwd_bwd_ms", "peak_bytes")


def slopes(rows: list[dict], metrics: Sequence[str] = METRICS) -> list[dict]:
    """Fitted exponents: each metric against n at each d, and against d at each n.

    ``slope`` fits every point, ``tail_slope`` the three largest x (closer to the
    asymptote, past fixed overheads).
    """
    out = []
    for kind in dict.fromkeys(row["kind"] for row in rows):
        mine = [row for row in rows if row["kind"] == kind]
        for vs, fixed in (("n", "d"), ("d", "n")):
            for value in sorted({row[fixed] for row in mine}):
                line = sorted((row[vs], row) for row in mine if row[fixed] == value)
                for metric in metrics:
                    xs = [x for x, _ in line]
                    ys = [row[metric] for _, row in line]
                    if len(xs) < 3 or not all(y > 0 for y in ys):
                        continue
                    out.append(
                        {
                            "kind": kind,
                            "metric": metric,
                            "vs": vs,
                            fixed: value,
                            "slope": round(fit_slope(xs, ys), 3),
                            "tail_slope": round(fit_slope(xs[-3:], ys[-3:]), 3),
                        }
                    )
    return out


def crossovers(
    rows: list[dict],
    a: str = "self_attention",
    b: str = "recurrent",
    metrics: Sequence[str] = METRICS,
) -> list[dict]:
    """For each d and metric, the n (log-interpolated) where ``a`` starts to cost
    at least as much as ``b``; None if it does not within the measured ns."""
    out = []
    for d in sorted({row["d"] for row in rows}):
        for metric in metrics:
            cost = {
                (row["kind"], row["n"]): row[metric] for row in rows if row["d"] == d
            }
            ns = sorted(n for kind, n in cost if kind == a and (b, n) in cost)
            gap = [math.log(cost[a, n] / cost[b, n]) for n in ns]  # < 0: a cheaper
            cross = None
            for i, g in enumerate(gap):
                if g >= 0:
                    if i == 0:
                        cross = float(ns[0]) if g == 0 else None
                    else:  # interpolate log n where the log-ratio crosses 0
                        f = gap[i - 1] / (gap[i - 1] - g)
                        cross = ns[i - 1] * (ns[i] / ns[i - 1]) ** f
                    break
            out.append(
                {
                    "a": a,
                    "b": b,
                    "metric": metric,
                    "d": d,
                    "n_cross": cross,
                    "a_over_b_at_min_n": math.exp(gap[0]) if gap else None,
                    "a_over_b_at_max_n": math.exp(gap[-1]) if gap else None,
                }
            )
    return out


def device_name(device: str) -> str:
    """The accelerator's or CPU's model name."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _write_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` atomically, with the user's umask."""
    from .checkpoint import atomic_write

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), json.dumps(data, indent=1) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m aiayn.complexity`` (and ``aiayn complexity``)."""
    parser.add_argument(
        "--device", help="cpu, cuda, cuda:1 ... (default or auto: cuda if any)"
    )
    parser.add_argument("--budget", default="small", choices=list(BUDGETS))
    parser.add_argument(
        "--kinds", nargs="+", default=list(KINDS), metavar="KIND", help=", ".join(KINDS)
    )
    parser.add_argument("--ns", nargs="+", type=int, help="override the budget's ns")
    parser.add_argument("--ds", nargs="+", type=int, help="override the budget's ds")
    parser.add_argument("--out", default="table1.json", help="JSON file to write")
    parser.add_argument(
        "--threads", type=int, help="CPU threads (1 keeps timings steady when shared)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, command: str) -> int:
    """Measure the table :func:`add_arguments` describes and write ``--out``."""
    from .cli import check_at_least, check_output_file
    from .env import resolve_device

    device = str(resolve_device(None if args.device == "auto" else args.device))
    check_output_file(args.out)
    check_at_least(args.threads, "--threads")
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        raise AiaynError(f"unknown --kinds {unknown}; choose from {', '.join(KINDS)}")
    for flag, values in (("--ns", args.ns), ("--ds", args.ds)):
        for v in values or []:
            check_at_least(v, flag)
    if args.threads:
        torch.set_num_threads(args.threads)
    start, load = time.perf_counter(), os.getloadavg()[0]
    rows = measure_table(
        args.ns, args.ds, device, args.kinds, args.budget, not args.no_progress
    )
    data = {
        "command": command,
        "device": device,
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - start, 1),
        "load_average_1min": [load, os.getloadavg()[0]],  # before, after: others?
        "budget": {"name": args.budget, **asdict(_budget(args.budget))},
        "rows": rows,
        "slopes": slopes(rows),
        "crossovers": crossovers(rows),
    }
    _write_json(args.out, data)
    for s in data["slopes"]:  # the exponents at the largest fixed n or d
        fixed = "d" if s["vs"] == "n" else "n"
        if s[fixed] == max(row[fixed] for row in rows):
            print(
                f"{s['kind']:>26} {s['metric']:>10} vs {s['vs']} ({fixed}={s[fixed]}):"
                f" slope {s['slope']:.2f}, tail {s['tail_slope']:.2f}"
            )
    print(f"wrote {len(rows)} rows to {args.out} in {data['wall_s']} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aiayn.complexity --device cpu --budget small --out t1.json``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m aiayn.complexity", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
        return run(args, shlex.join(["python", "-m", "aiayn.complexity", *argv]))
    except AiaynError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
