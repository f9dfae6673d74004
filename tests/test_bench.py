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
        ["blowup", "bench", "bench=smoke", "orders=[0,1,2,5]", "max_order.autograd=2", f"hydra.run.dir={tmp_path}"],
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
    # every ratio is the cell's own time over its interleaved plain baseline, and the speed-up the ratio of ratios
    assert np.allclose(ok.ratio_to_plain, ok.total_ms / ok.plain_ms, rtol=1e-12)
    both = ok[ok.kind == "derivatives"].pivot_table(index="order", columns="backend", values="ratio_to_plain")
    ntp = ok[(ok.backend == "ntp") & (ok.kind == "derivatives") & (ok.order <= 2)].set_index("order")
    assert np.allclose(ntp.speedup_vs_autograd, both.autograd[ntp.index] / both.ntp[ntp.index], rtol=1e-12)
    assert ok[(ok.backend == "ntp") & (ok.order <= 2)].speedup_vs_autograd.notna().all()
    steps = df[df.kind == "train_step"]
    assert sorted(steps.backend) == ["ntp", "plain"] and (steps.status == "ok").all()
    assert steps[steps.backend == "ntp"].order.iloc[0] == 4  # profile 0 needs U to order 2k + 4
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped"] == 1 and summary["errors"] == 0 and summary["rows"] == len(df)
    for name in ("bench_time.png", "bench_speedup.png"):
        assert (tmp_path / name).stat().st_size > 1000


@pytest.mark.slow
def test_bad_config_is_one_line(tmp_path):
    result = subprocess.run(
        ["blowup", "bench", "bench=smoke", "backends=[ntp,magic]", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("blowup: error: backends=")


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


def test_cauchy_and_correlate_are_adjoint_products():
    a, b, g = torch.randn(7, 5), torch.randn(7, 5), torch.randn(7, 5)
    full = torch.stack([sum(a[i] * b[k - i] for i in range(k + 1)) for k in range(7)])
    assert torch.allclose(jet.cauchy_product(a, b), full)
    # <g, a * b> = <correlate(g, b), a>
    assert torch.allclose((g * jet.cauchy_product(a, b)).sum(), (jet._Correlate.apply(g, b) * a).sum())


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
    pytest.importorskip("jax")
    torch.manual_seed(0)
    net, x = MLP(1, 1, 8, 2), torch.linspace(-2, 2, 21).view(-1, 1)
    call, compile_s, value = bench.jax_cell(net, x, 3, threads=1)
    call()
    ref = input_derivatives(net, x, 3, "ntp")[3].square().sum().item()
    assert compile_s > 0 and math.isclose(value, ref, rel_tol=1e-9)
