"""`blowup stability` against the closed-form spectrum of the Burgers profiles.

About the exact profile U_k the smooth modes are φ_j = U^j / (1 + (2k+3)U^(2k+2)) with ν_j = 1 + λ - jλ;
the analysis only sees the residual (through the complex step) and must find them, their parities, the
four symmetry modes and the count of genuine instabilities (2k, k of them odd)."""

import json
import subprocess

import numpy as np
import pytest
from test_newton import perturbed

from blowup.analysis.stability import analyse
from blowup.equations.burgers import exact_lambda, residual, stability_spec
from blowup.solvers.newton import Linearization


def exact_spec(k: int, offset: float = 0.0, size: float = 0.0):
    lin = Linearization(residual, perturbed(k, size), exact_lambda(k) + offset)
    moved = Linearization(residual, perturbed(k, 0.0), exact_lambda(k)) if (offset or size) else None
    return stability_spec(lin, k, perturbed=moved)


@pytest.mark.parametrize("k", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_every_smooth_mode_of_the_exact_profile_and_the_unstable_count(k):
    modes, counts = analyse(exact_spec(k))
    lam = exact_lambda(k)
    for j in range(2 * k + 4):
        nu = 1 + lam - j * lam
        found = [m for m in modes if abs(m.nu - nu) < 1e-9]
        assert len(found) == 1, (j, nu)
        mode = found[0]
        assert mode.parity == ("odd" if j % 2 else "even") and mode.error < 1e-6
        assert mode.exact_index == j and mode.eigenfunction_error < 1e-8
    assert (counts["n_unstable"], counts["n_unstable_odd"]) == (2 * k, k)
    assert counts["symmetry_modes"].keys() == {"translation", "time", "galilean", "scaling"}
    assert counts["symmetry_modes"]["galilean"] == pytest.approx(lam, abs=1e-12)
    assert counts["n_discarded"] == 0 and not counts["symmetry_modes_missing"]


@pytest.mark.slow
def test_a_profile_off_by_its_error_gets_error_bars_that_say_so():
    """λ 1e-4 off and a 3e-4 profile perturbation (a run that did not converge): eigenvalues move by
    about that much, and the error bars cover the move instead of claiming round-off."""
    k = 1
    modes, _ = analyse(exact_spec(k, offset=1e-4, size=3e-4))
    lam = exact_lambda(k)
    for j in range(2 * k + 4):
        nu = 1 + lam - j * lam
        mode = min(modes, key=lambda m: abs(m.nu - nu))
        assert abs(mode.nu - nu) <= 1.01 * mode.error + 1e-12 and mode.error > 1e-6


@pytest.mark.slow
def test_cli_writes_files_for_a_run_and_names_unreadable_dirs(tmp_path):
    run = tmp_path / "run"
    train = ["blowup", "train", "experiment=smoke", "profile=1", f"hydra.run.dir={run}"]
    assert subprocess.run(train, capture_output=True, text=True).returncode == 0
    args = ["blowup", "stability", str(run), str(tmp_path / "missing")]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0 and "missing: skipped" in result.stderr and "Traceback" not in result.stderr
    counts = json.loads((run / "stability.json").read_text())
    table = np.genfromtxt(run / "stability.csv", delimiter=",", names=True, dtype=None, encoding=None)
    assert len(table) == counts["n_reported"] and (run / "stability.png").stat().st_size > 0
    nothing = subprocess.run(["blowup", "stability", str(tmp_path / "missing")], capture_output=True, text=True)
    assert nothing.returncode == 2 and nothing.stderr.count("\n") == 1
