"""A run says what it will cost before it costs it: the probe's seconds per step against the steps the run then
measures, the refusal over max_hours before anything is written, and the budget left to a resumed run."""

import pytest
from omegaconf import OmegaConf

from blowup.config import validate
from blowup.errors import ConfigError
from blowup.training import trainer
from blowup.training.estimate import remaining_steps

TINY = ("experiment=smoke", "optim.guess.steps=4", "optim.adam.steps=40", "optim.lbfgs.steps=8", "optim.lm.steps=4")
FACTOR = 10  # the probe times two evaluations on a shared machine; the run's median over many steps may differ


@pytest.mark.slow  # a timing over a whole tiny run: the fast suite stays under 30 s
def test_the_estimate_is_within_a_factor_of_the_measured_steps(tmp_path, compose_train):
    summary = trainer.train(compose_train(*TINY, "optim.lbfgs.accept_every=0", "optim.lm.accept_every=0"), tmp_path)
    estimated, measured = summary["estimated_step_time_s"], summary["step_time_median_by_phase_s"]
    assert set(measured) <= set(estimated)
    for phase, seconds in measured.items():
        assert estimated[phase] / FACTOR < seconds < estimated[phase] * FACTOR, phase
    budget = sum(estimated[p] * n for p, n in zip(("guess", "adam", "lbfgs", "lm"), (4, 40, 8, 4)))
    assert summary["estimated_time_s"] == pytest.approx(budget)


@pytest.mark.parametrize("backend", ["ntp", "autograd"])
def test_a_run_over_max_hours_is_refused_before_anything_is_written(tmp_path, compose_train, backend):
    cfg = compose_train(*TINY, f"backend={backend}", "max_hours=1e-7")
    with pytest.raises(ConfigError, match=r"max_hours=1e-07 is exceeded: this run is expected to take at least") as err:
        trainer.train(cfg, tmp_path)
    assert ("backend=ntp takes about" in str(err.value)) == (backend == "autograd")
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "config.yaml").exists()


def test_max_hours_must_be_positive(compose_train):
    with pytest.raises(ConfigError, match=r"max_hours=0.0 is invalid: allowed null \(no limit\) or a number > 0"):
        validate(compose_train("max_hours=0"))


def test_a_resumed_run_is_estimated_on_the_steps_it_has_left(compose_train):
    cfg = compose_train()
    phases = ["guess", "adam", "lbfgs", "lm"]
    budget = {p: cfg.optim[p].steps for p in phases}
    state = {"phase": "lbfgs", "phase_step": 100}
    assert remaining_steps(cfg, phases, state) == {
        "guess": 0,
        "adam": 0,
        "lbfgs": budget["lbfgs"] - 100,
        "lm": budget["lm"],
    }
    assert remaining_steps(cfg, phases, None) == budget
    assert OmegaConf.select(cfg, "max_hours") == 2
