"""The derivative engine against independent references: closed forms, finite differences, the other backend."""

import math

import pytest
import torch
from torch import nn

from blowup.engine import jet
from blowup.engine.derivatives import input_derivatives
from blowup.engine.jet import Jet, cauchy_product, propagate
from blowup.engine.models import MLP


def points(n=41, lo=-1.5, hi=1.5):
    return torch.linspace(lo, hi, n).view(-1, 1)


def tanh_derivatives(x: torch.Tensor, order: int) -> list[torch.Tensor]:
    """Closed form: d/dx P(tanh x) = P'(tanh x)(1 - tanh^2 x), iterated on polynomial coefficients."""
    poly = [0.0, 1.0]  # tanh itself, coefficients in powers of t = tanh x
    t = torch.tanh(x)
    out = []
    for _ in range(order + 1):
        out.append(sum(c * t**i for i, c in enumerate(poly)))
        deriv = [i * c for i, c in enumerate(poly)][1:]  # P'
        poly = [0.0] * (len(deriv) + 2)
        for i, c in enumerate(deriv):  # P' * (1 - t^2)
            poly[i] += c
            poly[i + 2] -= c
    return out


@pytest.mark.parametrize("order", [0, 1, 5, 12])
def test_ntp_matches_closed_form_of_scaled_tanh(order):
    """net(x) = c * tanh(a x + b) + d has derivatives c a^k tanh^(k)(a x + b)."""
    net = MLP(1, 1, width=1, depth=1)
    a, b, c, d = 0.7, -0.3, 1.9, 0.4
    with torch.no_grad():
        net[0].weight.fill_(a), net[0].bias.fill_(b), net[2].weight.fill_(c), net[2].bias.fill_(d)
    x = points()
    got = input_derivatives(net, x, order, "ntp")[..., 0]
    expected = tanh_derivatives(a * x[:, 0] + b, order)
    for k in range(order + 1):
        want = c * a**k * expected[k] + (d if k == 0 else 0.0)
        scale = want.abs().max().clamp_min(1.0)
        assert torch.allclose(got[k], want, atol=1e-12 * scale.item(), rtol=0), k


@pytest.fixture(params=["internals", "public"])
def apply_path(request, monkeypatch):
    """Both ways the series Functions are applied: torch's private fast path and the public fallback
    (what a torch without those internals gets)."""
    if request.param == "public":
        monkeypatch.setattr(jet._SeriesFunction, "internals", None)
    elif jet._SeriesFunction.internals is None:
        pytest.skip("this torch has no usable internals")
    return request.param


@pytest.mark.parametrize("order", [1, 4, 8])
def test_backends_agree_to_round_off(order, apply_path):
    torch.manual_seed(1)
    net = MLP(1, 2, width=16, depth=3)
    x = points(25)
    ntp = input_derivatives(net, x, order, "ntp")
    ref = input_derivatives(net, x, order, "autograd")
    assert ntp.shape == (order + 1, 25, 2)
    assert torch.allclose(ntp, ref, rtol=1e-11, atol=1e-11 * ref.abs().max().item())


def test_ntp_high_order_against_finite_differences_of_lower_orders():
    """d^12 f = d/dx of d^11 f: a central difference of the 11th derivative checks the 12th."""
    torch.manual_seed(2)
    net = MLP(width=12, depth=3)
    x, h = points(9, -1.0, 1.0), 1e-5
    d12 = input_derivatives(net, x, 12, "ntp")[12]
    d11_plus = input_derivatives(net, x + h, 11, "ntp")[11]
    d11_minus = input_derivatives(net, x - h, 11, "ntp")[11]
    fd = (d11_plus - d11_minus) / (2 * h)
    assert torch.allclose(d12, fd, rtol=1e-6, atol=1e-6 * d12.abs().max().item())


def test_first_derivative_against_finite_differences():
    torch.manual_seed(3)
    net = MLP()
    x, h = points(), 1e-6
    d1 = input_derivatives(net, x, 1, "ntp")[1]
    fd = (net(x + h) - net(x - h)) / (2 * h)
    assert torch.allclose(d1, fd, atol=1e-8)


def test_ntp_any_order_is_finite_and_consistent():
    """Order 20 (beyond any hard-coded table): its low orders equal a separate order-3 pass."""
    torch.manual_seed(4)
    net = MLP()
    x = points(11)
    high = input_derivatives(net, x, 20, "ntp")
    assert torch.isfinite(high).all()
    assert torch.allclose(high[:4], input_derivatives(net, x, 3, "ntp"), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("backend", ["ntp", "autograd"])
def test_derivatives_are_differentiable_in_parameters(backend, apply_path):
    """The gradient of a loss on the 3rd derivative matches a finite difference in one weight."""
    torch.manual_seed(5)
    net = MLP(width=8, depth=2)
    x = points(15)

    def loss():
        return input_derivatives(net, x, 3, backend)[3].square().mean()

    value = loss()
    (grad,) = torch.autograd.grad(value, net[2].weight)
    h = 1e-6
    with torch.no_grad():
        net[2].weight[0, 0] += h
    plus = loss().item()
    with torch.no_grad():
        net[2].weight[0, 0] -= 2 * h
    minus = loss().item()
    assert math.isclose(grad[0, 0].item(), (plus - minus) / (2 * h), rel_tol=1e-5, abs_tol=1e-9)


def test_fast_apply_falls_back_when_the_internals_misbehave(monkeypatch):
    """A torch whose private pieces changed meaning (here: the unwrap step alters its inputs) or raise
    gets the public path, and the engine's answers do not change."""
    net, x = MLP(width=8, depth=2), points(9)
    before = input_derivatives(net, x, 5, "ntp")
    for broken in (lambda args: tuple(2 * a for a in args), lambda args: 1 / 0):
        monkeypatch.setattr(jet._SeriesFunction, "internals", (lambda: False, broken))
        assert not jet.check_fast_apply() and jet._SeriesFunction.internals is None
        assert torch.equal(input_derivatives(net, x, 5, "ntp"), before)


def test_jet_arithmetic_against_known_series():
    """Polynomials have known series: (1 + x)^3 via products, d(x^2) = 2x, and 3 - x."""
    x = Jet.variable(torch.tensor([0.5]), 5)
    cube = (1 + x) * (1 + x) * (1 + x)
    # (1.5 + t)^3 = 3.375 + 6.75 t + 4.5 t^2 + t^3
    assert torch.allclose(cube.coeffs[:, 0], torch.tensor([3.375, 6.75, 4.5, 1.0, 0.0, 0.0]))
    d = (x * x).derivative()  # 2x at 0.5 -> coefficients (1, 2, 0, 0, 0)
    assert torch.allclose(d.coeffs[:, 0], torch.tensor([1.0, 2.0, 0.0, 0.0, 0.0]))
    assert (3 - x).coeffs[0, 0].item() == 2.5 and (3 - x).coeffs[1, 0].item() == -1.0


def test_cauchy_product_matches_polynomial_multiplication():
    torch.manual_seed(6)
    a, b = torch.randn(6, 3), torch.randn(6, 3)
    want = torch.stack([sum(a[j] * b[k - j] for j in range(k + 1)) for k in range(6)])
    assert torch.allclose(cauchy_product(a, b), want)


def test_bad_arguments_raise():
    net = MLP()
    with pytest.raises(ValueError, match="backend"):
        input_derivatives(net, points(), 2, "finite")
    with pytest.raises(ValueError, match="order"):
        input_derivatives(net, points(), -1, "ntp")
    with pytest.raises(TypeError, match="no Taylor rule for ReLU"):
        propagate(nn.Sequential(nn.Linear(1, 3), nn.ReLU()), Jet.variable(points(), 2))
