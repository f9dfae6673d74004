"""The Gauss-Newton parts (blowup.solvers.gauss_newton) against independent oracles: the damped normal equations,
numpy's least squares, problems whose minimiser is known in closed form, and the damping rule's own arithmetic."""

import math

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import aslinearoperator

from blowup.solvers.gauss_newton import (
    Damping,
    KrylovLeastSquares,
    LeastSquares,
    Linearisation,
    NormalEquations,
    SVDSolve,
    Termination,
    full_step,
    iterate,
)


def numpy_lstsq(a, b):
    return np.linalg.lstsq(a, b, rcond=None)[0]


@pytest.mark.parametrize("rows, cols", [(7, 12), (12, 7)])
@pytest.mark.parametrize("descent", [SVDSolve, NormalEquations])
def test_damped_descents_solve_the_damped_normal_equations(descent, rows, cols):
    torch.manual_seed(0)
    jac, r = torch.randn(rows, cols, dtype=torch.float64), torch.randn(rows, dtype=torch.float64)
    solver = descent(jac)
    for damping in (1e-6, 1e-2, 10.0):
        expected = -torch.linalg.solve(jac.T @ jac + damping * torch.eye(cols), jac.T @ r)
        assert torch.allclose(solver.solve(r, damping), expected, rtol=1e-7, atol=1e-10)  # conditioning squared


@pytest.mark.parametrize("rows, cols", [(7, 12), (12, 7)])
def test_svd_solve_factors_a_wide_and_a_tall_jacobian_alike(rows, cols):
    """A wide J is factored through its transpose: the factors must still be J's own (J = U diag(s) V, U and V
    with orthonormal rows and columns, s descending) and match a direct SVD's singular values."""
    torch.manual_seed(1)
    jac = torch.randn(rows, cols, dtype=torch.float64)
    solver = SVDSolve(jac)
    u, s, v = solver.left, solver.singular, solver.right
    rank = min(rows, cols)
    assert u.shape == (rows, rank) and v.shape == (rank, cols)
    assert torch.allclose(u @ torch.diag(s) @ v, jac, rtol=0, atol=1e-13)
    assert torch.allclose(u.T @ u, torch.eye(rank, dtype=torch.float64), rtol=0, atol=1e-13)
    assert torch.allclose(v @ v.T, torch.eye(rank, dtype=torch.float64), rtol=0, atol=1e-13)
    assert torch.all(s[:-1] >= s[1:])
    assert torch.allclose(s, torch.linalg.svdvals(jac), rtol=1e-13, atol=0)


def smooth_features(points: int, features: int, seed: int) -> torch.Tensor:
    """tanh(w x + b) over points x in [-1, 1]: each column a smooth function sampled, as a network's Jacobian's
    columns are, so the singular values fall geometrically to round-off (some 70 of 400 above it)."""
    draw = torch.Generator().manual_seed(seed)
    x = torch.linspace(-1, 1, points, dtype=torch.float64)[:, None]
    w = 3 * torch.randn(1, features, generator=draw, dtype=torch.float64)
    return torch.tanh(w * x + torch.randn(1, features, generator=draw, dtype=torch.float64))


def test_svd_solve_of_a_numerically_low_rank_jacobian_factors_it_through_its_range():
    """The sketched factorisation: taken through a range narrower than J (`width` set), its factors rebuild J to
    round-off, its singular values are J's own, its damped steps those of the damped normal equations (to what
    their conditioning, s1² / damping, allows), and the run's random stream is left where it was."""
    jac = smooth_features(400, 900, seed=3)
    r = torch.randn(400, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    stream = torch.get_rng_state()
    solver = SVDSolve(jac)
    assert torch.equal(torch.get_rng_state(), stream)
    assert solver.width is not None and solver.width <= 200
    rebuilt = solver.left @ torch.diag(solver.singular) @ solver.right
    assert torch.linalg.matrix_norm(rebuilt - jac) <= 1e-13 * torch.linalg.matrix_norm(jac)
    exact = torch.linalg.svdvals(jac)
    above = int((exact > 1e-8 * exact[0]).sum())
    assert torch.allclose(solver.singular[:above], exact[:above], rtol=1e-9, atol=0)
    for damping in (1e-2, 1.0, 100.0):
        expected = -torch.linalg.solve(jac.T @ jac + damping * torch.eye(900, dtype=torch.float64), jac.T @ r)
        assert (solver.solve(r, damping) - expected).norm() <= 1e-8 * expected.norm()


def test_svd_solve_of_a_full_rank_jacobian_takes_the_full_svd():
    """No range narrower than half J's shorter side holds a random J: the full SVD is taken (`width` None); with
    sketch=False it is taken of a numerically low-rank J too, every singular value J's own."""
    jac = torch.randn(300, 500, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    low_rank = smooth_features(400, 900, seed=3)
    for solver, matrix in ((SVDSolve(jac), jac), (SVDSolve(low_rank, sketch=False), low_rank)):
        assert solver.width is None and len(solver.singular) == min(matrix.shape)
        exact = torch.linalg.svdvals(matrix)
        assert torch.allclose(solver.singular, exact, rtol=0, atol=1e-13 * float(exact[0]))


def test_least_squares_is_the_undamped_step_and_refuses_damping():
    rng = np.random.default_rng(1)
    jac, r = rng.standard_normal((9, 4)), rng.standard_normal(9)
    solver = LeastSquares(jac, numpy_lstsq)
    assert np.allclose(solver.solve(r), -np.linalg.pinv(jac) @ r, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="undamped"):
        solver.solve(r, 1e-3)


def test_a_linear_least_squares_problem_is_solved_by_one_full_step():
    """r(x) = A x - b: Gauss-Newton's model is exact, so the first step lands on the least-squares solution and
    the second is round-off."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((12, 5)), rng.standard_normal(12)
    linearise = lambda x: Linearisation(a @ x - b, a)  # noqa: E731
    step = full_step(lambda jac: LeastSquares(jac, numpy_lstsq), lambda x, d: x + d)
    first = step(np.zeros(5), linearise(np.zeros(5)))[1]
    assert np.allclose(first, numpy_lstsq(a, b), rtol=0, atol=1e-14)
    outcome = iterate(np.zeros(5), linearise, step, Termination(10, 1e-12))
    assert outcome.reason == "converged" and outcome.steps == 2
    assert np.array_equal(outcome.linearisation.jacobian, a)


def rosenbrock(point: torch.Tensor) -> Linearisation:
    """Rosenbrock's function as residuals (10 (y - x²), 1 - x): the minimum 0 at (1, 1), down a curved valley."""
    x, y = point
    residual = torch.stack([10 * (y - x**2), 1 - x])
    one = torch.ones((), dtype=point.dtype)
    jacobian = torch.stack([torch.stack([-20 * x, 10 * one]), torch.stack([-one, 0 * one])])
    return Linearisation(residual, jacobian)


def test_rosenbrock_by_full_steps_in_a_few():
    """The Jacobian is square and invertible: the first step solves 1 - x = 0 (to round-off), the second y = x²;
    what follows is round-off."""
    step = full_step(SVDSolve, lambda p, d: p + d)
    outcome = iterate(torch.tensor([-1.2, 1.0], dtype=torch.float64), rosenbrock, step, Termination(10, 1e-15))
    assert outcome.reason == "converged" and outcome.steps <= 4
    assert torch.allclose(outcome.point, torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-15)


def damped_steps(linearise, rule: Damping):
    """Levenberg-Marquardt from the parts: the damped normal equations, accepted by `rule`."""

    def step(point, lin):
        solver = NormalEquations(lin.jacobian)

        def evaluate(d):
            return linearise(point + d).residual.square().sum(), point + d

        return rule.search(lambda damping: solver.solve(lin.residual, damping), evaluate, lin.residual.square().sum())

    return step


def test_damped_gauss_newton_reaches_the_rosenbrock_minimum_to_round_off():
    rule = Damping(1.0, decrease=3, increase=2, tries=30)
    start = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    outcome = iterate(start, rosenbrock, damped_steps(rosenbrock, rule), Termination(100, 1e-15))
    assert outcome.reason in ("converged", "stalled")  # a step within tolerance, or none left below round-off
    assert torch.allclose(outcome.point, torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-14)


def test_damped_gauss_newton_fits_an_exponential_to_exact_data():
    t = torch.linspace(0, 2, 9, dtype=torch.float64)
    data = 3.0 * torch.exp(-1.5 * t)

    def linearise(p):
        a, b = p
        model = torch.exp(b * t)
        return Linearisation(a * model - data, torch.stack([model, a * t * model], 1))

    rule = Damping(1e-3, decrease=3, increase=2, tries=30)
    outcome = iterate(
        torch.tensor([1.0, 0.5], dtype=torch.float64), linearise, damped_steps(linearise, rule), Termination(100, 1e-14)
    )
    assert torch.allclose(outcome.point, torch.tensor([3.0, -1.5], dtype=torch.float64), rtol=0, atol=1e-12)
    assert linearise(outcome.point).residual.square().sum().item() < 1e-26


def test_damping_falls_by_decrease_on_success_and_rises_by_increase_on_failure():
    rule = Damping(1.0, decrease=3, increase=4, tries=5, floor=0.05)
    losses = iter([None, 2.0, math.nan, 0.5])  # not evaluable, higher, NaN, lower than 1.0
    taken = rule.search(
        lambda damping: damping,
        lambda step: (lambda loss: None if loss is None else (loss, "point"))(next(losses)),
        1.0,
    )
    assert taken == (64.0, "point") and rule.value == 64.0 / 3  # three rejections, then the accepted one
    rule.value = 0.06
    assert rule.search(lambda damping: damping, lambda step: (0.0, None), 1.0) == (0.06, None)
    assert rule.value == 0.05  # floored
    stuck = Damping(1.0, decrease=3, increase=2, tries=6)
    assert stuck.search(lambda damping: damping, lambda step: (1.0, None), 1.0) is None and stuck.value == 2.0**6


def test_an_untrusted_step_is_rejected_without_being_evaluated():
    evaluated = []
    rule = Damping(1.0, decrease=2, increase=10, tries=3)
    propose = lambda damping: None if damping < 100 else damping  # noqa: E731
    assert rule.search(propose, lambda step: evaluated.append(step) or (0.0, step), 1.0) == (100.0, 100.0)
    assert evaluated == [100.0] and rule.value == 50.0


def test_strict_acceptance_wants_a_lower_loss_the_other_no_higher():
    strict, lenient = Damping(1.0, 3, 2, 1), Damping(1.0, 3, 2, 1, strict=False)
    assert not strict.accepts(1.0, 1.0) and lenient.accepts(1.0, 1.0)
    assert strict.accepts(0.5, 1.0) and not lenient.accepts(1.5, 1.0)


def test_termination_rules():
    rule = Termination(max_steps=4, tolerance=1e-3, stagnation=2)
    assert rule.converged(1e-3) and not Termination(4, 1e-3, strict=True).converged(1e-3)
    assert rule.stagnated(0.6, 1.0) and not rule.stagnated(0.5, 1.0) and not rule.stagnated(1.0, math.inf)
    assert rule.done(4, 1.0, 10.0) and rule.done(1, 1e-4, 10.0) and rule.done(1, 6.0, 10.0)
    assert not rule.done(3, 1.0, 10.0)
    assert not Termination(4, 1e-3).stagnated(100.0, 1.0)  # no stagnation rule: never


@pytest.mark.parametrize(
    "sizes, linearisable, reason, steps, point",
    [
        ([1.0, 0.1, 0.2], 9, "stagnated", 3, 3),
        ([1.0, 0.5, 0.2, 0.1], 9, "max_steps", 4, 4),
        ([1.0, 0.1, None], 9, "stalled", 3, 2),
        ([1.0, 0.1, 0.01], 2, "diverged", 3, 2),
    ],
)
def test_iterate_says_why_it_stopped(sizes, linearisable, reason, steps, point):
    """Stub parts: steps of the given sizes (None: the step rule finds none), linearisations up to a count."""

    def linearise(point):
        return Linearisation(point, None) if point < linearisable else None

    def step(point, lin):
        size = sizes[point]
        return None if size is None else (np.array([size]), point + 1)

    outcome = iterate(0, linearise, step, Termination(4, 1e-9, stagnation=2))
    assert (outcome.reason, outcome.steps, outcome.point) == (reason, steps, point)


def test_krylov_least_squares_matches_the_dense_solution_for_any_right_preconditioner():
    """LSMR on J M⁻¹ from products alone: the same least-squares step as a dense solve, whatever invertible M."""
    rng = np.random.default_rng(3)
    jac, r = rng.standard_normal((40, 25)), rng.standard_normal(40)
    expected = -numpy_lstsq(jac, r)
    for inverse in (np.eye(25), np.linalg.inv(np.diag(rng.uniform(0.1, 10, 25)) + 0.1 * rng.standard_normal((25, 25)))):
        solver = KrylovLeastSquares(aslinearoperator(jac), aslinearoperator(inverse), 1e-14, 500)
        assert np.abs(solver.solve(r) - expected).max() < 1e-10
        assert len(solver.iterations) == 1 and 0 < solver.iterations[0] <= 500
    with pytest.raises(ValueError, match="undamped"):
        solver.solve(r, 1e-3)


def test_the_krylov_step_solves_an_ill_conditioned_consistent_system_to_its_condition():
    """A Newton step's system is consistent and may be ill-conditioned (a steep profile's smoothness row): the
    step is solved to what its condition allows, cond x ε, not stopped where LSMR's condition estimate passes a
    limit (scipy's default 1e8 stopped this one after 3 iterations, every unknown O(1) off). The oracle: the
    solution the system was built from, singular values 1e-5 and 1e4 (condition 1e9)."""
    rng = np.random.default_rng(0)
    n = 60
    left, _ = np.linalg.qr(rng.standard_normal((n + 1, n + 1)))
    right, _ = np.linalg.qr(rng.standard_normal((n, n)))
    jac = left[:, :n] @ np.diag(np.repeat([1e-5, 1e4], n // 2)) @ right.T
    solution = rng.standard_normal(n)
    solver = KrylovLeastSquares(aslinearoperator(jac), aslinearoperator(np.eye(n)), 1e-12, 500)
    step = solver.solve(-(jac @ solution))
    assert np.abs(step - solution).max() < 1e9 * np.finfo(float).eps * np.abs(solution).max()
