"""`blowup bench` end to end (tiny), its skip logic, and the Taylor rules the fast `ntp` engine adds."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch.autograd import gradcheck, gradgradcheck
from torch.func import jacrev, vmap

from blowup.analysis import bench
from blowup.engine import jet
from blowup.engine.derivatives import input_derivatives
from blowup.engine.jet import Jet
from blowup.engine.models import MLP


@pytest.mark.slow
# --- the command -------------------------------------------------------------------------------
def test_smoke_run_writes_csv_plots_and_reasons(tmp_path):
    result = subprocess.run(
        # budgets no cell can reach: the only skip is the order cap, whatever the machine's speed
        ["blowup", "bench", "bench=smoke", "orders=[0,1,2,5]", "max_order.autograd=2"]
        + ["max_call_s=1000000.0", "max_memory_mb=1000000000", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    df = pd.read_csv(tmp_path / "bench.csv")
    assert list(df.columns) == bench.COLUMNS
    derivs = df[df.kind == "derivatives"]
    # a plain baseline plus every (backend, order) of the sweep, measured or skipped
    assert sorted(zip(derivs.backend, derivs.order)) == sorted(
        [("plain", 0)] + [(b, n) for b in ("autograd", "ntp") for n in (0, 1, 2, 5)]
    )
    skipped = df[df.status == "skipped"]
    assert list(zip(skipped.backend, skipped.order)) == [("autograd", 5)]
    assert skipped.reason.iloc[0] == "order 5 > max_order.autograd=2"
    ok = df[df.status == "ok"]
    assert (ok.total_ms > 0).all() and (ok.runs >= 1).all() and ok.reason.isna().all()
    assert (ok[ok.backend != "jax"][["forward_ms", "backward_ms"]] > 0).all().all()
    assert ok[(ok.backend == "ntp") & (ok.order <= 2)].speedup_vs_autograd.notna().all()
    steps = df[df.kind == "train_step"]
    assert sorted(steps.backend) == ["ntp", "plain"] and (steps.status == "ok").all()
    assert steps[steps.backend == "ntp"].order.iloc[0] == 4  # Burgers k = 0: the residual to order 2k + 4
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped"] == 1 and summary["errors"] == 0 and summary["rows"] == len(df)
    for name in ("bench_time.png", "bench_speedup.png"):
        assert (tmp_path / name).stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, message",
    [
        ("backends=[ntp,magic]", "backends=['ntp', 'magic'] is invalid: allowed a list from autograd, ntp, jax"),
        (
            "train_step.equation=magic",
            "train_step.equation='magic' is invalid: allowed one of burgers, sir, ccf, gclm, decay",
        ),
    ],
)
def test_bad_config_is_one_line(tmp_path, override, message):
    result = subprocess.run(
        ["blowup", "bench", "bench=smoke", override, f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.splitlines() == [f"blowup: error: {message}"]


class VirtualClock:
    """Time that passes only when a cell says so: each call costs what the cell declares."""

    name = "virtual"

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def cell(self, forward_s: float, backward_s: float):
        def forward():
            self.now += forward_s

        def backward(_):
            self.now += backward_s

        return forward, backward


class NoMemory:
    method = "none"

    def __call__(self, fn):
        fn()


def test_known_costs_come_out_as_times_ratios_and_speedups():
    """Cells of known cost (plain 1 + 1 ms, ntp 3 + 5 ms, autograd 30 + 10 ms): ntp takes 4x the plain
    baseline and autograd 20x, so ntp's speed-up over autograd is 5."""
    cfg = OmegaConf.create(
        {"backends": ["autograd", "ntp"], "dtype": "float64", "max_order": None, "max_call_s": 10.0}
        | {"max_memory_mb": 1000, "warmup": 2, "repeats": 5, "max_cell_s": 100.0}
    )
    b, clock = bench.Bench(cfg), VirtualClock()
    shape = dict(kind="derivatives", device="cpu", width=8, depth=2, points=21)
    plain = clock.cell(1e-3, 1e-3)
    b.run_cell(("plain",), 0, lambda: plain, clock, NoMemory(), backend="plain", **shape)
    for backend, costs in (("autograd", (30e-3, 10e-3)), ("ntp", (3e-3, 5e-3))):
        b.run_cell(
            (backend,), 3, lambda costs=costs: clock.cell(*costs), clock, NoMemory(), plain, backend=backend, **shape
        )
    df = b.frame().set_index("backend")
    assert (df.status == "ok").all() and (df.runs == 5).all() and (df.timer == "virtual").all()
    assert df.loc["ntp", ["forward_ms", "backward_ms", "total_ms", "plain_ms"]].tolist() == pytest.approx([3, 5, 8, 2])
    assert df.loc["ntp", "total_iqr_ms"] == pytest.approx(0, abs=1e-9)
    assert df.ratio_to_plain.tolist() == pytest.approx([1, 20, 4])
    assert df.loc["ntp", "speedup_vs_autograd"] == pytest.approx(5)
    assert df.loc[["plain", "autograd"], "speedup_vs_autograd"].isna().all()


def test_extrapolated_time_and_memory_skip_a_cell():
    cfg = OmegaConf.create({"max_order": {"autograd": 12}, "max_call_s": 10.0, "max_memory_mb": 1000})
    b = bench.Bench.__new__(bench.Bench)
    b.cfg, b.history = cfg, {"key": [(3, 0.1, 10.0), (4, 0.3, 30.0)]}  # x3 per order
    assert b.skip_reason("key", "autograd", 7) is None  # 8.1 s, 810 MB
    assert b.skip_reason("key", "autograd", 8).startswith("predicted 24.3 s per call > max_call_s=10.0")
    b.cfg = OmegaConf.merge(cfg, {"max_call_s": 100.0})
    assert b.skip_reason("key", "autograd", 8) == (
        "predicted 2430 MB > max_memory_mb=1000 (extrapolated from orders 3, 4)"
    )
    assert b.skip_reason("key", "autograd", 13) == "order 13 > max_order.autograd=12"
    assert b.skip_reason("other", "autograd", 9) is None  # nothing to extrapolate from yet


# --- the rules behind the fast engine ----------------------------------------------------------
def tanh_derivatives(x: torch.Tensor, order: int) -> torch.Tensor:
    """d^m tanh / dx^m = P_m(tanh x), with P_0 = y and P_{m+1} = (1 - y^2) P_m'(y): exact polynomials."""
    y = torch.tanh(x)
    poly = torch.zeros(order + 2, dtype=x.dtype)
    poly[1] = 1
    out = []
    for _ in range(order + 1):
        out.append(sum(c * y**i for i, c in enumerate(poly)))
        deriv = torch.arange(1, len(poly), dtype=x.dtype) * poly[1:]  # P'
        nxt = torch.zeros_like(poly)
        nxt[: len(deriv)] += deriv
        nxt[2:] -= deriv[: len(poly) - 2]
        poly = nxt
    return torch.stack(out)


@pytest.mark.parametrize("order", [0, 1, 2, 5, 12])
def test_tanh_rule_matches_analytic_derivatives(order):
    x = torch.linspace(-2.5, 2.5, 11)
    got = jet.tanh(Jet.variable(x, order)).derivatives()
    want = tanh_derivatives(x, order)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10 * want.abs().max())


def test_tanh_rule_on_a_series_matches_nested_autograd():
    """tanh(a + b x + c x^2) at x = 0.3: the rule composes with non-trivial inner series."""
    order, x = 6, torch.tensor([0.3], requires_grad=True)
    g = [torch.tanh(0.4 - 1.3 * x + 0.7 * x**2)]
    for _ in range(order):
        (d,) = torch.autograd.grad(g[-1].sum(), x, create_graph=True)
        g.append(d)
    inner = Jet.variable(x.detach(), order)
    got = jet.tanh(0.4 - 1.3 * inner + 0.7 * inner * inner).derivatives()
    assert torch.allclose(got, torch.stack(g).detach(), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("order", [0, 1, 4])
def test_series_functions_gradients_and_double_gradients(order):
    a = torch.randn(order + 1, 3, 2, requires_grad=True)
    b = torch.randn(order + 1, 2, requires_grad=True)  # batch dims broadcast from the right
    for fn in (jet._Cauchy.apply, jet._Correlate.apply):
        assert gradcheck(fn, (a, b)) and gradgradcheck(fn, (a, b))
    assert gradcheck(jet._TanhSeries.apply, (a,)) and gradgradcheck(jet._TanhSeries.apply, (a,))


def test_vmap_rules_match_a_loop():
    a, b = torch.randn(5, 6, 4, 3), torch.randn(5, 3)
    batched = vmap(jet.cauchy_product, in_dims=(2, None))(a, b)
    assert torch.allclose(batched, torch.stack([jet.cauchy_product(a[:, :, i], b) for i in range(4)]))
    y = vmap(lambda c: jet.tanh(Jet(c)).coeffs, in_dims=1)(a)
    assert torch.allclose(y, torch.stack([jet.tanh(Jet(a[:, i])).coeffs for i in range(6)]))


def test_pointwise_jacobians_through_the_engine_match_nested_autograd():
    """vmap(jacrev(...)) over points (what Levenberg-Marquardt does) against autograd's derivatives."""
    torch.manual_seed(0)
    net, order = MLP(1, 1, 6, 2), 4
    x = torch.linspace(-1, 1, 5).view(-1, 1)
    params = {k: v.detach() for k, v in net.named_parameters()}

    def at_point(p, xi):
        return torch.func.functional_call(net, p, (Jet.variable(xi.unsqueeze(0), order),)).coeffs.flatten()

    jac = vmap(jacrev(at_point), in_dims=(None, 0))(params, x)
    coeffs = input_derivatives(net, x, order, "autograd") / torch.tensor(
        [math.factorial(k) for k in range(order + 1)]
    ).view(-1, 1, 1)
    for name, p in net.named_parameters():
        want = torch.stack(
            [
                torch.stack([torch.autograd.grad(coeffs[k, i, 0], p, retain_graph=True)[0] for k in range(order + 1)])
                for i in range(len(x))
            ]
        )
        assert torch.allclose(jac[name], want, rtol=1e-9, atol=1e-11), name


def test_jax_peer_agrees_with_ntp():
    """The jax cell computes the same loss and the same parameter gradient as the ntp cell."""
    pytest.importorskip("jax")
    torch.manual_seed(0)
    net, x = MLP(1, 1, 8, 2), torch.linspace(-2, 2, 21).view(-1, 1)
    call, _, value = bench.jax_cell(net, x, 3, threads=1)
    _, grads = call()
    forward, backward = bench.derivative_cell(net, x, 3, "ntp")
    loss = forward()
    backward(loss)
    assert math.isclose(value, loss.item(), rel_tol=1e-9)
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    for (weight, bias), layer in zip(grads, layers, strict=True):
        assert np.allclose(np.asarray(weight), layer.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
        assert np.allclose(np.asarray(bias), layer.bias.grad.numpy(), rtol=1e-9, atol=1e-12)
