"""`blowup stability` against the closed-form spectrum of the Burgers profiles.

About the exact profile U_k the smooth modes are φ_j = U^j / (1 + (2k+3)U^(2k+2)) with ν_j = 1 + λ - jλ;
the analysis only sees the residual (through the complex step) and must find them, their parities, the
four symmetry modes and the count of genuine instabilities (2k, k of them odd)."""

import json
import math
import subprocess

import numpy as np
import pytest
import torch

from blowup.engine.jet import Jet
from blowup.equations.burgers import exact_lambda, exact_profile, residual, stability_spec
from blowup.solvers.newton import Linearization


def perturbed(k: int, size: float):
    """U_k + size * sin(X)(1 - X^2/4) with all its Taylor coefficients, as the `profile(x, order)` a
    Linearization takes. U_k's come from differentiating U + U^(2k+3) = -X implicitly, order by order."""

    def profile(x: torch.Tensor, order: int) -> Jet:
        p, u0 = 2 * k + 3, torch.from_numpy(exact_profile(x.numpy().ravel(), k)).view(-1, 1)
        coeffs = torch.zeros(order + 1, *u0.shape)
        coeffs[0] = u0
        for n in range(1, order + 1):  # with coefficient n unknown, that of U + U^p + X is linear in it
            trial = Jet(coeffs[: n + 1].clone())
            power = trial
            for _ in range(p - 1):
                power = power * trial
            coeffs[n] = -(trial + power + Jet.variable(x, n)).coeffs[n] / (1 + p * u0 ** (p - 1))
        sin = [torch.sin(x), torch.cos(x), -torch.sin(x), -torch.cos(x)]
        wave = Jet(torch.stack([sin[d % 4] / math.factorial(d) for d in range(order + 1)]) * size)
        bump = 1 - Jet.variable(x, order) * Jet.variable(x, order) * 0.25  # zero at X = ±2
        return Jet(coeffs + (wave * bump).coeffs)

    return profile


def exact_spec(k: int, offset: float = 0.0, size: float = 0.0):
    lin = Linearization(residual, perturbed(k, size), exact_lambda(k) + offset)
    moved = Linearization(residual, perturbed(k, 0.0), exact_lambda(k)) if (offset or size) else None
    return stability_spec(lin, k, perturbed=moved)


@pytest.mark.parametrize("k", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_every_smooth_mode_of_the_exact_profile_and_the_unstable_count(k):
    spectrum = exact_spec(k).analyse()
    modes, counts = spectrum.modes, spectrum.counts
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
    modes = exact_spec(k, offset=1e-4, size=3e-4).analyse().modes
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
    no_plane = subprocess.run(["blowup", "stability", str(run), "--complex"], capture_output=True, text=True)
    assert no_plane.returncode == 2 and no_plane.stderr.count("\n") == 1 and "complex" in no_plane.stderr
    no_wider = subprocess.run(["blowup", "stability", str(run), "--right", "5"], capture_output=True, text=True)
    assert no_wider.returncode == 2 and no_wider.stderr.count("\n") == 1 and "boundary values" in no_wider.stderr
    not_a_number = subprocess.run(["blowup", "stability", str(run), "--right", "inf"], capture_output=True, text=True)
    assert not_a_number.returncode == 2 and "argument --right: 'inf' is invalid" in not_a_number.stderr
