"""Pseudo-arclength continuation (blowup.solvers.continuation) on systems whose folds and crossings are known in
closed form, and `blowup continue` on the gCLM family between its exact members a = 0 and a = 1/2."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.sparse.linalg import aslinearoperator

from blowup.analysis.continuation import STATE, _load_state, _save_state
from blowup.solvers.continuation import Branch, Point, Settings, first_tangent, follow


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


@pytest.fixture(scope="module")
def gclm_run(tmp_path_factory, run_blowup):
    run_dir = tmp_path_factory.mktemp("gclm") / "run"
    run = run_blowup("train", "equation=gclm", "experiment=smoke", "seed=0", "threads=1", f"hydra.run.dir={run_dir}")
    assert run.returncode == 0, run.stderr[-2000:]
    return run_dir


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
@pytest.mark.parametrize(
    "extra, named",
    [
        (["--param", "equation.b", "--to", "1"], "equation.a"),
        (["--param", "equation.a", "--to", "1", "--event", "alpha"], "--event"),
        (["--param", "equation.a", "--to", "0"], "--to"),  # the run is there already
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
    point = Point(np.linspace(0.0, 1.0, 7), 0.25, np.full(8, 0.5))
    _save_state(tmp_path, point, 0.05, 3)
    resumed, step, index = _load_state(tmp_path)
    assert np.array_equal(resumed.x, point.x) and resumed.mu == 0.25 and step == 0.05 and index == 3
    state = tmp_path / STATE
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"\x00\xff not a state \x00" * 8)
    assert _load_state(tmp_path) is None
