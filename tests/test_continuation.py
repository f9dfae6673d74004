"""Pseudo-arclength continuation (blowup.solvers.continuation) on systems whose folds and crossings are known in
closed form, `blowup continue` on the gCLM family between its exact members a = 0 and a = 1/2, and Burgers in its
boundary value, along which every point is known in closed form."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.sparse.linalg import aslinearoperator

from blowup.analysis import continuation as continuation_cli
from blowup.analysis.continuation import STATE, _load_state, _save_state, _walk
from blowup.equations.burgers import build, exact_profile, residual
from blowup.errors import ConfigError
from blowup.solvers.chebyshev_branch import ChebyshevBranch
from blowup.solvers.continuation import Branch, Point, Settings, first_tangent, follow
from blowup.solvers.newton import ProfileSpec


class Cubic:
    """x³ - x + μ = 0 with a second unknown y = x²: folds at μ = ±2/(3√3) (x = ∓1/√3), crossings where
    y = x² takes a value."""

    size = 2

    def residual(self, x, mu):
        return np.array([x[0] ** 3 - x[0] + mu, x[1] - x[0] ** 2])

    def linearise(self, x, mu):
        jacobian = np.array([[3 * x[0] ** 2 - 1, 0.0], [-2 * x[0], 1.0]])
        return self.residual(x, mu), aslinearoperator(jacobian), None

    def measures(self, x, mu):
        return {"x": x[0], "y": x[1]}


def walk(system, x0, mu0, target, crossings, max_points=200):
    branch = Branch(system, Settings(step=0.1, max_step=0.3))
    start = Point(np.array(x0), mu0, first_tangent(branch, np.array(x0), mu0, np.sign(target - mu0)))
    points, events, generator = (
        [start],
        [],
        follow(branch, start, target, max_points, crossings, lambda p: system.measures(p.x, p.mu)),
    )
    while True:
        try:
            point, found, _ = next(generator)
        except StopIteration as stop:
            return points, events, stop.value
        points.append(point)
        events.extend(found)


def test_both_folds_and_a_crossing_of_the_cubic_to_round_off():
    x0 = -1.2
    points, events, reason = walk(Cubic(), [x0, x0**2], x0 - x0**3, -0.5, [("y", 0.25)])
    assert reason == "reached" and points[-1].mu == -0.5
    assert abs(points[-1].x[0] ** 3 - points[-1].x[0] - 0.5) < 1e-12 and points[-1].x[0] > 1  # past both folds
    folds = [e.mu for e in events if e.name == "fold"]
    fold = 2 / (3 * np.sqrt(3))
    assert len(folds) == 2 and abs(folds[0] + fold) < 1e-13 and abs(folds[1] - fold) < 1e-13
    crossings = [e for e in events if e.name == "y=0.25"]  # x = ±1/2: μ = x - x³ = ∓3/8
    assert sorted(e.mu for e in crossings) == pytest.approx([-3 / 8, 3 / 8], abs=1e-13)
    assert all(abs(e.value - 0.25) < 1e-13 for e in crossings)


def test_no_fold_is_reported_where_the_branch_has_none():
    x0 = 1.5  # x³ - x + μ = 0 for x > 1/√3 is monotone in μ
    points, events, reason = walk(Cubic(), [x0, x0**2], x0 - x0**3, -1.0, [])
    assert reason == "reached" and not events
    assert np.all(np.diff([p.mu for p in points]) > 0)


def trained(tmp_path_factory, run_blowup, *overrides: str):
    """A finished `blowup train` run dir (seed 0, one thread) with these overrides."""
    run_dir = tmp_path_factory.mktemp("run") / "run"
    run = run_blowup("train", *overrides, "seed=0", "threads=1", f"hydra.run.dir={run_dir}")
    assert run.returncode == 0, run.stderr[-2000:]
    return run_dir


@pytest.fixture(scope="module")
def gclm_run(tmp_path_factory, run_blowup):
    return trained(tmp_path_factory, run_blowup, "equation=gclm", "experiment=smoke")


@pytest.mark.slow
def test_continue_from_clm_meets_the_exact_member_at_one_half_and_resumes(gclm_run, run_blowup, tmp_path):
    out = tmp_path / "branch"
    args = ["continue", str(gclm_run), "--param", "equation.a", "--to", "0.5", "--event", "alpha=0.5", "--out"]
    first = run_blowup(*args, str(out), "--max-points", "4")
    assert first.returncode == 3 and "max_points" in first.stdout
    again = run_blowup(*args, str(out))  # the same command resumes where the first stopped
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stdout
    branch = pd.read_csv(out / "branch.csv")
    assert np.all(np.diff(branch.a) > 0) and branch.a.iloc[0] == 0 and branch.a.iloc[-1] == 0.5
    assert abs(branch.alpha.iloc[0] - 1) < 1e-12 and abs(branch.alpha.iloc[-1] - 1 / 3) < 1e-12
    assert (branch.alpha_error_estimate < 1e-11).all() and (branch.residual_max < 1e-10).all()
    events = pd.read_csv(out / "events.csv")
    assert list(events.event) == ["alpha=0.5"] and abs(events.value[0] - 0.5) < 1e-12
    assert 0 < events.parameter[0] < 0.5
    assert json.loads((out / "branch.json").read_text())["reason"] == "reached"
    assert (out / "branch.png").stat().st_size > 0


@pytest.mark.slow
def test_continue_on_clustered_grids_meets_the_exact_member_and_resumes_on_its_grid(gclm_run, run_blowup, tmp_path):
    """--clustered: the run's profile re-solved on points clustered at its front, followed there (the grid re-centred
    as the front moves), to the exact α = 1/3 at a = 1/2; stopped and resumed, on the grid the state names."""
    out = tmp_path / "branch"
    args = ["continue", str(gclm_run), "--param", "equation.a", "--to", "0.5", "--clustered", "625", "--out", str(out)]
    first = run_blowup(*args, "--max-points", "3")
    assert first.returncode == 3 and "max_points" in first.stdout
    with np.load(out / "state.npz") as state:
        saved = (int(state["points"]), float(state["fronts"][0][0]))
    again = run_blowup(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stdout
    branch = pd.read_csv(out / "branch.csv")
    assert branch.a.iloc[0] == 0 and branch.a.iloc[-1] == 0.5 and np.all(np.diff(branch.a) > 0)
    assert abs(branch.alpha.iloc[0] - 1) < 1e-12 and abs(branch.alpha.iloc[-1] - 1 / 3) < 1e-12
    assert (branch.alpha_error_estimate < 1e-10).all() and (branch.residual_max < 1e-10).all()
    assert (branch.grid_points == 625).all()
    resumed_from = branch.iloc[3]  # the first point found after the resume, on the saved grid or one moved from it
    assert resumed_from.grid_points == saved[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, named",
    [
        (["--param", "equation.b", "--to", "1"], "equation.a"),
        (["--param", "equation.a", "--to", "1", "--event", "alpha"], "--event"),
        (["--param", "equation.a", "--to", "0"], "--to"),  # the run is there already
        (["--param", "equation.a", "--to", "1", "--clustered", "1"], "--clustered"),
        (["--param", "equation.a", "--to", "1", "--clustered", "9001"], "--max-grid-points"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(gclm_run, run_blowup, extra, named):
    run = run_blowup("continue", str(gclm_run), *extra)
    assert run.returncode == 2 and named in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_a_point_at_a_fixed_unknown_instead_of_a_fixed_parameter():
    """`Branch.at` holds any component: y = x² held at 0.49 (x = -0.7 on this branch) gives μ = x - x³ there."""
    system = Cubic()
    branch = Branch(system, Settings())
    x0 = -1.2
    start = Point(np.array([x0, x0**2]), x0 - x0**3, np.zeros(3))
    start.tangent = first_tangent(branch, start.x, start.mu, -1.0)
    found = branch.at(start, -2, 0.49)
    assert found is not None and found.x[1] == pytest.approx(0.49, abs=1e-14)
    assert abs(found.mu - (-0.7 + 0.343)) < 1e-13


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_branch_state_is_not_resumed_from(tmp_path, damage):
    """A state.npz cut short (a kill mid-write on a filesystem without atomic rename) or overwritten starts the
    branch again from its run instead of crashing `blowup continue`; an intact one gives back what was saved."""
    point, system = Point(np.linspace(0.0, 1.0, 7), 0.25, np.full(8, 0.5)), SimpleNamespace(size=7)
    _save_state(tmp_path, system, point, 0.05, 3)
    _, resumed, step, index = _load_state(tmp_path, system)
    assert np.array_equal(resumed.x, point.x) and resumed.mu == 0.25 and step == 0.05 and index == 3
    assert _load_state(tmp_path, SimpleNamespace(size=9)) is None  # another system's state
    state = tmp_path / STATE
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"\x00\xff not a state \x00" * 8)
    assert _load_state(tmp_path, system) is None


def burgers_branch(k: int, degree: int) -> ChebyshevBranch:
    """Burgers' profile k on [-2, 2] with U(∓2) = ±b, b the parameter, as `Burgers.continuation` poses it."""
    return ChebyshevBranch(
        residual,
        lambda b: ProfileSpec((-2.0, 2.0), {-2.0: b, 2.0: -b}, 2 * k + 3, 0.0, "odd"),
        degree,
        degree * 3 // 2 | 1,
        np.linspace(-2.0, 2.0, 401),
    )


@pytest.mark.slow  # seconds: the fast suite stays under 30 s
def test_burgers_in_its_boundary_value_keeps_lambda_k_and_the_closed_form_profile():
    """Every U + c U^5 = -X (c > 0) is a k = 1 profile: with U(2) = -b, c = (2 - b)/b^5 and λ = 1/4 all along.
    The event u_mid = U(1) = -0.8 lies where (2 - b)/b^5 = 0.2/0.8^5 (a root found independently)."""
    k, p = 1, 5
    system = burgers_branch(k, 201)
    x, converged = system.solve(system.fit(lambda xs: exact_profile(xs, k), 0.26), 1.0)  # λ started off by 0.01
    assert converged and abs(x[-1] - 0.25) < 1e-15
    points, events, reason = walk(system, x, 1.0, 1.3, [("u_mid", -0.8)])
    assert reason == "reached" and points[-1].mu == 1.3 and len(points) > 2
    grid = np.linspace(-2.0, 2.0, 401)
    for point in points:
        assert abs(point.x[-1] - 0.25) < 1e-14
        scale = (2 - point.mu) / point.mu**p
        assert np.abs(system.series(point.x)(grid) - exact_profile(grid, k, scale)).max() < 1e-13
    crossing = brentq(lambda b: (2 - b) / b**p - 0.2 / 0.8**p, 1.0, 1.3, xtol=1e-15)
    assert [e.name for e in events] == ["u_mid=-0.8"] and abs(events[0].mu - crossing) < 1e-13


def test_burgers_continues_only_its_boundary_value_and_low_profiles(compose_train):
    low = build(compose_train("equation=burgers", "profile=0"))
    with pytest.raises(ConfigError, match="equation.boundary"):
        low.continuation("equation.points")
    high = build(compose_train("equation=burgers", "profile=3"))
    with pytest.raises(ConfigError, match="profile <= 2"):
        high.continuation("equation.boundary")


@pytest.fixture(scope="module")
def burgers_run(tmp_path_factory, run_blowup):
    return trained(tmp_path_factory, run_blowup, "equation=burgers", "profile=0")


@pytest.mark.slow
def test_continue_a_burgers_run_in_its_boundary_value(burgers_run, run_blowup, tmp_path):
    """From the trained k = 0 run: λ = 1/2 and U + c U^3 = -X, c = (2 - b)/b^3, at every point, U(1) = -0.8 where
    (2 - b)/b^3 = 0.2/0.8^3, and no unstable mode (the stable profile, whatever its scale)."""
    out = tmp_path / "branch"
    args = ["continue", str(burgers_run), "--param", "equation.boundary", "--to", "1.9", "--event", "u_mid=-0.8"]
    run = run_blowup(*args, "--stability", "--out", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    branch = pd.read_csv(out / "branch.csv")
    assert branch.boundary.iloc[0] == 1 and branch.boundary.iloc[-1] == 1.9 and np.all(np.diff(branch.boundary) > 0)
    assert (np.abs(branch["lambda"] - 0.5) < 1e-14).all() and (branch.lambda_exact == 0.5).all()
    assert (branch.profile_max_error < 1e-14).all() and (branch.lambda_error_estimate < 1e-14).all()
    assert (branch.residual_max < 1e-13).all() and (branch.n_unstable == 0).all()
    events = pd.read_csv(out / "events.csv")
    crossing = brentq(lambda b: (2 - b) / b**3 - 0.2 / 0.8**3, 1.0, 1.9, xtol=1e-15)
    assert list(events.event) == ["u_mid=-0.8"] and abs(events.parameter[0] - crossing) < 1e-13
    wrong = run_blowup("continue", str(burgers_run), "--param", "equation.points", "--to", "2")
    assert wrong.returncode == 2 and "equation.boundary" in wrong.stderr and "Traceback" not in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def test_a_point_whose_spectra_fail_their_check_is_no_change_in_the_unstable_count(tmp_path, monkeypatch):
    """n_unstable NaN (the spectra missed a symmetry mode: `Spectrum.unstable_count`) is not a count: counts 1, NaN,
    1, 0 along a branch are one event, 1 -> 0, where the 0 is, not 1 -> NaN -> 1."""
    counts, mus = iter([1.0, float("nan"), 1.0, 0.0]), iter([0.1, 0.2, 0.3])

    class Counted:
        scalar_name = "lambda"

        def report(self, x, mu, stability):
            return {"lambda": mu, "lambda_error_estimate": 0.0, "residual_max": 0.0, "n_unstable": next(counts)}

        def measures(self, x, mu):
            return {}

    def one_point(branch, point, target, max_points, crossings, quantities, step):  # `follow`, a point at a time
        mu = next(mus)
        yield Point(np.zeros(2), mu, np.array([0.0, 0.0, 1.0])), [], 0.1
        return "reached" if mu == target else "max_points"

    monkeypatch.setattr(continuation_cli, "follow", one_point)
    system, args = Counted(), SimpleNamespace(stability=True, param="equation.a", to=0.3, max_points=10)
    pd.DataFrame([system.report(None, 0.0, True) | {"a": 0.0}]).to_csv(tmp_path / "branch.csv", index=False)
    start = Point(np.zeros(2), 0.0, np.array([0.0, 0.0, 1.0]))
    assert _walk(tmp_path, args, SimpleNamespace(system=system), start, 0.1, 0, "a", []) == "reached"
    events = pd.read_csv(tmp_path / "events.csv")
    assert list(events.event) == ["n_unstable 1 -> 0"] and events.parameter[0] == 0.3
