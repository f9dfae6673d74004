"""The supported range of Burgers profiles: the refinement resolves a profile to the tolerance only while its
Chebyshev coefficients fall fast enough for the largest degree. The rate comes from the profile's branch points;
the oracle is the decay the exact profile's own Chebyshev coefficients show."""

import math
import re

import numpy as np
import pytest
from numpy.polynomial import Chebyshev

from blowup.config import validate
from blowup.equations.burgers import chebyshev_rate, exact_profile
from blowup.errors import ConfigError


@pytest.mark.parametrize("k", [1, 4, 8])
def test_the_branch_point_rate_is_the_decay_of_the_exact_profiles_coefficients(k):
    series = Chebyshev.interpolate(lambda x: exact_profile(2 * x, k), 1200)
    n = np.arange(1, len(series.coef), 2)  # odd profile: odd coefficients
    c = np.abs(series.coef[n])
    fit = (c < 1e-3) & (c > 1e-13)
    # a square-root branch point (U - U_s ~ (X - X_s)^(1/2)) gives coefficients ~ n^(-3/2) ρ^-n
    slope = np.polyfit(n[fit], np.log(c[fit]) + 1.5 * np.log(n[fit]), 1)[0]
    assert -slope == pytest.approx(chebyshev_rate(k), rel=0.05)


def test_profiles_past_the_largest_degree_are_refused_with_one_line(compose_train):
    with pytest.raises(ConfigError, match=r"profile=300 is invalid: .* allowed profile <= 19 with this tolerance"):
        validate(compose_train("profile=300", "experiment=smoke"))
    validate(compose_train("profile=19"))  # the largest at the default tolerance
    validate(compose_train("profile=40", "equation.refine=0"))  # the network alone: no degree to run out of


def test_the_largest_profile_offered_is_accepted_and_the_next_refused(compose_train):
    tight = ("equation.tolerance.profile_error=1e-14",)
    with pytest.raises(ConfigError, match=r"allowed profile <= (\d+) with this tolerance") as refused:
        validate(compose_train("profile=16", *tight))
    largest = int(re.search(r"allowed profile <= (\d+)", str(refused.value)).group(1))
    assert largest < 16
    validate(compose_train(f"profile={largest}", *tight))
    with pytest.raises(ConfigError):
        validate(compose_train(f"profile={largest + 1}", *tight))


def test_the_limit_follows_the_tolerance():
    assert math.log(1e9) / chebyshev_rate(19) <= 540 < math.log(1e9) / chebyshev_rate(20)


def test_a_tolerance_under_the_dtypes_round_off_is_refused(compose_train):
    """float32 spacing is 1.2e-7: its Newton estimates end near 3e-7 (results/burgers_range.csv), never at 1e-9."""
    with pytest.raises(ConfigError, match=r"equation.tolerance.lambda_error=1e-09 is invalid with dtype=float32"):
        validate(compose_train("dtype=float32"))
    validate(
        compose_train("dtype=float32", "equation.tolerance.lambda_error=1e-5", "equation.tolerance.profile_error=1e-5")
    )
    validate(compose_train("dtype=float32", "equation.refine=0"))  # the network alone: nothing to estimate
    with pytest.raises(ConfigError, match="dtype=float64"):
        validate(compose_train("equation.tolerance.profile_error=1e-16"))
