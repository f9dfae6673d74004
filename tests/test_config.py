"""Config composition through Hydra's compose API, and the checks that reject bad values."""

import pytest

from blowup.cli import check_overrides
from blowup.config import group_options, validate
from blowup.errors import ConfigError


@pytest.fixture(scope="module")
def defaults(compose_train):
    return compose_train()


@pytest.fixture(scope="module")
def composed(compose_train, defaults, overridden):
    """The train config with these value overrides (the defaults composed once, the values set on a copy)."""
    return lambda *overrides: overridden(defaults, *overrides)


def test_defaults_compose_and_validate(defaults):
    cfg = defaults
    validate(cfg)
    assert (cfg.equation.name, cfg.backend.name, cfg.profile, cfg.sobolev, cfg.dtype, cfg.device) == (
        "burgers",
        "ntp",
        0,
        1,
        "float64",
        "auto",
    )
    assert cfg.optim.adam.steps > 0 and cfg.optim.lbfgs.steps > 0 and cfg.optim.lm.steps > 0


def test_groups_and_top_level_overrides(compose_train):
    cfg = compose_train(
        "backend=autograd", "profile=3", "sobolev=2", "device=cpu", "seed=7", "dtype=float32", "equation.refine=0"
    )
    validate(cfg)
    assert (cfg.backend.name, cfg.profile, cfg.sobolev, cfg.device, cfg.seed, cfg.dtype) == (
        "autograd",
        3,
        2,
        "cpu",
        7,
        "float32",
    )
    assert set(group_options("backend")) >= {"autograd", "ntp"}


def test_smoke_experiment_is_tiny(compose_train):
    cfg = compose_train("experiment=smoke")
    total = sum(cfg.optim[p].steps for p in ("adam", "lbfgs", "lm"))
    assert total < 100 and cfg.equation.model.width <= 8


@pytest.mark.parametrize(
    "override, key",
    [
        ("profile=-1", "profile"),
        ("sobolev=-2", "sobolev"),
        ("device=tpu", "device"),
        ("dtype=float16", "dtype"),
        ("optim.adam.steps=-5", "optim.adam.steps"),
        ("equation.embedding=even", "equation.embedding"),
        ("equation.points=1", "equation.points"),
        ("equation.lambda_bracket=[0.6,0.9]", "equation.lambda_bracket"),
        ("optim.lm.acceleration=-1", "optim.lm.acceleration"),
        ("optim.lm.damping=0", "optim.lm.damping"),
        ("equation.weights.origin=-1", "equation.weights.origin"),
        ("equation.local_radius=0", "equation.local_radius"),
        ("equation.lm_local_radius=-0.1", "equation.lm_local_radius"),
        ("equation.lm_weights.residual=-1", "equation.lm_weights.residual"),
        ("equation.lm_weights.smooth=-2", "equation.lm_weights.smooth"),
        ("equation.weights.smooth=-1", "equation.weights.smooth"),
        ("equation.weights.residual=-1", "equation.weights.residual"),
        ("optim.adam.lr=-1", "optim.adam.lr"),
        ("optim.lbfgs.lr=0", "optim.lbfgs.lr"),
        ("optim.lbfgs.history=0", "optim.lbfgs.history"),
        ("optim.guess.damping=0", "optim.guess.damping"),
        ("optim.lm.patience=0", "optim.lm.patience"),
        ("optim.adam.rtol=1", "optim.adam.rtol"),
        ("equation.initial_guess=zero", "equation.initial_guess"),
        ("equation.tolerance.lambda_error=0", "equation.tolerance.lambda_error"),
        ("profile=1000", "profile"),
        ("equation.refine=-1", "equation.refine"),
        ("optim.restarts=-1", "optim.restarts"),
        ("max_memory_gb=0", "max_memory_gb"),
        ("optim.stage.frequencies=[]", "optim.stage.frequencies"),
        ("optim.stage.frequencies=[5,0]", "optim.stage.frequencies"),
        ("optim.stage.trial_steps=0", "optim.stage.trial_steps"),
        ("optim.stage.accept_at=0", "optim.stage.accept_at"),
        ("optim.stage.accept_at=2", "optim.stage.accept_at"),
        ("equation.stage_points=1", "equation.stage_points"),
        ("optim.lm.svd=qr", "optim.lm.svd"),
        ("optim.stage.svd=sketch", "optim.stage.svd"),
    ],
)
def test_bad_values_name_their_key(composed, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(composed(override))


@pytest.mark.parametrize("equation", ["sir", "decay"])
def test_a_profile_index_is_refused_where_the_equation_has_none(compose_train, equation):
    with pytest.raises(ConfigError, match=rf"^profile=2 is invalid: allowed 0 \({equation} has one solution"):
        validate(compose_train(f"equation={equation}", "profile=2"))
    validate(compose_train(f"equation={equation}"))


def test_zero_total_steps_rejected(composed):
    with pytest.raises(ConfigError, match="steps"):
        validate(composed("optim.guess.steps=0", "optim.adam.steps=0", "optim.lbfgs.steps=0", "optim.lm.steps=0"))


def test_wrong_type_rejected_at_composition_names_the_key():
    """profile is an int: composing profile=abc fails, and `blowup train` turns that into one line naming it."""
    with pytest.raises(ConfigError) as err:
        check_overrides("train", ["profile=abc"])
    message = str(err.value)
    assert "profile" in message and "abc" in message and "\n" not in message


def test_memory_estimate_refuses_what_cannot_fit_unless_raised_on_purpose(composed):
    """profile=1000 asks for derivatives of order 2004: refused with the estimate and the limit in the
    message; the same config passes once the limit is raised, and the estimate grows with the order. (The network
    alone, equation.refine=0: with the refinement, the supported range refuses such a profile first.)"""
    alone = "equation.refine=0"
    with pytest.raises(ConfigError, match=r"profile=1000 .* needs about ([0-9.e+]+) GB .*max_memory_gb=8\b"):
        validate(composed("profile=1000", "max_memory_gb=8", alone))
    validate(composed("profile=1000", "max_memory_gb=1e6", alone))
    validate(composed("profile=10", "max_memory_gb=8"))
    with pytest.raises(ConfigError, match="profile=40"):
        validate(composed("profile=40", "max_memory_gb=0.6"))
