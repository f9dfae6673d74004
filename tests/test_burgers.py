"""The Burgers residual, its derivatives of every order, the exact profile and λ_k."""

import numpy as np
import pytest
import torch

from blowup.engine.derivatives import input_jet
from blowup.engine.jet import Jet
from blowup.engine.models import MLP, ModelConfig
from blowup.equations.burgers import Burgers, BurgersConfig, BurgersProfile, exact_lambda, exact_profile, residual
from blowup.solvers.lm import pointwise_jacobian
from blowup.solvers.losses import residual_vector


@pytest.mark.parametrize("k", [0, 1, 3, 6])
def test_exact_profile_solves_the_implicit_equation(k):
    x = np.linspace(-2, 2, 1001)
    u = exact_profile(x, k)
    assert np.max(np.abs(u + u ** (2 * k + 3) + x)) < 1e-14
    assert u[0] == pytest.approx(1.0, abs=1e-15) and u[-1] == pytest.approx(-1.0, abs=1e-15)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_residual_and_all_its_derivatives_vanish_on_exact_profile(exact_profile_jet, k):
    """F = 0 identically for (U_k, λ_k): every Taylor coefficient of F, up to 2k+3, vanishes."""
    x = torch.linspace(-1.9, 1.9, 23).view(-1, 1)
    order = 2 * k + 4
    f = residual(Jet.variable(x, order), exact_profile_jet(x, k, order), exact_lambda(k))
    assert f.order == 2 * k + 3
    assert f.coeffs.abs().max() < 1e-10


def test_wrong_lambda_breaks_smoothness_at_the_origin(exact_profile_jet):
    """With λ ≠ λ_k the coefficient ((n-1)λ - 1) U^(n)(0) no longer vanishes: F's Taylor coefficients are non-zero."""
    x = torch.zeros(1, 1)
    u = exact_profile_jet(x, 0, 4)
    good = residual(Jet.variable(x, 4), u, exact_lambda(0)).coeffs.abs().max()
    bad = residual(Jet.variable(x, 4), u, exact_lambda(0) + 0.01).coeffs.abs().max()
    assert good < 1e-14 and bad > 1e-3


@pytest.mark.parametrize("k", [0, 1, pytest.param(2, marks=pytest.mark.slow)])  # k = 2: nested autograd to order 8
def test_residual_derivatives_agree_between_backends(k):
    torch.manual_seed(0)
    problems = {
        b: Burgers(BurgersConfig(points=21, local_points=5), k, sobolev=2, backend=b) for b in ("ntp", "autograd")
    }
    problems["autograd"].load_state_dict(problems["ntp"].state_dict())
    res = {b: residual_vector(p.residuals()) for b, p in problems.items()}
    assert torch.allclose(res["ntp"], res["autograd"], rtol=1e-10, atol=1e-12)


def test_residual_derivatives_match_finite_differences():
    """The Sobolev term's first derivative of F equals a central difference of F itself."""
    torch.manual_seed(1)
    p = Burgers(BurgersConfig(), 1, sobolev=1, backend="ntp")
    x, h = torch.linspace(-1.5, 1.5, 7).view(-1, 1), 1e-6
    f = p.residual_jet(x, 1).derivatives()
    fd = (p.residual_jet(x + h, 0).coeffs[0] - p.residual_jet(x - h, 0).coeffs[0]) / (2 * h)
    assert torch.allclose(f[1], fd, atol=1e-7)


@pytest.mark.parametrize("embedding", ["odd", "odd_boundary"])
def test_embeddings_are_odd_and_fix_the_boundary(embedding):
    torch.manual_seed(2)
    u = BurgersProfile(MLP(width=8, depth=2), embedding, (-2.0, 2.0), (1.0, -1.0))
    x = torch.linspace(0, 2, 11).view(-1, 1)
    assert torch.allclose(u(x), -u(-x), atol=1e-15)
    if embedding == "odd_boundary":
        ends = u(torch.tensor([[-2.0], [2.0]])).flatten()
        assert torch.allclose(ends, torch.tensor([1.0, -1.0]), atol=1e-15)
    jet = input_jet(u, x, 5, "ntp").derivatives()
    assert torch.allclose(jet, input_jet(u, x, 5, "autograd").derivatives(), rtol=1e-11, atol=1e-12)


def test_lambda_stays_in_its_bracket_and_smoothness_imposes_orders_to_2k_plus_4():
    p = Burgers(BurgersConfig(model=ModelConfig(4, 1)), 2, sobolev=0, backend="ntp")
    lo, hi = 1 / 7, 1 / 5
    for raw in (-50.0, 0.0, 50.0):
        with torch.no_grad():
            p.lam_raw.fill_(raw)
        assert lo <= p.lam.item() <= hi
    assert p(*(["smooth"] + list(p.terms()["smooth"]))).shape == (16, 2 * 2 + 5)  # orders 0..2k+4


def test_odd_embeddings_collocate_on_the_nonnegative_half_only():
    """The residual of an odd U is odd: the X >= 0 half (X = 0 included) carries every condition."""
    torch.manual_seed(4)
    full = Burgers(BurgersConfig(points=21, local_points=7, embedding="none", model=ModelConfig(6, 2)), 1, 1, "ntp")
    half = Burgers(BurgersConfig(points=21, local_points=7, model=ModelConfig(6, 2)), 1, 1, "ntp")
    assert torch.equal(half.x_global.flatten(), torch.linspace(0, 2, 11))
    assert half.x_local[0].item() == 0.0 and len(half.x_local) == 4
    left, right = half("residual", -half.x_global), half("residual", half.x_global)  # columns F, F'
    assert torch.allclose(left[:, 0], -right[:, 0], atol=1e-14) and torch.allclose(left[:, 1], right[:, 1], atol=1e-14)
    assert len(full.x_global) == 21


@pytest.mark.parametrize("k, radius", [(0, 0.075), (4, 0.075), (5, 0.3), (6, 0.3)])
def test_smoothness_points_widen_for_high_profiles_unless_set(k, radius):
    small = ModelConfig(4, 1)
    assert Burgers(BurgersConfig(model=small), k, 0, "ntp").x_local.max().item() == pytest.approx(radius)
    set_radius = BurgersConfig(model=small, local_radius=0.2)
    assert Burgers(set_radius, k, 0, "ntp").x_local.max().item() == pytest.approx(0.2)


def test_pointwise_jacobian_matches_autograd_rows():
    torch.manual_seed(3)
    p = Burgers(BurgersConfig(points=15, local_points=5, embedding="none", model=ModelConfig(6, 2)), 1, 1, "ntp")
    r = residual_vector(p.residuals())
    jac = pointwise_jacobian(p)
    params = list(p.parameters())
    for row in (0, 7, len(r) - 1):
        grads = torch.autograd.grad(r[row], params, retain_graph=True, materialize_grads=True)
        assert torch.allclose(jac[row], torch.cat([g.flatten() for g in grads]), atol=1e-14)


def test_levenberg_marquardt_phase_weighs_the_global_rows_up_and_the_others_as_before():
    torch.manual_seed(5)
    p = Burgers(BurgersConfig(points=21, local_points=7, model=ModelConfig(6, 2)), 1, 1, "ntp")
    p.start_phase("adam")
    before, jac_before = {name: r.detach() for name, r in p.residuals().items()}, pointwise_jacobian(p)
    p.start_phase("lm")  # lm_weights: residual and sobolev 100 (10x the rows), smooth and origin null (as before)
    during, jac_during = {name: r.detach() for name, r in p.residuals().items()}, pointwise_jacobian(p)
    assert torch.allclose(during["residual"], 10 * before["residual"], rtol=1e-14, atol=0)
    assert torch.equal(during["smooth"], before["smooth"]) and torch.equal(during["origin"], before["origin"])
    n = len(before["residual"])  # the Jacobian LM solves with follows the same rows
    assert torch.allclose(jac_during[:n], 10 * jac_before[:n], rtol=1e-12, atol=0)
    assert torch.equal(jac_during[n:], jac_before[n:])
    p.start_phase("lbfgs")
    assert torch.equal(p.residuals()["residual"].detach(), before["residual"])


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, 1])
def test_training_finds_lambda_k_and_the_exact_profile(compose_train, k, tmp_path, monkeypatch):
    """A small end-to-end run (about 10 s): all three phases, then λ and U against the exact ones."""
    from blowup.training import trainer

    monkeypatch.setattr(Burgers, "plot", lambda self, history, path: None)
    overrides = [
        f"profile={k}",
        "device=cpu",
        "equation.model.width=12",
        "equation.model.depth=2",
        "equation.points=41",
        "optim.adam.steps=300",
        "optim.lbfgs.steps=100",
        "optim.lm.steps=150",
    ]
    summary = trainer.train(compose_train(*overrides), tmp_path)
    assert summary["status"] == "completed"
    assert abs(summary["lambda"] - 1 / (2 * k + 2)) < 1e-7  # the bracket is (1/(2k+3), 1/(2k+1)): wide of this
    assert summary["profile_max_error"] < 1e-6
